"""fmzoo vs the official code: one table, every method, same configuration on both sides (not run by CI).

    OMP_WAIT_POLICY=PASSIVE FMZOO_DATA=/work/shared/data .venv/bin/python benchmarks/run_all.py --quick \
        --official-root /tmp/official --tape-site /tmp/tapelib

Columns: method (objective) | unit | official s/unit | fmzoo s/unit (both: median over the timed steps) | ratio =
official time / fmzoo time (>1: fmzoo faster) | best = the same ratio on each side's fastest step (less sensitive
to load spikes) | peak RSS of each side | fmzoo GFLOPs per unit | FLOP-bound time (FLOPs / the machine's measured
single-thread fp32 matmul GFLOP/s) | t/bound = fmzoo median time / FLOP-bound time (1 = as fast as dense GEMMs).

Both sides: fp32, torch.set_num_threads(--threads, default 1), OMP_NUM_THREADS likewise, each side in its own
subprocess (peak RSS = that process's ru_maxrss), official and fmzoo of one row run back to back, the order
alternating from row to row, so that machine load falls on both alike. The first step(s) of every side are warm-up
and not timed. FLOPs are counted by torch.utils.flop_counter.FlopCounterMode (matmul/conv/attention only) in a
separate short run of the fmzoo side, never during the timed steps. Same configuration on both sides: model size,
batch, sequence/crop size, and the same real data (shared/data) wherever both sides take it.

--official-root DIR holds checkouts (e.g. `git -C <mirror> archive <commit> | tar -x -C DIR/<name>`) named below;
each also has its own flag. Nothing of them is copied into this repository; the patches a current
Python/NumPy/torch needs are applied at run time (stub modules, monkeypatching), never by editing the checkout.
  GraphMAE (node)  THUDM/GraphMAE, branch pyg @ 9127f25e (DIR/GraphMAE-pyg, --graphmae-pyg-root): graphmae.models
                   build_model with configs.yml "cora" (GAT 2x512, 4 heads, mask 0.5, replace 0.05, SCE 3),
                   edge_index with self-loops as its data_util, model(x, edge_index) + Adam (main_transductive).
                   Patch: stub `tensorboardX`. (The DGL main branch cannot be installed here.)
  GraphMAE (mol)   THUDM/GraphMAE @ b14f080c919257b495e3cb6474286d5252d6a635 chem/model.py GNN + GNNDecoder (GIN 5x300),
                   the train_mae step of chem/pretraining.py (SCE on masked atoms' one-hot types, two Adams), on the
                   same fmzoo-featurised batch of 256 MoleculeNet molecules; MaskAtom's per-molecule masking done
                   in-step on both sides. Patch: `torch_scatter.scatter_add` -> torch_geometric.utils.scatter.
  T-JEPA           jose-melo/t-jepa @ 98dda991dd5e5d12266b3557aa80a33c4e0a6606 (DIR/t-jepa, --tjepa-root): run.py's set-up
                   (src.encoder Encoder with its +-1 gradient-clamp hooks, src.predictors Predictors, init_weights
                   trunc_normal, MaskCollator, init_optim's AdamW + warm-up/cosine schedulers, the EMA generator) and
                   one iteration of src/train.py's loop (collate with masks, target / context / predictor passes,
                   MSE, backward, step, EMA), at recipe tjepa-adult's configuration on both sides (width 16 per token,
                   16+16 layers, predictor feed-forward 256, dropout rates, mask shares, 4 targets, batch 512) on the
                   same UCI Adult training rows (numerical columns min-max scaled by its src.utils.encode_utils,
                   categories coded as fmzoo's schema codes them; same cardinalities). Patch: stub `tabulate` (its
                   parameter tables are printing only). A step's cost depends on its mask sizes (0.6-2.2 s for context
                   2-5 + target 2-9 features): the official collator seeds its size draw with its iteration counter,
                   and fmzoo's FeatureMaskSampler (the same draw) is given a generator seeded with the step number, so
                   both sides run the same sizes at every step; the checks list every timed step's sizes and seconds.
                   fmzoo's model is built from models.tjepa (methods.tjepa would import Lightning: ~290 MB of RSS that
                   the measured step never uses; the official side imports no trainer either).
  GPHT             icantnamemyself/GPHT @ cfdbbd2f8386603476d0b48705b6189cfae0ad90 (DIR/GPHT, --gpht-root):
                   models/GPHT.py as is, with the fmzoo model's weights loaded (key renaming only). Configuration
                   (--gpht-d-model, default 128): input 336, token 48, pooling [8,4,2,1], 3 layers per stage,
                   d_model D, d_ff 4D, 8 heads (official default), dropout 0.1, seeded random weights; batch
                   --gpht-batch (default 1024, the official pretrain_batch_size) univariate ETTh1 train windows;
                   H=720 inference on 64 ETTh1 test windows x 7 channels. --gpht-d-model 0 uses --gpht-checkpoint's
                   weights and size instead. Checks printed: eval forward and train-mode forward (dropout on, same
                   seed: fmzoo draws the official dropout masks) against the official. Patches: stub
                   `reformer_pytorch` and `einops` (imported, unused by GPHT). Training: forward(x, None, None, None)
                   + MSE + backward + Adam, as exp_long_term_forecasting_GPHT; inference: its test loop's
                   autoregression (append the last token_len, keep seq_len); fmzoo's generate computes only what
                   the next token needs (GPHT._next_token: the last stage's last layer on one row per series; the
                   first layer's q/k/v from the raw tokens, the embedding folded into the projection) and
                   caches nothing across steps (the sliding, re-normalized window changes every token's input).
                   --gpht-bf16 adds a row: the fmzoo side under torch.autocast("cpu", bfloat16) (the official side
                   stays fp32).
  TAPE MLM         tape-proteins 0.5 (PyPI) ProteinBertForMaskedLM (--tape-site DIR if installed with --target);
                   patch: stub `lmdb`, `boto3`, `botocore`, `tensorboardX` (datasets / S3 download / logging only).
  wav2vec 2.0      transformers Wav2Vec2ForPreTraining, same config, weights, masks and negatives
                   (benchmarks/speech_throughput.py).
  TERA             s3prl 0.4.18 (PyPI, --no-deps): upstream/mockingjay/model.py TransformerModel +
                   TransformerSpecPredictionHead at TERA-small's size, masking by pretrain/mockingjay/task.py
                   generate_masked_acoustic_model_data (time 15% x 7 frames + frequency 20%), L1 on masked entries.
  VoCo             Luffy03/VoCo @ ba7b7bd22e98a8807b4798abbc37846928750c1d (DIR/VoCo, --voco-root):
                   models/voco_head.py VoCoHead (student + EMA teacher Swin encoders, projection head, its loss) on
                   the same crops/bases/labels of fmzoo's VoCoDataset. Patches to voco-small's configuration (the
                   file hard-codes the paper's): Swin window 7 -> 4, projection 1152->2048->2048 -> 288->512->512;
                   its per-step print is silenced; inputs wrapped as MONAI MetaTensor. fmzoo side: VoCoTask.ssl_loss
                   (its window attention / instance norm through models/fast_swin.py, same function), AdamW and the
                   recipe's grad-norm clip 1.0, as the official step. Checks printed: each side's CPU s/step
                   (official: upper median of the timed steps; fmzoo: their mean).
  Volume Fusion    PyMIC 0.6.2 (PyPI, --no-deps; its crop4vf.py is identical to HiLab-git/PyMIC @ 8bcebd62ad4360d7dc5143907f56dd793dd5e304),
                   where MIS-FM (openmedlab/MIS-FM @ 1506d659) keeps VolF: SelfSupVolumeFusion's training iteration
                   (SegmentationAgent.training) with the train transforms [Crop4VolumeFusion, VolumeFusion,
                   LabelToProbability], loss [DiceLoss, CrossEntropyLoss] x [0.5, 0.5] and Adam (lr 1e-3, weight
                   decay 1e-5) of PyMIC_examples' VolF config, at recipe volumefusion-small's configuration on both
                   sides: the recipe's MONAI SwinUNETR (feature 12, window 4, 5 classes, same seeded init), crop
                   32x64x32, blocks 4..16, fg ratio 0.7, rescale 0.7..1.5, aug mode 3, batch 2, on the same 8 MSD
                   Hippocampus volumes held in memory (its NIfTI reading is not timed on either side). fmzoo: the
                   VolumeFusionMethod's dataset, task.ssl_loss and configure_optimizers (AdamW + schedule). Checks
                   printed (benchmarks/medical_pretrain.py volf_checks): fusion and crop+intensity with the same
                   random draws, zoom vs trilinear, label frequencies, loss on one batch. Patch: stub `SimpleITK`,
                   `h5py`, `imops`, `skimage` (imported by PyMIC's package __init__s, unused by VolF's path).
  SoftCon          zhu-xlab/softcon @ b687e46cd25750a852e13d5e029e331feb231639 (DIR/softcon, --softcon-root) ships its
                   encoder (models/dinov2/, DINOv2 DinoVisionTransformer) and a demo notebook, no loss and no training
                   loop. Official side: that encoder as demo_encoding.ipynb builds it (vit_small, patch 14, 13 bands,
                   block_chunks 0, LayerScale 1e-5, no registers, its init_weights, seed 0), img_size = the view size
                   (--softcon-crop, default 112 px; the demo's 224 would make both sides interpolate position
                   embeddings), trained by fmzoo's SoftCon step, because the repository has none: official encoder;
                   loss, projector, views, Siamese masking and optimizer: fmzoo's. fmzoo side: SoftConViT (timm ViT,
                   ViT-S/14, 13 bands, same view size, LayerScale and mask token of the released layout) through the
                   same step. The step on both sides: the SoftCon Method's task for recipe softcon-vits14-paper (two
                   views, 30 % of the patch tokens dropped alike in both, projector 2048->256 with BatchNorm, soft
                   contrastive loss with Jaccard targets, its configure_optimizers' AdamW + warm-up/cosine), batch
                   --softcon-batch (default 16) of the recipe's eo-learn TestEOPatch 96 px crops with multi-label LULC
                   targets, the same seeded projector and view/mask stream. The official encoder has no token-dropping
                   call: the benchmark runs its prepare_tokens_with_masks, gathers the kept tokens, then its blocks and
                   norm (benchmarks/remotesensing_pretrain.py OfficialEncoder). Weights: the official initialisation,
                   written once (safetensors) and loaded on both sides (fmzoo: key renaming only). Checks printed:
                   both encoders' eval forward max |diff| (all tokens; same kept tokens), the step-0 losses and
                   gradients, each side's losses. Patch: none (xFormers absent: its Attention runs the plain path).
                   fmzoo's SoftConViT runs its last block for the class token only (the feature reads nothing else;
                   same result up to rounding): about 6.5 % fewer FLOPs per step than the official encoder at 46
                   tokens; the rest of the step is the same arithmetic, matmul-bound (see t/bound), so no 2x here
                   without changing the arithmetic (e.g. bf16).
                   Row "SoftCon RN-small stand-in": fmzoo's Lightning fit of SoftConTask (ResNet-small, 96 px, batch 32)
                   against our own plain-PyTorch loop of the same computation (benchmarks/remotesensing_pretrain.py):
                   no official side exists for it (the repository has no ResNet code), the "official" column is that
                   stand-in.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent


class NotAvailable(Exception):
    pass


# ----------------------------------------------------------------------------- per-method sides
# Each side: f(a, steps) -> (seconds per unit over the timed steps, units executed in total incl. warm-up).


def _stub(name, *attrs):
    """Run-time patch: an empty module for an import the measured code path never uses."""
    try:
        __import__(name)
    except ImportError:
        mod = sys.modules[name] = types.ModuleType(name)
        for at in attrs:
            setattr(mod, at, type(at, (Exception,), {}))


CHECKS: dict = {}  # correctness checks made on the way, printed under the table
STEP_TIMES: list[float] = []  # per-unit seconds of the timed steps, read by child()


def _timed(step, steps: int, warmup: int = 1):
    for i in range(warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        t = time.perf_counter()
        step(i)
        STEP_TIMES.append(time.perf_counter() - t)
    return (time.perf_counter() - t0) / max(steps, 1), warmup + steps


def _stamped(fn, warmup: int):
    """Per-step times for the benchmarks reused from the other modules (their loops end every step with one
    optimizer.step()): a global optimizer post-step hook stamps the clock; the first ``warmup`` steps are dropped."""

    stamps = []
    from torch.optim.optimizer import register_optimizer_step_post_hook

    h = register_optimizer_step_post_hook(lambda *_: stamps.append(time.perf_counter()))
    try:
        out = fn()
    finally:
        h.remove()
    STEP_TIMES.extend(b - a for a, b in zip(stamps[warmup - 1:], stamps[warmup:], strict=False))
    return out


def graphmae_node(a, side, steps):
    import torch
    from fmzoo.graph.data.planetoid import load_cora

    g = load_cora()
    torch.manual_seed(0)
    if side == "official":
        root = a.graphmae_pyg_root
        if not (root and (Path(root) / "graphmae" / "models" / "edcoder.py").exists()):
            raise NotAvailable("pass --graphmae-pyg-root (THUDM/GraphMAE, branch pyg)")
        _stub("tensorboardX", "SummaryWriter")
        sys.path.insert(0, str(root))
        from graphmae.models import build_model
        from torch_geometric.utils import add_self_loops, remove_self_loops

        cfg = dict(num_heads=4, num_out_heads=1, num_hidden=512, num_layers=2, residual=False, attn_drop=0.1,
                   in_drop=0.2, norm=None, negative_slope=0.2, encoder="gat", decoder="gat", mask_rate=0.5,
                   drop_edge_rate=0.0, replace_rate=0.05, activation="prelu", loss_fn="sce", alpha_l=3,
                   concat_hidden=False, num_features=g.num_features)  # configs.yml "cora" + main's defaults
        m = build_model(types.SimpleNamespace(**cfg)).train()
        ei = add_self_loops(remove_self_loops(g.edge_index)[0])[0]  # as graphmae/datasets/data_util.py

        def loss_fn():
            return m(g.x, ei)[0]
    else:
        from fmzoo.graph.models.graphmae import GraphMAE

        m = GraphMAE(g.num_features).train()
        pg = m.prepare(g.x, g.edge_index)

        def loss_fn():
            return m.loss_prepared(pg)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=2e-4)

    def step(i):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _timed(step, steps, warmup=2)


def graphmae_mol(a, side, steps):
    import torch
    import torch.nn.functional as F
    from fmzoo.graph.data.molecules import collate, featurize, pretraining_smiles
    from fmzoo.graph.models.gin import MolGIN, MolGraphMAEDecoder, mask_atoms
    from fmzoo.graph.models.graphmae import sce_loss

    root = a.graphmae_root
    if side == "official" and not (root and (Path(root) / "chem" / "model.py").exists()):
        raise NotAvailable("pass --graphmae-root (checkout of THUDM/GraphMAE)")
    torch.manual_seed(0)
    smiles = pretraining_smiles()[: 4 * 256]
    graphs = featurize(smiles, strict=False)[0]
    batches = [collate(graphs[i:i + 256]) for i in range(0, len(graphs) - 255, 256)]
    if side == "fmzoo":
        from fmzoo.graph.methods.graphmae_mol import mol_mae_loss

        enc, dec = MolGIN(5, 300, "last", 0.0).train(), MolGraphMAEDecoder(300, 119).train()

        def loss_fn(b):
            return mol_mae_loss(enc, dec, b, 0.25, 1.0)
    else:  # chem/pretraining.py train_mae: GNN + GNNDecoder, SCE on the masked atoms' one-hot types
        try:
            import torch_scatter  # noqa: F401
        except ImportError:  # run-time patch: torch_scatter.scatter_add -> torch_geometric.utils.scatter
            from torch_geometric.utils import scatter

            mod = sys.modules["torch_scatter"] = types.ModuleType("torch_scatter")
            mod.scatter_add = lambda src, index, dim=0, dim_size=None: scatter(src, index, dim, dim_size, "sum")
        sys.path.insert(0, str(Path(root) / "chem"))
        from model import GNN, GNNDecoder

        enc = GNN(5, 300, JK="last", drop_ratio=0.0, gnn_type="gin").train()
        dec = GNNDecoder(300, 119, JK="last", gnn_type="gin").train()

        def loss_fn(b):  # MaskAtom (done per molecule in the official collate) + the train_mae step
            xm, masked = mask_atoms(b["x"], b["batch"], b["num_graphs"], 0.25)
            label = F.one_hot(b["x"][masked, 0], num_classes=119).float()
            h = enc(xm, b["edge_index"], b["edge_attr"])
            pred = dec(h, b["edge_index"], b["edge_attr"], masked)
            return sce_loss(label, pred[masked], 1.0)
    opts = [torch.optim.Adam(enc.parameters(), lr=1e-3), torch.optim.Adam(dec.parameters(), lr=1e-3)]

    def step(i):
        loss = loss_fn(batches[i % len(batches)])
        for o in opts:
            o.zero_grad()
        loss.backward()
        for o in opts:
            o.step()
    return _timed(_cpu_clocked(step, 1), steps, warmup=1)


def tjepa(a, side, steps):
    import numpy as np
    import torch
    from fmzoo.core.registry import load_recipe
    from fmzoo.tabular.data.adult import load_adult
    from fmzoo.tabular.spec import TabularSchema

    r = load_recipe("tjepa-adult")
    mc, mk, opt_cfg, bs = r["model"], r["mask"], r["optim"], r["trainer"]["batch_size"]
    X, _ = load_adult()["train"]
    schema = TabularSchema.fit(X)
    torch.manual_seed(0)
    if side == "official":
        return _tjepa_official(a, steps, r, X, schema)
    from fmzoo.tabular.models.tjepa import TJEPA, FeatureMaskSampler

    xn, xc = schema.transform(X)
    # the model methods.tjepa.build_model makes, built here without importing the recipe method's module (it
    # imports Lightning, ~290 MB of RSS the measured step never uses, as the official side imports no trainer)
    m = TJEPA(n_num=len(schema.numerical), cardinalities=schema.cardinalities, **mc)
    m.train()
    if opt_cfg.get("encoder_grad_clamp"):
        m.clamp_encoder_gradients(float(opt_cfg["encoder_grad_clamp"]))
    sampler = FeatureMaskSampler(m.n_features, **mk)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=opt_cfg["lr"],
                            weight_decay=opt_cfg["weight_decay"])
    CHECKS["trainable params"] = sum(p.numel() for p in m.parameters() if p.requires_grad)
    np.random.seed(0)

    def step(i):
        j = (i * bs) % (len(xn) - bs)
        x1, x2 = xn[j:j + bs], xc[j:j + bs]
        # seeded with the step number as the official MaskCollator seeds itself: the same sizes on both sides
        keep, targets = sampler(len(x1), generator=torch.Generator().manual_seed(i))
        SIZES.append(f"{keep.shape[1]}+{targets[0].shape[1]}")
        loss = m.jepa_loss(x1, x2, keep, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        m.update_target(0.996)
    return _tjepa_steps(_timed(_cpu_clocked(step, 2), steps, warmup=2))


SIZES: list[str] = []  # T-JEPA: context + target sizes of every step (warm-up included)


def _tjepa_steps(out):
    """Every timed step's seconds and mask sizes into the checks (a T-JEPA step's cost depends on them)."""
    CHECKS["steps (ctx+tgt: s)"] = " ".join(f"{n}: {t:.3f}" for n, t in zip(SIZES[-len(STEP_TIMES):], STEP_TIMES, strict=True))
    return out


def _cpu_clocked(step, warmup: int):
    """``step`` that also records its process CPU seconds; the median of the timed steps goes into CHECKS (on a
    loaded machine wall-clock per step mostly measures waiting for a core; CPU time does not)."""
    cpu: list[float] = []

    def clocked(i):
        c = time.process_time()
        step(i)
        if i >= warmup:
            cpu.append(time.process_time() - c)
            CHECKS["cpu s/step"] = round(sorted(cpu)[len(cpu) // 2], 3)
    return clocked


def _tjepa_official(a, steps, r, X, schema):
    """The official T-JEPA set-up of run.py and one iteration of src/train.py's loop (see the module docstring)."""
    root = a.tjepa_root
    if not (root and (Path(root) / "src" / "encoder.py").exists()):
        raise NotAvailable("pass --tjepa-root (checkout of jose-melo/t-jepa)")
    import numpy as np
    import torch

    try:
        import tabulate  # noqa: F401
    except ImportError:  # run-time patch: its parameter tables are printing only
        import importlib.machinery

        mod = sys.modules["tabulate"] = types.ModuleType("tabulate")
        mod.__spec__ = importlib.machinery.ModuleSpec("tabulate", None)  # torch._dynamo looks modules' specs up
        mod.tabulate = lambda *args, **kw: ""
    sys.path.insert(0, str(root))
    from src.encoder import Encoder
    from src.mask import MaskCollator
    from src.predictors import Predictors
    from src.utils.encode_utils import encode_data
    from src.utils.optim_utils import init_optim
    from src.utils.train_utils import AllReduce, apply_masks_from_idx, init_weights

    mc, mk, oc = r["model"], r["mask"], r["optim"]
    bs = r["trainer"]["batch_size"]
    cols = list(X.columns)  # UCI order = the official adult.csv order of the 14 features
    cards = [(cols.index(c), k) for c, k in zip(schema.categorical, schema.cardinalities, strict=True)]
    num_idx = [cols.index(c) for c in schema.numerical]
    raw = np.zeros((len(X), len(cols)))
    raw[:, num_idx] = X[schema.numerical].to_numpy(dtype=float)
    raw[:, [i for i, _ in cards]] = schema.transform(X)[1].numpy()  # category codes, as its LabelEncoder gives
    data = encode_data(raw, types.SimpleNamespace(D=len(cols), cardinalities=cards), None)  # min-max numericals
    args = types.SimpleNamespace(n_cls_tokens=mc["n_reg_tokens"], model_act_func="relu")
    np.random.seed(0)
    torch.manual_seed(0)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # its parameter tables and "Clipping gradients" line
        context_encoder = Encoder(
            idx_num_features=num_idx, cardinalities=cards, hidden_dim=mc["dim"], num_layers=mc["depth"],
            num_heads=mc["heads"], p_dropout=mc["dropout"], layer_norm_eps=1e-5,
            gradient_clipping=oc.get("encoder_grad_clamp") or 0, feature_type_embedding=False,
            feature_index_embedding=False, dim_feedforward=mc["ff_dim"], device=torch.device("cpu"), args=args)
        predictors = Predictors(
            pred_type="transformer", hidden_dim=mc["dim"], pred_embed_dim=mc["pred_dim"], num_features=len(cols),
            num_layers=mc["pred_depth"], num_heads=mc["pred_heads"], p_dropout=mc["pred_dropout"],
            layer_norm_eps=1e-5, activation="relu", device=torch.device("cpu"), cardinalities=cards,
            pred_dim_feedforward=mc["pred_ff_dim"])
        for mod in context_encoder.modules():
            init_weights(mod, init_type=mc.get("init", "trunc_normal"))
        import copy

        target_encoder = copy.deepcopy(context_encoder)
        collator = MaskCollator(False, mk["min_ctx"], mk["max_ctx"], mk["min_tgt"], mk["max_tgt"], mk["num_preds"], 1,
                                len(cols), cards)
    epochs = r["trainer"]["max_epochs"]
    ipe = -(-len(data) // bs)
    optimizer, scheduler, wd_scheduler = init_optim(
        context_encoder, predictors, ipe, 0.0, oc["lr"], oc["warmup_epochs"], epochs, oc["weight_decay"],
        oc["weight_decay"], 0.0, 1.0, True, True)
    momentum = (oc["ema_start"] + i * (oc["ema_end"] - oc["ema_start"]) / (ipe * epochs)
                for i in range(int(ipe * epochs) + 1))
    loss_fn = torch.nn.MSELoss()
    # the same model size: trainable parameters without the template layer its TabularEncoder keeps unused
    # (`transformer_layers`, cloned 16 times into the stack); fmzoo adds a 3x16 feature-type embedding, the
    # official predictor an unused LayerNorm (32)
    CHECKS["trainable params"] = sum(p.numel() for n, p in [*context_encoder.named_parameters(),
                                                            *predictors.named_parameters()]
                                     if p.requires_grad and "transformer_layers." not in n)
    rows = [(data[i], 0.0) for i in range(len(data))]

    def step(i):
        j = (i * bs) % (len(rows) - bs)
        with contextlib.redirect_stdout(io.StringIO()):
            batch, masks_enc, masks_pred = collator(rows[j:j + bs])
        SIZES.append(f"{masks_enc[0].shape[1]}+{masks_pred[0].shape[1]}")
        with torch.no_grad():
            h = apply_masks_from_idx(target_encoder(batch), masks_pred)
        z = context_encoder(batch, masks_enc)
        z = predictors(z, masks_enc, masks_pred)
        loss = AllReduce.apply(loss_fn(z, h))
        loss.backward()
        optimizer.step()
        assert not np.isnan(loss.item()), "loss is NaN"
        optimizer.zero_grad()
        with torch.no_grad():
            mom = next(momentum)
            for pq, pk in zip(context_encoder.parameters(), target_encoder.parameters(), strict=True):
                pk.data.mul_(mom).add_((1.0 - mom) * pq.detach().data)
        scheduler.step()
        wd_scheduler.step()
    return _tjepa_steps(_timed(_cpu_clocked(step, 2), steps, warmup=2))


def _gpht_official(model, root):
    if not root or not (Path(root) / "models" / "GPHT.py").exists():
        raise NotAvailable("pass --gpht-root (checkout of icantnamemyself/GPHT)")
    import torch

    for name, attrs in (("reformer_pytorch", ("LSHSelfAttention",)), ("einops", ("rearrange", "repeat"))):
        try:
            __import__(name)
        except ImportError:
            mod = types.ModuleType(name)
            for at in attrs:
                setattr(mod, at, None)
            sys.modules[name] = mod
    sys.path.insert(0, str(root))
    from models.GPHT import Model

    ia = model.init_args
    cfg = types.SimpleNamespace(GT_pooling_rate=list(ia["pooling"]), token_len=ia["token_len"], GT_d_model=ia["d_model"],
                                GT_d_ff=ia["d_ff"], GT_e_layers=ia["n_layers"], factor=1, dropout=ia["dropout"],
                                output_attention=False, n_heads=ia["n_heads"], activation="gelu",
                                pred_len=ia["token_len"], depth=len(ia["pooling"]), seq_len=model.context_len)
    off = Model(cfg).float()
    sys.path.insert(0, str(HERE))
    from timeseries_gpht import reference_from

    sd = {}
    for k, v in reference_from(model).state_dict().items():
        p, rest = k.split(".", 2)[:2], k.split(".", 2)[2]
        pre = ".".join(p) + "."
        if rest == "pe":
            continue
        if rest.startswith("value_embedding"):
            rest = "patch_embedding." + rest
        elif rest.startswith("layers."):
            rest = "encoder.attn_layers." + rest[len("layers."):]
        elif rest.startswith("norm."):
            rest = "encoder." + rest
        sd[pre + rest] = v
    missing, unexpected = off.load_state_dict(sd, strict=False)
    bad = [k for k in missing if not k.endswith(".pe")] + list(unexpected)
    if bad:
        raise RuntimeError(f"GPHT weight mapping: {bad[:5]}")
    x = torch.randn(2, model.context_len, 3)
    model.eval()
    with torch.no_grad():
        diff = float((off.eval()(x, None, None, None) - _gpht_seq(model, x)).abs().max())
        model.train()
        off.train()
        torch.manual_seed(1)
        y_off = off(x.clone(), None, None, None)  # its forecast() divides its input in place
        torch.manual_seed(1)
        train_diff = float((y_off - _gpht_seq(model, x)).abs().max())
    CHECKS["max |official - fmzoo| train-mode forward (dropout 0.1 on), same seed"] = f"{train_diff:.1e}"
    return off, diff


def _gpht_seq(model, x):  # fmzoo forward on [B, L, C] -> [B, L, C]
    b, length, c = x.shape
    return model(x.permute(0, 2, 1).reshape(b * c, length)).reshape(b, c, length).permute(0, 2, 1)


def _gpht_model(a):
    """The fmzoo GPHT both sides start from (the official side gets its weights)."""
    import torch
    from fmzoo.timeseries import GPHT

    if not a.gpht_d_model:
        return GPHT.from_pretrained(a.gpht_checkpoint)
    torch.manual_seed(0)
    d = int(a.gpht_d_model)
    return GPHT(context_len=336, token_len=48, pooling=[8, 4, 2, 1], d_model=d, n_heads=8, d_ff=4 * d, n_layers=3,
                dropout=0.1, activation="gelu")


def _autocast(a, side):
    import contextlib

    import torch

    bf16 = side == "fmzoo" and getattr(a, "gpht_bf16_side", False)
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def gpht_train(a, side, steps):
    import torch
    import torch.nn.functional as F
    from fmzoo.timeseries.data.ltsf import MixtureWindows

    model = _gpht_model(a)
    if side == "fmzoo":
        net = model
    else:
        net, diff = _gpht_official(model, a.gpht_root)
        CHECKS["max |official - fmzoo| forward, same weights"] = f"{diff:.1e}"
    ds = MixtureWindows(["ETTh1"], model.context_len, model.token_len)
    g = torch.Generator().manual_seed(0)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    t = model.token_len
    batches = [torch.stack([ds[int(k)] for k in torch.randint(len(ds), (a.gpht_batch,), generator=g)]) for _ in range(4)]

    def step(i):
        b = batches[i % len(batches)]
        with _autocast(a, side):
            y = net(b[:, :-t]) if side == "fmzoo" else net(b[:, :-t, None], None, None, None)[..., 0]
            loss = F.mse_loss(y.float(), b[:, t:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _timed(step, steps, warmup=1)


def gpht_infer(a, side, steps):
    import torch
    from fmzoo.timeseries.data.ltsf import eval_windows, load_ltsf

    model = _gpht_model(a).eval()
    ctx, _ = eval_windows(load_ltsf("ETTh1"), "test", 720, max_windows=a.gpht_windows)
    if side == "fmzoo":
        def gen(x):
            return model.generate(x, 720)
    else:
        off = _gpht_official(model, a.gpht_root)[0].eval()
        seq_len, tl = model.context_len, model.token_len

        def gen(x):  # exp_long_term_forecasting_GPHT.test: autoregress token_len at a time
            outs = []
            for _ in range(-(-720 // tl)):
                out = off(x, None, None, None)
                outs.append(out[:, -tl:])
                x = torch.cat([x, outs[-1]], 1)[:, -seq_len:]
            return torch.cat(outs, 1)[:, :720]

    def step(i):
        with torch.no_grad(), _autocast(a, side):
            gen(ctx)
    return _timed(step, steps, warmup=1)


def tape_mlm(a, side, steps):
    import torch

    if side == "official":
        if a.tape_site:
            sys.path.insert(0, a.tape_site)
        # run-time patches: stub modules that tape only needs for its datasets / S3 downloads / tensorboard
        for name in ("lmdb", "boto3", "botocore", "botocore.exceptions", "tensorboardX"):
            try:
                __import__(name)
            except ImportError:
                mod = sys.modules[name] = types.ModuleType(name)
                mod.ClientError = mod.SummaryWriter = type("Stub", (Exception,), {})
        try:
            from tape import ProteinBertConfig
            from tape.models.modeling_bert import ProteinBertForMaskedLM
        except ImportError as e:
            raise NotAvailable(f"tape-proteins not importable ({e}); pass --tape-site") from e
    sys.path.insert(0, str(HERE))
    from fmzoo.protein import TAPETokenizer
    from fmzoo.protein.data.fasta import load_pretraining_sequences
    from fmzoo.protein.methods.mlm import apply_bert_mask
    from protein_mlm import CONFIGS

    cfg = CONFIGS["cpu (tape-transformer-small)"]
    torch.manual_seed(0)
    seqs = [s[:510] for s in load_pretraining_sequences() if len(s) >= 510][:8]  # real FLIP sequences, 8 x 512
    ids, mask = TAPETokenizer(unknown="X").batch_encode(seqs)
    ids, targets = apply_bert_mask(ids, torch.Generator().manual_seed(0))
    if side == "fmzoo":
        from fmzoo.protein import TapeTransformer
        from fmzoo.protein.methods.mlm import mlm_loss

        model = TapeTransformer(**cfg).train()

        def loss_fn():
            return mlm_loss(model, ids, mask, targets)[0]
    else:
        model = ProteinBertForMaskedLM(ProteinBertConfig(**cfg)).train()

        def loss_fn():
            return model(ids, input_mask=mask, targets=targets)[0][0]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(i):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return _timed(step, steps, warmup=1)


def _speech(model, a, side, steps):
    sys.path.insert(0, str(HERE))
    from speech_throughput import _child

    impl = "fmzoo" if side == "fmzoo" else "transformers"
    r = _stamped(lambda: _child(model, impl, "small", max(steps, 1), 4, 2.0), 1)
    return r["step_s"], max(steps, 1) + 1


def wav2vec2(a, side, steps):
    return _speech("wav2vec2", a, side, steps)


def tera(a, side, steps):
    if side == "fmzoo":
        return _speech("tera", a, side, steps)
    import torch
    from s3prl.pretrain.mockingjay.task import generate_masked_acoustic_model_data
    from s3prl.upstream.mockingjay.model import (
        TransformerConfig,
        TransformerModel,
        TransformerSpecPredictionHead,
    )

    sys.path.insert(0, str(HERE))
    from speech_throughput import SMALL_TERA

    torch.manual_seed(0)
    cfg = TransformerConfig({**SMALL_TERA, "hidden_act": "gelu", "hidden_dropout_prob": 0.3,
                             "attention_probs_dropout_prob": 0.3, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
                             "share_layer": False, "pre_layer_norm": False})
    body, head = TransformerModel(cfg, 80).train(), TransformerSpecPredictionHead(cfg, 80).train()
    mcfg = {"position_encoding_size": cfg.hidden_size, "mask_proportion": 0.15, "mask_consecutive_min": 7,
            "mask_consecutive_max": 7, "mask_allow_overlap": True, "mask_bucket_ratio": 1.5, "mask_frequency": 0.2,
            "noise_proportion": 0.0}
    frames = 1 + (int(2.0 * 16000) - 400) // 160
    x = torch.randn(4, frames, 80)
    opt = torch.optim.AdamW(list(body.parameters()) + list(head.parameters()), 1e-4)

    def step(i):
        spec_masked, pos_enc, mask_label, attn_mask, spec_target = generate_masked_acoustic_model_data([x], mcfg)
        h = body(spec_masked, pos_enc, attn_mask, output_all_encoded_layers=False)
        pred, _ = head(h)
        ml = mask_label.bool()
        loss = torch.nn.functional.l1_loss(pred.masked_select(ml), spec_target.masked_select(ml))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _timed(step, steps, warmup=1)


def _medical(kind, a, steps):
    sys.path.insert(0, str(HERE))
    from medical_pretrain import child

    r = _stamped(lambda: child(kind, max(steps, 1), 8, a.threads), 1)
    CHECKS["cpu s/step"] = round(r["cpu_s_per_step"], 3)  # mean over the timed steps: less load-sensitive than wall
    return r["s_per_step"], max(steps, 1) + 1


def voco(a, side, steps):
    if side == "fmzoo":
        return _medical("voco", a, steps)
    root = a.voco_root
    if not (root and (Path(root) / "models" / "voco_head.py").exists()):
        raise NotAvailable("pass --voco-root (checkout of Luffy03/VoCo)")
    import contextlib
    import io

    import torch
    from fmzoo.core import load_recipe
    from fmzoo.medical.data.hippocampus import load_hippocampus
    from fmzoo.medical.methods.voco import VoCoDataset, VoCoGeometry
    from monai.data import MetaTensor
    from monai.utils import ensure_tuple_rep

    sys.path.insert(0, str(root))
    import models.voco_head as vh

    r = load_recipe("voco-small")
    m = r["model"]
    # run-time patches to voco-small's configuration (the official file hard-codes the paper's): Swin window 7 ->
    # recipe window; projection head 1152->2048->2048 -> feat_dim->proj_hidden->proj_out. The 16-bases slice in
    # VoCoHead.forward takes all 9 bases at batch 1, so it needs no patch.
    vh.ensure_tuple_rep = lambda x, n: ensure_tuple_rep(m["window_size"] if x == 7 else x, n)
    base_head = vh.projection_head

    class Head(base_head):
        def __init__(self, in_dim=768, hidden_dim=2048, out_dim=2048):
            super().__init__(m["feature_size"] * 24, m["proj_hidden"], m["proj_out"])
    vh.projection_head = Head
    args = types.SimpleNamespace(spatial_dims=3, in_channels=1, feature_size=m["feature_size"], dropout_path_rate=0.0,
                                 use_checkpoint=False)
    torch.manual_seed(0)
    net = vh.VoCoHead(args).train()
    data = load_hippocampus()
    vols = [data["load"](c)[0] for c in data["train"][:8]]
    ds = VoCoDataset(vols, VoCoGeometry.from_dict(r["geometry"]), foreground_threshold=r["foreground_threshold"])
    opt = torch.optim.AdamW(net.student.parameters(), lr=1e-4)

    def step(i):
        item = ds[i % len(ds)]
        with contextlib.redirect_stdout(io.StringIO()):  # VoCoHead.forward prints labels and logits every step
            pos, neg, b_loss = net(MetaTensor(item["crops"]), MetaTensor(item["bases"]), item["labels"][None])
        loss = pos + neg + b_loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.student.parameters(), r["grad_clip"])
        opt.step()
    return _timed(_cpu_clocked(step, 1), steps, warmup=1)


def volume_fusion(a, side, steps):
    sys.path.insert(0, str(HERE))
    from medical_pretrain import child

    # fmzoo: VolumeFusionMethod's step; official: PyMIC's VolF iteration (see the module docstring)
    r = _stamped(lambda: child("volf" if side == "fmzoo" else "volf_pymic", max(steps, 1), 8, a.threads), 1)
    CHECKS["cpu_s_per_step"] = round(r["cpu_s_per_step"], 3)  # this process's CPU time: less load-sensitive
    if side == "official":
        from fmzoo.core import load_recipe
        from medical_pretrain import hippocampus_volumes, volf_checks

        CHECKS.update(volf_checks(load_recipe("volumefusion-small"), hippocampus_volumes(8), n=8 if a.quick else 24))
    return r["s_per_step"], max(steps, 1) + 1


def softcon(a, side, steps):
    """ViT-S/14: the official encoder vs fmzoo's SoftConViT, both through fmzoo's SoftCon step (module docstring)."""
    sys.path.insert(0, str(HERE))
    from remotesensing_pretrain import eopatch_batches, vit_encoder, vit_recipe, vit_train_step

    if side == "official" and not (a.softcon_root and a.softcon_weights):
        raise NotAvailable("pass --softcon-root (checkout of zhu-xlab/softcon: its DINOv2 encoder)")
    model = vit_encoder(side, a.softcon_crop, a.softcon_weights, a.softcon_root)
    batches = eopatch_batches(vit_recipe(a.softcon_crop), a.softcon_batch, 4)
    step, _ = vit_train_step(model, a.softcon_crop, batches)
    losses = []

    def logged(i):
        losses.append(step(i))
        CHECKS["losses"] = ", ".join(f"{v:.4f}" for v in losses)
    return _timed(_cpu_clocked(logged, 1), steps, warmup=1)


def softcon_resnet(a, side, steps):
    """Stand-in (no official ResNet code): fmzoo's Lightning fit vs our plain loop of the same computation."""
    sys.path.insert(0, str(HERE))
    from remotesensing_pretrain import run_fmzoo, run_plain

    run = run_fmzoo if side == "fmzoo" else run_plain
    r = _stamped(lambda: run(max(steps, 5), a.softcon_rn_batch, a.threads), 3)
    return a.softcon_rn_batch / r["images_per_s"], max(steps, 5)


def softcon_prepare(a) -> dict:
    """Child process run before the SoftCon row (never in the parent: a child's peak RSS would inherit the parent's
    high-water mark at exec): the official encoder's initialisation written to a.softcon_weights for both sides, and
    the equality checks of the two encoders loaded from it (printed under the table)."""
    if not (a.softcon_root and (Path(a.softcon_root) / "models" / "dinov2" / "vision_transformer.py").exists()):
        raise NotAvailable("pass --softcon-root (checkout of zhu-xlab/softcon: its DINOv2 encoder)")
    sys.path.insert(0, str(HERE))
    from remotesensing_pretrain import vit_checks, write_vit_weights

    write_vit_weights(a.softcon_root, a.softcon_crop, a.softcon_weights)
    return vit_checks(a.softcon_root, a.softcon_crop, a.softcon_batch, a.softcon_weights)


# key, label, unit, function, timed steps (quick, full)
ROWS = [
    ("graphmae-node", "GraphMAE (node, Cora)", "s/epoch (full graph, GAT 2x512)", graphmae_node, (8, 20)),
    ("graphmae-mol", "GraphMAE (mol, GIN 5x300)", "s/step (batch 256 molecules)", graphmae_mol, (3, 10)),
    ("tjepa", "T-JEPA (Adult, tjepa-adult)", "s/step (batch 512)", tjepa, (5, 20)),
    ("gpht-train", "GPHT (train, d_model 128)", "s/step (batch 1024)", gpht_train, (5, 10)),
    ("gpht-h720", "GPHT (H=720 inference)", "s/call (64 win x 7 ch)", gpht_infer, (4, 8)),
    ("gpht-train-bf16", "GPHT (train) fmzoo bf16 autocast", "s/step (batch 1024)", gpht_train, (5, 10)),
    ("gpht-h720-bf16", "GPHT (H=720) fmzoo bf16 autocast", "s/call (64 win x 7 ch)", gpht_infer, (2, 5)),
    ("tape-mlm", "TAPE (MLM, transformer-small)", "s/step (8 x 512 tok)", tape_mlm, (3, 10)),
    ("wav2vec2", "wav2vec 2.0 (small)", "s/step (4 x 2 s audio)", wav2vec2, (5, 10)),
    ("tera", "TERA (small)", "s/step (4 x 2 s, 80 mel)", tera, (6, 12)),
    ("voco", "VoCo (voco-small)", "s/step (1 volume)", voco, (2, 5)),
    ("volume-fusion", "Volume Fusion (small)", "s/step (batch 2, 32x64x32)", volume_fusion, (4, 8)),
    ("softcon", "SoftCon (ViT-S/14, 13 bands; official encoder; loss: fmzoo's, the repository has none)",
     "s/step (batch 16, 112 px)", softcon, (4, 10)),
    ("softcon-rn-standin", "SoftCon RN-small stand-in (fmzoo Lightning vs our plain loop; no official side)", "s/step (batch 32, 96 px)", softcon_resnet, (6, 15)),
]
NO_FLOPS = {"softcon-rn-standin"}  # Lightning loop: counting would need the whole fit; skipped


# ----------------------------------------------------------------------------- child / parent
def child(a) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    key, side, mode = a.child
    _, _, _, fn, (q, full) = next(r for r in ROWS if r[0] == key)
    a.gpht_bf16_side = key.endswith("-bf16")
    steps = q if a.quick else full
    try:
        if mode == "prepare":  # the SoftCon row's shared weights and encoder checks
            return {"checks": softcon_prepare(a)}
        if mode == "flops":
            from torch.utils.flop_counter import FlopCounterMode

            if key.startswith("gpht"):  # registers its oneDNN linear's FLOP formula; the counter copies the registry
                import fmzoo.timeseries  # noqa: F401  (when it is made, so the import must come first)
            with FlopCounterMode(display=False) as fc:
                _, units = fn(a, side, 1)
            return {"flops_per_unit": fc.get_total_flops() / units}
        s, _ = fn(a, side, steps)
        ts = sorted(STEP_TIMES) or [s]
        return {"s_per_unit": ts[len(ts) // 2] if len(ts) % 2 else (ts[len(ts) // 2 - 1] + ts[len(ts) // 2]) / 2,
                "s_min": ts[0], "s_mean": s, "n": len(STEP_TIMES), **({"checks": CHECKS} if CHECKS else {}),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    except NotAvailable as e:
        return {"na": str(e)}


def matmul_gflops(threads: int, n: int = 512, seconds: float = 1.5) -> float:
    import torch

    torch.set_num_threads(threads)
    x, y = torch.randn(n, n), torch.randn(n, n)
    x @ y
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x @ y
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def run_child(a, key, side, mode, timeout):
    cmd = [sys.executable, __file__, "--child", key, side, mode, "--threads", str(a.threads)]
    for k in ("official_root", "gpht_root", "tjepa_root", "graphmae_root", "voco_root", "graphmae_pyg_root", "tape_site", "gpht_checkpoint",
              "gpht_d_model", "gpht_batch", "softcon_root", "softcon_crop", "softcon_batch", "softcon_weights"):
        v = getattr(a, k)
        if v is not None and v != "":
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    if a.quick:
        cmd.append("--quick")
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"err": f"timeout {timeout}s"}
    if out.returncode:
        return {"err": out.stderr.strip().splitlines()[-1][:120] if out.stderr.strip() else f"rc {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])



def bound_note(label, o, f, fl, gf):
    """For a row below 2x: what 2x would take, against the FLOP bound of fmzoo's own arithmetic (None at >= 2x)."""
    if not ("s_per_unit" in o and "s_per_unit" in f):
        return None
    ratio = o["s_per_unit"] / f["s_per_unit"]
    if ratio >= 2:
        return None
    need = o["s_per_unit"] / 2
    if not fl:
        return f"{label}: {ratio:.2f}x; 2x needs {need:.3f} s/unit (no FLOP count for this row)"
    bound = fl / (gf * 1e9)
    if need < bound:
        return (f"{label}: {ratio:.2f}x; 2x needs {need:.3f} s/unit, under the {bound:.3f} s that fmzoo's "
                f"{fl / 1e9:.1f} GFLOP/unit take at {gf:.0f} GFLOP/s: not reachable in fp32 with this arithmetic")
    return (f"{label}: {ratio:.2f}x; 2x needs {need:.3f} s/unit = {need / bound:.1f}x the {bound:.3f} s FLOP bound of "
            f"fmzoo's {fl / 1e9:.1f} GFLOP/unit; fmzoo is at {f['s_per_unit'] / bound:.1f}x it (the excess: GEMMs below "
            f"the peak rate at these shapes, and non-matmul work)")

def fmt_s(r):
    if "s_per_unit" in r:
        return f"{r['s_per_unit']:.3f}"
    return "n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few timed steps per side (~10 min in all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated row keys")
    ap.add_argument("--no-flops", action="store_true")
    ap.add_argument("--official-root", default=None, help="folder holding GPHT/, GraphMAE/, t-jepa/ checkouts")
    ap.add_argument("--gpht-root", default=None)
    ap.add_argument("--tjepa-root", default=None)
    ap.add_argument("--graphmae-root", default=None)
    ap.add_argument("--voco-root", default=None)
    ap.add_argument("--graphmae-pyg-root", default=None)
    ap.add_argument("--softcon-root", default=None, help="checkout of zhu-xlab/softcon (its DINOv2 encoder)")
    ap.add_argument("--softcon-crop", type=int, default=112, help="SoftCon ViT view size (a multiple of 14)")
    ap.add_argument("--softcon-batch", type=int, default=16, help="SoftCon ViT images per step")
    ap.add_argument("--softcon-weights", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tape-site", default=None, help="folder where tape-proteins was pip-installed with --target")
    ap.add_argument("--gpht-checkpoint", default="fmzoo/gpht-mixed", help="with --gpht-d-model 0: whose weights")
    ap.add_argument("--gpht-d-model", type=int, default=128, help="GPHT width (d_ff 4x, 8 heads); 0: the checkpoint's")
    ap.add_argument("--gpht-batch", type=int, default=1024, help="GPHT training windows per step")
    ap.add_argument("--gpht-bf16", action="store_true", help="add the fmzoo-bf16-autocast GPHT rows")
    ap.add_argument("--child", nargs=3, metavar=("ROW", "SIDE", "MODE"), help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=int, default=240, help="seconds per child process")
    a = ap.parse_args(argv)
    a.gpht_windows, a.softcon_rn_batch = 64, 32
    if a.softcon_crop % 14:
        ap.error(f"--softcon-crop must be a multiple of the patch size 14, got {a.softcon_crop}")
    if a.official_root:
        root = Path(a.official_root)
        a.gpht_root = a.gpht_root or (str(root / "GPHT") if (root / "GPHT").exists() else None)
        a.graphmae_pyg_root = a.graphmae_pyg_root or (str(root / "GraphMAE-pyg") if (root / "GraphMAE-pyg").exists() else None)
        a.voco_root = a.voco_root or (str(root / "VoCo") if (root / "VoCo").exists() else None)
        a.graphmae_root = a.graphmae_root or (str(root / "GraphMAE") if (root / "GraphMAE").exists() else None)
        a.tjepa_root = a.tjepa_root or (str(root / "t-jepa") if (root / "t-jepa").exists() else None)
        a.softcon_root = a.softcon_root or (str(root / "softcon") if (root / "softcon").exists() else None)
    if a.child:
        print(json.dumps(child(a)))
        return 0
    t_start = time.time()
    keys = [k for k in a.only.split(",") if k] or [r[0] for r in ROWS if a.gpht_bf16 or not r[0].endswith("-bf16")]
    if not a.gpht_d_model:  # the labels say which GPHT is measured
        for i, r in enumerate(ROWS):
            if r[0].startswith("gpht-"):
                ROWS[i] = (r[0], r[1].replace("d_model 128", a.gpht_checkpoint), r[2], *r[3:])
    for i, r in enumerate(ROWS):
        if r[0].startswith("gpht-train"):
            ROWS[i] = (r[0], r[1].replace("d_model 128", f"d_model {a.gpht_d_model}") if a.gpht_d_model else r[1],
                       f"s/step (batch {a.gpht_batch})", *r[3:])
    for i, r in enumerate(ROWS):
        if r[0] == "softcon":
            ROWS[i] = (r[0], r[1], f"s/step (batch {a.softcon_batch}, {a.softcon_crop} px)", *r[3:])
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="run_all_")  # the SoftCon weights both sides load
    softcon_checks = {}
    if "softcon" in keys and a.softcon_root:
        a.softcon_weights = str(Path(tmp.name) / "softcon_vits14_official_init.safetensors")
        prep = run_child(a, "softcon", "official", "prepare", a.timeout)
        softcon_checks = prep.get("checks") or {k: v for k, v in prep.items() if k in ("na", "err")}
        if not Path(a.softcon_weights).exists():
            a.softcon_weights = None  # the official side then says "not available"; fmzoo's uses its own init
    g0 = matmul_gflops(a.threads)
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  {os.cpu_count()} cores, load {os.getloadavg()}, threads "
          f"{a.threads}, fp32, {'quick' if a.quick else 'full'}; matmul 512^3 fp32: {g0:.1f} GFLOP/s", flush=True)
    rows = []
    for i, (key, label, unit, _, _) in enumerate(r for r in ROWS if r[0] in keys):
        order = ("official", "fmzoo") if i % 2 == 0 else ("fmzoo", "official")
        res = {side: run_child(a, key, side, "time", a.timeout) for side in order}
        fl = None
        if not a.no_flops and key not in NO_FLOPS and "s_per_unit" in res["fmzoo"]:
            fl = run_child(a, key, "fmzoo", "flops", a.timeout).get("flops_per_unit")
        rows.append((label, unit, res, fl))
        print(f"  done {key}: {json.dumps(res)} flops={fl}", file=sys.stderr, flush=True)
    g1 = matmul_gflops(a.threads)
    gf = max(g0, g1)
    print(f"# matmul GFLOP/s at the end: {g1:.1f}; FLOP bound uses the best of the two ({gf:.1f})")
    w = max([31] + [len(r[0]) + 1 for r in rows])
    hdr = (f"{'method (objective)':<{w}}{'unit':<29}{'official s':>11}{'fmzoo s':>9}{'ratio':>7}{'best':>6}"
           f"{'off RSS MB':>11}{'fmz RSS MB':>11}{'GFLOP/unit':>11}{'bound s':>9}{'t/bound':>8}")
    print(hdr)
    print("-" * len(hdr))
    notes, bounds = [], []
    for label, unit, res, fl in rows:
        o, f = res["official"], res["fmzoo"]
        both = "s_per_unit" in o and "s_per_unit" in f
        ratio = f"{o['s_per_unit'] / f['s_per_unit']:.2f}" if both else "-"
        best = f"{o['s_min'] / f['s_min']:.2f}" if both else "-"
        rss = lambda r: f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-"  # noqa: E731
        bound = fl / (gf * 1e9) if fl else None
        tb = f"{f['s_per_unit'] / bound:.1f}" if bound and "s_per_unit" in f else "-"
        print(f"{label:<{w}}{unit:<29}{fmt_s(o):>11}{fmt_s(f):>9}{ratio:>7}{best:>6}{rss(o):>11}{rss(f):>11}"
              f"{(f'{fl / 1e9:.2f}' if fl else '-'):>11}{(f'{bound:.3f}' if bound else '-'):>9}{tb:>8}")
        for side, r in (("official", o), ("fmzoo", f)):
            if "na" in r:
                notes.append(f"{label}: {side}: not available ({r['na']})")
            if "checks" in r:
                notes.append(f"{label}: {side}: check: {r['checks']}")
            if "err" in r:
                notes.append(f"{label}: {side}: error: {r['err']}")
        note = bound_note(label, o, f, fl, gf)
        if note:
            bounds.append(note)
        if label == next((r[1] for r in ROWS if r[0] == "softcon"), None) and softcon_checks:
            notes.append(f"{label}: encoders (same weights, own process): check: {softcon_checks}")
    tmp.cleanup()
    for n in notes:
        print("  " + n)
    if bounds:
        print("# below the issue's 2x, and what bounds it (fmzoo's FLOPs at the measured matmul rate):")
        for n in bounds:
            print("  " + n)
    print(f"# total {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
