"""T-JEPA layers before/after (A/B, one process, one thread): fmzoo.tabular.models.layers against an earlier version
of the same file (e.g. the one before the padded softmax and one-pass dropout), on the paper-size tjepa-adult step.

Prints, per seed, the loss and the max |difference| of every gradient between the two (same seed, same batch), then
wall and process-CPU seconds per step, interleaved A/B over REPS repeats of 3 steps (each side its own model copy;
on a loaded machine the CPU seconds are the figure to read).

    git show <commit>:packages/tabular/src/fmzoo/tabular/models/layers.py > /tmp/layers_old.py
    OMP_NUM_THREADS=1 FMZOO_DATA=/work/shared/data .venv/bin/python benchmarks/tabular_tjepa_layers_ab.py \\
        /tmp/layers_old.py [RECIPE] [PRED_FF_DIM] [REPS]
"""

from __future__ import annotations

import copy
import importlib.util
import resource
import statistics
import sys
import time

import torch
from fmzoo.core.registry import load_recipe
from fmzoo.tabular.data.adult import load_adult
from fmzoo.tabular.methods.tjepa import build_model
from fmzoo.tabular.models import layers as new_layers
from fmzoo.tabular.models.tjepa import FeatureMaskSampler
from fmzoo.tabular.spec import TabularSchema


def main():
    old_path = sys.argv[1]
    recipe = sys.argv[2] if len(sys.argv) > 2 else "tjepa-adult"
    pred_ff = int(sys.argv[3]) if len(sys.argv) > 3 else None
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("layers_old", old_path)
    old_layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old_layers)
    L = new_layers
    impl = {k: (m.TransformerEncoderLayer.forward, m.TransformerEncoderLayer.attention, m.Dropout.forward)
            for k, m in (("old", old_layers), ("new", new_layers))}

    def use(k):
        L.TransformerEncoderLayer.forward, L.TransformerEncoderLayer.attention, L.Dropout.forward = impl[k]

    torch.manual_seed(0)
    r = load_recipe(recipe)
    cfg = dict(r["model"])
    if pred_ff:
        cfg["pred_ff_dim"] = pred_ff
    X, _ = load_adult()["train"]
    schema = TabularSchema.fit(X)
    xn, xc = schema.transform(X)
    m0 = build_model(schema, cfg)
    sampler = FeatureMaskSampler(m0.n_features, **r["mask"])
    bs = r["trainer"]["batch_size"]

    def grads(m, seed, j):
        torch.manual_seed(seed)
        keep, targets = sampler(bs)
        m.zero_grad(set_to_none=True)
        loss = m.jepa_loss(xn[j:j + bs], xc[j:j + bs], keep, targets)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in m.parameters() if p.grad is not None]

    for seed in (0, 1, 2):
        use("old")
        la, ga = grads(m0, seed, seed * bs)
        use("new")
        lb, gb = grads(m0, seed, seed * bs)
        d = max(float((a - b).abs().max()) for a, b in zip(ga, gb, strict=True))
        print(f"seed {seed}: loss old {la.item():.8f} new {lb.item():.8f} |dloss| {abs(la - lb).item():.1e}; "
              f"gradients max|diff| {d:.1e}", flush=True)
    models = {"old": copy.deepcopy(m0), "new": copy.deepcopy(m0)}
    opts = {k: torch.optim.AdamW([p for p in v.parameters() if p.requires_grad], lr=3e-4) for k, v in models.items()}

    def step(k, i):
        m, opt = models[k], opts[k]
        torch.manual_seed(100 + i)
        keep, targets = sampler(bs)
        j = (i * bs) % (len(xn) - bs)
        loss = m.jepa_loss(xn[j:j + bs], xc[j:j + bs], keep, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        m.update_target(0.996)

    wall, cpu = {"old": [], "new": []}, {"old": [], "new": []}
    for k in ("old", "new"):  # warm-up
        use(k)
        step(k, 0)
    for rep in range(reps):
        for k in (("old", "new") if rep % 2 == 0 else ("new", "old")):
            use(k)
            t, c = time.perf_counter(), time.process_time()
            for i in range(1, 4):
                step(k, i)
            wall[k].append((time.perf_counter() - t) / 3)
            cpu[k].append((time.process_time() - c) / 3)
    for name, d in (("wall", wall), ("CPU", cpu)):
        o, n = statistics.median(d["old"]), statistics.median(d["new"])
        print(f"{recipe} (pred_ff_dim {cfg['pred_ff_dim']}): {name} s/step median old {o:.3f} new {n:.3f} -> {o / n:.2f}x"
              f"  (old {[round(x, 3) for x in d['old']]}, new {[round(x, 3) for x in d['new']]})")
    print(f"peak RSS of this process (both model copies): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
