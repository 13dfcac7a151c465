"""fmzoo-graph: GraphMAE (Hou et al., KDD 2022) on node graphs (Cora) and molecules (RDKit + GIN).

``from fmzoo.graph import GraphMAE, MolGIN, GraphMAEGIN`` (imported on first use); every model also takes a
torch_geometric ``Data`` / ``Batch`` (see ``fmzoo.graph.pyg``)."""

__version__ = "0.1.0"

_MODELS = {"GraphMAE": "models.graphmae", "MolGIN": "models.gin", "GraphMAEGIN": "models.graphmae_graph"}

__all__ = ["__version__", *_MODELS]


def __getattr__(name):
    if name in _MODELS:
        import importlib

        return getattr(importlib.import_module(f".{_MODELS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
