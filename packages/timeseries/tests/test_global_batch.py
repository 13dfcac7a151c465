"""A recipe's batch_size is the global batch: each DDP process loads its share, step counts stay global."""

import pytest
import torch
from fmzoo.timeseries.methods.gpht import pretrain_loader

DDP2 = {"devices": 2, "strategy": "ddp"}


def test_pretrain_loader_splits_the_global_batch_and_keeps_the_step_count():
    ds = torch.utils.data.TensorDataset(torch.zeros(1000, 1))
    one, bs1, steps1 = pretrain_loader(ds, {"batch_size": 256}, 0, {})
    two, bs2, steps2 = pretrain_loader(ds, {"batch_size": 256}, 0, DDP2)
    assert (one.batch_size, bs1, steps1) == (256, 256, len(one)) == (256, 256, 3)  # one process: as before
    assert (two.batch_size, bs2, steps2) == (128, 256, 3)  # halving period / series_seen count global batches
    with pytest.raises(ValueError, match="not divisible"):
        pretrain_loader(ds, {"batch_size": 256}, 0, {"devices": 3})
