"""Global-batch accounting for multi-process runs."""

import pytest
from fmzoo.core.training import per_device_batch, syncs_batchnorm, world_size


def test_world_size_counts_processes():
    assert world_size({}) == 1
    assert world_size({"devices": 2, "num_nodes": 4}) == 8
    assert world_size({"devices": [0, 1, 2]}) == 3
    assert world_size({"devices": "auto", "accelerator": "cpu"}) == 1


def test_per_device_batch_splits_the_global_batch():
    assert per_device_batch(512, {}) == 512
    assert per_device_batch(512, {"devices": 2, "strategy": "ddp"}) == 256
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        per_device_batch(512, {"devices": 3})


def test_batchnorm_is_synchronised_only_across_accelerator_processes():
    assert not syncs_batchnorm({})
    assert not syncs_batchnorm({"devices": 1, "accelerator": "gpu"})
    assert syncs_batchnorm({"devices": 2, "strategy": "ddp", "accelerator": "gpu"})
    assert syncs_batchnorm({"devices": 1, "num_nodes": 2, "accelerator": "cuda"})
    assert not syncs_batchnorm({"devices": 2, "strategy": "ddp", "accelerator": "cpu"})  # torch cannot on CPU


def test_multiprocess_cpu_fit_warns_that_batchnorm_is_per_process(tmp_path, monkeypatch):
    import lightning as L
    import torch
    from fmzoo.core import training

    class Stop(Exception):
        pass

    def no_fit(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(L.Trainer, "fit", no_fit)  # only the check before training runs
    task = L.LightningModule()
    task.net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    with pytest.warns(UserWarning, match="BatchNorm statistics are per process"), pytest.raises(Stop):
        training.fit(task, None, tmp_path, max_epochs=1, devices=2, strategy="ddp", progress=False)


def _divisor_on_rank(rank: int, port: int, counts: list, sums: list, out) -> None:
    import torch
    import torch.distributed as dist
    from fmzoo.core.training import global_mean_divisor

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=len(counts))
    try:
        out[rank] = float(sums[rank] / global_mean_divisor(torch.tensor(counts[rank])))
    finally:
        dist.destroy_process_group()


def test_global_mean_divisor_averages_over_the_whole_global_batch():
    import socket

    import torch
    import torch.multiprocessing as mp
    from fmzoo.core.training import global_mean_divisor

    assert float(global_mean_divisor(torch.tensor(7))) == 7.0  # one process: the count itself
    assert float(global_mean_divisor(torch.tensor(0))) == 1.0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    counts, sums = [3, 9], [6.0, 27.0]  # per-process means 2 and 3; the global batch's mean is 33 / 12
    out = mp.Manager().dict()
    mp.start_processes(_divisor_on_rank, args=(port, counts, sums, out), nprocs=2, join=True, start_method="fork")
    # DDP averages the processes' losses (their gradients); that average must be the global mean
    assert (out[0] + out[1]) / 2 == pytest.approx(33 / 12)
    assert (6 / 3 + 27 / 9) / 2 != pytest.approx(33 / 12)  # what per-process means would have trained on
