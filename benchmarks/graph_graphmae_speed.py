"""GraphMAE pretraining speed and peak memory on Cora with the paper's configuration (not run by CI).

Variants, each in its own process (clean peak RSS), same thread settings, same data:
  fmzoo      fmzoo.graph GraphMAE (sparse first layer, masked-rows decoder, implicit SCE) - the default
  dense      the same module with sparse_input=False: plain dense PyTorch (dense X @ W, full decoder output)
  pyg        a plain GraphMAE written on torch_geometric.nn.GATConv (as the official PyG branch does)

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 FMZOO_DATA=/work/shared/data \
        .venv/bin/python benchmarks/graph_graphmae_speed.py [--epochs 20] [--threads 1]

Prints seconds per pretraining epoch (mean of the timed epochs after 3 warm-up epochs), peak RSS, and the
ratio of every variant against the dense baseline measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def pyg_model(in_dim: int):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from fmzoo.graph.models.graphmae import sce_loss
    from torch_geometric.nn import GATConv

    class PlainPyG(nn.Module):
        def __init__(self):
            super().__init__()
            kw = dict(dropout=0.1, add_self_loops=False)
            self.enc = nn.ModuleList([GATConv(in_dim, 128, heads=4, **kw), GATConv(512, 128, heads=4, **kw)])
            self.acts = nn.ModuleList([nn.PReLU(), nn.PReLU()])
            self.dec = GATConv(512, in_dim, heads=1, **kw)
            self.e2d = nn.Linear(512, 512, bias=False)
            self.token = nn.Parameter(torch.zeros(1, in_dim))

        def loss(self, x, ei):
            n = x.shape[0]
            perm = torch.randperm(n)
            nm = int(0.5 * n)
            mask = perm[:nm]
            p2 = torch.randperm(nm)
            tok = mask[p2[: int(0.95 * nm)]]
            noise = mask[p2[-int(0.05 * nm):]]
            ox = x.clone()
            ox[tok] = 0.0
            ox[noise] = x[torch.randperm(n)[: int(0.05 * nm)]]
            ox[tok] += self.token
            h = ox
            for conv, act in zip(self.enc, self.acts, strict=True):
                h = act(conv(F.dropout(h, 0.2, self.training), ei))
            rep = self.e2d(h)
            rep[mask] = 0
            rec = self.dec(F.dropout(rep, 0.2, self.training), ei)
            return sce_loss(rec[mask], x[mask], 3)

    return PlainPyG()


def run_variant(name: str, epochs: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from fmzoo.graph.data.planetoid import load_cora
    from fmzoo.graph.models.gat import GraphIndex
    from fmzoo.graph.models.graphmae import GraphMAE

    g = load_cora()
    torch.manual_seed(0)
    if name == "pyg":
        m = pyg_model(g.num_features)
        gi = GraphIndex.from_edge_index(g.edge_index, g.num_nodes)
        ei = torch.stack([gi.src, gi.dst])

        def step_loss():
            return m.loss(g.x, ei)
    else:
        m = GraphMAE(g.num_features, sparse_input=(name == "fmzoo"))
        pg = m.prepare(g.x, g.edge_index)

        def step_loss():
            return m.loss_prepared(pg)
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=2e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    times = []
    for i in range(epochs + 3):
        t = time.perf_counter()
        loss = step_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    times.sort()
    return {"variant": name, "s_per_epoch_mean": sum(times) / len(times), "s_per_epoch_median": times[len(times) // 2],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "final_loss": loss.item(),
            "epochs_timed": len(times), "threads": threads}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default="fmzoo,dense,pyg")
    ap.add_argument("--_one", default=None)
    a = ap.parse_args()
    if a._one:
        print(json.dumps(run_variant(a._one, a.epochs, a.threads)))
        return
    res = []
    for v in a.variants.split(","):
        out = subprocess.run([sys.executable, __file__, "--_one", v, "--epochs", str(a.epochs), "--threads",
                              str(a.threads)], capture_output=True, text=True, check=True)
        res.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = next((r for r in res if r["variant"] == "dense"), res[0])
    print(f"GraphMAE pretraining on Cora, paper config (GAT 2x512, 4 heads), {a.threads} thread(s), "
          f"{a.epochs} timed epochs")
    print(f"{'variant':<8} {'s/epoch mean':>12} {'median':>8} {'peak RSS MB':>12} {'speed-up vs dense':>18}")
    for r in res:
        print(f"{r['variant']:<8} {r['s_per_epoch_mean']:>12.3f} {r['s_per_epoch_median']:>8.3f} "
              f"{r['peak_rss_mb']:>12.0f} {base['s_per_epoch_median'] / r['s_per_epoch_median']:>17.2f}x")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
