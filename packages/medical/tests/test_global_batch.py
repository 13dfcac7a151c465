"""A recipe's batch_size is the global batch: each DDP process loads its share (max_steps counts global steps)."""

import pytest
import torch
from fmzoo.medical.methods.common import pretrain_loader


def test_pretrain_loader_splits_the_global_batch():
    ds = torch.utils.data.TensorDataset(torch.zeros(10, 1))
    one, bs1 = pretrain_loader(ds, {"batch_size": 2}, 1, {})
    two, bs2 = pretrain_loader(ds, {"batch_size": 2}, 1, {"devices": 2, "strategy": "ddp"})
    assert (one.batch_size, bs1) == (2, 2)  # one process: as before
    assert (two.batch_size, bs2) == (1, 2)  # volumes_per_s counts the global batch
    with pytest.raises(ValueError, match="not divisible"):  # voco-small's batch of 1 cannot be split
        pretrain_loader(ds, {}, 1, {"devices": 2, "strategy": "ddp"})
