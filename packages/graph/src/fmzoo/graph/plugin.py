"""fmzoo plugin of the graph domain (registered through the ``fmzoo.plugins`` entry point)."""
from pathlib import Path

from fmzoo.core import Plugin

HERE = Path(__file__).parent


def plugin() -> Plugin:
    return Plugin(
        name="graph",
        models={
            "GraphMAE": "fmzoo.graph.models.graphmae:GraphMAE",
            "MolGIN": "fmzoo.graph.models.gin:MolGIN",
            "GraphMAEGIN": "fmzoo.graph.models.graphmae_graph:GraphMAEGIN",
        },
        methods={
            "graphmae": "fmzoo.graph.methods.graphmae:GraphMAENode",
            "graphmae-mol": "fmzoo.graph.methods.graphmae_mol:GraphMAEMol",
            "graphmae-graph": "fmzoo.graph.methods.graphmae_graph:GraphMAEGraph",
        },
        downstream={
            "GraphMAE": "fmzoo.graph.tasks.downstream:NodeHooks",
            "MolGIN": "fmzoo.graph.tasks.downstream:MoleculeHooks",
            "GraphMAEGIN": "fmzoo.graph.tasks.downstream:GraphHooks",
        },
        datasets={
            "cora": "fmzoo.graph.data.planetoid:load_cora",
            "mutag": "fmzoo.graph.data.tu:load_mutag",
            "moleculenet": "fmzoo.graph.data.molecules:load_moleculenet",
        },
        recipes_dir=HERE / "recipes",
        tables_dir=HERE / "tables",
        checkpoints_dir=HERE / "checkpoints",
        weight_formats={"graphmae-chem-gin": "fmzoo.graph.weights:ChemGINRelease"},
        official="fmzoo.graph.weights:OFFICIAL",
    )
