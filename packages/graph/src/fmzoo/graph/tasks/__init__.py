"""Downstream protocols: GraphMAE's node linear probe, molecular fine-tuning."""
