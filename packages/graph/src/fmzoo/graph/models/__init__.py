"""Architectures: GAT / GraphMAE for node graphs, GIN (Hu et al. 2020) for molecules."""
