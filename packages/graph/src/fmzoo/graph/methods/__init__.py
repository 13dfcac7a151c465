"""Self-supervised objectives (GraphMAE) as training loops / Lightning tasks."""
