"""fmzoo-medical benchmark: pretraining throughput (volumes/s at the recipe's crop size), sliding-window
inference time per volume, and peak memory, each measured in a fresh child process (peak RSS).

Ratios against plain-PyTorch baselines measured in the same run:
  * VoCo step vs a plain SwinUNETR forward+backward on the same crops (VoCo's overhead: EMA teacher
    forward, projection head, loss);
  * Volume Fusion step vs a plain SwinUNETR segmentation step on un-fused patches (the fusion pipeline's
    overhead);
  * MONAI sliding-window inference vs one plain forward of the whole volume zero-padded to a multiple of 32.

Usage: OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 FMZOO_DATA=/work/shared/data \
       .venv/bin/python benchmarks/medical_pretrain.py [--steps 5] [--volumes 8] [--threads 1]
Not run by CI.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(kind: str, steps: int, volumes: int, threads: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from fmzoo.core import load_recipe
    from fmzoo.medical.data.hippocampus import load_hippocampus

    data = load_hippocampus()
    vols = [data["load"](c)[0] for c in data["train"][:volumes]]
    torch.manual_seed(0)
    if kind in ("voco", "voco_plain"):
        from fmzoo.medical.methods.voco import VoCoDataset, VoCoGeometry, make_task
        from fmzoo.medical.models.swin import VoCo, build_swinunetr

        r = load_recipe("voco-small")
        geom = VoCoGeometry.from_dict(r["geometry"])
        ds = VoCoDataset(vols, geom, foreground_threshold=r["foreground_threshold"])
        if kind == "voco":
            task = make_task(VoCo(**r["model"]), lr=1e-4)
            params = [p for p in task.parameters() if p.requires_grad]
        else:
            net = build_swinunetr(out_channels=2, feature_size=r["model"]["feature_size"], window_size=r["model"]["window_size"])
            params = list(net.parameters())
        opt = torch.optim.AdamW(params, lr=1e-4)

        def step(i):
            item = ds[i % len(ds)]
            batch = {k: v[None] for k, v in item.items()}
            if kind == "voco":
                loss = task.ssl_loss(batch)["loss"]
            else:
                x = torch.cat([batch["crops"].flatten(0, 1), batch["bases"].flatten(0, 1)])
                loss = net(x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        unit = f"volumes/s (1 volume = {geom.num_bases} base + {geom.num_random} random crops of {geom.input_size})"
    elif kind in ("volf", "volf_plain"):
        from fmzoo.medical.methods.volume_fusion import VolumeFusionDataset, dice_ce_loss
        from fmzoo.medical.models.swin import VolumeFusionNet

        r = load_recipe("volumefusion-small")
        model = VolumeFusionNet(**r["model"])
        vf = r["fusion"]
        ds = VolumeFusionDataset(vols, r["patch_size"], size_min=vf["size_min"], size_max=vf["size_max"])
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        bs = r["batch_size"]
        rng = np.random.default_rng(0)

        def step(i):
            if kind == "volf":
                items = [ds[(i * bs + j) % len(ds)] for j in range(bs)]
                x = torch.stack([a for a, _ in items])
                y = torch.stack([b for _, b in items])
            else:  # plain: the same network/loss on random un-fused patches with random labels
                x = torch.from_numpy(rng.random((bs, 1, *r["patch_size"]), dtype=np.float32))
                y = torch.from_numpy(rng.integers(0, 5, (bs, *r["patch_size"])))
            loss = dice_ce_loss(model(x), y)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        unit = f"volumes/s (1 volume = one fused {tuple(r['patch_size'])} patch; batch {bs})"
    elif kind in ("sliding", "plain_infer"):
        from fmzoo.core import from_pretrained
        from fmzoo.medical.tasks.segmentation import sliding_window_logits

        net = from_pretrained("fmzoo/volumefusion-small").to_swinunetr(3).eval()
        test = [data["load"](c)[0] for c in data["test"][:volumes]]

        def step(i):
            x = torch.from_numpy(np.ascontiguousarray(test[i % len(test)]))[None, None]
            with torch.no_grad():
                if kind == "sliding":
                    sliding_window_logits(net, x, (32, 64, 32), 0.5)
                else:
                    pad = [(-s) % 32 for s in x.shape[2:]]
                    xp = torch.nn.functional.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))
                    net(xp)[..., : x.shape[2], : x.shape[3], : x.shape[4]]
        unit = "volumes/s (whole MSD Hippocampus test volumes, ROI 32x64x32, overlap 0.5)"
    else:
        raise SystemExit(f"unknown kind {kind}")
    step(0)  # warm-up
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    dt = (time.perf_counter() - t0) / steps
    per_item = {"voco": 1, "voco_plain": 1, "sliding": 1, "plain_infer": 1}.get(kind, None)
    n = per_item if per_item else load_recipe("volumefusion-small")["batch_size"]
    return {"kind": kind, "s_per_step": dt, "volumes_per_s": n / dt, "unit": unit, "peak_rss_mb": _peak_mb()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--volumes", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.steps, a.volumes, a.threads)))
        return
    res = {}
    for kind in ("voco", "voco_plain", "volf", "volf_plain", "sliding", "plain_infer"):
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--steps", str(a.steps), "--volumes",
                              str(a.volumes), "--threads", str(a.threads)], capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:])
            raise SystemExit(f"{kind} failed")
        res[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        r = res[kind]
        print(f"{kind:12s} {r['s_per_step']:.3f} s/step  {r['volumes_per_s']:.3f} {r['unit']}  peak RSS {r['peak_rss_mb']:.0f} MB",
              flush=True)
    print()
    print(f"VoCo step / plain SwinUNETR fwd+bwd on the same crops: {res['voco']['s_per_step'] / res['voco_plain']['s_per_step']:.2f}x")
    print(f"Volume Fusion step / plain segmentation step:          {res['volf']['s_per_step'] / res['volf_plain']['s_per_step']:.2f}x")
    print(f"sliding-window inference: {res['sliding']['s_per_step']:.3f} s/volume; plain padded whole-volume forward: "
          f"{res['plain_infer']['s_per_step']:.3f} s/volume (ratio {res['sliding']['s_per_step'] / res['plain_infer']['s_per_step']:.2f}x)")


if __name__ == "__main__":
    main()
