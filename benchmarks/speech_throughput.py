"""fmzoo-speech pretraining throughput (seconds of audio per second) and peak memory, beside a reference
implementation measured in the same run on the same inputs:

- wav2vec 2.0: fmzoo ``Wav2Vec2`` vs ``transformers.Wav2Vec2ForPreTraining`` (identical config and weights,
  same masks and distractors): one optimisation step = forward + contrastive/diversity loss + backward + AdamW.
- TERA: fmzoo ``TERA`` (alteration policy + L1) vs a BERT-style STAND-IN written here, not the official code
  (``transformers`` ``BertModel`` of the same width/depth fed the same projected frames, same L1 loss). The
  comparison with the official code (s3prl's TERA/Mockingjay model and masking) is benchmarks/run_all.py's TERA row.

Each (model, implementation) runs in its own subprocess so that peak RSS (ru_maxrss) is its own.
Not run by CI. Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/speech_throughput.py [--config small|base] [--steps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

SMALL_W2V = dict(conv_dim=[128] * 7, hidden_size=192, num_hidden_layers=4, num_attention_heads=4,
                 intermediate_size=768, num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=16,
                 codevector_dim=128, proj_codevector_dim=128, hidden_dropout=0.0, attention_dropout=0.0,
                 feat_proj_dropout=0.0, feat_quantizer_dropout=0.0, layerdrop=0.0)
SMALL_TERA = dict(hidden_size=192, num_hidden_layers=3, num_attention_heads=4, intermediate_size=768)
BASE_W2V: dict = dict(layerdrop=0.0)
BASE_TERA = dict(hidden_size=768, num_hidden_layers=3, num_attention_heads=12, intermediate_size=3072)


def _child(model: str, impl: str, config: str, steps: int, batch: int, seconds: float) -> dict:
    import torch

    torch.manual_seed(0)
    sr = 16000
    n = int(seconds * sr)
    if model == "wav2vec2":
        from fmzoo.speech.models.wav2vec2 import Wav2Vec2, compute_span_mask, sample_negative_indices

        cfg = SMALL_W2V if config == "small" else BASE_W2V
        ours = Wav2Vec2(**cfg)
        t = int(ours.feature_lengths(torch.tensor(n)))
        mask = compute_span_mask(batch, t, 0.65, 10, min_masks=2, generator=torch.Generator().manual_seed(0))
        neg = sample_negative_indices(mask, 100, generator=torch.Generator().manual_seed(0))
        if impl == "fmzoo":
            net = ours.train()
            ours.feature_grad_mult = 0.1

            def step(x):
                out = net(x, mask_time_indices=mask, sampled_negative_indices=neg)
                return out["loss"] / out["num_masked"] + 10 * out["feature_penalty"]
        else:
            from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

            full = {**ours.hf_config()}
            full.pop("architectures", None)
            net = Wav2Vec2ForPreTraining(Wav2Vec2Config(**full)).train()
            net.load_state_dict(ours.state_dict())

            def step(x):
                out = net(x, mask_time_indices=mask, sampled_negative_indices=neg)
                return out.loss / mask.sum()
        make = lambda: torch.randn(batch, n)  # noqa: E731
    else:
        import random

        from fmzoo.speech.models.tera import TERA

        cfg = SMALL_TERA if config == "small" else BASE_TERA
        ours = TERA(**cfg)
        frames = 1 + (n - 400) // 160
        if impl == "fmzoo":
            net = ours.train()
            rng = random.Random(0)

            def step(x):
                return net.reconstruction_loss(x, generator=rng)["loss"]
        else:
            from transformers import BertConfig, BertModel

            bert = BertModel(BertConfig(hidden_size=cfg["hidden_size"], num_hidden_layers=cfg["num_hidden_layers"],
                                        num_attention_heads=cfg["num_attention_heads"],
                                        intermediate_size=cfg["intermediate_size"], hidden_act="gelu",
                                        max_position_embeddings=max(512, frames), hidden_dropout_prob=0.3, vocab_size=1,
                                        attention_probs_dropout_prob=0.3), add_pooling_layer=False).train()
            proj = torch.nn.Linear(80, cfg["hidden_size"])
            head = torch.nn.Linear(cfg["hidden_size"], 80)
            net = torch.nn.ModuleList([bert, proj, head])

            def step(x):  # same work minus the alteration policy: zero 15% of frames, L1 on them
                lab = torch.rand(x.shape[:2]) < 0.15
                h = bert(inputs_embeds=proj(x.masked_fill(lab[..., None], 0.0))).last_hidden_state
                return ((head(h) - x).abs() * lab[..., None]).sum() / lab.sum().clamp(min=1) / 80
        make = lambda: torch.randn(batch, frames, 80)  # noqa: E731
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), 1e-4)
    x = make()
    for i in range(steps + 1):  # the first step warms up allocators and is not timed
        if i == 1:
            t0 = time.perf_counter()
        loss = step(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t0
    return {"model": model, "impl": impl, "config": config, "params_M": round(params / 1e6, 2),
            "audio_s_per_s": round(steps * batch * seconds / dt, 2), "step_s": round(dt / steps, 3),
            "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=["small", "base"], default="small")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2.0, help="audio seconds per example")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "IMPL"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        import torch

        torch.set_num_threads(a.threads)
        print(json.dumps(_child(a.child[0], a.child[1], a.config, a.steps, a.batch, a.seconds)))
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    rows = []
    for model, impls in (("wav2vec2", ("fmzoo", "transformers")), ("tera", ("fmzoo", "bert-reference"))):
        for impl in impls:
            cmd = [sys.executable, __file__, "--child", model, impl, "--config", a.config, "--steps", str(a.steps),
                   "--batch", str(a.batch), "--seconds", str(a.seconds), "--threads", str(a.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr)
                return out.returncode
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"pretraining step (forward + loss + backward + AdamW), config={a.config}, batch {a.batch} x {a.seconds} s "
          f"audio at 16 kHz, {a.threads} thread(s), {a.steps} timed steps")
    print(f"{'model':<10}{'implementation':<16}{'params (M)':>11}{'audio s / s':>13}{'s / step':>10}{'peak RSS (MB)':>15}")
    for r in rows:
        print(f"{r['model']:<10}{r['impl']:<16}{r['params_M']:>11}{r['audio_s_per_s']:>13}{r['step_s']:>10}{r['peak_rss_MB']:>15}")
    for model in ("wav2vec2", "tera"):
        ours, ref = [r for r in rows if r["model"] == model]
        print(f"{model}: fmzoo / {ref['impl']} throughput ratio {ours['audio_s_per_s'] / ref['audio_s_per_s']:.2f}, "
              f"peak memory ratio {ours['peak_rss_MB'] / ref['peak_rss_MB']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
