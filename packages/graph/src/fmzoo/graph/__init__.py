"""fmzoo-graph: GraphMAE (Hou et al., KDD 2022) on node graphs (Cora) and molecules (RDKit + GIN)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
