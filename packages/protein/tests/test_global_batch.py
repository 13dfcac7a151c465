"""data.max_tokens is the global token budget: each DDP process takes its share of every global batch."""

import numpy as np
import pytest
import torch
from fmzoo.protein.methods.mlm import TokenBudgetSampler


def test_token_budget_sampler_shares_each_global_batch_between_processes():
    lengths = list(np.random.default_rng(0).integers(10, 300, 500))
    one = list(TokenBudgetSampler(lengths, 2048, seed=0))
    shares = [list(TokenBudgetSampler(lengths, 2048, seed=0, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(TokenBudgetSampler(lengths, 2048, seed=0, num_replicas=2)) == len(one)  # same steps per epoch
    assert [sorted(a + b) for a, b in zip(*shares, strict=True)] == [sorted(b) for b in one]  # same global batches
    assert all(abs(len(a) - len(b)) <= 1 for a, b in zip(*shares, strict=True))


def test_token_budget_sampler_gives_every_process_a_sequence():
    shares = [list(TokenBudgetSampler([300] * 5, 400, shuffle=False, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 2 and all(s for rank in shares for s in rank)
    assert sorted(i for rank in shares for b in rank for i in b) == list(range(5))
    with pytest.raises(ValueError, match="cannot be shared"):
        TokenBudgetSampler([300], 400, num_replicas=2)


def test_mask_collator_draws_its_own_masks_on_each_rank(monkeypatch):
    import fmzoo.protein.methods.mlm as mlm

    batch = [np.arange(4, 24)] * 8

    def masks(rank):
        monkeypatch.setattr(mlm, "global_rank", lambda: rank)
        return mlm.MaskCollator(seed=0)(batch)["input_ids"]

    ids = torch.as_tensor(np.stack(batch))
    before = mlm.apply_bert_mask(ids, torch.Generator().manual_seed(0))[0]  # one process: the masks as before
    assert torch.equal(masks(0), before) and not torch.equal(masks(0), masks(1))
