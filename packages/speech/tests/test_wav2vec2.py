"""wav2vec 2.0: numerical equivalence with transformers (same random weights), HF format in and out,
masking and distractor sampling, and a training step that learns."""

import json

import pytest
import torch
import transformers  # the reference implementation (fmzoo-speech[test])
from fmzoo.core.errors import CheckpointError, InputSpecError
from fmzoo.speech.models.wav2vec2 import Wav2Vec2, compute_span_mask, sample_negative_indices
from fmzoo.speech.weights import from_hf
from safetensors.torch import load_file, save_file
from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining, Wav2Vec2Model

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            conv_dim=[16, 16, 16], conv_stride=[5, 2, 2], conv_kernel=[10, 3, 3], num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4, codevector_dim=16, proj_codevector_dim=16, num_codevectors_per_group=8,
            num_negatives=7, mask_time_prob=0.65)
VARIANTS = {
    "base-like (group norm, post-LN)": {},
    "large-like (layer norm, pre-LN, conv bias)": dict(feat_extract_norm="layer", do_stable_layer_norm=True,
                                                       conv_bias=True),
}


def _pair(**extra):
    torch.manual_seed(0)
    hf = Wav2Vec2ForPreTraining(Wav2Vec2Config(**TINY, **extra)).eval()
    ours = Wav2Vec2(**TINY, **extra).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)  # identical parameter names and shapes
    return hf, ours


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_equivalent_to_transformers_pretraining_model(variant):
    hf, ours = _pair(**VARIANTS[variant])
    torch.manual_seed(1)
    x = torch.randn(3, 2400)
    t = int(ours.feature_lengths(torch.tensor(2400)))
    mask = compute_span_mask(3, t, 0.65, 10, min_masks=2, generator=torch.Generator().manual_seed(0))
    neg = sample_negative_indices(mask, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = hf(x, mask_time_indices=mask, sampled_negative_indices=neg, output_hidden_states=True)
        b = ours(x, mask_time_indices=mask, sampled_negative_indices=neg)
    diffs = {k: float((getattr(a, k) - b[k]).abs().max()) for k in
             ("projected_states", "projected_quantized_states", "codevector_perplexity", "diversity_loss")}
    diffs["hidden_states"] = max(float((h1 - h2).abs().max()) for h1, h2 in zip(a.hidden_states, b["hidden_states"], strict=True))
    rel = abs(float(a.loss) - float(b["loss"])) / abs(float(a.loss))
    print(f"\n[{variant}] max abs diff vs transformers {transformers.__version__}: {diffs}; loss rel diff {rel:.2e}")
    assert len(a.hidden_states) == len(b["hidden_states"]) == TINY["num_hidden_layers"] + 1
    assert max(diffs.values()) < 1e-5
    assert rel < 1e-5 and float(a.loss) > 0


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_equivalent_with_padding_mask(variant):
    hf, ours = _pair(**VARIANTS[variant])
    x = torch.randn(2, 3000)
    am = torch.ones(2, 3000, dtype=torch.long)
    am[1, 1900:] = 0
    x[1, 1900:] = 0
    with torch.no_grad():
        a = hf.wav2vec2(x, attention_mask=am, output_hidden_states=True)
        b = ours(x, attention_mask=am, compute_loss=False)
    n_valid = int(ours.feature_lengths(torch.tensor(1900)))
    d = max(float((h1[0] - h2[0]).abs().max()) for h1, h2 in zip(a.hidden_states, b["hidden_states"], strict=True))
    d_pad = max(float((h1[1, :n_valid] - h2[1, :n_valid]).abs().max())
                for h1, h2 in zip(a.hidden_states, b["hidden_states"], strict=True))
    d_last = float((a.last_hidden_state[1, :n_valid] - b["last_hidden_state"][1, :n_valid]).abs().max())
    print(f"\n[{variant}] padded batch max abs diff: full row {d:.2e}, padded row {d_pad:.2e}, last {d_last:.2e}")
    if VARIANTS[variant].get("feat_extract_norm", "group") == "layer":
        assert max(d, d_pad, d_last) < 1e-5
    else:
        # transformers' group norm includes the padding in its statistics; ours does not (the padded row is
        # the clip run alone, below), so only the unpadded row is compared with transformers here
        assert d < 1e-5 and d_pad > 1e-3


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_padded_clip_equals_the_clip_alone(variant):
    """A clip's valid frames do not depend on its batch mates' padding (both feature-encoder norms)."""
    _, ours = _pair(**VARIANTS[variant])
    torch.manual_seed(2)
    x = torch.randn(2, 3000)
    x[1, 1900:] = 0
    am = torch.ones(2, 3000, dtype=torch.long)
    am[1, 1900:] = 0
    with torch.no_grad():
        batched = ours(x, attention_mask=am, compute_loss=False)
        alone = ours(x[1:, :1900], compute_loss=False)
    n_valid = int(ours.feature_lengths(torch.tensor(1900)))
    assert alone["hidden_states"][0].shape[1] == n_valid
    d = max(float((h1[1, :n_valid] - h2[0]).abs().max())
            for h1, h2 in zip(batched["hidden_states"], alone["hidden_states"], strict=True))
    print(f"\n[{variant}] padded row vs clip alone: max abs diff {d:.2e}")
    assert d < 1e-5


def test_hf_checkpoint_loads_unchanged_and_saves_back(tmp_path, tmp_hub):
    torch.manual_seed(0)
    hf = Wav2Vec2ForPreTraining(Wav2Vec2Config(**TINY)).eval()
    hf.save_pretrained(tmp_path / "hf")
    ours = Wav2Vec2.from_pretrained(tmp_path / "hf")  # HF directory recognised by its config.json, converted once
    (converted,) = (tmp_hub / "imported" / "transformers-wav2vec2").iterdir()
    prov = json.loads((converted / "provenance.json").read_text())
    assert prov["imported_from"]["format"] == "transformers-wav2vec2"
    assert {f["name"] for f in prov["imported_from"]["files"]} >= {"config.json", "model.safetensors"}
    x = torch.randn(2, 2000)
    with torch.no_grad():
        ref = hf.wav2vec2(x).last_hidden_state
        assert float((ours(x, compute_loss=False)["last_hidden_state"] - ref).abs().max()) < 1e-6
    ours.save_hf(tmp_path / "back")
    cfg = json.loads((tmp_path / "back" / "config.json").read_text())
    assert cfg["model_type"] == "wav2vec2" and cfg["conv_dim"] == TINY["conv_dim"]
    again = Wav2Vec2ForPreTraining.from_pretrained(tmp_path / "back").eval()
    a, b = load_file(str(tmp_path / "hf" / "model.safetensors")), load_file(str(tmp_path / "back" / "model.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        assert torch.equal(again.wav2vec2(x).last_hidden_state, ref)


def test_fmzoo_checkpoint_is_also_a_transformers_checkpoint(tmp_path):
    torch.manual_seed(0)
    ours = Wav2Vec2(**TINY).eval()
    ours.save_pretrained(tmp_path / "ck")
    hf = Wav2Vec2ForPreTraining.from_pretrained(tmp_path / "ck").eval()
    back = Wav2Vec2.from_pretrained(tmp_path / "ck")
    x = torch.randn(1, 2000)
    with torch.no_grad():
        mine = ours(x, compute_loss=False)["last_hidden_state"]
        assert torch.equal(hf.wav2vec2(x).last_hidden_state, mine)
        assert torch.equal(back(x, compute_loss=False)["last_hidden_state"], mine)
    assert back.input_spec["sample_rate"] == 16000


def test_legacy_weight_norm_keys_and_bare_model(tmp_path):
    torch.manual_seed(0)
    hf = Wav2Vec2ForPreTraining(Wav2Vec2Config(**TINY)).eval()
    hf.save_pretrained(tmp_path / "new")
    sd = load_file(str(tmp_path / "new" / "model.safetensors"))
    legacy = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
              for k, v in sd.items()}
    (tmp_path / "old").mkdir()
    save_file(legacy, str(tmp_path / "old" / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "old" / "config.json").write_text((tmp_path / "new" / "config.json").read_text())
    ours = from_hf(tmp_path / "old").eval()
    x = torch.randn(1, 2000)
    with torch.no_grad():
        assert float((ours(x, compute_loss=False)["last_hidden_state"] - hf.wav2vec2(x).last_hidden_state).abs().max()) < 1e-6
    bare = Wav2Vec2Model(Wav2Vec2Config(**TINY)).eval()
    bare.save_pretrained(tmp_path / "bare")
    with pytest.raises(CheckpointError, match="missing"):
        from_hf(tmp_path / "bare")
    with pytest.warns(UserWarning, match="no pretraining head"):
        b2 = from_hf(tmp_path / "bare", allow_missing_head=True).eval()
    with torch.no_grad():
        assert float((b2(x, compute_loss=False)["last_hidden_state"] - bare(x).last_hidden_state).abs().max()) < 1e-6
    (tmp_path / "pickle").mkdir()
    (tmp_path / "pickle" / "config.json").write_text((tmp_path / "new" / "config.json").read_text())
    (tmp_path / "pickle" / "pytorch_model.bin").write_bytes(b"\x80\x04")  # read with weights_only: a broken file
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint|does not unpickle"):
        from_hf(tmp_path / "pickle")


def test_span_mask_follows_the_paper():
    g = torch.Generator().manual_seed(0)
    m = compute_span_mask(64, 500, 0.65, 10, generator=g)
    # p = 0.065 of steps start a span of M = 10; overlaps make the masked share ~ 1 - (1 - p)^M = 49%
    frac = m.float().mean().item()
    assert 0.40 < frac < 0.55
    runs = torch.diff(torch.cat([torch.zeros(64, 1), m.float(), torch.zeros(64, 1)], 1), dim=1)
    lengths = (torch.nonzero(runs == -1)[:, 1] - torch.nonzero(runs == 1)[:, 1])
    assert int(lengths.min()) >= 10  # masked runs are whole spans
    short = compute_span_mask(2, 30, 0.65, 10, lengths=[30, 12], min_masks=2, generator=g)
    assert short[1, 12:].sum() == 0 and short[1].sum() >= 10


def test_distractors_are_other_masked_steps_of_the_same_utterance():
    g = torch.Generator().manual_seed(0)
    mask = compute_span_mask(4, 120, 0.65, 10, min_masks=2, generator=g)
    neg = sample_negative_indices(mask, 100, generator=g)
    for b in range(4):
        pos = torch.nonzero(mask[b]).reshape(-1)
        for t in pos.tolist():
            idx = neg[b, t] - b * 120
            assert bool(mask[b, idx].all())  # from masked steps
            assert not bool((idx == t).any())  # never the positive itself
    counts = torch.bincount((neg[0][mask[0]] - 0).reshape(-1), minlength=120)[mask[0]]
    assert counts.float().std() / counts.float().mean() < 0.2  # roughly uniform


def test_training_step_learns_and_input_checks():
    torch.manual_seed(0)
    no_dropout = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, feat_quantizer_dropout=0.0,
                      layerdrop=0.0)
    m = Wav2Vec2(**{**TINY, "num_negatives": 20, **no_dropout}).train()
    m.feature_grad_mult = 0.1
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    import warnings

    from fmzoo.speech.data.fsdd import fsdd_dir
    from fmzoo.speech.spec import load_audio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clips = [load_audio(fsdd_dir() / f"{d}_jackson_7.wav") for d in (1, 4, 7, 9)]
    x = torch.stack([torch.cat([c, c])[:4000] for c in clips])  # real speech: structure to predict
    x = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)
    g = torch.Generator().manual_seed(0)
    t = int(m.feature_lengths(torch.tensor(4000)))
    mask = compute_span_mask(4, t, 0.65, 10, min_masks=2, generator=g)
    neg = sample_negative_indices(mask, 20, generator=g)
    losses, accs = [], []
    for _ in range(40):
        out = m(x, mask_time_indices=mask, sampled_negative_indices=neg)
        loss = out["loss"] / out["num_masked"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(out["contrastive_loss"].detach() / out["num_masked"]))
        accs.append(float(out["accuracy"]))
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5]), losses
    assert sum(accs[-5:]) / 5 > 3 / 21, accs  # the positive beats 20 distractors well above chance
    with pytest.raises(InputSpecError, match="too short"):
        m(torch.randn(1, 30))  # receptive field of TINY is 40 samples
    with pytest.raises(InputSpecError, match=r"\[batch, samples\]"):
        m(torch.randn(4000))
    with pytest.raises(ValueError, match="unknown Wav2Vec2 config keys"):
        Wav2Vec2(hiden_size=3)


def test_training_mode_matches_transformers_step_by_step():
    """Gumbel sampling, straight-through gradients and the loss in train mode: three SGD steps of both
    implementations from the same weights (dropout off, same RNG stream) stay on the same trajectory."""
    no_dropout = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, feat_quantizer_dropout=0.0,
                      layerdrop=0.0)
    hf, ours = _pair(**no_dropout)
    hf.train()
    ours.train()
    x = torch.randn(2, 3000)
    t = int(ours.feature_lengths(torch.tensor(3000)))
    # plain SGD: parameter differences then measure gradient differences directly (Adam would amplify float
    # round-off on parameters whose gradient is ~0)
    opts = [torch.optim.SGD(m.parameters(), lr=1e-3) for m in (hf, ours)]
    traj = {"hf": [], "ours": []}
    for step in range(3):
        g = torch.Generator().manual_seed(step)
        mask = compute_span_mask(2, t, 0.65, 10, min_masks=2, generator=g)
        neg = sample_negative_indices(mask, 7, generator=g)
        for name, m, opt in (("hf", hf, opts[0]), ("ours", ours, opts[1])):
            torch.manual_seed(100 + step)  # the same Gumbel noise for both
            out = m(x, mask_time_indices=mask, sampled_negative_indices=neg)
            loss = out.loss if name == "hf" else out["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            traj[name].append(float(loss))
    print(f"\ntrain-mode loss trajectories: transformers {traj['hf']} / fmzoo {traj['ours']}")
    for a, b in zip(traj["hf"], traj["ours"], strict=True):
        assert abs(a - b) <= 1e-4 * abs(a)
    sd_hf, sd_ours = hf.state_dict(), ours.state_dict()
    assert set(sd_hf) == set(sd_ours)
    pdiff = max(float((sd_hf[k] - sd_ours[k]).abs().max()) for k in sd_hf)
    print(f"max abs parameter difference after 3 steps: {pdiff:.2e}")
    assert pdiff < 1e-5


def test_distractor_equal_to_the_target_is_ignored_as_in_transformers():
    """A quantizer that picks the same codewords everywhere makes every distractor equal to its target: all of
    them are masked out of the softmax (contrastive loss 0), in transformers and here."""
    hf, ours = _pair()
    for m in (hf, ours):
        with torch.no_grad():
            m.quantizer.weight_proj.weight.zero_()
    x = torch.randn(2, 2400)
    t = int(ours.feature_lengths(torch.tensor(2400)))
    mask = compute_span_mask(2, t, 0.65, 10, min_masks=2, generator=torch.Generator().manual_seed(0))
    neg = sample_negative_indices(mask, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = hf(x, mask_time_indices=mask, sampled_negative_indices=neg)
        b = ours(x, mask_time_indices=mask, sampled_negative_indices=neg)
    assert float(a.contrastive_loss) == float(b["contrastive_loss"]) == 0.0
    # one distinct quantized vector among others: only its own distractors that equal it are dropped
    with torch.no_grad():
        ours.quantizer.weight_proj.weight.normal_()
        hf.quantizer.weight_proj.weight.copy_(ours.quantizer.weight_proj.weight)
        a = hf(x, mask_time_indices=mask, sampled_negative_indices=neg)
        b = ours(x, mask_time_indices=mask, sampled_negative_indices=neg)
    assert abs(float(a.contrastive_loss) - float(b["contrastive_loss"])) <= 1e-5 * float(a.contrastive_loss)
