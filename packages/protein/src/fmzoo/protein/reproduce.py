"""Runners for the paper tables ``tape-ss-cb513`` and ``tape-gb1`` (``fmzoo reproduce``). Every random draw of a
seed (a scratch backbone's init, a head's init and dropout) follows the core's ``per_seed``, which seeds each call."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from fmzoo.core.reproduce import make_row, per_seed
from fmzoo.core.runtime import threads

# _one_thread: the quick protocols embed with the frozen backbone on one CPU thread, whatever the table's count. The
# features came out identical on one and on two threads (compared to every bit: 1,500 GB1 domains, 44 CB513/FLIP
# proteins of 20 to 1,632 residues), and on a busy machine (or two tables at a time on two cores, the main job) the
# second OpenMP thread mostly spins: 6.9 s of CPU on two threads against 3.2 s on one for the same 1,500 domains.

SHIPPED = "fmzoo/tape-transformer-small"


def _load_pretrained(table: dict):
    from .models import TapeTransformer

    return TapeTransformer.from_pretrained(table.get("checkpoint", SHIPPED))


def _config(table: dict, quick: bool, smoke: bool) -> dict:
    """The protocol of the run: the table's ``quick`` or ``full`` block; smoke: ``quick`` with the table's ``smoke``
    overrides (a sliver of the data)."""
    cfg = dict(table.get("quick" if quick or smoke else "full", {}))
    if smoke:
        cfg.update(table.get("smoke", {}))
    return cfg


def _scratch_like(pretrained, seed: int):
    """Same architecture and init rule (TAPE's N(0, 0.02)), random weights drawn with ``seed``."""
    return per_seed([seed], lambda _: type(pretrained)(**pretrained.init_args).eval())[0]


def _value_head(Xtr, ytr, Xte, seed: int, steps: int | None = None):
    """TAPE's value head fitted on frozen features (``steps`` full-batch Adam steps, default the head's 150; only
    smoke runs pass fewer); ``seed`` draws its initialisation."""
    from .tasks.gb1 import fit_value_head

    return per_seed([seed], lambda _: fit_value_head(Xtr, ytr, Xte, **({} if steps is None else {"steps": int(steps)})))[0]


# --------------------------------------------------------------------------------------- CB513
def run_ss_cb513(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    from .data.secondary_structure import load_cb513, load_flip_ss
    from .tasks.features import mean_pool, one_hot_window, residue_features
    from .tasks.secondary_structure import (
        StackedResidues,
        class_probe_accuracy,
        cv_accuracy,
        finetune,
        probe_accuracy,
        structural_class,
    )

    cfg = _config(table, quick, smoke)
    seeds = list(cfg.get("seeds", [0, 1, 2]))
    t0 = time.perf_counter()
    pretrained = _load_pretrained(table)
    flip = [r for r in load_flip_ss() if r.split == "train"]
    cb = load_cb513()
    if cfg.get("cb513_proteins"):  # only smoke runs and tests: the tables always use all 511
        cb = cb[: int(cfg["cb513_proteins"])]
    cb_seqs = [r.sequence for r in cb]
    name = table.get("model_name", "TAPE Transformer")
    rows = []

    if cfg.get("protocol", "probe") == "finetune":
        n = cfg.get("train_proteins")
        for init in ("scratch", "pretrained"):
            vals = []
            for s in seeds:
                rng = np.random.default_rng(s)
                sub = [flip[i] for i in rng.permutation(len(flip))[: n or len(flip)]]
                backbone = pretrained if init == "pretrained" else _scratch_like(pretrained, 1000 + s)
                res = per_seed([s], lambda s, sub=sub, backbone=backbone: finetune(  # seed s: the head's init, dropout
                    backbone, [r.sequence for r in sub], [r.ss3 for r in sub], cb_seqs, [r.ss3 for r in cb], 3,
                    epochs=int(cfg.get("epochs", 1)), lr=float(cfg.get("lr", 1e-4)), seed=s))[0]
                vals.append(res["accuracy"])
            rows.append(make_row(table, name, init, vals, seeds, metric="accuracy_3state",
                                 note=f"fine-tuned end to end with TAPE's SS head on {n or len(flip)} FLIP train proteins, "
                                      f"{cfg.get('epochs', 1)} epoch(s); scratch init differs per seed"))
        return rows

    n_train = int(cfg.get("train_proteins", 300))
    # one backbone forward per model over the union of all proteins any seed needs
    subsets = {s: np.random.default_rng(s).permutation(len(flip))[:n_train] for s in seeds}
    need = sorted(set(np.concatenate(list(subsets.values())).tolist()))
    need_seqs = [flip[i].sequence for i in need]
    pos = {i: k for k, i in enumerate(need)}
    models = {"pretrained": pretrained, "scratch": _scratch_like(pretrained, int(cfg.get("scratch_seed", 0)))}
    feats = {}
    with threads(1):  # see _one_thread
        for init, m in models.items():
            tr = residue_features(m, need_seqs)
            te = residue_features(m, cb_seqs)
            feats[init] = (tr, te)
    oh_tr, oh_te = one_hot_window(need_seqs, 3), one_hot_window(cb_seqs, 3)
    cb3, cb8 = [r.ss3 for r in cb], [r.ss8 for r in cb]
    cb_class = np.array([structural_class(y) for y in cb3])
    fl_class_all = {i: structural_class(flip[i].ss3) for i in need}
    sources = {"pretrained": feats["pretrained"], "scratch": feats["scratch"], "onehot": (oh_tr, oh_te)}
    acc3, acc8, accc = ({k: [] for k in sources} for _ in range(3))
    cap = cfg.get("max_train_residues")
    max_iter = cfg.get("probe_max_iter")  # smoke runs only: the tables run the solvers to their defaults (200 / 1000)
    it = {} if max_iter is None else {"max_iter": int(max_iter)}
    # CB513's residues stacked once per source (3- and 8-state labels), not once per seed and fold
    te3 = {k: StackedResidues(te, cb3) for k, (_, te) in sources.items()}
    te8 = {k: StackedResidues(te, cb8) for k, (_, te) in sources.items()}
    for s in seeds:
        idx = [pos[i] for i in subsets[s]]
        ytr = [flip[i].ss3 for i in subsets[s]]
        for k, (tr, te) in sources.items():
            acc3[k].append(probe_accuracy([tr[j] for j in idx], ytr, None, None, seed=s, max_train_residues=cap,
                                          test=te3[k], **it))
            acc8[k].append(cv_accuracy(te, cb8, folds=int(cfg.get("cv_folds", 5)), seed=s, max_train_residues=cap,
                                       stacked=te8[k], **it))
            if k != "onehot":
                Xtr = np.stack([tr[j].mean(0) for j in idx])
                ytr_c = np.array([fl_class_all[i] for i in subsets[s]])
                accc[k].append(class_probe_accuracy(Xtr, ytr_c, mean_pool(te), cb_class, seed=s,
                                                    max_iter=it.get("max_iter", 1000)))
    setting = (f"frozen backbone + logistic-regression probe; train {n_train} FLIP/NetSurfP train proteins "
               f"(seed picks them{f'; {cap} residues sampled from them' if cap else ''}), test all {len(cb)} CB513 "
               "proteins (NetSurfP mask)")
    rows.append(make_row(table, name, "pretrained", acc3["pretrained"], seeds, metric="accuracy_3state", note=setting))
    rows.append(make_row(table, name, "scratch", acc3["scratch"], seeds, metric="accuracy_3state",
                         note=setting + "; same architecture, random init (seed 0), frozen"))
    rows.append(make_row(table, "One-hot window +-3", "scratch", acc3["onehot"], seeds, metric="accuracy_3state",
                         note=setting + "; no backbone: one-hot of residue and 3 neighbours each side"))
    cv = (f"{int(cfg.get('cv_folds', 5))}-fold protein-level cross-validation within CB513 (FLIP has no 8-state "
          "labels), logistic-regression probe; seed sets the folds")
    for k, init, m in (("pretrained", "pretrained", name), ("scratch", "scratch", name),
                       ("onehot", "scratch", "One-hot window +-3")):
        rows.append(make_row(table, m, init, acc8[k], seeds, metric="accuracy_8state", note=cv))
    cls_note = ("structural class (mainly-alpha / mainly-beta / alpha-beta / few-SS from DSSP composition), a fold-"
                "classification proxy: TAPE's SCOP remote-homology data are not available here; mean-pooled "
                "features, logistic regression, train FLIP subset, test CB513; majority-class rate "
                f"{float(np.bincount(cb_class).max() / len(cb_class)):.3f}")
    for k in ("pretrained", "scratch"):
        rows.append(make_row(table, name, k, accc[k], seeds, metric="accuracy_structural_class", note=cls_note))
    for r in rows:
        r["seconds_total"] = round(time.perf_counter() - t0, 1)
    return rows


# --------------------------------------------------------------------------------------- GB1
def run_gb1(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    from .data.gb1 import GB1_SPLITS, load_gb1
    from .tasks.features import residue_features
    from .tasks.gb1 import GB1_DOMAIN, GB1_REPRESENTATIONS, one_hot_sites, spearman

    cfg = _config(table, quick, smoke)
    seeds = list(cfg.get("seeds", [0, 1, 2]))
    splits = list(cfg.get("splits", GB1_SPLITS))
    test_cap = cfg.get("max_test")
    train_cap = cfg.get("max_train")  # smoke runs only: the tables fit on every training variant
    head_steps = cfg.get("head_steps")  # smoke runs only: the tables train the value head for its 150 steps
    pretrained = _load_pretrained(table)
    name = table.get("model_name", "TAPE Transformer")
    data = {s: load_gb1(s) for s in splits}
    import pandas as pd

    # one fixed random order of all variants: each split's capped test set is a prefix of it, so the quick
    # test sets overlap as much as possible and the backbone runs on few distinct sequences
    first = data[splits[0]]
    everything = pd.concat([first["train"], first["valid"], first["test"]])["sequence"].tolist()
    rank = {q: r for r, q in enumerate(np.random.default_rng(0).permutation(everything))}
    for s in splits:
        d = data[s]
        d["train"] = pd.concat([d["train"], d["valid"]], ignore_index=True)
        if train_cap and len(d["train"]) > train_cap:
            order = np.argsort([rank[q] for q in d["train"]["sequence"]])[: int(train_cap)]
            d["train"] = d["train"].iloc[np.sort(order)].reset_index(drop=True)
        if test_cap and len(d["test"]) > test_cap:
            order = np.argsort([rank[q] for q in d["test"]["sequence"]])[: int(test_cap)]
            d["test"] = d["test"].iloc[np.sort(order)].reset_index(drop=True)
    all_seqs = sorted({q for s in splits for part in ("train", "test") for q in data[s][part]["sequence"]})
    doms = [q[:GB1_DOMAIN] for q in all_seqs]
    index = {q: i for i, q in enumerate(all_seqs)}
    rows = []
    if cfg.get("protocol", "probe") == "finetune":
        return _gb1_finetune_rows(table, cfg, data, splits, seeds, pretrained, name, test_cap)
    # Frozen features. Pretrained: the one checkpoint, seed = head init. Scratch: the same architecture at a
    # random init drawn with the same seed as the head (a fresh backbone per seed), so both rows get the same
    # head, training budget and seeds.
    reps = list(cfg.get("representations", ["mean", "mut_mean"]))
    for r in reps:
        if r not in GB1_REPRESENTATIONS:
            raise ValueError(f"unknown GB1 representation {r!r}; expected one of {sorted(GB1_REPRESENTATIONS)}")
    scratch_seeds = seeds if cfg.get("scratch_init_per_seed", True) else [0]

    def featurize(model):
        per_res = residue_features(model, doms)
        return {r: GB1_REPRESENTATIONS[r][0](per_res) for r in reps}

    scratch = {ss: _scratch_like(pretrained, ss) for ss in scratch_seeds}

    def per_backbone(fn) -> dict:  # {init: {seed: fn(backbone)}}; the one pretrained backbone is run once
        pre = fn(pretrained)
        return {"pretrained": {s: pre for s in seeds}, "scratch": {ss: fn(m) for ss, m in scratch.items()}}

    with threads(1):  # see _one_thread
        feats = per_backbone(featurize)
    onehot = one_hot_sites(all_seqs)
    zero_shot = None
    if cfg.get("zero_shot"):  # masked-marginal scores of every variant, per backbone (no labels)
        from .data.gb1 import gb1_wild_type
        from .tasks.zero_shot import masked_marginal_scores

        wt = gb1_wild_type(doms[0])
        zero_shot = per_backbone(lambda m: masked_marginal_scores(m, wt, doms))
    for sp in splits:
        tr_i = [index[q] for q in data[sp]["train"]["sequence"]]
        te_i = [index[q] for q in data[sp]["test"]["sequence"]]
        ytr, yte = data[sp]["train"]["target"].to_numpy(), data[sp]["test"]["target"].to_numpy()
        base = (f"split {sp}: train {len(tr_i)} (FLIP train incl. validation), test {len(te_i)}"
                f"{' (random subset)' if test_cap else ''}; GB1 domain (first 56 aa, FLIP gb1_shorten); frozen "
                "features, TAPE ValuePredictionHead (150 full-batch Adam steps); seed = head init")
        for r in reps:
            vals = {"pretrained": [], "scratch": []}
            for s in seeds:
                for init in ("pretrained", "scratch"):
                    F = feats[init][s if s in feats[init] else 0][r]
                    vals[init].append(spearman(yte, _value_head(F[tr_i], ytr, F[te_i], s, head_steps)))
            note = f"{base}; representation: {GB1_REPRESENTATIONS[r][1]}"
            rows.append(make_row(table, f"{name} [{sp}, {r}]", "pretrained", vals["pretrained"], seeds, note=note))
            rows.append(make_row(table, f"{name} [{sp}, {r}]", "scratch", vals["scratch"], seeds,
                                 note=note + ("; same architecture, random backbone init = seed" if len(scratch_seeds) > 1
                                              else "; one random backbone init (seed 0)")))
        oh = [spearman(yte, _value_head(onehot[tr_i], ytr, onehot[te_i], s, head_steps)) for s in seeds]
        rows.append(make_row(table, f"One-hot sites [{sp}]", "scratch", oh, seeds,
                             note=base + "; one-hot of the 4 varied sites, same head (our run, not FLIP's number)"))
        if zero_shot:
            rows += _gb1_zero_shot_rows(table, sp, zero_shot, onehot, tr_i, te_i, ytr, yte, seeds, base, head_steps)
    if cfg.get("finetune"):  # full mode: TAPE's own protocol as well
        rows += _gb1_finetune_rows(table, dict(cfg["finetune"]), data, splits, seeds, pretrained, name, test_cap)
    return rows


def _gb1_zero_shot_rows(table, sp, scores, onehot, tr_i, te_i, ytr, yte, seeds, base, head_steps=None) -> list[dict]:
    """Masked-marginal zero-shot rows, and the one-hot head given the score as one more column (Hsu et al. 2022's
    augmented model, with our head); scratch: the same architecture at a random init drawn with the seed."""
    from .tasks.gb1 import spearman

    name, rows = table.get("model_name", "TAPE Transformer"), []
    for init in ("pretrained", "scratch"):
        z = [scores[init][s if s in scores[init] else 0] for s in seeds]  # one scratch init unless drawn per seed
        zs = [spearman(yte, zz[te_i]) for zz in z]
        aug = [np.concatenate([onehot, zz[:, None].astype(np.float32)], 1) for zz in z]
        ah = [spearman(yte, _value_head(a[tr_i], ytr, a[te_i], s, head_steps)) for a, s in zip(aug, seeds, strict=True)]
        zero_note = (f"split {sp}: test {len(te_i)}; masked-marginal zero-shot score (wild-type GB1 domain with the 4 "
                     "varied sites masked, sum of log p(mutant) - log p(wild type)), no labels")
        rows.append(make_row(table, f"{name} zero-shot [{sp}]", init, zs, seeds, note=zero_note))
        rows.append(make_row(table, f"One-hot sites + {name} zero-shot [{sp}]", init, ah, seeds,
                             note=base + "; one-hot of the 4 varied sites plus the zero-shot score as one more "
                                         "column, same head (Hsu et al. 2022's augmented model, our head)"))
    return rows


def _gb1_finetune_rows(table: dict, cfg: dict, data: dict, splits, seeds, pretrained, name: str, test_cap) -> list[dict]:
    """TAPE's protocol (the paper's): backbone + ValuePredictionHead fine-tuned end to end, pretrained vs random init.
    ``cfg``: steps, lr, eval_every, early_stopping (fit on FLIP's train part, pick the step on its validation part)."""
    from .tasks.gb1 import GB1_DOMAIN, finetune_regression, spearman

    rows = []
    steps, lr, every = int(cfg.get("steps", 150)), float(cfg.get("lr", 5e-4)), int(cfg.get("eval_every", 50))
    early = bool(cfg.get("early_stopping", False))
    for sp in splits:
        tr, va, te = data[sp]["train"], data[sp]["valid"], data[sp]["test"]
        if early:  # fit on FLIP's train part only; its validation part picks the step
            tr = tr[~tr["sequence"].isin(set(va["sequence"]))]
        trs, tes = [q[:GB1_DOMAIN] for q in tr["sequence"]], [q[:GB1_DOMAIN] for q in te["sequence"]]
        vas = [q[:GB1_DOMAIN] for q in va["sequence"]] if early else None
        stop = (f"the step (every {every}) with the best Spearman on FLIP's {len(va)} validation variants"
                if early else "the last step")
        note = (f"split {sp}: train {len(tr)}, test {len(te)}{' (random subset)' if test_cap else ''}; GB1 domain, "
                f"TAPE protocol: backbone + ValuePredictionHead on the pooled output fine-tuned end to end, "
                f"up to {steps} steps x batch 32, AdamW lr {lr}, model of {stop}; scratch = random init per seed")
        for init in ("pretrained", "scratch"):
            vals = []
            for s in seeds:
                bb = pretrained if init == "pretrained" else _scratch_like(pretrained, 1000 + s)
                pred = per_seed([s], lambda s, bb=bb, tr=tr, va=va, trs=trs, tes=tes, vas=vas: finetune_regression(
                    bb, trs, tr["target"].to_numpy(), tes, seed=s, steps=steps, lr=lr, val_seqs=vas,  # seed s: the
                    val_y=va["target"].to_numpy() if early else None, eval_every=every))[0]  # head's init, dropout
                vals.append(spearman(te["target"].to_numpy(), pred))
            rows.append(make_row(table, f"{name} fine-tuned [{sp}]", init, vals, seeds, note=note))
    return rows
