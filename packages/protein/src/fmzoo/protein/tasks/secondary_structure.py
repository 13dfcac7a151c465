"""Per-residue secondary structure (TAPE task ``secondary_structure``): 3- and 8-state accuracy.

Two protocols:
* ``probe`` (quick): frozen backbone, per-residue features, multinomial logistic regression; trained on
  FLIP/NetSurfP-2.0 training proteins (3-state), tested on CB513. 8-state: FLIP has no 8-state labels,
  so 8-state accuracy is a 5-fold cross-validation over CB513 proteins (folds by protein).
* ``finetune`` (TAPE's protocol): backbone + TAPE's ``SequenceToSequenceClassificationHead``
  (BatchNorm, WN-conv k5 -> 512, ReLU, WN-conv k3) fine-tuned end to end with cross-entropy
  (ignore_index -1), evaluated on CB513 with the NetSurfP evaluation mask.
Accuracy counts residues whose label is not -1 (TAPE's ``accuracy`` with ignore_index).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..models.task import TapeTaskModel
from ..spec import TAPETokenizer


def _stack(features, labels):
    X = np.concatenate(features)
    y = np.concatenate(labels)
    keep = y >= 0
    return X[keep], y[keep]


class StackedResidues:
    """The evaluated residues (label >= 0) of a list of proteins stacked once: ``X``, ``y`` and each row's protein
    index. ``rows(proteins)`` gives the rows of those proteins in ascending protein order, exactly what ``_stack``
    of them gives; the table runners stack CB513 once per feature source instead of once per seed and fold."""

    def __init__(self, features, labels):
        lengths = [len(f) for f in features]
        owner = np.repeat(np.arange(len(features)), lengths)
        y = np.concatenate(labels)
        keep = y >= 0
        self.X, self.y, self.owner = np.concatenate(features)[keep], y[keep], owner[keep]
        self.n_proteins = len(features)

    def rows(self, proteins):
        sel = np.zeros(self.n_proteins, dtype=bool)
        sel[np.asarray(list(proteins), dtype=int)] = True
        r = sel[self.owner]
        return self.X[r], self.y[r]


def one_blas_thread():
    """Run a scikit-learn probe on one BLAS / OpenMP thread. Its products are small (tens of thousands of residues x
    128 features x 3 classes), so a second thread costs more than it saves; with the threads spinning on a busy machine
    one lbfgs fit took 10 s of CPU on 2 threads against 0.35 s on one. The rows of the tables came out the same on one
    thread as on two (compared to every digit)."""
    return threadpool_limits(limits=1)


def _fit(Xtr, ytr, seed, max_iter, max_train_residues):
    if max_train_residues and len(ytr) > max_train_residues:
        keep = np.random.default_rng(seed).choice(len(ytr), max_train_residues, replace=False)
        Xtr, ytr = Xtr[keep], ytr[keep]
    sc = StandardScaler().fit(Xtr)
    clf = LogisticRegression(max_iter=max_iter, C=1.0, tol=1e-3, random_state=seed).fit(sc.transform(Xtr), ytr)
    return sc, clf


def probe_accuracy(train_feats, train_labels, test_feats, test_labels, seed: int = 0, max_iter: int = 200,
                   max_train_residues: int | None = None, test: StackedResidues | None = None) -> float:
    """Logistic-regression probe; ``max_train_residues`` subsamples the training residues (seeded). ``test``: the
    test proteins already stacked (then ``test_feats``/``test_labels`` are not read)."""
    Xtr, ytr = _stack(train_feats, train_labels)
    Xte, yte = (test.X, test.y) if test is not None else _stack(test_feats, test_labels)
    with one_blas_thread():
        sc, clf = _fit(Xtr, ytr, seed, max_iter, max_train_residues)
        return float((clf.predict(sc.transform(Xte)) == yte).mean())


def cv_accuracy(feats, labels, folds: int = 5, seed: int = 0, max_iter: int = 200,
                max_train_residues: int | None = None, stacked: StackedResidues | None = None) -> float:
    """Residue accuracy pooled over a protein-level k-fold cross-validation. ``stacked``: ``feats``/``labels``
    already stacked (same folds, same rows)."""
    if stacked is None:
        stacked = StackedResidues(feats, labels)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(stacked.n_proteins)
    correct = total = 0
    for f in range(folds):
        te = set(perm[f::folds].tolist())
        Xtr, ytr = stacked.rows(i for i in range(stacked.n_proteins) if i not in te)
        Xte, yte = stacked.rows(sorted(te))
        with one_blas_thread():
            sc, clf = _fit(Xtr, ytr, seed, max_iter, max_train_residues)
            correct += int((clf.predict(sc.transform(Xte)) == yte).sum())
        total += len(yte)
    return correct / total


def _batches(seqs, labels, max_tokens, rng, shuffle=True):
    order = np.argsort([len(s) for s in seqs])
    batches, cur = [], []
    for i in order:
        if cur and (len(seqs[i]) + 2) * (len(cur) + 1) > max_tokens:
            batches.append(cur)
            cur = []
        cur.append(int(i))
    if cur:
        batches.append(cur)
    if shuffle:
        rng.shuffle(batches)
    return batches


def _encode(seqs, labels, idx, max_len=None):
    tok = TAPETokenizer(unknown="X")
    s = [seqs[i] if max_len is None else seqs[i][: max_len - 2] for i in idx]
    ids, mask = tok.batch_encode(s)
    y = torch.full(ids.shape, -1, dtype=torch.long)
    for r, i in enumerate(idx):
        lab = labels[i][: len(s[r])]
        y[r, 1: len(lab) + 1] = torch.from_numpy(lab)
    return ids, mask, y


def finetune(pretrained, train_seqs, train_labels, test_seqs, test_labels, num_labels: int = 3, epochs: int = 1,
             lr: float = 1e-4, max_tokens: int = 4096, seed: int = 0, family: str = "transformer") -> dict:
    """TAPE's secondary-structure protocol: fine-tune backbone + SimpleConv head end to end. ``seed`` orders the
    batches; the head's initialisation and dropout draw from torch's global generator, which the caller seeds
    (the table runners do, per seed, through the core)."""
    rng = np.random.default_rng(seed)
    backbone = {k: v for k, v in pretrained.init_args.items() if k != "initializer_range"}
    model = TapeTaskModel("secondary_structure", family, num_labels, backbone)
    model.load_backbone(pretrained)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    max_len = getattr(pretrained, "max_len", None)
    model.train()
    for _ in range(epochs):
        for b in _batches(train_seqs, train_labels, max_tokens, rng):
            ids, mask, y = _encode(train_seqs, train_labels, b, max_len)
            logits = model(ids, mask)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, num_labels), y.reshape(-1), ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for b in _batches(test_seqs, test_labels, 16384, rng, shuffle=False):
            ids, mask, y = _encode(test_seqs, test_labels, b, max_len)
            pred = model(ids, mask).argmax(-1)
            sel = y >= 0
            correct += int((pred[sel] == y[sel]).sum())
            total += int(sel.sum())
    return {"accuracy": correct / total, "residues": total, "model": model}


def class_probe_accuracy(Xtr, ytr, Xte, yte, seed: int = 0, max_iter: int = 1000) -> float:
    """Sequence-level logistic-regression probe (standardised features, scikit-learn's defaults otherwise)."""
    with one_blas_thread():
        sc = StandardScaler().fit(Xtr)
        clf = LogisticRegression(max_iter=max_iter, random_state=seed).fit(sc.transform(Xtr), ytr)
        return float((clf.predict(sc.transform(Xte)) == yte).mean())


# ---- structural class (a fold-classification proxy available from the data here) -----------------------
STRUCT_CLASSES = ("mainly-alpha", "mainly-beta", "alpha-beta", "few-SS")


def structural_class(ss3: np.ndarray) -> int:
    """Class from DSSP 3-state composition (H=0, E=1), CATH-class style thresholds on evaluated residues."""
    y = ss3[ss3 >= 0]
    h, e = float((y == 0).mean()), float((y == 1).mean())
    if h >= 0.3 and e < 0.1:
        return 0
    if e >= 0.2 and h < 0.1:
        return 1
    if h >= 0.1 and e >= 0.1:
        return 2
    return 3
