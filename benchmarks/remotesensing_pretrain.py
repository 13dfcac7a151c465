"""SoftCon pretraining throughput (images/s) and peak memory: fmzoo vs a plain-PyTorch loop.

Both run the same computation on the same real data (eo-learn TestEOPatch, 13-band Sentinel-2 crops
with multi-label LULC vectors): CPU-scale SoftConResNet (13 bands, 96 px views), two views per image,
Siamese masking (ratio 0.3, 16 px patches), MLP projector, soft contrastive loss, AdamW.

- fmzoo: ``SoftConTask`` trained by ``fmzoo.core.training.fit`` (Lightning; checkpoint each epoch).
- plain: the same model/projector/loss in a hand-written ``for`` loop (no Lightning).

Each mode runs in its own subprocess so peak RSS is measured separately (ru_maxrss). One "image" is
one scene (two views are encoded per scene). The machine is shared: compare the ratio, not absolutes.

    OMP_WAIT_POLICY=PASSIVE FMZOO_DATA=/work/shared/data .venv/bin/python benchmarks/remotesensing_pretrain.py

The second half of this file (``vit_*``, ``OfficialEncoder``) is the SoftCon row of benchmarks/run_all.py: the
official repository's DINOv2 ViT-S/14 encoder vs fmzoo's SoftConViT, both trained by fmzoo's SoftCon step (the
repository publishes no loss or loop), same weights on both sides.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


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


# ============================================================================ ViT-S/14: the official encoder vs fmzoo
# Used by benchmarks/run_all.py's "softcon" row (its docstring says what is measured). The official repository
# zhu-xlab/softcon @ b687e46cd25750a852e13d5e029e331feb231639 publishes its DINOv2 ViT (models/dinov2/) and a demo
# notebook, no loss and no training loop: both sides below run fmzoo's SoftCon training step (the SoftCon Method's
# task for recipe softcon-vits14-paper: two views, Siamese token masking, projector, soft contrastive loss, AdamW and
# its schedule); only the encoder differs.

VIT_RECIPE = "softcon-vits14-paper"
# demo_encoding.ipynb's ViT-S/14 (vit_small, patch 14, block_chunks 0, LayerScale 1e-5, no registers), 13 bands
DEMO_VITS14 = {"patch_size": 14, "in_chans": 13, "block_chunks": 0, "init_values": 1e-5, "num_register_tokens": 0}


def vit_recipe(crop: int) -> dict:
    """Recipe softcon-vits14-paper at a CPU-scale view size, in the released DINOv2 layout (LayerScale 1e-5 and a
    mask token: what ``init.from`` a SoftCon ViT release builds; the recipe itself leaves both off)."""
    import copy

    from fmzoo.core import load_recipe

    r = copy.deepcopy(load_recipe(VIT_RECIPE))
    r["model"] = {**r["model"], "input_size": int(crop), "init_values": 1e-5, "mask_token": True}
    return r


def official_vit(root, crop: int):
    """The repository's DinoVisionTransformer built as its demo builds the ViT-S/14, 13 bands, ``img_size`` = the
    benchmark's view size (the demo's 224 would make both models interpolate their position embeddings, each its own
    way). Imported from the checkout ``root`` (nothing of it is copied here); its 'xFormers is not available' notices
    are silenced (xFormers is not installed: its Attention is the plain softmax(q k^T) v)."""
    import warnings

    root = str(Path(root).resolve())
    if not (Path(root) / "models" / "dinov2" / "vision_transformer.py").exists():
        raise FileNotFoundError(f"{root!r} is not a checkout of zhu-xlab/softcon (no models/dinov2/vision_transformer.py)")
    if root not in sys.path:
        sys.path.insert(0, root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from models.dinov2 import vision_transformer as dinov2_vits
    return dinov2_vits.__dict__["vit_small"](img_size=int(crop), **DEMO_VITS14)


def official_to_fmzoo(sd: dict) -> dict:
    """DinoVisionTransformer state dict -> SoftConViT's (key renaming only, as fmzoo.remotesensing.weights does)."""
    return {("mask_token" if k == "mask_token" else f"backbone.{k}"): v for k, v in sd.items()}


def _official_encoder_class():
    from torch import nn

    class OfficialEncoder(nn.Module):
        """The official encoder behind SoftConTask's encoder interface (``patch_size``, ``num_features``,
        ``input_spec["input_size"]``, ``forward(x, keep)``): its ``prepare_tokens_with_masks`` (patch embedding, class
        token, position embedding), then the kept patch tokens gathered (Siamese masking drops the same tokens in both
        views, as SoftConTask does for fmzoo's ViT; the official encoder has no token-dropping call of its own), its
        blocks, its final norm, the class token (its ``x_norm_clstoken``, what ``forward`` returns)."""

        def __init__(self, enc, crop: int):
            super().__init__()
            self.enc, self.patch_size, self.num_features = enc, enc.patch_size, enc.num_features
            self.input_spec = {"input_size": int(crop)}

        def forward(self, x, keep=None):
            import torch

            t = self.enc.prepare_tokens_with_masks(x)
            if keep is not None:
                idx = keep.unsqueeze(-1).expand(-1, -1, t.shape[-1])
                t = torch.cat([t[:, :1], torch.gather(t[:, 1:], 1, idx)], dim=1)
            for blk in self.enc.blocks:
                t = blk(t)
            return self.enc.norm(t)[:, 0]

    return OfficialEncoder


def write_vit_weights(root, crop: int, path) -> None:
    """The official encoder's own initialisation (seed 0), saved (safetensors, its key names) for both sides."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    enc = official_vit(root, crop)
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(path))


def vit_encoder(side: str, crop: int, weights, root=None):
    """One side's encoder with the weights of ``weights``: 'official' (OfficialEncoder around the repository's
    model) or 'fmzoo' (SoftConViT as the recipe builds it)."""
    import torch
    from fmzoo.remotesensing.methods.softcon import build_model
    from safetensors.torch import load_file

    torch.manual_seed(0)
    if weights is None:  # no checkout to take the official initialisation from: the recipe's own
        if side == "official":
            raise ValueError("the official side needs the weights written by write_vit_weights")
        return build_model(vit_recipe(crop))[0]
    sd = load_file(str(weights))
    if side == "official":
        enc = official_vit(root, crop)
        enc.load_state_dict(sd, strict=True)
        model = _official_encoder_class()(enc, crop)
    else:
        model, _ = build_model(vit_recipe(crop))
        model.load_state_dict(official_to_fmzoo(sd), strict=True)
    del sd
    return model


def eopatch_batches(recipe: dict, batch: int, n: int) -> list:
    """``n`` batches of (standardized 13-band crops, multi-hot LULC labels) from the eo-learn TestEOPatch, as the
    SoftCon Method's ``eopatch_s2`` data builds them (recipe crop, min_fraction; band statistics of the patch)."""
    import torch
    from fmzoo.core import data_root
    from fmzoo.remotesensing.data.eopatch import EOPatchMultiLabelCrops, load_eopatch
    from fmzoo.remotesensing.methods.softcon import _StandardizedCrops
    from fmzoo.remotesensing.spec import band_stats

    dcfg, root = recipe["data"], data_root()
    patch = load_eopatch(root)
    mean, std = band_stats(patch["image"].reshape(-1, 13, *patch["image"].shape[-2:]))
    crops = EOPatchMultiLabelCrops(crop=int(dcfg.get("crop", 48)), length=batch * n,
                                   min_fraction=float(dcfg.get("min_fraction", 0.02)), seed=0, root=root)
    loader = torch.utils.data.DataLoader(_StandardizedCrops(crops, mean, std), batch_size=batch, shuffle=False)
    return list(loader)[:n]


def vit_train_step(model, crop: int, batches: list):
    """fmzoo's SoftCon training step around ``model``: the SoftCon Method's task for the recipe (views, Siamese
    masking, projector, soft contrastive loss; the same seeded projector and view/mask stream on both sides), the
    task's configure_optimizers (AdamW + warm-up/cosine over the recipe's steps, as Lightning would size it), and
    SSLTask.training_step's finite-loss check. Returns (step(i) -> loss, task)."""
    import tempfile

    import torch
    from fmzoo.remotesensing.methods.softcon import SoftCon

    r = vit_recipe(crop)
    torch.manual_seed(1)
    task = SoftCon(r, tempfile.gettempdir()).task(model, None, 0, 0)
    t = r["trainer"]
    task.hparams.max_steps = int(t["max_epochs"]) * (int(r["data"]["length"]) // int(t["batch_size"]))
    task.train()
    conf = task.configure_optimizers()
    opt, sched = (conf["optimizer"], conf["lr_scheduler"]["scheduler"]) if isinstance(conf, dict) else (conf, None)

    def step(i):
        loss = task.ssl_loss(batches[i % len(batches)])["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {i}")
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        return float(loss.detach())
    return step, task


def vit_checks(root, crop: int, batch: int, weights) -> dict:
    """Both encoders from ``weights``: max |official - fmzoo| of the eval forward (all tokens, and with the same kept
    tokens), the first training loss of each step, and the encoder gradients of that step (L2 norm of the difference
    over all encoder tensors, relative to the official gradient's)."""
    import torch

    off, fmz = vit_encoder("official", crop, weights, root), vit_encoder("fmzoo", crop, weights)
    r = vit_recipe(crop)
    batches = eopatch_batches(r, batch, 2)
    x = batches[0][0]
    from fmzoo.remotesensing.methods.softcon import random_views, siamese_keep_indices

    v = random_views(x, crop, generator=torch.Generator().manual_seed(0))
    keep = siamese_keep_indices(len(v), (crop // 14) ** 2, r["masking"]["ratio"], torch.Generator().manual_seed(0))
    off.eval()
    fmz.eval()
    with torch.no_grad():
        full = float((off.enc(v) - fmz(v)).abs().max())  # the official forward itself (x_norm_clstoken)
        adapter = float((off(v) - off.enc(v)).abs().max())
        kept = float((off(v, keep=keep) - fmz(v, keep=keep)).abs().max())
    s_off, t_off = vit_train_step(off, crop, batches)
    s_fmz, t_fmz = vit_train_step(fmz, crop, batches)
    l_off, l_fmz = s_off(0), s_fmz(0)  # one step each: same views, masks, projector, weights
    g_off = dict(t_off.model.enc.named_parameters())
    pairs = [(p.grad, g_off[k.removeprefix("backbone.")].grad) for k, p in t_fmz.model.named_parameters()
             if p.grad is not None]
    g = (sum(float((a - b).square().sum()) for a, b in pairs) / sum(float(b.square().sum()) for _, b in pairs)) ** 0.5
    return {"max |official - fmzoo| eval forward": f"{full:.1e}",
            "with the same kept tokens": f"{kept:.1e}",
            "adapter vs official forward": f"{adapter:.1e}",
            "step-0 loss official / fmzoo": f"{l_off:.6f} / {l_fmz:.6f}",
            "|grad official - grad fmzoo| / |grad official| (all encoder tensors), step 0": f"{g:.1e}"}
