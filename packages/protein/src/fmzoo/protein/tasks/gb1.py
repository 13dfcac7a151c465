"""GB1 fitness regression on FLIP's splits (sequence-level regression; Spearman rho).

Input: FLIP's ``--gb1_shorten`` option, the first 56 residues (the GB1 domain, which holds all four varied
sites V39 D40 G41 V54); the remaining 209 residues are identical in every variant.
Features: frozen backbone, FLIP's "mut mean" pooling (mean of the embeddings at the four varied sites).
Head: TAPE's ``ValuePredictionHead`` (weight-normed MLP, 512 hidden, ReLU) trained with MSE on
standardised features/targets, full batch, Adam; the caller's seed sets the head initialisation.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from ..data.gb1 import GB1_SITES
from ..models.layers import ValuePredictionHead

GB1_DOMAIN = 56


def site_features(per_residue: list[np.ndarray], sites=GB1_SITES) -> np.ndarray:
    return np.stack([f[list(sites)].mean(0) for f in per_residue])


def mean_features(per_residue: list[np.ndarray]) -> np.ndarray:
    """FLIP's "mean" pooling: the mean over all residues of the (56-residue) GB1 domain."""
    return np.stack([f.mean(0) for f in per_residue])


def sites_concat_features(per_residue: list[np.ndarray], sites=GB1_SITES) -> np.ndarray:
    """The 4 varied sites' embeddings concatenated (4 x hidden): keeps which site carries which residue.
    Not a FLIP baseline; our documented extra row."""
    return np.stack([f[list(sites)].reshape(-1) for f in per_residue])


#: name -> (pooling function over per-residue features of the GB1 domain, description for the table notes)
GB1_REPRESENTATIONS = {
    "mean": (mean_features, "FLIP 'mean': mean over all 56 residues of the GB1 domain (FLIP's ESM --mean rows "
                            "average the whole 265-residue sequence; the other 209 residues are identical in every "
                            "variant)"),
    "mut_mean": (site_features, "FLIP 'mut mean': mean of the embeddings at the 4 varied sites"),
    "sites_concat": (sites_concat_features, "ours, not a FLIP baseline: the 4 varied sites' embeddings concatenated"),
}


def fit_value_head(Xtr, ytr, Xte, steps: int = 150, lr: float = 2e-3, weight_decay: float = 1e-4):
    """The head's initialisation draws from torch's global generator: the caller seeds it (the table runners do, per
    seed, through the core).

    It trains on one CPU thread whatever the caller's count: its products are small (a few thousand variants x 512),
    and with two OpenMP threads on a busy machine one fit of 2,968 x 512 features took 31 s of CPU (285 s wall)
    against 6.3 s (86 s wall) on one, the second thread spinning; its predictions then also do not depend on the
    caller's thread count (on two threads they differ from one thread's in the fourth decimal)."""
    from fmzoo.core.runtime import threads

    with threads(1):
        return _fit_value_head(Xtr, ytr, Xte, steps, lr, weight_decay)


def _fit_value_head(Xtr, ytr, Xte, steps, lr, weight_decay):
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
    ym, ys = ytr.mean(), ytr.std() + 1e-8
    xt = torch.tensor((Xtr - mu) / sd, dtype=torch.float32)
    yt = torch.tensor((ytr - ym) / ys, dtype=torch.float32)[:, None]
    head = ValuePredictionHead(xt.size(1))
    # foreach: one multi-tensor update per step instead of a Python loop over the 5 parameters (bitwise the same)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(head(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = head(torch.tensor((Xte - mu) / sd, dtype=torch.float32))[:, 0].numpy()
    return pred * ys + ym


def spearman(y, pred) -> float:
    return float(spearmanr(y, pred).correlation)


def one_hot_sites(sequences: list[str], sites=GB1_SITES) -> np.ndarray:
    """FLIP's ridge baseline input restricted to the varied sites (other positions are constant)."""
    aa = "ACDEFGHIKLMNPQRSTVWY"
    X = np.zeros((len(sequences), len(sites) * 20), dtype=np.float32)
    for i, s in enumerate(sequences):
        for j, p in enumerate(sites):
            if s[p] in aa:
                X[i, j * 20 + aa.index(s[p])] = 1
    return X


def finetune_regression(pretrained, train_seqs, ytr, test_seqs, seed: int = 0, steps: int = 150, batch_size: int = 32,
                        lr: float = 5e-4, family: str = "transformer", val_seqs=None, val_y=None,
                        eval_every: int = 50) -> np.ndarray:
    """TAPE's value-prediction protocol: backbone + ``ValuePredictionHead`` on the pooled output, fine-tuned end to
    end with MSE on standardised targets (``steps`` minibatches of ``batch_size``, AdamW, grad clip 1.0).
    With ``val_seqs``/``val_y``: every ``eval_every`` steps the Spearman rho on them is measured and the model of
    the best step (the earliest among ties; an undefined rho counts as -1) makes the test predictions.
    ``seed`` orders the minibatches; the head's initialisation and dropout draw from torch's global generator,
    which the caller seeds (the table runners do, per seed, through the core)."""
    import copy

    from ..models.task import TapeTaskModel
    from ..spec import TAPETokenizer

    rng = np.random.default_rng(seed)
    backbone = {k: v for k, v in pretrained.init_args.items() if k != "initializer_range"}
    model = TapeTaskModel("regression", family, 1, backbone)
    model.load_backbone(pretrained)
    tok = TAPETokenizer(unknown="X")
    ym, ys = float(np.mean(ytr)), float(np.std(ytr) + 1e-8)
    y = torch.tensor((np.asarray(ytr) - ym) / ys, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    best, best_state = -np.inf, None
    for step in range(1, steps + 1):
        model.train()
        idx = rng.choice(len(train_seqs), min(batch_size, len(train_seqs)), replace=False)
        ids, mask = tok.batch_encode([train_seqs[i] for i in idx])
        loss = torch.nn.functional.mse_loss(model(ids, mask)[:, 0], y[idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if val_seqs is not None and (step % eval_every == 0 or step == steps):
            rho = spearman(np.asarray(val_y), _predict(model, tok, val_seqs))
            rho = -1.0 if np.isnan(rho) else rho
            if rho > best:
                best, best_state = rho, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return _predict(model, tok, test_seqs) * ys + ym


def _predict(model, tok, seqs) -> np.ndarray:
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(seqs), 256):
            ids, mask = tok.batch_encode(seqs[i: i + 256])
            preds.append(model(ids, mask)[:, 0].numpy())
    return np.concatenate(preds)
