"""A recipe's batch_size is the global batch: each DDP process loads its share, step counts stay global."""

import pytest


def test_mol_loader_takes_this_process_share_of_the_global_batch(tmp_path):
    from fmzoo.core.method import PretrainData
    from fmzoo.core.training import per_device_batch
    from fmzoo.graph.data.molecules import collate
    from fmzoo.graph.methods.graphmae_mol import GraphMAEMol, _Graphs

    m = GraphMAEMol({"method": "graphmae-mol", "train": {"batch_size": 256}}, tmp_path)
    data = PretrainData(_Graphs([{}] * 1000), collate_fn=collate)
    one = m.loader(data, per_device_batch(m.global_batch(), {}))
    two = m.loader(data, per_device_batch(m.global_batch(), {"devices": 2, "strategy": "ddp"}))
    assert (one.batch_size, len(one), two.batch_size) == (256, 4, 128)  # pretrain_steps counts global batches
    assert GraphMAEMol({"method": "graphmae-mol"}, tmp_path).global_batch() == 256  # the official default
    with pytest.raises(ValueError, match="not divisible"):
        per_device_batch(m.global_batch(), {"devices": 3})


def test_node_graph_pretraining_refuses_several_processes(data_root, tmp_path):
    from fmzoo.core.pretrain import run_pretraining

    with pytest.raises(ValueError, match="processes"):  # the core's per-device batch check comes first
        run_pretraining({"method": "graphmae", "dataset": "cora", "train": {"max_epoch": 2}}, tmp_path,
                        {"devices": 2, "strategy": "ddp"})
