"""Molecular property prediction at small label budgets: scratch vs GraphMAE-pretrained MolGIN.

Split: deterministic scaffold split 80/10/10 (Hu et al.). Label budget: ``budget`` molecules drawn (seeded)
from the scaffold-train part. Metric: ROC-AUC on the scaffold-test part, averaged over the tasks whose test
labels contain both classes (as the official ``finetune.py``); missing labels are ignored.

* ``frozen_probe``: mean-pooled embeddings of the frozen encoder -> per-task logistic regression
  (standardised features, sklearn). Cheap; used by the quick reproduction.
* ``finetune``: the official fine-tuning recipe (GNN_graphpred): encoder (dropout 0.5) + mean pooling +
  linear head, BCE on the labelled entries, Adam lr 1e-3, batch 32, 100 epochs, test ROC-AUC after the last epoch.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from fmzoo.core.runtime import generator

from ..data.molecules import MolDataset, collate, scaffold_split
from ..models.gin import MolGIN


def split_and_budget(ds: MolDataset, budget: int | None, seed: int):
    train, valid, test = scaffold_split(ds.smiles, scaffolds=ds.scaffolds or None)
    if budget is not None and budget < len(train):
        rng = np.random.default_rng(seed)
        train = np.sort(rng.choice(train, size=budget, replace=False))
    return train, valid, test


def roc_auc_mean(y: np.ndarray, score: np.ndarray) -> tuple[float, int]:
    from sklearn.metrics import roc_auc_score

    aucs = []
    for t in range(y.shape[1]):
        ok = ~np.isnan(y[:, t])
        if ok.sum() and len(np.unique(y[ok, t])) == 2:
            aucs.append(roc_auc_score(y[ok, t], score[ok, t]))
    return (float(np.mean(aucs)) if aucs else float("nan")), len(aucs)


@torch.no_grad()
def embed(encoder: MolGIN, graphs: list[dict], batch_size: int = 256) -> torch.Tensor:
    encoder.eval()
    out = []
    for i in range(0, len(graphs), batch_size):
        b = collate(graphs[i:i + batch_size])
        out.append(encoder.pool(encoder(b["x"], b["edge_index"], b["edge_attr"]), b["batch"], b["num_graphs"]))
    return torch.cat(out)


def frozen_probe(encoder: MolGIN, ds: MolDataset, budget: int | None, seed: int, cache: dict | None = None) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train, _, test = split_and_budget(ds, budget, seed)
    idx = np.concatenate([train, test])
    cache = {} if cache is None else cache
    need = [i for i in idx.tolist() if i not in cache]
    if need:
        for i, e in zip(need, embed(encoder, [ds.graphs[i] for i in need]), strict=True):
            cache[i] = e
    xtr = torch.stack([cache[i] for i in train.tolist()]).numpy()
    xte = torch.stack([cache[i] for i in test.tolist()]).numpy()
    y = ds.y.numpy()
    sc = StandardScaler().fit(xtr)
    xtr, xte = sc.transform(xtr), sc.transform(xte)
    score = np.zeros((len(test), y.shape[1]))
    for t in range(y.shape[1]):
        ok = ~np.isnan(y[train, t])
        labels = y[train][ok, t]
        if len(np.unique(labels)) < 2:  # a budget without both classes: constant score (AUC 0.5)
            continue
        clf = LogisticRegression(max_iter=2000, C=1.0).fit(xtr[ok], labels)
        score[:, t] = clf.predict_proba(xte)[:, 1]
    auc, n = roc_auc_mean(y[test], score)
    return {"roc_auc": auc, "tasks_scored": n, "n_train": len(train), "n_test": len(test)}


class GraphPredictor(nn.Module):
    def __init__(self, encoder: MolGIN, num_tasks: int):
        super().__init__()
        self.gnn = encoder
        self.graph_pred_linear = nn.Linear(encoder.emb_dim, num_tasks)

    def forward(self, b):
        h = self.gnn(b["x"], b["edge_index"], b["edge_attr"])
        return self.graph_pred_linear(self.gnn.pool(h, b["batch"], b["num_graphs"]))


def finetune(encoder: MolGIN, ds: MolDataset, budget: int | None, seed: int, epochs: int = 100, lr: float = 1e-3,
             batch_size: int = 32, dropout: float = 0.5) -> dict:
    """The head's initialisation and the dropout masks draw from torch's global generator, which the caller seeds
    (the table runner, per seed, through the core); the batch order is drawn from ``generator(seed)``."""
    train, _, test = split_and_budget(ds, budget, seed)
    encoder.drop_ratio = dropout
    model = GraphPredictor(encoder, ds.y.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0)
    crit = nn.BCEWithLogitsLoss(reduction="none")
    y = ds.y
    g = generator(seed)
    for _ in range(epochs):
        model.train()
        perm = train[torch.randperm(len(train), generator=g).numpy()]
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2:  # BatchNorm needs > 1 graph worth of atoms; official drop_last=False is fine there
                continue
            b = collate([ds.graphs[j] for j in idx])
            target = y[idx]
            valid = ~torch.isnan(target)
            logits = model(b)
            loss = (crit(logits, torch.nan_to_num(target)) * valid).sum() / valid.sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        scores = torch.cat([model(collate([ds.graphs[j] for j in test[i:i + 256]])) for i in range(0, len(test), 256)])
    auc, n = roc_auc_mean(y[test].numpy(), scores.numpy())
    return {"roc_auc": auc, "tasks_scored": n, "n_train": len(train), "n_test": len(test)}
