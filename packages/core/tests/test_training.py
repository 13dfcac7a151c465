"""Global-batch accounting for multi-process runs."""

import json

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



def _contrastive(z1, z2):
    import torch
    import torch.nn.functional as F

    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / 0.1
    return F.cross_entropy(logits, torch.arange(len(z1)))


def _net():
    import torch

    net = torch.nn.Linear(4, 3)
    torch.nn.init.constant_(net.weight, 0.1), torch.nn.init.zeros_(net.bias)
    net.weight.data[0, 0] = 0.7
    return net


def _two_process_job(rank: int, port: int, x1, x2, out) -> None:
    """One of two gloo processes, each holding half of a global batch of 6 rows."""
    import torch
    import torch.distributed as dist
    from fmzoo.core.training import gather_global_batch, global_mean_divisor

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        counts, sums = [3, 9], [6.0, 27.0]
        divided = float(sums[rank] / global_mean_divisor(torch.tensor(counts[rank])))
        net = _net()
        rows = slice(rank * 3, rank * 3 + 3)
        z1, z2 = gather_global_batch(net(x1[rows]), net(x2[rows]))
        loss = _contrastive(z1, z2)
        loss.backward()
        dist.all_reduce(net.weight.grad)  # what DDP does: the average of the processes' gradients
        out[rank] = (divided, float(loss), (net.weight.grad / 2).tolist())
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes():
    import socket

    import torch
    import torch.multiprocessing as mp

    gen = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_two_process_job, args=(port, x1, x2, out), nprocs=2, join=True)
    return x1, x2, dict(out)


def test_global_mean_divisor_averages_over_the_whole_global_batch(two_processes):
    import torch
    from fmzoo.core.training import global_mean_divisor

    assert float(global_mean_divisor(torch.tensor(7))) == 7.0  # one process: the count itself
    assert float(global_mean_divisor(torch.tensor(0))) == 1.0
    out = two_processes[2]
    # process 0 summed 6 over 3 elements, process 1 27 over 9; DDP averages the two losses' gradients, and
    # that average must be the global batch's mean 33 / 12, not the mean of the per-process means (2 and 3)
    assert (out[0][0] + out[1][0]) / 2 == pytest.approx(33 / 12)


def test_gather_global_batch_gives_the_whole_batch_loss_and_gradient(two_processes):
    import torch

    x1, x2, out = two_processes
    net = _net()
    whole = _contrastive(net(x1), net(x2))  # one process, the whole batch
    whole.backward()
    for rank in (0, 1):
        _, loss, grad = out[rank]
        assert loss == pytest.approx(whole.item(), rel=1e-5)
        assert torch.allclose(torch.tensor(grad), net.weight.grad, rtol=1e-4, atol=1e-6)
    # per-process in-batch negatives (no gather) would train on another loss
    halves = (_contrastive(net(x1[:3]), net(x2[:3])) + _contrastive(net(x1[3:]), net(x2[3:]))) / 2
    assert halves.item() != pytest.approx(whole.item(), rel=1e-3)


def test_training_seconds_add_up_over_a_resume(tmp_path):
    """The clock lives in the checkpoint: a resumed run reports the time of both parts, not the last one alone."""
    import time

    import lightning as L
    import torch
    from fmzoo.core import HubMixin, publish_run, training

    nap = 0.1

    class Slow(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 1)

        def training_step(self, batch, i):
            time.sleep(nap)
            return self.w(batch).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    loader = torch.utils.data.DataLoader(torch.randn(8, 2), batch_size=2)  # 4 steps per epoch
    first = training.training_seconds(training.fit(Slow(), loader, tmp_path, max_epochs=1, progress=False))
    resumed = training.fit(Slow(), loader, tmp_path, max_epochs=2, resume=True, progress=False)
    total = training.training_seconds(resumed)
    assert resumed.global_step == 8
    assert 4 * nap <= first < total
    assert total >= 8 * nap and total - first >= 4 * nap
    record = training.training_record(resumed)  # what provenance.json keeps: both parts, with their steps
    assert record["resumed"] and record["steps"] == 8
    assert [(p["from_step"], p["to_step"]) for p in record["parts"]] == [(0, 4), (4, 8)]
    assert all(p["seconds"] >= 4 * nap for p in record["parts"])
    assert abs(sum(p["seconds"] for p in record["parts"]) - record["seconds"]) < 0.3

    class Net(torch.nn.Module, HubMixin):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 1)

    out = publish_run(Net(), tmp_path / "checkpoint", trainer=resumed)
    assert json.loads((out / "provenance.json").read_text())["training"] == record
    with pytest.raises(ValueError, match="TrainClock"):
        training.training_seconds(L.Trainer(logger=False, enable_checkpointing=False))
