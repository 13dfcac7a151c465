"""Downstream protocols: the fmzoo evaluate / finetune hooks (downstream.py), GraphMAE's node linear probe,
molecular fine-tuning at small label budgets (the paper tables' protocols)."""
