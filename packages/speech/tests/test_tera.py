"""TERA: the alteration policy's statistics, L1 on altered entries only, learning, checkpoint round trip."""

import random
import warnings

import pytest
import torch
from fmzoo.core.errors import InputSpecError
from fmzoo.speech.data.fsdd import fsdd_dir
from fmzoo.speech.models.tera import TERA, tera_alteration
from fmzoo.speech.spec import load_audio

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def test_time_alteration_blocks_and_proportion():
    feats = torch.randn(200, 300, 80) + 5.0  # no entry is naturally 0
    x, label = tera_alteration(feats, freq_proportion=0.0, noise_proportion=0.0, rng=random.Random(0))
    time_lab = label.all(-1)
    assert torch.equal(label, time_lab[..., None].expand_as(label))
    # round(300 * 0.15 / 7) = 6 blocks of 7 frames, overlaps allowed: <= 42 frames, about 15% of frames
    per_utt = time_lab.sum(1).float()
    assert per_utt.max() <= 42 and 0.11 < per_utt.mean() / 300 < 0.15
    zeroed = (x == 0).all(-1).all(-1) | ~time_lab.any(1)
    changed = [(x[i][time_lab[i]] != feats[i][time_lab[i]]).any().item() for i in range(200)]
    zero_share = sum(bool((x[i][time_lab[i]] == 0).all()) for i in range(200)) / 200
    assert 0.7 < zero_share < 0.9  # 80% zeroed
    assert 0.05 < 1 - sum(changed) / 200 < 0.2  # 10% left unchanged
    assert torch.equal(x[~label], feats[~label])  # nothing outside the label changed
    _ = zeroed


def test_channel_block_and_noise():
    feats = torch.randn(400, 50, 80) + 5.0
    x, label = tera_alteration(feats, mask_proportion=0.0, noise_proportion=0.0, rng=random.Random(1))
    widths = label[:, 0].sum(-1)
    assert widths.max() <= 16 and widths.float().mean() > 5  # uniform in [0, 0.2 * 80]
    for i in range(400):
        cols = torch.nonzero(label[i, 0]).reshape(-1)
        if cols.numel():
            assert cols.max() - cols.min() + 1 == cols.numel()  # one contiguous block
            assert (x[i][:, cols] == 0).all()
    x, label = tera_alteration(feats, mask_proportion=0.0, freq_proportion=0.0, rng=random.Random(2))
    noisy = label.all(-1).all(-1)
    assert 0.1 < noisy.float().mean() < 0.2  # 15% of utterances
    resid = (x - feats)[noisy]
    assert abs(resid.std().item() - 0.2) < 0.01
    assert torch.equal(x[~noisy], feats[~noisy])


def test_padding_is_never_altered():
    feats = torch.randn(8, 100, 80) + 5.0
    lengths = torch.tensor([100, 60, 30, 100, 10, 50, 70, 90])
    x, label = tera_alteration(feats, lengths, noise_proportion=1.0, rng=random.Random(3))
    for i, n in enumerate(lengths.tolist()):
        assert not label[i, n:].any() and torch.equal(x[i, n:], feats[i, n:])


def test_loss_is_l1_on_altered_entries_and_training_learns():
    torch.manual_seed(0)
    m = TERA(**SMALL, hidden_dropout=0.0, attention_dropout=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wavs = [load_audio(fsdd_dir() / f"{d}_lucas_9.wav") for d in range(8)]
    m.set_global_cmvn(wavs)
    feats = [m.featurize(w) for w in wavs]
    n = min(f.shape[0] for f in feats)
    x = torch.stack([f[:n] for f in feats])
    rng = random.Random(0)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    losses = []
    for _ in range(40):
        out = m.reconstruction_loss(x, generator=rng)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert sum(losses[-5:]) < 0.75 * sum(losses[:5]), losses
    # the loss ignores entries that were not altered: perturbing the prediction there changes nothing
    altered, label = tera_alteration(x, rng=random.Random(5))
    pred = m(altered)["prediction"]
    manual = ((pred - x).abs() * label).sum() / label.sum()
    manual2 = ((pred + 10 * (~label) - x).abs() * label).sum() / label.sum()
    assert torch.allclose(manual, manual2)


def test_checkpoint_round_trip_keeps_cmvn_and_spec(tmp_path):
    torch.manual_seed(0)
    m = TERA(**SMALL, cmvn="global").eval()
    m.cmvn_mean.normal_()
    m.cmvn_std.uniform_(0.5, 2.0)
    m.save_pretrained(tmp_path / "t")
    back = TERA.from_pretrained(tmp_path / "t")
    assert torch.equal(back.cmvn_mean, m.cmvn_mean) and back.input_spec["features"]["cmvn"] == "global"
    wav = torch.randn(8000) * 0.1
    with torch.no_grad():
        a = m(m.featurize(wav)[None])["last_hidden_state"]
        b = back(back.featurize(wav)[None])["last_hidden_state"]
    assert torch.equal(a, b)
    with pytest.raises(InputSpecError, match="features"):
        m(torch.randn(1, 20, 40))
    with pytest.raises(InputSpecError, match="NaN"):
        m(torch.full((1, 20, 80), float("nan")))
    with pytest.raises(InputSpecError, match="expected sample rate 16000 Hz, got 8000 Hz"):
        m.prepare(torch.randn(4000) * 0.1, 8000, resample_ok=False)
    with pytest.raises(ValueError, match="cmvn"):
        TERA(**SMALL, cmvn="per-speaker")


def _torch_layer_from(layer, eps):
    """The nn.TransformerEncoderLayer the TERA layer replaced (post-LN, GELU, batch first), with its weights."""
    attn = layer.self_attn
    ref = torch.nn.TransformerEncoderLayer(attn.heads * attn.head_dim, attn.heads, layer.linear1.out_features,
                                           dropout=0.0, activation="gelu", layer_norm_eps=eps, batch_first=True)
    ref.load_state_dict(layer.state_dict(), strict=True)  # the same parameter names: shipped checkpoints load
    return ref


@pytest.mark.parametrize("train", [False, True])
def test_encoder_layer_equals_torch_transformer_layer(train):
    torch.manual_seed(0)
    m = TERA(**SMALL, hidden_dropout=0.0, attention_dropout=0.0)
    layer = m.layers[0].train(train)
    ref = _torch_layer_from(layer, 1e-12).train(train)
    x = torch.randn(3, 40, 32, requires_grad=True)
    pad = torch.arange(40)[None] >= torch.tensor([40, 31, 9])[:, None]
    valid = ~pad[..., None]
    y, y_ref = layer(x, pad), ref(x, src_key_padding_mask=pad)
    assert torch.allclose(y * valid, y_ref * valid, atol=1e-5)
    if train:  # the same gradients, through the masked softmax too
        g = torch.randn_like(y) * valid
        gx = torch.autograd.grad(y, x, g)[0]
        gx_ref = torch.autograd.grad(y_ref, x, g)[0]
        assert torch.allclose(gx, gx_ref, atol=1e-5)
        # the explicit attention used while attention dropout is on (p -> 0) equals scaled_dot_product_attention
        layer.self_attn.dropout = 1e-12
        assert torch.allclose(layer(x, pad) * valid, y * valid, atol=1e-5)


def test_dropout_keeps_one_minus_p_and_rescales():
    from fmzoo.speech.models.tera import dropout

    x = torch.ones(2000, 500, requires_grad=True)
    assert dropout(x, 0.3, False) is x and dropout(x, 0.0, True) is x
    y = dropout(x, 0.3, True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.003  # 1e6 draws: sd 0.00046
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(g, y.detach())  # the gradient is the same mask, same scale
    assert not dropout(x, 1.0, True).any()


def test_no_dropout_on_the_feed_forward_activation_as_s3prl():
    """s3prl's TERA (TransformerIntermediate) has no dropout after the GELU; nn.TransformerEncoderLayer has one.
    With hidden dropout on, a layer is exactly h = LN(x + drop(attn(x))), LN(h + drop(W2 gelu(W1 h))): two draws,
    none on the activation."""
    from fmzoo.speech.models.tera import dropout

    torch.manual_seed(0)
    m = TERA(**SMALL, hidden_dropout=0.5, attention_dropout=0.0)
    layer = m.layers[0].train()
    x = torch.randn(2, 30, 32)
    torch.manual_seed(3)
    y = layer(x)
    torch.manual_seed(3)
    h = layer.norm1(x + dropout(layer.self_attn(x), 0.5, True))
    expected = layer.norm2(h + dropout(layer.linear2(torch.nn.functional.gelu(layer.linear1(h))), 0.5, True))
    assert torch.allclose(y, expected, atol=1e-6)
