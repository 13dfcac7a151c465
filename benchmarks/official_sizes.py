"""Official architectures at their real size on this CPU: parameters, forward time per input, peak memory.

For every official architecture in fmzoo's catalogue (``fmzoo list``), a file is written in the release's own layout
with random weights from the reference implementation, exactly as the package's equivalence tests build it (their
layout helpers are imported from ``packages/*/tests``, nothing is downloaded), imported through fmzoo's public API
(``fmzoo.core.weights.import_weights``), and then both sides are measured, each in its own subprocess so that the
peak RSS is per side:

- fmzoo: ``fmzoo.core.from_pretrained(<the imported checkpoint>)``;
- reference: the reference implementation loading the same release file (transformers, s3prl, tape-proteins, MONAI,
  torchvision / torchgeo-timm, the chem-GIN reference of the graph tests on torch-geometric, PyMIC).

Each side: parameter count, forward time per input (median of the timed repeats after one warm-up run, eval mode,
``torch.no_grad``, ``torch.set_num_threads(--threads)``), peak RSS above the RSS before the model was built and the
absolute peak (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), and the output, compared across sides on the same
input (max |diff|). A side whose warm-up alone exceeds ``--budget-s`` is timed by that single run (marked ``*``).

    .venv/bin/python benchmarks/official_sizes.py --quick --out /tmp/official_sizes.json
    .venv/bin/python benchmarks/official_sizes.py --only voco-b --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "packages"


# ------------------------------------------------------------------------------------------- helpers


def _test_module(pkg: str, name: str):
    """A package's equivalence-test module (read only), for its release-layout writers and reference models."""
    path = TESTS / pkg / "tests" / f"{name}.py"
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # sibling helpers (e.g. medical's misfm_reference)
    spec = importlib.util.spec_from_file_location(f"_bench_{pkg}_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # torch-geometric's MessagePassing inspects its subclass's module
    spec.loader.exec_module(mod)
    return mod


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _nparams(*modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def _load_pickle(path):
    """Files this script wrote a moment ago in a release's layout, which may hold non-tensor objects
    (argparse.Namespace, numpy scalars) as the originals do; the fmzoo side never uses this (it reads them with
    ``torch.load(weights_only=True)`` plus its format's allow-list)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def _real_audio_1s():
    """1 s of a real FSDD recording at 16 kHz (8 kHz file resampled by fmzoo's audio loader; tiled if shorter)."""
    import warnings

    import torch
    from fmzoo.speech.data.fsdd import list_fsdd, load_items
    from fmzoo.speech.spec import AudioSpec

    item = list_fsdd("all")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (wav,), *_ = load_items([item], AudioSpec(sample_rate=16000))
    wav = torch.as_tensor(wav, dtype=torch.float32).flatten()
    while wav.numel() < 16000:
        wav = torch.cat([wav, wav])
    return wav[:16000], f"1 s of 16 kHz audio (FSDD {item.path.name}, resampled from 8 kHz)"


def _ct_crop(spec, roi_xyz):
    """A real CT (TotalSegmentator example) preprocessed with a release's spec, centre crop / pad to its ROI."""
    import numpy as np
    import torch
    from fmzoo.core import data_root
    from fmzoo.medical.spec import preprocess, read_nifti

    path = data_root() / "medical3d" / "totalsegmentator_examples" / "example_ct.nii.gz"
    arr = preprocess(read_nifti(path), spec)
    fill = float(spec["intensity"]["b_min"]) if "intensity" in spec else float(arr.min())
    out = np.full(roi_xyz, fill, dtype=np.float32)
    src, dst = [], []
    for n, r in zip(arr.shape, roi_xyz, strict=True):
        a = max(0, (n - r) // 2)
        b = max(0, (r - n) // 2)
        m = min(n, r)
        src.append(slice(a, a + m))
        dst.append(slice(b, b + m))
    out[tuple(dst)] = arr[tuple(src)]
    return torch.from_numpy(out)[None, None], (f"one {'x'.join(map(str, roi_xyz))} CT crop (TotalSegmentator "
                                               f"example_ct, {arr.shape} after the release's preprocessing)")


def _s2_image():
    """A real 13-band Sentinel-2 L1C patch (eo-learn example, 101 x 100 px, reflectance) resized to 224 x 224 and
    normalised with SoftCon's statistics (reflectance = DN statistics / 10000, as the release's spec)."""
    import torch
    import torch.nn.functional as F
    from fmzoo.remotesensing.data.eopatch import load_eopatch
    from torchgeo.models import resnet as tg_resnet

    img = torch.from_numpy(load_eopatch()["image"][0])[None]  # (1, 13, 101, 100)
    img = F.interpolate(img, size=(224, 224), mode="bilinear", align_corners=False)
    mean = torch.tensor(tg_resnet._mean_s2)[None, :, None, None] / 1e4
    std = torch.tensor(tg_resnet._std_s2)[None, :, None, None] / 1e4
    return ((img - mean) / std).contiguous(), "one 13 x 224 x 224 Sentinel-2 L1C image (eo-learn patch, resized)"


# ------------------------------------------------------------------------------------------- architectures
#
# Each entry: prepare(workdir) writes the release file and the input (returns the file, the input description,
# how many inputs the forward processes); reference(workdir) -> (model, params, run); fmzoo_run(model) -> run.
# run(x) returns the tensor compared across sides.


def _w2v_config(size):
    if size == "base":
        return {}  # transformers' Wav2Vec2Config defaults = facebook/wav2vec2-base
    return dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True,
                codevector_dim=768, proj_codevector_dim=768)  # facebook/wav2vec2-large-lv60's config.json


def _w2v_prepare(size):
    def prepare(work):
        import torch
        from transformers import Wav2Vec2ForPreTraining

        t = _test_module("speech", "test_official_weights")
        hf = t._hf_model(Wav2Vec2ForPreTraining, seed=0, **_w2v_config(size))
        folder = t._write_hf(work / f"wav2vec2-{size}", hf, "bin")
        wav, desc = _real_audio_1s()
        torch.save(((wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-7))[None], work / "input.pt")
        return folder, desc + ", normalised", 1
    return prepare


def _w2v_reference(work):
    from transformers import Wav2Vec2ForPreTraining

    folder = next(p for p in work.iterdir() if p.is_dir() and p.name.startswith("wav2vec2-"))
    hf = Wav2Vec2ForPreTraining.from_pretrained(folder).eval()
    return hf, _nparams(hf), lambda x: hf.wav2vec2(x).last_hidden_state


def _w2v_fmzoo(model):
    return lambda x: model(x, compute_loss=False)["last_hidden_state"]


def _fairseq_prepare(work):
    import argparse as ap

    import numpy as np
    import torch

    t = _test_module("speech", "test_official_weights")
    hf = t._hf_model(seed=3, num_codevectors_per_group=320, codevector_dim=256, proj_codevector_dim=256)
    t._write_hf(work / "wav2vec2-reference", hf, "bin")  # the same weights for the reference side
    ckpt = {"args": ap.Namespace(**t.BASE_ARGS), "model": t._to_fairseq(hf.state_dict(), group_norm=True),
            "optimizer_history": [{"criterion_name": "Wav2vecCriterion", "num_updates": 400000}],
            "extra_state": {"val_loss": np.float64(1.25)}, "last_optimizer_state": None}
    torch.save(ckpt, work / "wav2vec_small.pt")
    wav, desc = _real_audio_1s()
    torch.save(wav[None], work / "input.pt")  # the BASE LibriSpeech file: task.normalize false
    return work / "wav2vec_small.pt", desc + ", not normalised (task.normalize false)", 1


def _tera_prepare(work):
    import argparse as ap

    import torch

    t = _test_module("speech", "test_official_weights")
    mj = t._s3prl_model_module()
    torch.manual_seed(5)
    config = mj.TransformerConfig(t.TERA_UPSTREAM["transformer"])
    ref = mj.TransformerModel(config, 80).eval()
    head = mj.TransformerSpecPredictionHead(config, 80).eval()
    with torch.no_grad():
        for p in list(ref.parameters()) + list(head.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    torch.save({"Transformer": ref.state_dict(), "SpecHead": head.state_dict(), "Step": 1000000,
                "Args": ap.Namespace(upstream="tera"), "Config": {"runner": {"total_steps": 1000000}},
                "Upstream_Config": t.TERA_UPSTREAM}, work / "states-1000000.ckpt")
    wav, desc = _real_audio_1s()
    feats = t._s3prl_features(wav)  # s3prl's OnlinePreprocessor as the speech tests restate it
    torch.save(feats[None], work / "input.pt")
    return work / "states-1000000.ckpt", f"{desc} -> {feats.shape[0]} x 80 log-mel frames (s3prl features)", 1


def _tera_reference(work):
    import torch

    t = _test_module("speech", "test_official_weights")
    mj = t._s3prl_model_module()
    ckpt = _load_pickle(work / "states-1000000.ckpt")
    config = mj.TransformerConfig(ckpt["Upstream_Config"]["transformer"])
    ref = mj.TransformerModel(config, 80).eval()
    head = mj.TransformerSpecPredictionHead(config, 80).eval()
    ref.load_state_dict(ckpt["Transformer"])
    head.load_state_dict(ckpt["SpecHead"])
    hidden = config.hidden_size

    def run(x):  # s3prl builds the sinusoid table and the attention mask per forward, as here
        n = x.shape[1]
        return ref(x, t._s3prl_positions(n, hidden)[None], torch.ones(1, n), output_all_encoded_layers=True)[-1]
    return ref, _nparams(ref, head), run


def _tape_prepare(work):
    import tape
    import torch
    from fmzoo.protein.data.secondary_structure import load_cb513

    torch.manual_seed(0)
    ref = tape.ProteinBertModel(tape.ProteinBertConfig()).eval()  # the released bert-base configuration
    (work / "bert-base").mkdir()
    ref.save_pretrained(str(work / "bert-base"))
    rec = next(r for r in load_cb513() if len(r.sequence) >= 100)
    ids = torch.from_numpy(tape.TAPETokenizer(vocab="iupac").encode(rec.sequence[:100]))[None]
    torch.save(ids, work / "input.pt")
    return work / "bert-base", f"one 100-residue protein (CB513 chain, first 100 residues; {ids.shape[1]} tokens)", 1


def _tape_reference(work):
    import tape
    import torch

    ref = tape.ProteinBertModel.from_pretrained(str(work / "bert-base")).eval()
    return ref, _nparams(ref), lambda ids: ref(ids, input_mask=torch.ones_like(ids))[0]


def _tape_fmzoo(model):
    import torch

    return lambda ids: model.embed(ids, torch.ones_like(ids))[0]


def _voco_prepare(fs):
    def prepare(work):
        import torch
        from fmzoo.medical.spec import CT_SPEC_VOCO_PAPER

        t = _test_module("medical", "test_official_weights")
        path = work / f"VoCo_{ {48: 'B', 96: 'L', 192: 'H'}[fs]}_SSL_head.pt"
        t._tpami_release(path, fs)
        x, desc = _ct_crop(CT_SPEC_VOCO_PAPER, (96, 96, 96))
        torch.save(x, work / "input.pt")
        return path, desc + "; output: VoCo's pooled multi-scale encoder features", 1
    return prepare


def _voco_reference(fs):
    def reference(work):
        from fmzoo.medical.models.swin import ENCODER_PREFIXES, ProjectionHead, build_swinunetr

        t = _test_module("medical", "test_official_weights")
        sd = _load_pickle(next(work.glob("VoCo_*_SSL_head.pt")))["state_dict"]
        net = build_swinunetr(1, 21, fs, 7, use_v2=True).eval()
        for name in ("decoder5", "decoder4", "decoder3", "decoder2", "decoder1", "out"):
            delattr(net, name)  # VoCo's Swin module holds the encoder path only
        net.load_state_dict({k[len("module.backbone."):]: v for k, v in sd.items()
                             if k.startswith("module.backbone.")})
        hidden = sd["module.student.layer1.0.weight"].shape[0]
        head = ProjectionHead(24 * fs, hidden, hidden).eval()
        head.load_state_dict({k[len("module.student."):]: v for k, v in sd.items() if k.startswith("module.student.")})
        assert all(k.startswith(ENCODER_PREFIXES) for k in net.state_dict())
        return net, _nparams(net, head), lambda x: t._voco_features(net, x)[1]
    return reference


def _voco_fmzoo(model):
    return model.features


def _rn50_prepare(work):
    import torch

    t = _test_module("remotesensing", "test_weights")
    torch.save(t._torchvision_rn50().state_dict(), work / "B13_rn50_softcon.pth")
    x, desc = _s2_image()
    torch.save(x, work / "input.pt")
    return work / "B13_rn50_softcon.pth", desc, 1


def _rn50_reference(work):
    import torch
    import torchvision

    ref = torchvision.models.resnet50()
    ref.conv1 = torch.nn.Conv2d(13, 64, kernel_size=7, stride=2, padding=3, bias=False)
    ref.fc = torch.nn.Identity()
    ref.load_state_dict(torch.load(work / "B13_rn50_softcon.pth", weights_only=True))
    ref.eval()
    return ref, _nparams(ref), ref


def _vit_prepare(size):
    def prepare(work):
        import torch
        from torchgeo.models import vit_base_patch14_dinov2

        t = _test_module("remotesensing", "test_weights")
        if size == "s":
            _, sd = t._dinov2_vits14()
        else:  # the same construction at ViT-B/14 (torchgeo's constructor, DINOv2 names, mask_token)
            ref = t._randomize(vit_base_patch14_dinov2(None, in_chans=13, img_size=224, num_classes=0))
            sd = dict(ref.state_dict())
            sd["mask_token"] = torch.randn(1, 768, generator=torch.Generator().manual_seed(1))
        torch.save(sd, work / f"B13_vit{size}14_softcon.pth")
        x, desc = _s2_image()
        torch.save(x, work / "input.pt")
        return work / f"B13_vit{size}14_softcon.pth", desc, 1
    return prepare


def _vit_reference(size):
    def reference(work):
        import torch
        from torchgeo.models import vit_base_patch14_dinov2, vit_small_patch14_dinov2

        ctor = vit_small_patch14_dinov2 if size == "s" else vit_base_patch14_dinov2
        ref = ctor(None, in_chans=13, img_size=224, num_classes=0)
        sd = torch.load(work / f"B13_vit{size}14_softcon.pth", weights_only=True)
        sd.pop("mask_token")  # DINOv2's masked-input token: timm's ViT has none (unused by a plain forward)
        ref.load_state_dict(sd)
        ref.eval()
        return ref, _nparams(ref), ref
    return reference


def _gin_prepare(work):
    import torch
    from fmzoo.graph.data.molecules import load_moleculenet
    from torch_geometric.data import Batch

    t = _test_module("graph", "test_official_weights")
    torch.save(t.reference().state_dict(), work / "pretrained.pth")
    batch = Batch.from_data_list(load_moleculenet("bbbp", max_rows=128).to_pyg())
    torch.save(batch, work / "input.pt")
    return work / "pretrained.pth", (f"a batch of 128 BBBP molecules ({batch.num_nodes} atoms); output: mean-pooled "
                                     "graph embeddings; time per molecule"), 128


def _gin_reference(work):
    import torch
    from torch_geometric.nn import global_mean_pool

    t = _test_module("graph", "test_official_weights")
    ref = t.RefGNN()
    ref.load_state_dict(torch.load(work / "pretrained.pth", weights_only=True))
    ref.eval()
    return ref, _nparams(ref), lambda b: global_mean_pool(ref(b), b.batch)


def _gin_fmzoo(model):
    return model.embed


def _fmunet_prepare(work):
    import torch
    from fmzoo.medical.models.pctnet import MISFM_CT_SPEC

    t = _test_module("medical", "test_misfm")
    ref = t._pymic_fmunet()
    t._pymic_checkpoint(ref.state_dict(), work / "fmunet_abk1k_volf.pt")
    x, desc = _ct_crop(MISFM_CT_SPEC, tuple(MISFM_CT_SPEC["roi_size"]))
    torch.save(x, work / "input.pt")
    return work / "fmunet_abk1k_volf.pt", desc + " (X, Y, Z); output: 5-class logits", 1


def _fmunet_reference(work):
    from pymic.net.net3d.fmunet import FMUNet as Reference

    ref = Reference({"in_chns": 1, "class_num": 5, "feature_chns": [32, 64, 128, 256, 512], "dropout": 0.2,
                     "depth": 2, "res_mode": 0, "multiscale_pred": False})
    ref.load_state_dict(_load_pickle(work / "fmunet_abk1k_volf.pt")["model_state_dict"])
    ref.eval()
    return ref, _nparams(ref), lambda x: ref(x.permute(0, 1, 4, 3, 2)).permute(0, 1, 4, 3, 2)  # PyMIC: (D, H, W)


def _pctnet_prepare(work):
    import torch
    from fmzoo.medical.models.pctnet import MISFM_CT_SPEC

    t = _test_module("medical", "test_misfm")
    t._pymic_checkpoint(t._release_from_manifest(), work / "pctnet_ct10k_volf.pt", prefix="module.")
    x, desc = _ct_crop(MISFM_CT_SPEC, tuple(MISFM_CT_SPEC["roi_size"]))
    torch.save(x, work / "input.pt")
    return work / "pctnet_ct10k_volf.pt", desc + " (X, Y, Z); output: 5-class logits", 1


def _pctnet_reference(work):
    raise _NoReference("the official PCT-Net code (openmedlab/MIS-FM net/) is not an installable package; the tests "
                       "check fmzoo's network against the official state-dict manifest "
                       f"({_test_module('medical', 'test_misfm').MANIFEST['n_parameters']:,} parameters)")


class _NoReference(Exception):
    pass


def _fmzoo_call(model):
    return model


ARCHS = {  # name: (catalogue ids, prepare, reference, fmzoo run, rough peak GB of the heaviest side)
    "wav2vec2-base": (("facebook/wav2vec2-base",), _w2v_prepare("base"), _w2v_reference, _w2v_fmzoo, 1.5),
    "wav2vec2-large": (("facebook/wav2vec2-large-lv60",), _w2v_prepare("large"), _w2v_reference, _w2v_fmzoo, 4.0),
    "wav2vec2-fairseq-base": (("fairseq/wav2vec_small",), _fairseq_prepare, _w2v_reference, _w2v_fmzoo, 1.5),
    "tera": (("s3prl/tera_960hr", "s3prl/tera_100hr"), _tera_prepare, _tera_reference, None, 0.8),
    "tape-bert-base": (("songlab/tape-bert-base",), _tape_prepare, _tape_reference, _tape_fmzoo, 1.5),
    "voco-b": (("Luffy503/VoCo-B", "Luffy03/VoCo-10k"), _voco_prepare(48), _voco_reference(48), _voco_fmzoo, 3.0),
    "voco-l": (("Luffy503/VoCo-L",), _voco_prepare(96), _voco_reference(96), _voco_fmzoo, 7.0),
    "voco-h": (("Luffy503/VoCo-H",), _voco_prepare(192), _voco_reference(192), _voco_fmzoo, 18.0),
    "softcon-rn50": (("wangyi111/softcon-rn50-s2",), _rn50_prepare, _rn50_reference, _fmzoo_call, 1.0),
    "softcon-vits14": (("wangyi111/softcon-vits14-s2",), _vit_prepare("s"), _vit_reference("s"), _fmzoo_call, 1.0),
    "softcon-vitb14": (("wangyi111/softcon-vitb14-s2",), _vit_prepare("b"), _vit_reference("b"), _fmzoo_call, 1.5),
    "graphmae-chem-gin": (("THUDM/graphmae-chem",), _gin_prepare, _gin_reference, _gin_fmzoo, 0.8),
    "misfm-fmunet": (("openmedlab/FMUNet-AbdomenCT1K-VolF",), _fmunet_prepare, _fmunet_reference, _fmzoo_call, 4.0),
    "misfm-pctnet": (("openmedlab/PCTNet-CT10k-VolF",), _pctnet_prepare, _pctnet_reference, _fmzoo_call, 5.0),
}
# why an architecture is left out of the default run (it still runs with --only NAME)
HEAVY = {"voco-h": "feature size 192 (818M parameters): converting holds ~3 float32 copies (~10 GB) plus 96^3 "
                   "activations, over the 10 GB this benchmark allows",
         "voco-l": "feature size 96 (206M parameters): ~4x VoCo-B's forward per side on one thread; run with "
                   "--only voco-l"}
PARAM_NOTES = {  # where the two counts differ, and why
    "softcon-vits14": "fmzoo keeps DINOv2's mask_token (1 x 384) from the release; timm's ViT has no slot for it",
    "softcon-vitb14": "fmzoo keeps DINOv2's mask_token (1 x 768) from the release; timm's ViT has no slot for it",
}
QUICK_SKIP = {"misfm-pctnet": "PCT-Net at its ROI 128x128x64: 15-20 s per forward on one loaded CPU "
                              "thread (fmzoo side only); run without --quick"}


# ------------------------------------------------------------------------------------------- workers


def _time_runs(run, x, repeats, budget_s):
    import torch

    with torch.no_grad():
        t0 = time.perf_counter()
        out = run(x)
        warm = time.perf_counter() - t0
        times = []
        if warm <= budget_s:
            spent = 0.0
            while len(times) < repeats and spent < budget_s:
                t0 = time.perf_counter()
                run(x)
                times.append(time.perf_counter() - t0)
                spent += times[-1]
    return out, warm, times


def _worker(role, name, work, repeats, threads, budget_s):
    import torch

    torch.set_num_threads(threads)
    work = Path(work)
    _, prepare, reference, fmzoo_run, _ = ARCHS[name]
    if role == "prepare":
        from fmzoo.core.weights import import_weights

        t0 = time.perf_counter()
        path, desc, per = prepare(work)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        ckpt = import_weights(path)
        info = {"release_file": path.name, "input": desc, "inputs_per_forward": per,
                "write_s": round(built, 1), "import_s": round(time.perf_counter() - t0, 1),
                "checkpoint": str(ckpt), "peak_mb": round(_peak_mb())}
        (work / "prepare.json").write_text(json.dumps(info))
        return
    x = torch.load(work / "input.pt", weights_only=False)  # written by the prepare step of this run
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    if role == "fmzoo":
        from fmzoo.core import from_pretrained

        model = from_pretrained(json.loads((work / "prepare.json").read_text())["checkpoint"]).eval()
        count = model.bert if name == "tape-bert-base" else model  # TAPE: the encoder (the release has no MLM head)
        params = _nparams(count)
        run = (fmzoo_run or (lambda m: (lambda f: m.encode(f)[0][-1])))(model)
    else:
        try:
            model, params, run = reference(work)
        except _NoReference as exc:
            (work / "reference.json").write_text(json.dumps({"error": str(exc)}))
            return
    load_s = time.perf_counter() - t0
    out, warm, times = _time_runs(run, x, repeats, budget_s)
    ms = statistics.median(times) * 1000 if times else warm * 1000
    torch.save(out.detach().float().contiguous(), work / f"{role}_out.pt")
    info = {"params": params, "load_s": round(load_s, 2), "warmup_ms": round(warm * 1000, 1),
            "times_ms": [round(t * 1000, 1) for t in times], "forward_ms": round(ms, 1), "cold_only": not times,
            "rss_before_mb": round(rss0), "peak_mb": round(_peak_mb()), "peak_delta_mb": round(_peak_mb() - rss0),
            "output_shape": list(out.shape)}
    (work / f"{role}.json").write_text(json.dumps(info))


def _spawn(role, name, work, args) -> tuple[int, str, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               FMZOO_HUB=str(Path(work).parent / "hub"), FMZOO_OFFLINE="1", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, __file__, "--_worker", role, name, str(work), "--repeats", str(args.repeats),
           "--threads", str(args.threads), "--budget-s", str(args.budget_s)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr)[-1500:], time.perf_counter() - t0


def _bench(name, args, root) -> dict:
    import torch

    ids = ARCHS[name][0]
    row = {"architecture": name, "release_ids": list(ids)}
    work = Path(root) / name
    work.mkdir(parents=True)
    for role in ("prepare", "fmzoo", "reference"):
        rc, log, wall = _spawn(role, name, work, args)
        row[f"{role}_wall_s"] = round(wall, 1)
        if rc != 0:
            row["error"] = f"{role} step failed (exit {rc}): {log.strip().splitlines()[-1] if log.strip() else ''}"
            row[f"{role}_log"] = log
            return row
        row[role] = json.loads((work / f"{role}.json").read_text())
        if role == "prepare":
            row["input"] = row["prepare"]["input"]
    if "error" in row.get("reference", {}):
        row["no_reference"] = row["reference"].pop("error")
        row["reference"] = None
    else:
        a = torch.load(work / "fmzoo_out.pt", weights_only=True)
        b = torch.load(work / "reference_out.pt", weights_only=True)
        row["max_abs_diff"] = (a - b).abs().max().item() if a.shape == b.shape else f"shapes {a.shape} vs {b.shape}"
    return row


# ------------------------------------------------------------------------------------------- table


def _fmt_ms(side, per):
    if side is None:
        return "n/a"
    return f"{side['forward_ms'] / per:.1f}{'*' if side['cold_only'] else ''}"


def _table(rows) -> str:
    head = ["architecture", "release id", "params fmzoo / ref", "ms/input fmzoo", "ms/input ref", "ref/fmzoo",
            "peak MB fmzoo (+model)", "peak MB ref (+model)", "max|diff|"]
    lines = []
    notes = []
    for r in rows:
        rid = r["release_ids"][0]
        if "skipped" in r or "error" in r:
            lines.append([r["architecture"], rid, "-", "-", "-", "-", "-", "-", "-"])
            notes.append(f"{r['architecture']}: {'skipped: ' + r['skipped'] if 'skipped' in r else r['error']}")
            continue
        f, ref, per = r["fmzoo"], r["reference"], r["prepare"]["inputs_per_forward"]
        if ref is None:
            params = f"{f['params']:,} / n/a"
            ratio, diff, ref_mem = "n/a", "n/a", "n/a"
            notes.append(f"{r['architecture']}: no reference run: {r['no_reference']}")
        else:
            eq = "=" if f["params"] == ref["params"] else "!="
            if eq == "!=":
                notes.append(f"{r['architecture']}: params differ by {f['params'] - ref['params']:+,}: "
                             f"{PARAM_NOTES.get(r['architecture'], 'unexplained')}")
            params = f"{f['params']:,} {eq} {ref['params']:,}"
            ratio = f"{ref['forward_ms'] / f['forward_ms']:.2f}"
            diff = r["max_abs_diff"] if isinstance(r["max_abs_diff"], str) else f"{r['max_abs_diff']:.1e}"
            ref_mem = f"{ref['peak_mb']} (+{ref['peak_delta_mb']})"
        lines.append([r["architecture"], rid, params, _fmt_ms(f, per), _fmt_ms(ref, per), ratio,
                      f"{f['peak_mb']} (+{f['peak_delta_mb']})", ref_mem, diff])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    out = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip() for line in [head, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append("")
    out.append("ms/input: median of the timed repeats after one warm-up, divided by the inputs in one forward; "
               "* = a single cold run (the warm-up alone exceeded --budget-s).")
    out.append("peak MB: the side's process's peak RSS (ru_maxrss); (+N) = above its RSS before the model was built "
               "(after imports and the input).")
    out.append("inputs:")
    out += [f"  {r['architecture']}: {r['input']}" for r in rows if "input" in r]
    if notes:
        out.append("notes:")
        out += [f"  {n}" for n in notes]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", choices=sorted(ARCHS), help="run this architecture (repeatable)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats after one warm-up (default 5; 2 quick)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="2 timed repeats, 20 s per side, PCT-Net left out")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="stop timing a side after this many seconds (default 60; 20 quick)")
    ap.add_argument("--max-gb", type=float, default=10.0, help="skip architectures expected to need more RAM")
    ap.add_argument("--out", help="write the rows as JSON here")
    ap.add_argument("--keep", help="keep the release files and outputs in this folder")
    ap.add_argument("--_worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.budget_s = args.budget_s or (20.0 if args.quick else 60.0)
    if args._worker:
        _worker(*args._worker, args.repeats, args.threads, args.budget_s)
        return 0

    from fmzoo.core.weights import catalogue

    cat = catalogue()
    names = args.only or list(ARCHS)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fmzoo-official-sizes-"))
    root.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    print(f"torch threads {args.threads}; repeats {args.repeats} after 1 warm-up (at most {args.budget_s:g} s per "
          f"side); work folder {root}", flush=True)
    rows = []
    for name in names:
        ids, *_, gb = ARCHS[name]
        missing = [i for i in ids if i not in cat]
        if missing:
            rows.append({"architecture": name, "release_ids": list(ids), "skipped": f"not in the catalogue: {missing}"})
        elif gb > args.max_gb:
            rows.append({"architecture": name, "release_ids": list(ids),
                         "skipped": f"expected ~{gb:g} GB > --max-gb {args.max_gb:g}: {HEAVY.get(name, '')}"})
        elif not args.only and name in HEAVY:
            rows.append({"architecture": name, "release_ids": list(ids), "skipped": HEAVY[name]})
        elif not args.only and args.quick and name in QUICK_SKIP:
            rows.append({"architecture": name, "release_ids": list(ids), "skipped": QUICK_SKIP[name]})
        else:
            t0 = time.perf_counter()
            rows.append(_bench(name, args, root))
            print(f"  {name}: {time.perf_counter() - t0:.0f} s{' (' + rows[-1]['error'] + ')' if 'error' in rows[-1] else ''}",
                  flush=True)
    print()
    print(_table(rows))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    if args.out:
        Path(args.out).write_text(json.dumps({"threads": args.threads, "repeats": args.repeats,
                                              "budget_s": args.budget_s, "rows": rows}, indent=1, default=str))
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0 if not any("error" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
