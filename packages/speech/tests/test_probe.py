"""SUPERB-style probe on real FSDD clips: pooling over valid frames, layer weighting, baselines."""

import warnings

import torch
from fmzoo.speech.data.fsdd import load_fsdd
from fmzoo.speech.models.tera import TERA
from fmzoo.speech.models.wav2vec2 import Wav2Vec2
from fmzoo.speech.spec import ResampleWarning
from fmzoo.speech.tasks.probe import layer_means, logmel_means, train_probe

W2V_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                conv_dim=[16, 16, 16, 16], conv_stride=[5, 2, 2, 2], conv_kernel=[10, 3, 3, 3],
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, codevector_dim=16,
                proj_codevector_dim=16, num_codevectors_per_group=8, feat_extract_norm="layer")


def _clips(split, limit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        return load_fsdd(split, limit=limit)


def test_batched_pooling_equals_one_by_one():
    wavs, _, _, _ = _clips("test", 12)
    torch.manual_seed(0)
    group_norm = {**W2V_TINY, "feat_extract_norm": "group"}  # the shipped wav2vec2-small's feature encoder
    for m in (TERA(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
              Wav2Vec2(**W2V_TINY), Wav2Vec2(**group_norm)):
        batched = layer_means(m, wavs, batch_size=6)
        single = torch.cat([layer_means(m, [w], batch_size=1) for w in wavs])
        assert batched.shape == (12, m.num_layers, m.hidden_size)
        assert torch.allclose(batched, single, atol=1e-4), (type(m).__name__, (batched - single).abs().max())


def test_weighted_sum_finds_the_informative_layer():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (400,), generator=g)
    x = torch.randn(400, 4, 16, generator=g)
    x[:, 2, :4] += 5 * torch.nn.functional.one_hot(y, 4).float()  # only layer 2 carries the label
    r = train_probe(x[:300], y[:300], x[300:], y[300:], 4, seed=0)
    assert r["accuracy"] > 0.9
    assert max(range(4), key=lambda i: r["layer_weights"][i]) == 2


def test_logmel_baseline_on_real_clips():
    tr, dtr, str_, _ = _clips("train", 300)  # 300 of the 2700 training clips: digit 0.85, speaker 0.99 (2026-12-07)
    te, dte, ste, _ = _clips("test", 300)
    a, b = logmel_means(tr), logmel_means(te)
    assert a.shape == (300, 1, 80)
    digit = train_probe(a, dtr, b, dte, 10, seed=0)["accuracy"]
    speaker = train_probe(a, str_, b, ste, 6, seed=0)["accuracy"]
    assert digit > 0.6 and speaker > 0.85, (digit, speaker)  # chance: 0.10 and 0.17


def test_probe_init_from_its_own_generator_matches_the_seeded_global_stream():
    """train_probe seeds its head with its own generator: the same numbers as torch.manual_seed(seed) gave (so the
    speech-fsdd rows did not move)."""
    from fmzoo.core import runtime
    from fmzoo.speech.tasks.probe import WeightedSumProbe

    torch.manual_seed(3)
    ref = WeightedSumProbe(4, 16, 6)
    torch.manual_seed(123)  # whatever the global stream holds
    own = WeightedSumProbe(4, 16, 6, generator=runtime.generator(3))
    assert torch.equal(ref.linear.weight, own.linear.weight) and torch.equal(ref.linear.bias, own.linear.bias)
    other = WeightedSumProbe(4, 16, 6, generator=runtime.generator(4))
    assert not torch.equal(ref.linear.weight, other.linear.weight)
