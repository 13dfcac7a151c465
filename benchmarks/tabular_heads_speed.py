"""Training speed of the downstream MLP head (T-JEPA's tuned Adult MLP: 13 layers of 162, dropout
0.231, batch 512) on UCI Adult's one-hot training rows, fmzoo vs plain PyTorch, in the same process.

plain PyTorch: nn.Dropout (bernoulli_ masks) and the per-tensor AdamW loop; fmzoo: the heads'
Dropout (masks from torch.rand) and fused AdamW, as `fit_head` runs them. Same data, batches and
initial weights; variants alternate over repeats and the best time of each is kept. Prints rows/s,
the speed ratio, the last-epoch training loss of each (a sanity check that both still learn) and the
process's peak RSS.

    FMZOO_DATA=../shared/data .venv/bin/python benchmarks/tabular_heads_speed.py [--epochs 2] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from torch import nn


def train(x, y, plain: bool, epochs: int, seed: int = 0) -> tuple[float, float]:
    from fmzoo.tabular.tasks.heads import Dropout, MLPHead

    torch.manual_seed(seed)
    net = MLPHead(x.shape[1], 2)
    if plain:
        for i, m in enumerate(net):
            if isinstance(m, Dropout):
                net[i] = nn.Dropout(m.p)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=6.4e-4, fused=not plain)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm, losses = torch.randperm(len(x), generator=gen), []
        for i in range(0, len(x), 512):
            idx = perm[i : i + 512]
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    return time.perf_counter() - t0, sum(losses) / len(losses)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from fmzoo.tabular.data.adult import load_adult
    from fmzoo.tabular.spec import TabularSchema

    X, y = load_adult()["train"]
    x = TabularSchema.fit(X).one_hot(X).float()
    y = torch.tensor(list(y), dtype=torch.long)
    best = {"plain PyTorch": (float("inf"), 0.0), "fmzoo": (float("inf"), 0.0)}
    for _ in range(a.repeats):
        for name in best:
            secs, loss = train(x, y, plain=name == "plain PyTorch", epochs=a.epochs)
            best[name] = min(best[name], (secs, loss))
    rows = a.epochs * len(x)
    print(f"MLP head on Adult one-hot ({len(x)} rows x {x.shape[1]}), {a.epochs} epochs, batch 512, {a.threads} thread(s), best of {a.repeats}")
    for name, (secs, loss) in best.items():
        print(f"  {name:14s} {rows / secs:10.0f} rows/s   last-epoch train loss {loss:.4f}")
    print(f"  speed ratio fmzoo / plain PyTorch: {best['plain PyTorch'][0] / best['fmzoo'][0]:.2f}x")
    print(f"  peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
