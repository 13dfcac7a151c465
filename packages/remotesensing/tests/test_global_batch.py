"""A recipe's batch_size is the global batch: each DDP process loads its share."""

import pytest
import torch
from fmzoo.remotesensing.methods.softcon import pretrain_loader


def test_pretrain_loader_splits_the_global_batch():
    ds = torch.utils.data.TensorDataset(torch.zeros(1000, 1))
    assert pretrain_loader(ds, 128, 0, {}).batch_size == 128  # one process: as before
    assert pretrain_loader(ds, 128, 0, {"devices": 2, "strategy": "ddp"}).batch_size == 64
    with pytest.raises(ValueError, match="not divisible"):
        pretrain_loader(ds, 128, 0, {"devices": 3, "strategy": "ddp"})
