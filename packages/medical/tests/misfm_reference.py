"""Check fmzoo's PCT-Net against the official MIS-FM code (not a pytest module: the official network is not a package).

    git clone https://github.com/openmedlab/MIS-FM /tmp/MIS-FM      # needs timm and einops (both in the venv)
    python packages/medical/tests/misfm_reference.py compare /tmp/MIS-FM [--size 64,128,128]
    python packages/medical/tests/misfm_reference.py manifest /tmp/MIS-FM packages/medical/tests/data/misfm_pctnet_release.json

``compare`` builds the official ``net.pct_net.PCTNet`` at the release's configuration (demo/pctnet_pretrain.cfg:
feature_chns [24, 48, 128, 256, 512], resolution_mode 1, input_size [64, 128, 128]; 5 Volume Fusion classes) with
random weights and random BatchNorm statistics, writes them as PyMIC writes a checkpoint ({iteration, valid_pred as a
numpy float32, model_state_dict, optimizer_state_dict}), loads that file with ``fmzoo.core.from_pretrained(PATH)``, and
compares both networks' logits on a real CT volume (TotalSegmentator's example_ct.nii.gz from $FMZOO_DATA, preprocessed
with the imported model's input spec, centre ROI). ``manifest`` writes the official state dict's names, shapes and
dtypes, its parameter count and the relative-position index checksum, which the tests compare fmzoo's network with.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RELEASE = {"in_chns": 1, "class_num": 5, "input_size": [64, 128, 128], "feature_chns": [24, 48, 128, 256, 512],
           "dropout": [0, 0, 0.2, 0.2, 0.2], "resolution_mode": 1, "multiscale_pred": False}


def official(checkout: str, size=None):
    sys.path.insert(0, str(checkout))
    from net.pct_net import PCTNet  # the official code

    params = dict(RELEASE)
    if size:
        params["input_size"] = list(size)
    return PCTNet(params), params


def index_sha(sd) -> list[str]:
    return sorted({hashlib.sha256(v.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()
                   for k, v in sd.items() if k.endswith("relative_position_index")})


def manifest(checkout: str, out: str) -> None:
    net, params = official(checkout)
    sd = net.state_dict()
    doc = {"source": "openmedlab/MIS-FM net/pct_net.py + net/transformer.py (commit 1506d6591a30)",
           "generated_by": "python packages/medical/tests/misfm_reference.py manifest MIS-FM_CHECKOUT OUT.json",
           "config": params, "n_parameters": sum(p.numel() for p in net.parameters()),
           "state_dict": [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()],
           "relative_position_index_sha256": index_sha(sd)}
    Path(out).write_text(json.dumps(doc, indent=0) + "\n")
    print(f"wrote {out}: {len(sd)} tensors, {doc['n_parameters']:,} parameters")


def randomise(sd, seed: int = 1) -> None:
    """Weights at their initial scale, BatchNorm statistics and PReLU slopes random, so that every tensor matters."""
    g = torch.Generator().manual_seed(seed)
    for k, v in sd.items():
        if not v.dtype.is_floating_point:
            continue
        if k.endswith("running_var"):
            v.copy_(torch.rand(v.shape, generator=g) + 0.5)
        elif k.endswith("running_mean"):
            v.copy_(torch.randn(v.shape, generator=g) * 0.1)
        elif v.ndim == 1:  # BN / LayerNorm affine, PReLU slopes, biases
            v.add_(torch.randn(v.shape, generator=g) * 0.1)


def write_pymic_checkpoint(net, path: Path) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5)
    torch.save({"iteration": 6000, "valid_pred": np.float32(0.5), "model_state_dict": net.state_dict(),
                "optimizer_state_dict": opt.state_dict()}, path)


def real_ct_roi(spec) -> torch.Tensor:
    from fmzoo.medical.spec import preprocess, read_nifti

    root = Path(os.environ.get("FMZOO_DATA", "/work/shared/data"))
    arr = preprocess(read_nifti(root / "medical3d/totalsegmentator_examples/example_ct.nii.gz"), spec)
    roi = spec["roi_size"]
    x = np.full([max(a, r) for a, r in zip(arr.shape, roi, strict=True)], spec["intensity"]["b_min"], np.float32)
    x[: arr.shape[0], : arr.shape[1], : arr.shape[2]] = arr
    st = [(n - r) // 2 for n, r in zip(x.shape, roi, strict=True)]
    return torch.from_numpy(np.ascontiguousarray(x[st[0]: st[0] + roi[0], st[1]: st[1] + roi[1],
                                                   st[2]: st[2] + roi[2]]))[None, None]


def compare(checkout: str, size=None) -> None:
    from fmzoo.core import from_pretrained
    from fmzoo.core.weights import import_weights

    torch.manual_seed(0)
    ref, params = official(checkout, size)
    randomise(ref.state_dict())
    ref.eval()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FMZOO_HUB", tmp)
        path = Path(tmp) / "pctnet_ct10k_volf.pt"
        write_pymic_checkpoint(ref, path)
        if size:  # a reduced input size: converted with that option, then loaded
            model = from_pretrained(import_weights(path, "misfm_pctnet", input_size=params["input_size"])).eval()
        else:  # the public path: a release file in its official layout
            model = from_pretrained(path).eval()
    x = real_ct_roi(model.input_spec)
    with torch.no_grad():
        t0 = time.time()
        y_ref = ref(x.permute(0, 1, 4, 3, 2)).permute(0, 1, 4, 3, 2)  # the official network takes (D, H, W)
        t1 = time.time()
        y = model(x)
        t2 = time.time()
    n = sum(p.numel() for p in model.parameters())
    print(f"official PCT-Net {params['feature_chns']} input {params['input_size']} (D,H,W): {n:,} parameters "
          f"(official {sum(p.numel() for p in ref.parameters()):,}); real CT ROI {tuple(x.shape[2:])} (X,Y,Z)")
    print(f"max |official - fmzoo| = {(y - y_ref).abs().max().item():.3g} (logit scale {y_ref.abs().max().item():.3g}); "
          f"forward {t1 - t0:.1f} s official, {t2 - t1:.1f} s fmzoo")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("compare", "manifest"))
    p.add_argument("checkout")
    p.add_argument("out", nargs="?")
    p.add_argument("--size", help="input_size D,H,W (default the release's 64,128,128)")
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if a.what == "manifest":
        manifest(a.checkout, a.out)
    else:
        compare(a.checkout, [int(s) for s in a.size.split(",")] if a.size else None)
