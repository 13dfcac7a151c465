"""T-JEPA pretraining throughput (rows/s) and peak memory on UCI Adult, against an in-house STAND-IN.

The comparison with the official code itself (jose-melo/t-jepa, same configuration, A/B in one run) is the
T-JEPA row of benchmarks/run_all.py (--tjepa-root); this script's "baseline" is written by us and is not it.

Configurations: the paper/repository Adult configuration (recipe tjepa-adult: width 16, 16+16 layers,
batch 512, 4 target subsets) and our CPU recipe (tjepa-adult-cpu). For each, fmzoo's step is compared
in the same run with a plain-PyTorch baseline: stock nn.TransformerEncoderLayer stacks and nn.Dropout (the
official encoder is a copy of PyTorch's), but one predictor pass per target subset, where the official code
batches the 4 subsets in one pass as fmzoo does - so this baseline is slower than the official loop and the
speed-up it prints overstates fmzoo's. The same weights and batches in both; fmzoo's differences: the batched
predictor pass, and fmzoo.tabular.models.layers (dropout positions drawn sparsely at T-JEPA's rate 0.0019,
one-pass dropout, attention without the fused kernel's dropout path, softmax padded to 16 columns).
Each variant runs in a fresh process so peak RSS is its own. One thread is the default: these small-width
steps run slower on two threads than on one (measured).

    FMZOO_DATA=../shared/data .venv/bin/python benchmarks/tabular_tjepa_pretrain.py [--steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from fmzoo.core.registry import load_recipe
from fmzoo.tabular.data.adult import load_adult
from fmzoo.tabular.methods.tjepa import build_model
from fmzoo.tabular.models.tjepa import FeatureMaskSampler, gather_tokens
from fmzoo.tabular.spec import TabularSchema
recipe, variant, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads); torch.manual_seed(0)
r = load_recipe(recipe)
X, _ = load_adult()["train"]
schema = TabularSchema.fit(X); xn, xc = schema.transform(X)
m = build_model(schema, r["model"]); sampler = FeatureMaskSampler(m.n_features, **r["mask"])
if variant == "baseline":  # the same weights in stock PyTorch layers, as the official encoder/predictor use
    from fmzoo.tabular.models.tjepa import TabularTransformer
    for body in [mod for mod in m.modules() if isinstance(mod, TabularTransformer)]:
        l0 = body.layers.layers[0]
        stock = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(
            l0.linear1.in_features, l0.self_attn.num_heads, l0.linear1.out_features, l0.dropout.p, batch_first=True),
            len(body.layers.layers), enable_nested_tensor=False)
        stock.load_state_dict(body.layers.state_dict())
        stock.requires_grad_(next(body.parameters()).requires_grad)
        body.layers = stock
        for i, mod in enumerate(body.out):
            if isinstance(mod, torch.nn.Dropout):
                body.out[i] = torch.nn.Dropout(mod.p)
opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-4)
bs = r["trainer"]["batch_size"]

def per_target_loss(a, b, keep, targets):  # the official loop: one predictor pass per target subset
    with torch.no_grad():
        h = m.target_encoder(a, b)[:, m.n_reg:]
    z = m.context_encoder(a, b, keep)
    return torch.stack([torch.nn.functional.mse_loss(m.predictor(z, keep, t), gather_tokens(h, t)) for t in targets]).mean()

def step(i):
    a, b = xn[i:i + bs], xc[i:i + bs]
    keep, targets = sampler(len(a))
    loss = m.jepa_loss(a, b, keep, targets) if variant == "fmzoo" else per_target_loss(a, b, keep, targets)
    opt.zero_grad(); loss.backward(); opt.step(); m.update_target(0.996)

for i in range(3): step(i * bs)  # warm-up
t = time.perf_counter()
for s in range(steps): step((s * bs) % (len(xn) - bs))
dt = time.perf_counter() - t
print(json.dumps({"rows_per_s": steps * bs / dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    print(f"{'recipe':<18} {'variant':<28} {'rows/s':>9} {'peak RSS MB':>12} {'speed-up':>9}")
    for recipe in ("tjepa-adult", "tjepa-adult-cpu"):
        res = {}
        for variant in ("baseline", "fmzoo"):
            out = subprocess.run([sys.executable, "-c", CHILD, recipe, variant, str(args.steps), str(args.threads)],
                                 capture_output=True, text=True, env=env, check=True)
            res[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        for variant, label in (("baseline", "plain PyTorch, official loop"), ("fmzoo", "fmzoo")):
            r = res[variant]
            ratio = r["rows_per_s"] / res["baseline"]["rows_per_s"]
            print(f"{recipe:<18} {label:<28} {r['rows_per_s']:>9.0f} {r['peak_rss_mb']:>12.0f} {ratio:>8.2f}x")
    print("baseline = an in-house stand-in; for the official code run benchmarks/run_all.py --only tjepa --tjepa-root DIR")


if __name__ == "__main__":
    main()
