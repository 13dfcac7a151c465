"""Global-batch accounting for multi-process runs."""

import pytest
from fmzoo.core.training import per_device_batch, world_size


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
