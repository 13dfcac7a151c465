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
    .venv/bin/python benchmarks/official_sizes.py --check-writers   # the test helpers each row imports

``--tiny`` runs the same code on small inputs with one repeat (``tests/test_benchmarks_official_sizes.py``).
"""

from __future__ import annotations

import argparse
import functools
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
    if not path.is_file():
        raise WriterMissing(f"benchmarks/official_sizes.py imports its release-layout writers from {_rel(path)}, "
                            "which does not exist (moved or renamed?): point the rows' _writer(...) calls at its "
                            "new place")
    return _exec_test_file(path, f"_bench_{pkg}_{name}")


@functools.cache
def _exec_test_file(path: Path, module_name: str):
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # sibling helpers (e.g. medical's misfm_reference)
    spec = importlib.util.spec_from_file_location(module_name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # torch-geometric's MessagePassing inspects its subclass's module
    spec.loader.exec_module(mod)
    return mod


class WriterMissing(LookupError):
    """A release-layout writer that a row of this benchmark imports from ``packages/*/tests`` is not there."""


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _writer(pkg: str, module: str, *names: str):
    """``names`` of ``packages/<pkg>/tests/<module>.py`` (one object, or a tuple for several): the equivalence tests'
    release-layout writers and reference models, reused so that the benchmark writes exactly the files the tests
    check. Every row reaches them only through this function, with literal arguments, so that :func:`writers_of`
    can list them from the source."""
    mod = _test_module(pkg, module)
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise WriterMissing(f"benchmarks/official_sizes.py needs {', '.join(map(repr, missing))} from "
                            f"{_rel(TESTS / pkg / 'tests' / module)}.py, which has no such name (renamed or removed?): "
                            "update the rows that use it")
    found = tuple(getattr(mod, n) for n in names)
    return found[0] if len(found) == 1 else found


def writers_of(name: str) -> list[tuple[str, str, str]]:
    """The ``(package, test module, name)`` triples that row ``name`` of :data:`ARCHS` reaches through
    :func:`_writer`, read from this file's source: its prepare / reference / fmzoo functions and every function of
    this file that they call (nested closures included)."""
    import ast

    tree = ast.parse(Path(__file__).read_text())
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict)
                 and any(isinstance(t, ast.Name) and t.id == "ARCHS" for t in n.targets))
    row = next((v for k, v in zip(table.keys, table.values, strict=True) if ast.literal_eval(k) == name), None)
    if row is None:
        raise KeyError(f"{name!r} is not a row of ARCHS ({sorted(ARCHS)})")
    todo = [n.id for n in ast.walk(row) if isinstance(n, ast.Name) and n.id in defs]
    seen, found = set(), []
    while todo:
        fn = todo.pop()
        if fn in seen:
            continue
        seen.add(fn)
        for node in ast.walk(defs[fn]):
            if isinstance(node, ast.Name) and node.id in defs and node.id not in ("_writer", "_test_module"):
                todo.append(node.id)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_writer":
                pkg, module, *names = (ast.literal_eval(a) for a in node.args)
                found += [(pkg, module, n) for n in names if (pkg, module, n) not in found]
    return sorted(found)


def _top_level_names(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {t.id for t in ast.walk(target) if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def check_writers(names) -> dict[str, list[str]]:
    """Check, from the sources alone (nothing imported, nothing built), that every writer the rows ``names`` take from
    ``packages/*/tests`` is still defined there; raise :class:`WriterMissing` naming each row, file and missing name.
    Returns ``{row: ["pkg/tests/module.py:name", ...]}``."""
    out, problems = {}, []
    for name in names:
        out[name] = []
        for pkg, module, attr in writers_of(name):
            path = TESTS / pkg / "tests" / f"{module}.py"
            out[name].append(f"{_rel(path)}:{attr}")
            if not path.is_file():
                problems.append(f"row {name!r} needs {attr!r} from {_rel(path)}, which does not exist (moved or "
                                "renamed?)")
            elif attr not in _top_level_names(path):
                problems.append(f"row {name!r} needs {attr!r} from {_rel(path)}, which no longer defines it "
                                "(renamed or removed?)")
    if problems:
        raise WriterMissing("benchmarks/official_sizes.py cannot write its release files:\n  " + "\n  ".join(problems)
                            + "\nupdate the rows' _writer(...) calls (or the test helpers) to match")
    return out


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


# the inputs of a run: the real setting, and --tiny (the same models at their real size, small inputs: for tests).
# Tiny floors: VoCo 64^3 (SwinUNETR's bottleneck instance norm needs > 1 voxel: 32^3 leaves 1); misfm_roi_div is
# FMUNet's (PCT-Net takes exactly its ROI); the ViTs stay at 224 x 224 (timm's ViT has a fixed input size).
INPUTS = {"real": {"audio_s": 1.0, "residues": 100, "voco_roi": (96, 96, 96), "misfm_roi_div": 1, "s2_px": 224,
                   "molecules": 128},
          "tiny": {"audio_s": 0.25, "residues": 12, "voco_roi": (64, 64, 64), "misfm_roi_div": 4, "s2_px": 64,
                   "molecules": 8}}


def _real_audio(seconds):
    """``seconds`` of a real FSDD recording at 16 kHz (8 kHz file resampled by fmzoo's audio loader; tiled if
    shorter)."""
    import warnings

    import torch
    from fmzoo.speech.data.fsdd import list_fsdd, load_items
    from fmzoo.speech.spec import AudioSpec

    item = list_fsdd("all")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (wav,), *_ = load_items([item], AudioSpec(sample_rate=16000))
    wav = torch.as_tensor(wav, dtype=torch.float32).flatten()
    n = int(round(seconds * 16000))
    while wav.numel() < n:
        wav = torch.cat([wav, wav])
    return wav[:n], f"{seconds:g} s of 16 kHz audio (FSDD {item.path.name}, resampled from 8 kHz)"


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


def _s2_image(px=224):
    """A real 13-band Sentinel-2 L1C patch (eo-learn example, 101 x 100 px, reflectance) resized to px x px and
    normalised with SoftCon's statistics (reflectance = DN statistics / 10000, as the release's spec)."""
    import torch
    import torch.nn.functional as F
    from fmzoo.remotesensing.data.eopatch import load_eopatch
    from torchgeo.models import resnet as tg_resnet

    img = torch.from_numpy(load_eopatch()["image"][0])[None]  # (1, 13, 101, 100)
    img = F.interpolate(img, size=(px, px), mode="bilinear", align_corners=False)
    mean = torch.tensor(tg_resnet._mean_s2)[None, :, None, None] / 1e4
    std = torch.tensor(tg_resnet._std_s2)[None, :, None, None] / 1e4
    return ((img - mean) / std).contiguous(), f"one 13 x {px} x {px} Sentinel-2 L1C image (eo-learn patch, resized)"


# ------------------------------------------------------------------------------------------- architectures
#
# Each entry: prepare(workdir, inputs) (inputs: one of INPUTS) writes the release file and the input (returns the file, the input description,
# how many inputs the forward processes); reference(workdir) -> (model, params, run); fmzoo_run(model) -> run.
# run(x) returns the tensor compared across sides.


def _w2v_config(size):
    if size == "base":
        return {}  # transformers' Wav2Vec2Config defaults = facebook/wav2vec2-base
    return dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True,
                codevector_dim=768, proj_codevector_dim=768)  # facebook/wav2vec2-large-lv60's config.json


def _w2v_prepare(size):
    def prepare(work, inputs):
        import torch
        from transformers import Wav2Vec2ForPreTraining

        hf_model, write_hf = _writer("speech", "test_official_weights", "_hf_model", "_write_hf")
        hf = hf_model(Wav2Vec2ForPreTraining, seed=0, **_w2v_config(size))
        folder = write_hf(work / f"wav2vec2-{size}", hf, "bin")
        wav, desc = _real_audio(inputs["audio_s"])
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


def _fairseq_prepare(work, inputs):
    import argparse as ap

    import numpy as np
    import torch

    hf_model, write_hf, base_args, to_fairseq = _writer("speech", "test_official_weights", "_hf_model", "_write_hf",
                                                        "BASE_ARGS", "_to_fairseq")
    hf = hf_model(seed=3, num_codevectors_per_group=320, codevector_dim=256, proj_codevector_dim=256)
    write_hf(work / "wav2vec2-reference", hf, "bin")  # the same weights for the reference side
    ckpt = {"args": ap.Namespace(**base_args), "model": to_fairseq(hf.state_dict(), group_norm=True),
            "optimizer_history": [{"criterion_name": "Wav2vecCriterion", "num_updates": 400000}],
            "extra_state": {"val_loss": np.float64(1.25)}, "last_optimizer_state": None}
    torch.save(ckpt, work / "wav2vec_small.pt")
    wav, desc = _real_audio(inputs["audio_s"])
    torch.save(wav[None], work / "input.pt")  # the BASE LibriSpeech file: task.normalize false
    return work / "wav2vec_small.pt", desc + ", not normalised (task.normalize false)", 1


def _tera_prepare(work, inputs):
    import torch

    release, s3prl_features = _writer("speech", "test_official_weights", "_s3prl_tera_release", "_s3prl_features")
    torch.save(release()[2], work / "states-1000000.ckpt")
    wav, desc = _real_audio(inputs["audio_s"])
    feats = s3prl_features(wav)  # s3prl's OnlinePreprocessor as the speech tests restate it
    torch.save(feats[None], work / "input.pt")
    return work / "states-1000000.ckpt", f"{desc} -> {feats.shape[0]} x 80 log-mel frames (s3prl features)", 1


def _tera_reference(work):
    import torch

    model_module, positions = _writer("speech", "test_official_weights", "_s3prl_model_module", "_s3prl_positions")
    mj = model_module()
    ckpt = _load_pickle(work / "states-1000000.ckpt")
    config = mj.TransformerConfig(ckpt["Upstream_Config"]["transformer"])
    ref = mj.TransformerModel(config, 80).eval()
    head = mj.TransformerSpecPredictionHead(config, 80).eval()
    ref.load_state_dict(ckpt["Transformer"])
    head.load_state_dict(ckpt["SpecHead"])
    hidden = config.hidden_size

    def run(x):  # s3prl builds the sinusoid table and the attention mask per forward, as here
        n = x.shape[1]
        return ref(x, positions(n, hidden)[None], torch.ones(1, n), output_all_encoded_layers=True)[-1]
    return ref, _nparams(ref, head), run


def _tape_prepare(work, inputs):
    import tape
    import torch
    from fmzoo.protein.data.secondary_structure import load_cb513

    torch.manual_seed(0)
    ref = tape.ProteinBertModel(tape.ProteinBertConfig()).eval()  # the released bert-base configuration
    (work / "bert-base").mkdir()
    ref.save_pretrained(str(work / "bert-base"))
    n = inputs["residues"]
    rec = next(r for r in load_cb513() if len(r.sequence) >= n)
    ids = torch.from_numpy(tape.TAPETokenizer(vocab="iupac").encode(rec.sequence[:n]))[None]
    torch.save(ids, work / "input.pt")
    return work / "bert-base", f"one {n}-residue protein (CB513 chain, first {n} residues; {ids.shape[1]} tokens)", 1


def _tape_reference(work):
    import tape
    import torch

    ref = tape.ProteinBertModel.from_pretrained(str(work / "bert-base")).eval()
    return ref, _nparams(ref), lambda ids: ref(ids, input_mask=torch.ones_like(ids))[0]


def _tape_fmzoo(model):
    import torch

    return lambda ids: model.embed(ids, torch.ones_like(ids))[0]


def _voco_prepare(fs):
    def prepare(work, inputs):
        import torch
        from fmzoo.medical.spec import CT_SPEC_VOCO_PAPER

        tpami_release = _writer("medical", "test_official_weights", "_tpami_release")
        path = work / f"VoCo_{ {48: 'B', 96: 'L', 192: 'H'}[fs]}_SSL_head.pt"
        tpami_release(path, fs)
        x, desc = _ct_crop(CT_SPEC_VOCO_PAPER, inputs["voco_roi"])
        torch.save(x, work / "input.pt")
        return path, desc + "; output: VoCo's pooled multi-scale encoder features", 1
    return prepare


def _voco_reference(fs):
    def reference(work):
        from fmzoo.medical.models.swin import ENCODER_PREFIXES, ProjectionHead, build_swinunetr

        voco_features = _writer("medical", "test_official_weights", "_voco_features")
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
        return net, _nparams(net, head), lambda x: voco_features(net, x)[1]
    return reference


def _voco_fmzoo(model):
    return model.features


def _rn50_prepare(work, inputs):
    import torch

    torchvision_rn50 = _writer("remotesensing", "test_weights", "_torchvision_rn50")
    torch.save(torchvision_rn50().state_dict(), work / "B13_rn50_softcon.pth")
    x, desc = _s2_image(inputs["s2_px"])
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
    def prepare(work, inputs):
        import torch
        from torchgeo.models import vit_base_patch14_dinov2

        dinov2_vits14, randomize = _writer("remotesensing", "test_weights", "_dinov2_vits14", "_randomize")
        if size == "s":
            _, sd = dinov2_vits14()
        else:  # the same construction at ViT-B/14 (torchgeo's constructor, DINOv2 names, mask_token)
            ref = randomize(vit_base_patch14_dinov2(None, in_chans=13, img_size=224, num_classes=0))
            sd = dict(ref.state_dict())
            sd["mask_token"] = torch.randn(1, 768, generator=torch.Generator().manual_seed(1))
        torch.save(sd, work / f"B13_vit{size}14_softcon.pth")
        x, desc = _s2_image()  # 224: the ViTs are built for 224 x 224 (timm: no dynamic size)
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


def _gin_prepare(work, inputs):
    import torch
    from fmzoo.graph.data.molecules import load_moleculenet
    from torch_geometric.data import Batch

    reference = _writer("graph", "test_official_weights", "reference")
    torch.save(reference().state_dict(), work / "pretrained.pth")
    batch = Batch.from_data_list(load_moleculenet("bbbp", max_rows=inputs["molecules"]).to_pyg())
    torch.save(batch, work / "input.pt")
    return work / "pretrained.pth", (f"a batch of {batch.num_graphs} BBBP molecules ({batch.num_nodes} atoms); output: mean-pooled "
                                     "graph embeddings; time per molecule"), batch.num_graphs


def _gin_reference(work):
    import torch
    from torch_geometric.nn import global_mean_pool

    ref = _writer("graph", "test_official_weights", "RefGNN")()
    ref.load_state_dict(torch.load(work / "pretrained.pth", weights_only=True))
    ref.eval()
    return ref, _nparams(ref), lambda b: global_mean_pool(ref(b), b.batch)


def _gin_fmzoo(model):
    return model.embed


def _fmunet_prepare(work, inputs):
    import torch
    from fmzoo.medical.models.pctnet import MISFM_CT_SPEC

    pymic_fmunet, pymic_checkpoint = _writer("medical", "test_misfm", "_pymic_fmunet", "_pymic_checkpoint")
    ref = pymic_fmunet()
    pymic_checkpoint(ref.state_dict(), work / "fmunet_abk1k_volf.pt")
    x, desc = _ct_crop(MISFM_CT_SPEC, tuple(r // inputs["misfm_roi_div"] for r in MISFM_CT_SPEC["roi_size"]))
    torch.save(x, work / "input.pt")
    return work / "fmunet_abk1k_volf.pt", desc + " (X, Y, Z); output: 5-class logits", 1


def _fmunet_reference(work):
    from pymic.net.net3d.fmunet import FMUNet as Reference

    ref = Reference({"in_chns": 1, "class_num": 5, "feature_chns": [32, 64, 128, 256, 512], "dropout": 0.2,
                     "depth": 2, "res_mode": 0, "multiscale_pred": False})
    ref.load_state_dict(_load_pickle(work / "fmunet_abk1k_volf.pt")["model_state_dict"])
    ref.eval()
    return ref, _nparams(ref), lambda x: ref(x.permute(0, 1, 4, 3, 2)).permute(0, 1, 4, 3, 2)  # PyMIC: (D, H, W)


def _pctnet_prepare(work, inputs):
    import torch
    from fmzoo.medical.models.pctnet import MISFM_CT_SPEC

    pymic_checkpoint, from_manifest = _writer("medical", "test_misfm", "_pymic_checkpoint", "_release_from_manifest")
    pymic_checkpoint(from_manifest(), work / "pctnet_ct10k_volf.pt", prefix="module.")
    x, desc = _ct_crop(MISFM_CT_SPEC, tuple(MISFM_CT_SPEC["roi_size"]))  # its Swin windows fix the ROI, even --tiny
    torch.save(x, work / "input.pt")
    return work / "pctnet_ct10k_volf.pt", desc + " (X, Y, Z); output: 5-class logits", 1


def _pctnet_reference(work):
    raise _NoReference("the official PCT-Net code (openmedlab/MIS-FM net/) is not an installable package; the tests "
                       "check fmzoo's network against the official state-dict manifest "
                       f"({_writer('medical', 'test_misfm', 'MANIFEST')['n_parameters']:,} parameters)")


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
    "voco-l": (("Luffy503/VoCo-L",), _voco_prepare(96), _voco_reference(96), _voco_fmzoo, 3.5),
    "voco-h": (("Luffy503/VoCo-H",), _voco_prepare(192), _voco_reference(192), _voco_fmzoo, 9.0),
    "softcon-rn50": (("wangyi111/softcon-rn50-s2",), _rn50_prepare, _rn50_reference, _fmzoo_call, 1.0),
    "softcon-vits14": (("wangyi111/softcon-vits14-s2",), _vit_prepare("s"), _vit_reference("s"), _fmzoo_call, 1.0),
    "softcon-vitb14": (("wangyi111/softcon-vitb14-s2",), _vit_prepare("b"), _vit_reference("b"), _fmzoo_call, 1.5),
    "graphmae-chem-gin": (("THUDM/graphmae-chem",), _gin_prepare, _gin_reference, _gin_fmzoo, 0.8),
    "misfm-fmunet": (("openmedlab/FMUNet-AbdomenCT1K-VolF",), _fmunet_prepare, _fmunet_reference, _fmzoo_call, 4.0),
    "misfm-pctnet": (("openmedlab/PCTNet-CT10k-VolF",), _pctnet_prepare, _pctnet_reference, _fmzoo_call, 5.0),
}
# why an architecture is left out of the default run (it still runs with --only NAME)
# (measured 2026-12-07 at 96^3, one thread: VoCo-L 19-21 s CPU per forward per side, peak 3.3 GB; VoCo-H 54-55 s,
# peak 8.7 GB while writing and importing the release, 7.2 / 8.6 GB fmzoo / reference)
HEAVY = {"voco-h": "feature size 192 (854M parameters with the projection head): ~1 min CPU per forward per side "
                   "and 8.7 GB peak; run with --only voco-h",
         "voco-l": "feature size 96 (216M parameters with the projection head): ~20 s CPU per forward per side; run "
                   "with --only voco-l"}
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
        t0, c0 = time.perf_counter(), time.process_time()
        out = run(x)
        warm, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
        times, cpu = [], []
        if warm <= budget_s:
            spent = 0.0
            while len(times) < repeats and spent < budget_s:
                t0, c0 = time.perf_counter(), time.process_time()
                run(x)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                spent += times[-1]
    return out, (warm, warm_cpu), (times, cpu)


def _worker(role, name, work, repeats, threads, budget_s, tiny=False):
    import torch

    torch.set_num_threads(threads)
    work = Path(work)
    _, prepare, reference, fmzoo_run, _ = ARCHS[name]
    if role == "prepare":
        from fmzoo.core.weights import import_weights

        t0 = time.perf_counter()
        path, desc, per = prepare(work, INPUTS["tiny" if tiny else "real"])
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
    t0, c0 = time.perf_counter(), time.process_time()
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
    load_s, load_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    out, (warm, warm_cpu), (times, cpu) = _time_runs(run, x, repeats, budget_s)
    ms = statistics.median(times) * 1000 if times else warm * 1000
    cpu_ms = statistics.median(cpu) * 1000 if cpu else warm_cpu * 1000
    torch.save(out.detach().float().contiguous(), work / f"{role}_out.pt")
    info = {"params": params, "load_s": round(load_s, 2), "load_cpu_s": round(load_cpu_s, 2),
            "warmup_ms": round(warm * 1000, 1), "times_ms": [round(t * 1000, 1) for t in times],
            "forward_ms": round(ms, 1), "forward_cpu_ms": round(cpu_ms, 1), "cold_only": not times,
            "rss_before_mb": round(rss0), "peak_mb": round(_peak_mb()), "peak_delta_mb": round(_peak_mb() - rss0),
            "output_shape": list(out.shape)}
    (work / f"{role}.json").write_text(json.dumps(info))


def _spawn(role, name, work, args) -> tuple[int, str, float]:
    env = {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "FMZOO_HUB": str(Path(work).parent / "hub"), "FMZOO_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    if args.in_process:
        return (*_in_process(role, name, work, args, env), time.perf_counter() - t0)
    cmd = [sys.executable, __file__, "--_worker", role, name, str(work), "--repeats", str(args.repeats),
           "--threads", str(args.threads), "--budget-s", str(args.budget_s), *(["--tiny"] if args.tiny else [])]
    p = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr)[-1500:], time.perf_counter() - t0


def _in_process(role, name, work, args, env) -> tuple[int, str]:
    """--in-process: one side in this process (for tests: the peak RSS is then this process's, not the side's)."""
    import traceback

    import torch

    saved = {k: os.environ.get(k) for k in env}
    threads = torch.get_num_threads()
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONWARNINGS"})
    try:
        _worker(role, name, work, args.repeats, args.threads, args.budget_s, args.tiny)
        return 0, ""
    except Exception:  # reported in the row as a subprocess's failure would be
        return 1, traceback.format_exc()[-1500:]
    finally:
        torch.set_num_threads(threads)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
    cpu = side.get("forward_cpu_ms")
    return (f"{side['forward_ms'] / per:.1f}{'*' if side['cold_only'] else ''}"
            + (f" ({cpu / per:.1f})" if cpu is not None else ""))


def _table(rows) -> str:
    head = ["architecture", "release id", "params fmzoo / ref", "ms/input fmzoo (cpu)", "ms/input ref (cpu)",
            "ref/fmzoo",
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
               "* = a single cold run (the warm-up alone exceeded --budget-s); (cpu) = the same in CPU time of the "
               "process (time.process_time), steadier than wall time on a loaded machine; ref/fmzoo: wall.")
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
    ap.add_argument("--tiny", action="store_true",
                    help="the real-size models on small inputs (INPUTS['tiny']), 1 timed repeat, 10 s per side: "
                         "checks that every row still runs (tests), measures nothing worth reporting")
    ap.add_argument("--in-process", action="store_true",
                    help="run each side in this process instead of a subprocess (tests; peak MB not per side)")
    ap.add_argument("--check-writers", action="store_true",
                    help="only list the test helpers each row imports from packages/*/tests and check they exist")
    ap.add_argument("--out", help="write the rows as JSON here")
    ap.add_argument("--keep", help="keep the release files and outputs in this folder")
    ap.add_argument("--_worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (1 if args.tiny else 2 if args.quick else 5)
    args.budget_s = args.budget_s or (10.0 if args.tiny else 20.0 if args.quick else 60.0)
    if args._worker:
        _worker(*args._worker, args.repeats, args.threads, args.budget_s, args.tiny)
        return 0

    from fmzoo.core.weights import catalogue

    cat = catalogue()
    names = args.only or list(ARCHS)
    try:  # before anything is built: a renamed test helper fails here, naming the row, the file and the name
        used = check_writers(names)
    except WriterMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check_writers:
        for name in names:
            print(f"{name}: {', '.join(used[name]) or '(none: reference packages only)'}")
        return 0
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fmzoo-official-sizes-"))
    root.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    print(f"{'TINY inputs (not a measurement); ' if args.tiny else ''}"
          f"torch threads {args.threads}; repeats {args.repeats} after 1 warm-up (at most {args.budget_s:g} s per "
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
        Path(args.out).write_text(json.dumps({"tiny": args.tiny, "threads": args.threads, "repeats": args.repeats,
                                              "budget_s": args.budget_s, "rows": rows}, indent=1, default=str))
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0 if not any("error" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
