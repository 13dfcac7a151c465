"""fmzoo-medical benchmark: pretraining throughput (volumes/s at the recipe's crop size), sliding-window
inference time per volume, and peak memory, each measured in a fresh child process (peak RSS).

Against the official code:
  * Volume Fusion (kind volf_pymic vs volf): PyMIC's VolF training iteration (SelfSupVolumeFusion =
    SegmentationAgent.training, PyMIC 0.6.2 from PyPI installed --no-deps, with run-time stubs for SimpleITK, h5py,
    imops, scikit-image that only its package __init__s import): transforms [Crop4VolumeFusion, VolumeFusion,
    LabelToProbability], loss [DiceLoss, CrossEntropyLoss] x [0.5, 0.5], Adam (lr 1e-3, weight decay 1e-5), as
    PyMIC_examples' VolF config (seg_self_sup/lung) sets them; at recipe volumefusion-small's configuration and on
    its MONAI SwinUNETR, against fmzoo's VolumeFusionMethod step (dataset, task.ssl_loss, configure_optimizers).
    ``volf_checks`` compares the two where it can (same random draws, loss on one batch); run_all.py prints it.
Ratios against plain-PyTorch baselines measured in the same run (in-house stand-ins, not the official code):
  * VoCo step (VoCoTask.ssl_loss with its fast_swin kernels, AdamW, the recipe's grad-norm clip) vs a plain
    MONAI SwinUNETR forward+backward on the same crops (VoCo's overhead: EMA teacher forward, projection head,
    loss; minus what the fast kernels save);
  * Volume Fusion step vs a plain SwinUNETR segmentation step on un-fused patches (the fusion pipeline's
    overhead);
  * MONAI sliding-window inference vs one plain forward of the whole volume zero-padded to a multiple of 32.

Usage: OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 FMZOO_DATA=/work/shared/data \
       .venv/bin/python benchmarks/medical_pretrain.py [--steps 5] [--volumes 8] [--threads 1] [--kinds ...]
Not run by CI.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------- Volume Fusion: fmzoo and PyMIC sides
def fmzoo_volf(r: dict, vols):
    """fmzoo's Volume Fusion method at recipe ``r``: (method, task, optimizer, lr scheduler, dataset), built as
    ``fmzoo pretrain`` builds them (VolumeFusionMethod.dataset / model / task, the task's configure_optimizers)."""
    import tempfile
    import types

    import torch
    from fmzoo.medical.methods.volume_fusion import VolumeFusionMethod

    method = VolumeFusionMethod(r, tempfile.gettempdir())
    ds = method.dataset(vols)
    torch.manual_seed(0)
    model = method.model(types.SimpleNamespace(dataset=ds))
    task = method.task(model, None, 0, 0)
    task.on_fit_start()  # what the trainer calls first (VolumeFusionTask: channels-last conv weights)
    conf = task.configure_optimizers()
    opt, sched = (conf["optimizer"], conf["lr_scheduler"]["scheduler"]) if isinstance(conf, dict) else (conf, None)
    if sched is None:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return method, task, opt, sched, ds


def import_pymic():
    """PyMIC (pip, --no-deps) with run-time stubs for what its package __init__s import but Volume Fusion's path
    never runs: SimpleITK, h5py (NIfTI / HDF5 readers), imops, scikit-image (other transforms)."""
    import importlib
    import sys
    import types

    for name in ("SimpleITK", "h5py", "imops", "skimage.exposure", "skimage.transform"):
        try:
            importlib.import_module(name)
        except ImportError:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                n = ".".join(parts[:i])
                if n not in sys.modules:
                    sys.modules[n] = types.ModuleType(n)
                    if i > 1:
                        setattr(sys.modules[".".join(parts[:-1])], parts[-1], sys.modules[n])
            if name == "imops":
                sys.modules[name].crop_to_box = None
    import pymic
    from pymic.loss.loss_dict_seg import SegLossDict
    from pymic.loss.seg.combined import CombinedLoss
    from pymic.transform.crop4vf import Crop4VolumeFusion, VolumeFusion
    from pymic.transform.label_convert import LabelToProbability

    return types.SimpleNamespace(pymic=pymic, SegLossDict=SegLossDict, CombinedLoss=CombinedLoss,
                                 Crop4VolumeFusion=Crop4VolumeFusion, VolumeFusion=VolumeFusion,
                                 LabelToProbability=LabelToProbability)


def pymic_volf_transforms(pm, r: dict, aug_mode: int | None = None):
    """PyMIC's VolF training transforms [Crop4VolumeFusion, VolumeFusion, LabelToProbability] with the config
    keys the PyMIC_examples VolF config uses, set to recipe ``r``'s values."""
    from pymic import TaskType

    vf = r["fusion"]
    ncls = r["model"]["num_classes"]
    params = {"task": TaskType.SEGMENTATION,
              "crop4volumefusion_output_size": list(r["patch_size"]),
              "crop4volumefusion_rescale_lower_bound": list(vf["scale_lo"]),
              "crop4volumefusion_rescale_upper_bound": list(vf["scale_hi"]),
              "crop4volumefusion_augentation_mode": vf["aug_mode"] if aug_mode is None else aug_mode,
              "volumefusion_cls_num": ncls, "volumefusion_foreground_ratio": vf["fg_ratio"],
              "volumefusion_patchsize_min": list(vf["size_min"]), "volumefusion_patchsize_max": list(vf["size_max"]),
              "labeltoprobability_class_num": ncls}
    return [pm.Crop4VolumeFusion(params), pm.VolumeFusion(params), pm.LabelToProbability(params)]


def pymic_volf_loss(pm):
    """The VolF config's loss: loss_type [DiceLoss, CrossEntropyLoss], loss_weight [0.5, 0.5] (softmax inside)."""
    return pm.CombinedLoss({"loss_type": ["DiceLoss", "CrossEntropyLoss"], "loss_weight": [0.5, 0.5]}, pm.SegLossDict)


def pymic_volf_step(r: dict, vols, threads: int):
    """One iteration of PyMIC's SelfSupVolumeFusion (= SegmentationAgent.training): the train transforms on each
    sample, default collate, ``.float()``, forward, the config's loss on label_prob, backward, Adam step
    (get_optimizer: torch.optim.Adam, lr 1e-3, weight_decay 1e-5), loss.item() and the per-iteration class Dice
    of the argmax (what its loop computes every iteration). Network: recipe r's MONAI SwinUNETR, as fmzoo's."""
    import random

    import numpy as np
    import torch
    from fmzoo.medical.models.swin import build_swinunetr
    from pymic.loss.seg.util import get_classwise_dice, get_soft_label, reshape_prediction_and_ground_truth
    from torch.utils.data import default_collate

    pm = import_pymic()
    trans = pymic_volf_transforms(pm, r)
    loss_calc = pymic_volf_loss(pm)
    m = r["model"]
    torch.manual_seed(0)
    net = build_swinunetr(m["in_channels"], m["num_classes"], m["feature_size"], m["window_size"],
                          use_v2=m["use_v2"]).train()
    opt = torch.optim.Adam(net.parameters(), lr=r["optim"]["lr"], weight_decay=r["optim"]["weight_decay"])
    random.seed(0)
    np.random.seed(0)
    bs = r["batch_size"]

    def step(i):
        samples = []
        for j in range(bs):
            s = {"image": vols[(i * bs + j) % len(vols)][None]}  # (1, D, H, W), as its NiftyDataset gives
            for t in trans:
                s = t(s)
            samples.append({"image": s["image"], "label_prob": s["label_prob"]})
        data = default_collate(samples)
        inputs, labels_prob = data["image"].float(), data["label_prob"].float()
        opt.zero_grad()
        outputs = net(inputs)
        loss = loss_calc({"prediction": outputs, "ground_truth": labels_prob})
        loss.backward()
        opt.step()
        loss.item()
        soft_out = get_soft_label(torch.argmax(outputs, dim=1, keepdim=True), m["num_classes"], "float")
        soft_out, labels_prob = reshape_prediction_and_ground_truth(soft_out, labels_prob)
        get_classwise_dice(soft_out, labels_prob).cpu().numpy()
    return step, f"volumes/s (PyMIC VolF: one fused {tuple(r['patch_size'])} patch; batch {bs})"


class _PyRandom:
    """numpy-Generator-like facade over Python's ``random`` (PyMIC's generator), so that fmzoo's functions draw
    exactly the numbers PyMIC's transforms draw, call for call."""

    def __init__(self, rnd):
        self.r = rnd

    def random(self):
        return self.r.random()

    def integers(self, lo, hi):  # numpy: [lo, hi); random.randint: [lo, hi]
        return self.r.randint(lo, hi - 1)

    def uniform(self, a, b):
        return self.r.uniform(a, b)

    def shuffle(self, x):
        self.r.shuffle(x)


def hippocampus_volumes(volumes: int) -> list:
    """The first ``volumes`` MSD Hippocampus training-pool images, normalised per the recipes' input spec."""
    from fmzoo.medical.data.hippocampus import load_hippocampus

    data = load_hippocampus()
    return [data["load"](c)[0] for c in data["train"][:volumes]]


def volf_checks(r: dict, vols, n: int = 24) -> dict:
    """fmzoo's Volume Fusion against PyMIC's, on real volumes, where it can be checked:
    * fusion: PyMIC VolumeFusion and fmzoo volume_fusion fed the same two sub-volumes and the same random stream
      (Python's random, seeded alike): max |fused difference| and label mismatches;
    * crop + intensity augmentation (aug_mode 1: no rescale / flip): Crop4VolumeFusion vs crop_for_fusion, same
      stream: max |difference|;
    * rescale: PyMIC's scipy zoom(order 1) vs fmzoo's trilinear (align_corners) resize of the same crop;
    * the recipe's setting (aug_mode 3; flips are drawn in another axis order, so only distributions compare):
      fused-label class frequencies and fused-image mean / std over ``n`` samples each;
    * loss: PyMIC's CombinedLoss([DiceLoss, CrossEntropyLoss], [0.5, 0.5]) and fmzoo's dice_ce_loss on the same
      logits and labels."""
    import random

    import numpy as np
    import torch
    from fmzoo.medical.methods.volume_fusion import crop_for_fusion, volume_fusion
    from fmzoo.medical.models.losses import dice_ce_loss
    from fmzoo.medical.spec import resize
    from scipy import ndimage

    pm = import_pymic()
    vf, ncls, patch = r["fusion"], r["model"]["num_classes"], tuple(r["patch_size"])
    out = {}
    # 1. fusion, identical draws
    crop_t, fuse_t, _ = pymic_volf_transforms(pm, r)
    dmax, mism = 0.0, 0
    for i in range(n):
        random.seed(100 + i)
        fg, bg = crop_t({"image": vols[i % len(vols)][None]})["image"]
        fg, bg = np.ascontiguousarray(fg[0], np.float32), np.ascontiguousarray(bg[0], np.float32)
        random.seed(i)
        s = fuse_t({"image": (fg[None], bg[None])})
        random.seed(i)
        x, y = volume_fusion(fg, bg, _PyRandom(random), ncls, vf["fg_ratio"], vf["size_min"], vf["size_max"])
        dmax = max(dmax, float(np.abs(s["image"][0] - x).max()))
        mism += int((s["label"][0] != y).sum())
    out["fusion_same_draws"] = f"max|dx| {dmax:.1e}, label mismatches {mism} of {n * int(np.prod(patch))}"
    # 2. crop + intensity (aug_mode 1), identical draws
    crop1 = pymic_volf_transforms(pm, r, aug_mode=1)[0]
    dmax = 0.0
    for i in range(n):
        random.seed(i)
        p1, p2 = crop1({"image": vols[i % len(vols)][None]})["image"]
        random.seed(i)
        q1, q2 = crop_for_fusion(vols[i % len(vols)], patch, _PyRandom(random), vf["scale_lo"], vf["scale_hi"], 1)
        dmax = max(dmax, float(np.abs(p1[0] - q1).max()), float(np.abs(p2[0] - q2).max()))
    out["crop_intensity_same_draws"] = f"max|dx| {dmax:.1e}"
    # 3. rescale of one crop
    v = vols[0][:24, :40, :20].astype(np.float32)
    z = ndimage.zoom(v[None], [1.0] + [p / c for p, c in zip(patch, v.shape, strict=True)], order=1)[0]
    t = resize(torch.from_numpy(v)[None], patch)[0].numpy()
    out["rescale_zoom_vs_trilinear"] = f"max|dx| {np.abs(z - t).max():.1e} (values in [0, 1])"
    # 4. the recipe's setting: distributions
    trans = pymic_volf_transforms(pm, r)
    random.seed(0)
    rng = np.random.default_rng(0)
    stats = {"pymic": [], "fmzoo": []}
    for i in range(n):
        s = {"image": vols[i % len(vols)][None]}
        for tr in trans:
            s = tr(s)
        stats["pymic"].append((np.bincount(s["label"].ravel(), minlength=ncls) / s["label"].size,
                               float(s["image"].mean()), float(s["image"].std())))
        fg, bg = crop_for_fusion(vols[i % len(vols)], patch, rng, vf["scale_lo"], vf["scale_hi"], vf["aug_mode"])
        x, y = volume_fusion(fg, bg, rng, ncls, vf["fg_ratio"], vf["size_min"], vf["size_max"])
        stats["fmzoo"].append((np.bincount(y.ravel(), minlength=ncls) / y.size, float(x.mean()), float(x.std())))
    for side, st in stats.items():
        freq = np.mean([a for a, _, _ in st], 0)
        out[f"{side}_label_freq"] = "/".join(f"{f:.3f}" for f in freq)
        out[f"{side}_fused_mean_std"] = f"{np.mean([b for _, b, _ in st]):.3f} / {np.mean([c for _, _, c in st]):.3f}"
    # 5. the loss on one fixed fused batch
    g = torch.Generator().manual_seed(0)
    y = torch.from_numpy(np.stack([volume_fusion(*crop_for_fusion(vols[i], patch, rng), rng, ncls, vf["fg_ratio"],
                                                 vf["size_min"], vf["size_max"])[1] for i in range(2)]))
    logits = torch.randn((2, ncls, *patch), generator=g)
    onehot = torch.nn.functional.one_hot(y, ncls).movedim(-1, 1).float()
    lp = float(pymic_volf_loss(pm)({"prediction": logits, "ground_truth": onehot}))
    lf = float(dice_ce_loss(logits, y, 0.5, 0.5)["loss"])
    out["loss_pymic_vs_fmzoo"] = f"{lp:.6f} vs {lf:.6f} (|d| {abs(lp - lf):.1e})"
    return out


def child(kind: str, steps: int, volumes: int, threads: int) -> dict:
    import numpy as np
    import torch
    from torch.utils.data import default_collate

    torch.set_num_threads(threads)
    from fmzoo.core import load_recipe
    from fmzoo.medical.data.hippocampus import load_hippocampus

    data = load_hippocampus()
    vols = hippocampus_volumes(volumes)
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
            if kind == "voco":  # the recipe's grad_clip, as the trainer applies it (and the official loop does)
                torch.nn.utils.clip_grad_norm_(params, r["grad_clip"])
            opt.step()
        unit = f"volumes/s (1 volume = {geom.num_bases} base + {geom.num_random} random crops of {geom.input_size})"
    elif kind in ("volf", "volf_plain"):
        from fmzoo.medical.models.losses import dice_ce_loss

        r = load_recipe("volumefusion-small")
        method, task, opt, sched, ds = fmzoo_volf(r, vols)
        bs = r["batch_size"]
        rng = np.random.default_rng(0)

        def step(i):
            if kind == "volf":  # VolumeFusionMethod's data, task and optimizer: its training step
                x, y = default_collate([ds[(i * bs + j) % len(ds)] for j in range(bs)])
                loss = task.ssl_loss((x, y))["loss"]
                if not torch.isfinite(loss):  # SSLTask.training_step's check
                    raise FloatingPointError("loss became non-finite")
            else:  # plain: the same network/loss on random un-fused patches with random labels
                x = torch.from_numpy(rng.random((bs, 1, *r["patch_size"]), dtype=np.float32))
                y = torch.from_numpy(rng.integers(0, 5, (bs, *r["patch_size"])))
                loss = dice_ce_loss(task.model(x), y)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        unit = f"volumes/s (1 volume = one fused {tuple(r['patch_size'])} patch; batch {bs})"
    elif kind == "volf_pymic":
        r = load_recipe("volumefusion-small")
        step, unit = pymic_volf_step(r, vols, threads)
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
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, steps + 1):
        step(i)
    dt = (time.perf_counter() - t0) / steps
    cpu = (time.process_time() - c0) / steps  # this process's CPU seconds per step (less load-sensitive than wall)
    per_item = {"voco": 1, "voco_plain": 1, "sliding": 1, "plain_infer": 1}.get(kind, None)
    n = per_item if per_item else load_recipe("volumefusion-small")["batch_size"]
    return {"kind": kind, "s_per_step": dt, "cpu_s_per_step": cpu, "volumes_per_s": n / dt, "unit": unit, "peak_rss_mb": _peak_mb()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--volumes", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kinds", default="voco,voco_plain,volf_pymic,volf,volf_plain,sliding,plain_infer",
                    help="comma-separated; list a kind twice to interleave repeats (e.g. volf_pymic,volf,volf_pymic,volf)")
    ap.add_argument("--child")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.steps, a.volumes, a.threads)))
        return
    res = {}
    for kind in a.kinds.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--steps", str(a.steps), "--volumes",
                              str(a.volumes), "--threads", str(a.threads)], capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:])
            raise SystemExit(f"{kind} failed")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        res.setdefault(kind, []).append(r)
        print(f"{kind:12s} {r['s_per_step']:.3f} s/step ({r['cpu_s_per_step']:.3f} CPU s)  {r['volumes_per_s']:.3f} "
              f"{r['unit']}  peak RSS {r['peak_rss_mb']:.0f} MB  load {os.getloadavg()[0]:.1f}", flush=True)
    print()

    def ratio(a_, b_, key="s_per_step"):  # time of a_ / time of b_, each side's runs summed
        if a_ in res and b_ in res:
            return f"{sum(r[key] for r in res[a_]) / sum(r[key] for r in res[b_]):.2f}x"
        return "-"
    print(f"VoCo step / plain SwinUNETR fwd+bwd on the same crops: {ratio('voco', 'voco_plain')}")
    print(f"Volume Fusion: PyMIC (official) step / fmzoo step:     {ratio('volf_pymic', 'volf')} wall, "
          f"{ratio('volf_pymic', 'volf', 'cpu_s_per_step')} CPU")
    print(f"Volume Fusion step / plain segmentation step:          {ratio('volf', 'volf_plain')}")
    print(f"sliding-window inference / plain padded whole-volume forward: {ratio('sliding', 'plain_infer')}")


if __name__ == "__main__":
    main()
