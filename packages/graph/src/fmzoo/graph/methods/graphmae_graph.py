"""Graph-level GraphMAE pretraining + the paper's SVM evaluation (official ``main_graph.py``, MUTAG config:
GIN 5 x 32, PReLU, batchnorm, mask 0.75, replace 0.1, SCE gamma 2, Adam lr 5e-4 wd 0, 20 epochs, batch 64
(unshuffled, as the official loader), sum pooling; SVC with C in {1e-3..10} by inner GridSearchCV,
10-fold StratifiedKFold(shuffle, random_state=0), micro-F1 (= accuracy) averaged over folds."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from ..models.graphmae_graph import GraphMAEGIN, collate_tu

MUTAG_CFG = {"num_hidden": 32, "num_layers": 5, "activation": "prelu", "norm": "batchnorm", "feat_drop": 0.2,
             "mask_rate": 0.75, "replace_rate": 0.1, "alpha_l": 2.0}


def pretrain_graphs(model: GraphMAEGIN, graphs: list[dict], epochs: int = 20, lr: float = 5e-4,
                    weight_decay: float = 0.0, batch_size: int = 64) -> list[float]:
    """GraphMAE on ``graphs`` for ``epochs`` passes of unshuffled batches; the mean loss of each epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    batches = [collate_tu(graphs[i:i + batch_size]) for i in range(0, len(graphs), batch_size)]
    losses = []
    model.train()
    for _ in range(epochs):
        tot = 0.0
        for b in batches:
            loss = model.loss(b["x"], b["edge_index"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item()
        losses.append(tot / len(batches))
    model.eval()
    return losses


@torch.no_grad()
def graph_embeddings(model: GraphMAEGIN, graphs: list[dict], batch_size: int = 64):
    model.eval()
    xs, ys = [], []
    for i in range(0, len(graphs), batch_size):
        b = collate_tu(graphs[i:i + batch_size])
        xs.append(model.embed(b["x"], b["edge_index"], b["batch"], b["num_graphs"]))
        ys.append(b["y"])
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


def svm_eval(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    res = []
    for tr, te in StratifiedKFold(n_splits=10, shuffle=True, random_state=0).split(x, y):
        clf = GridSearchCV(SVC(random_state=42), {"C": [1e-3, 1e-2, 1e-1, 1, 10]})
        clf.fit(x[tr], y[tr])
        res.append(f1_score(y[te], clf.predict(x[te]), average="micro"))
    return float(np.mean(res)), float(np.std(res))


def pretrain(recipe: dict, run_dir: Path, trainer_kwargs: dict) -> Path:
    """Recipe entry point (``method: graphmae-graph``): MUTAG pretraining (plain loop: 60 steps in total, seconds
    on a CPU, so ``--resume`` starts it again); provenance ``training`` has the shape of the Lightning paths'."""
    from fmzoo.core import publish_run, sha256_file
    from fmzoo.core.training import one_part_record

    from ..data.tu import load_mutag, tu_dir

    seed = int(recipe.get("seed", 0))  # run_pretraining has seeded the process and set the recipe's threads (1)
    graphs = load_mutag()
    cfg = {**MUTAG_CFG, **recipe.get("model", {})}
    tr = recipe.get("train", {})
    model = GraphMAEGIN(graphs[0]["x"].shape[1], **cfg)
    epochs = int(trainer_kwargs.get("max_epochs") or tr.get("max_epoch", 20))
    batch_size = int(tr.get("batch_size", 64))
    t0 = time.time()
    losses = pretrain_graphs(model, graphs, epochs, float(tr.get("lr", 5e-4)), float(tr.get("weight_decay", 0.0)),
                             batch_size)
    training = one_part_record(time.time() - t0, epochs * math.ceil(len(graphs) / batch_size))  # steps: batches x epochs
    x, y = graph_embeddings(model, graphs)
    acc, std = svm_eval(x, y)
    metrics = {"pretrain_epochs": epochs, "final_loss": losses[-1], "svm_accuracy": acc, "svm_fold_std": std,
               "seconds": round(time.time() - t0, 1)}
    files = sorted(tu_dir("MUTAG").glob("MUTAG_*.txt"))
    card = mutag_card(seed, acc)
    prov = {"recipe": recipe, "seed": seed, "metrics": metrics, "data_files": [str(f) for f in files],
            "data_sha256": {f.name: sha256_file(f) for f in files}, "training": training}
    return publish_run(model, Path(run_dir) / "checkpoint", card=card, provenance=prov)


def mutag_card(seed: int, acc: float) -> dict:
    return {
        "title": "GraphMAE GIN encoder pretrained on MUTAG",
        "summary": "GIN 5 x 32 (PReLU, batchnorm) pretrained with GraphMAE (mask 0.75, replace 0.1, SCE gamma 2) "
                   "on the 188 MUTAG graphs with the paper's configuration (20 epochs). Small CPU run.",
        "intended_use": "Graph embeddings (sum pooling) of MUTAG-like molecule graphs with 7 one-hot atom labels.",
        "training_data": "TU MUTAG (Debnath et al. 1991): 188 graphs, labels unused during pretraining.",
        "results": [{"metric": "SVM accuracy, 10-fold CV", "value": round(100 * acc, 2), "setting": f"seed {seed}"},
                    {"metric": "paper: accuracy", "value": "88.19 ± 1.26", "setting": "GraphMAE paper Table 2"}],
        "citation": "Hou et al., GraphMAE, KDD 2022.", "license": "mit",
        "tags": ["graph", "graphmae", "gin", "mutag"], "datasets": ["mutag"],
        "limitations": "Pretrained and evaluated on the same 188 graphs (the paper's unsupervised protocol).",
    }
