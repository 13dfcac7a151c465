"""SoftCon pretraining throughput (images/s) and peak memory: fmzoo vs a plain-PyTorch loop.

Both run the same computation on the same real data (eo-learn TestEOPatch, 13-band Sentinel-2 crops
with multi-label LULC vectors): CPU-scale SoftConResNet (13 bands, 96 px views), two views per image,
Siamese masking (ratio 0.3, 16 px patches), MLP projector, soft contrastive loss, AdamW.

- fmzoo: ``SoftConTask`` trained by ``fmzoo.core.training.fit`` (Lightning; checkpoint each epoch).
- plain: the same model/projector/loss in a hand-written ``for`` loop (no Lightning).

Each mode runs in its own subprocess so peak RSS is measured separately (ru_maxrss). One "image" is
one scene (two views are encoded per scene). The machine is shared: compare the ratio, not absolutes.

    OMP_WAIT_POLICY=PASSIVE FMZOO_DATA=/work/shared/data .venv/bin/python benchmarks/remotesensing_pretrain.py
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time


def _setup(threads: int, batch: int):
    import torch

    torch.set_num_threads(threads)
    from fmzoo.core import data_root
    from fmzoo.remotesensing.data.eopatch import EOPatchMultiLabelCrops, load_eopatch
    from fmzoo.remotesensing.methods.softcon import _StandardizedCrops
    from fmzoo.remotesensing.models.backbones import SoftConResNet
    from fmzoo.remotesensing.spec import S2_L1C_ORDER, band_stats

    torch.manual_seed(0)
    patch = load_eopatch(data_root())
    mean, std = band_stats(patch["image"])
    crops = EOPatchMultiLabelCrops(crop=48, length=batch * 64, seed=0)
    ds = _StandardizedCrops(crops, mean, std)
    model = SoftConResNet(S2_L1C_ORDER, input_size=96)
    return torch, model, ds


def run_fmzoo(steps: int, batch: int, threads: int) -> dict:
    torch, model, ds = _setup(threads, batch)
    import lightning as L
    from fmzoo.core.training import fit
    from fmzoo.remotesensing.methods.softcon import SoftConTask

    stamps = []

    class Clock(L.Callback):
        def on_train_batch_end(self, *a, **k):
            stamps.append(time.perf_counter())

    task = SoftConTask(model, lr=5e-4, view_size=96, mask_ratio=0.3, mask_patch=16)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True)
    with tempfile.TemporaryDirectory() as tmp:
        fit(task, loader, tmp, max_epochs=1, max_steps=steps, progress=False, log_every_n_steps=10, callbacks=[Clock()])
    warm = 3
    return {"images_per_s": batch * (len(stamps) - 1 - warm) / (stamps[-1] - stamps[warm]), "steps": len(stamps)}


def run_plain(steps: int, batch: int, threads: int) -> dict:
    torch, model, ds = _setup(threads, batch)
    import torch.nn.functional as F
    from torch import nn

    d = model.num_features
    proj = nn.Sequential(nn.Linear(d, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, 128))
    params = list(model.parameters()) + list(proj.parameters())
    opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=1e-4)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True)
    g = torch.Generator().manual_seed(0)

    def view(x):  # random resized crop + flips + jitter, via one affine grid_sample (written out here)
        b = x.shape[0]
        area = torch.empty(b).uniform_(0.25, 1.0, generator=g)
        r = torch.exp(torch.empty(b).uniform_(-0.2877, 0.2877, generator=g))
        sw, sh = torch.sqrt(area * r).clamp(max=1), torch.sqrt(area / r).clamp(max=1)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0] = sw * torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
        theta[:, 1, 1] = sh * torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
        theta[:, 0, 2] = (torch.rand(b, generator=g) * 2 - 1) * (1 - sw)
        theta[:, 1, 2] = (torch.rand(b, generator=g) * 2 - 1) * (1 - sh)
        grid = F.affine_grid(theta, (b, x.shape[1], 96, 96), align_corners=False)
        v = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
        return v * (1 + (torch.rand(b, 1, 1, 1, generator=g) * 2 - 1) * 0.2) + (torch.rand(b, 1, 1, 1, generator=g) * 2 - 1) * 0.2

    stamps, step = [], 0
    model.train()
    proj.train()
    while step < steps:
        for x, y in loader:
            v1, v2 = view(x), view(x)
            keep = torch.rand(x.shape[0], 36, generator=g).argsort(1)[:, :25]
            m = torch.zeros(x.shape[0], 36).scatter_(1, keep, 1.0).view(-1, 1, 6, 6)
            m = m.repeat_interleave(16, 2).repeat_interleave(16, 3)
            z1, z2 = proj(model(v1 * m)), proj(model(v2 * m))
            yi = y @ y.T
            t = (yi / (y.sum(1, keepdim=True) + y.sum(1) - yi).clamp_min(1e-12)).fill_diagonal_(1.0)
            logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / 0.1
            loss = 0.5 * (-(t / t.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
                          - (t.T / t.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            stamps.append(time.perf_counter())
            step += 1
            if step >= steps:
                break
    warm = 3
    return {"images_per_s": batch * (len(stamps) - 1 - warm) / (stamps[-1] - stamps[warm]), "steps": len(stamps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", choices=["fmzoo", "plain"], default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        fn = run_fmzoo if args.mode == "fmzoo" else run_plain
        out = fn(args.steps, args.batch, args.threads)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    results = {}
    for mode in ("plain", "fmzoo", "plain", "fmzoo"):  # interleaved twice: the machine is shared
        proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--steps", str(args.steps),
                               "--batch", str(args.batch), "--threads", str(args.threads)],
                              capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.setdefault(mode, []).append(r)
    print(f"SoftCon pretraining, SoftConResNet-small 13 bands, 96 px, batch {args.batch}, {args.threads} threads, "
          f"{args.steps} steps (first 3 excluded), real EOPatch crops")
    print(f"{'mode':<8}{'images/s (runs)':<28}{'best':>8}{'peak RSS MB':>14}")
    for mode, rs in results.items():
        ips = [r["images_per_s"] for r in rs]
        print(f"{mode:<8}{', '.join(f'{v:.1f}' for v in ips):<28}{max(ips):>8.1f}"
              f"{max(r['peak_rss_mb'] for r in rs):>14.0f}")
    best = {m: max(r["images_per_s"] for r in rs) for m, rs in results.items()}
    mem = {m: max(r["peak_rss_mb"] for r in rs) for m, rs in results.items()}
    print(f"ratio fmzoo/plain: throughput {best['fmzoo'] / best['plain']:.2f}x, peak memory {mem['fmzoo'] / mem['plain']:.2f}x")


if __name__ == "__main__":
    main()
