"""SoftConViT computes its last block for the class token alone (the feature reads nothing else): the same features
and gradients as timm's full forward (all tokens through every block, final norm, token pooling), with and without
dropped tokens, fused and plain attention; other heads fall back to the full forward."""

import pytest
import torch
from fmzoo.remotesensing.models.backbones import SoftConViT
from fmzoo.remotesensing.spec import S2_L1C_ORDER


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    m = SoftConViT(S2_L1C_ORDER, patch_size=8, embed_dim=64, depth=3, num_heads=4, input_size=32, init_values=1e-5,
                   mask_token=True, **kw)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # every weight random and away from its init (LayerScale at 1e-5 would hide the blocks)
        for name, p in m.named_parameters():
            p.copy_((1.0 if name.endswith(("norm1.weight", "norm2.weight", "norm.weight")) else 0.0)
                    + torch.randn(p.shape, generator=gen) * (0.1 if p.ndim > 1 else 0.3))
    return m


def _full(m, x, keep):  # timm's own path: every token through every block
    vit = m.backbone
    t = vit._pos_embed(vit.patch_embed(x))
    if keep is not None:
        p = vit.num_prefix_tokens
        t = torch.cat([t[:, :p], torch.gather(t[:, p:], 1, keep.unsqueeze(-1).expand(-1, -1, t.shape[-1]))], 1)
    return vit.forward_head(vit.norm(vit.blocks(vit.norm_pre(t))), pre_logits=True)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_class_token_block_equals_the_full_forward(fused, masked):
    m = _model().train()
    for blk in m.backbone.blocks:
        blk.attn.fused_attn = fused
    x = torch.randn(3, 13, 32, 32, generator=torch.Generator().manual_seed(1))
    keep = torch.rand(3, 16, generator=torch.Generator().manual_seed(2)).argsort(1)[:, :11].sort(1).values
    keep = keep if masked else None
    assert m._class_token_only(m.backbone.blocks[-1])
    a, b = m(x, keep=keep), _full(m, x, keep)
    assert a.shape == (3, 64)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), float((a - b).abs().max())
    params = [p for p in m.parameters() if p.requires_grad]
    ga = torch.autograd.grad((a * torch.linspace(-1, 1, 64)).sum(), params, allow_unused=True)
    gb = torch.autograd.grad((b * torch.linspace(-1, 1, 64)).sum(), params, allow_unused=True)
    for p, u, v in zip(params, ga, gb, strict=True):
        if v is None:  # the mask token: unused by both
            assert u is None
            continue
        assert torch.allclose(u, v, atol=1e-5, rtol=1e-4), (p.shape, float((u - v).abs().max()))
    # the last block's patch-token MLP is no longer run: its fc1 sees one row per image
    rows = []
    h = m.backbone.blocks[-1].mlp.fc1.register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape[1]))
    m(x, keep=keep)
    h.remove()
    assert rows == [1]


def test_other_pooling_falls_back_to_the_full_forward():
    m = _model().eval()
    m.backbone.global_pool = "avg"  # the class token is then not the feature: every token is needed
    assert not m._class_token_only(m.backbone.blocks[-1])
    x = torch.randn(2, 13, 32, 32)
    assert torch.equal(m(x), _full(m, x, None))
