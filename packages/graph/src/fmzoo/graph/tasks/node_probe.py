"""GraphMAE's node-classification linear probe (official ``linear_probing_for_transductive_node_classiifcation``).

Frozen embeddings of the whole graph (encoder in eval mode), a logistic-regression layer (``nn.Linear``)
trained full-batch with Adam (Cora: lr 0.01, weight decay 1e-4, 300 epochs) on the public train nodes;
after every epoch the validation accuracy is measured and the model with the best (>=) validation accuracy
is kept. Reported: the test accuracy of that model ("early-stopping test accuracy", the number the
GraphMAE code prints and the README reports) and the test accuracy after the last epoch.

``seed`` seeds the classifier's initialisation through its own generator (``fmzoo.core.runtime.generator``):
the same numbers as ``nn.Linear`` after seeding the global stream with ``seed``, without touching it; the
training itself is deterministic (full batch, no dropout).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
from fmzoo.core.runtime import generator


def node_linear_probe(emb: torch.Tensor, y: torch.Tensor, train_mask, val_mask, test_mask, lr: float = 0.01,
                      weight_decay: float = 1e-4, epochs: int = 300, seed: int | None = None) -> dict:
    emb = emb.detach().float()
    clf = nn.Linear(emb.shape[1], int(y.max()) + 1)
    if seed is not None:  # nn.Linear.reset_parameters, drawn from the seed's own stream
        g = generator(seed)
        with torch.no_grad():
            nn.init.kaiming_uniform_(clf.weight, a=math.sqrt(5), generator=g)
            bound = 1 / math.sqrt(emb.shape[1])
            clf.bias.uniform_(-bound, bound, generator=g)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    crit = nn.CrossEntropyLoss()
    best_val, best_epoch, best = -1.0, 0, None
    for epoch in range(epochs):
        clf.train()
        loss = crit(clf(emb[train_mask]), y[train_mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
        clf.eval()
        with torch.no_grad():
            pred = clf(emb).argmax(1)
            val_acc = (pred[val_mask] == y[val_mask]).float().mean().item()
            test_acc = (pred[test_mask] == y[test_mask]).float().mean().item()
        if val_acc >= best_val:
            best_val, best_epoch, best = val_acc, epoch, copy.deepcopy(clf.state_dict())
    clf.load_state_dict(best)
    with torch.no_grad():
        estp = (clf(emb).argmax(1)[test_mask] == y[test_mask]).float().mean().item()
    return {"test_acc": estp, "final_test_acc": test_acc, "best_val_acc": best_val, "best_epoch": best_epoch}
