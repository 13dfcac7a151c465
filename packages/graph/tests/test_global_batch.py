"""A recipe's batch_size is the global batch: each DDP process loads its share, step counts stay global."""

import pytest
from fmzoo.graph.methods.graphmae_mol import pretrain_loader


def test_mol_pretrain_loader_splits_the_global_batch_and_keeps_the_step_count():
    graphs = [{}] * 1000
    one, steps1 = pretrain_loader(graphs, 256, {})
    two, steps2 = pretrain_loader(graphs, 256, {"devices": 2, "strategy": "ddp"})
    assert (one.batch_size, steps1) == (256, len(one)) == (256, 4)  # one process: as before
    assert (two.batch_size, steps2) == (128, 4)  # pretrain_steps counts global batches
    with pytest.raises(ValueError, match="not divisible"):
        pretrain_loader(graphs, 256, {"devices": 3})


def test_node_graph_pretraining_refuses_several_processes(data_root, tmp_path):
    from fmzoo.core.pretrain import run_pretraining

    with pytest.raises(ValueError, match="one process"):
        run_pretraining({"method": "graphmae", "dataset": "cora", "train": {"max_epoch": 2}}, tmp_path,
                        {"devices": 2, "strategy": "ddp"})
