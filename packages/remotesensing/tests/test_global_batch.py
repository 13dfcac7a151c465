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


def test_ranks_draw_their_own_views():
    from fmzoo.remotesensing.methods.softcon import SoftConTask
    from fmzoo.remotesensing.models.backbones import SoftConResNet
    from fmzoo.remotesensing.spec import S2_L1C_ORDER

    def draws(rank):
        model = SoftConResNet(S2_L1C_ORDER, channels=[8, 8, 16, 16], stem_width=8, input_size=32)
        task = SoftConTask(model, view_size=32, mask_patch=8, proj_hidden=16, proj_dim=8, seed=3)
        if rank is not None:
            task.seed_own_generators(rank)
        return torch.rand(4, generator=task.gen)

    assert torch.equal(draws(None), draws(0))  # rank 0 (and one process) draw as before
    assert not torch.equal(draws(0), draws(1))


def test_in_batch_pairs_span_the_global_batch(monkeypatch):
    """Under DDP the soft contrastive loss scores every process's rows (core.gather_global_batch, whose
    exactness is tested in core): here, that ssl_loss hands it both projections and the labels."""
    from fmzoo.remotesensing.methods import softcon
    from fmzoo.remotesensing.models.backbones import SoftConResNet
    from fmzoo.remotesensing.spec import S2_L1C_ORDER

    seen = []

    def recording_gather(*tensors):
        seen.append([tuple(t.shape) for t in tensors])
        return tensors

    monkeypatch.setattr(softcon, "gather_global_batch", recording_gather)
    model = SoftConResNet(S2_L1C_ORDER, channels=[8, 8, 16, 16], stem_width=8, input_size=32)
    task = softcon.SoftConTask(model, view_size=32, mask_patch=8, proj_hidden=16, proj_dim=8, seed=3)
    x, labels = torch.randn(4, len(S2_L1C_ORDER), 32, 32), torch.randint(0, 2, (4, 5))
    assert torch.isfinite(task.ssl_loss((x, labels))["loss"])
    assert seen == [[(4, 8), (4, 8), (4, 5)]]
