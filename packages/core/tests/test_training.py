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
