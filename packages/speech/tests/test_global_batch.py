"""A recipe's batch_size is the global batch: each DDP process loads its share, step counts stay global."""

import pytest
import torch
from fmzoo.speech.methods._common import PretrainAudio, segment_loader

RECIPE = {"batch_size": 8, "data": {"segment_seconds": 0.1, "segments_per_epoch": 100, "pool_segments": 4,
                                    "pool_doubling_steps": 10}}


def test_segment_loader_splits_the_global_batch_and_keeps_the_step_count():
    wavs = PretrainAudio([torch.randn(50) for _ in range(3)])
    ds1, one, seg, bs1, steps1 = segment_loader(RECIPE, wavs, 1000, None, 2.0, 4, {})
    ds2, two, _, bs2, steps2 = segment_loader(RECIPE, wavs, 1000, None, 2.0, 4, {"devices": 2, "strategy": "ddp"})
    assert seg == 100 and (one.batch_size, bs1, steps1) == (8, 8, len(one)) == (8, 8, 12)  # one process: as before
    assert (two.batch_size, bs2, steps2) == (4, 8, 12)  # max_steps = steps x epochs counts global batches
    assert ds1.pool_doubling == ds2.pool_doubling == 80  # the pool doubles every 10 global steps either way
    with pytest.raises(ValueError, match="not divisible"):
        segment_loader(RECIPE, wavs, 1000, None, 2.0, 4, {"devices": 3})


def test_tera_ranks_draw_their_own_alterations():
    from fmzoo.speech.methods.tera import TERATask
    from fmzoo.speech.models.tera import TERA

    def draws(rank):
        task = TERATask(TERA(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64), seed=5)
        if rank is not None:
            task.seed_own_generators(rank)
        return [task.rng.random() for _ in range(4)]

    assert draws(None) == draws(0) and draws(0) != draws(1)
