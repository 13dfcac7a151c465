"""Graph-level GraphMAE pretraining + the paper's SVM evaluation (official ``main_graph.py``, MUTAG config:
GIN 5 x 32, PReLU, batchnorm, mask 0.75, replace 0.1, SCE gamma 2, Adam lr 5e-4 wd 0, 20 epochs, batch 64
(unshuffled, as the official loader), sum pooling; SVC with C in {1e-3..10} by inner GridSearchCV,
10-fold StratifiedKFold(shuffle, random_state=0), micro-F1 (= accuracy) averaged over folds."""
from __future__ import annotations

import inspect
import math
import time
from pathlib import Path

import numpy as np
import torch
from fmzoo.core.method import Method, PretrainData

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


class GraphMAEGraph(Method):
    """Recipe ``method: graphmae-graph``: MUTAG (or the user's TU folder, ``--data DIR``) pretraining as a plain loop
    (60 steps in total, seconds on a CPU, so ``--resume`` starts it again), then the paper's SVM evaluation;
    provenance ``training`` has the shape of the Lightning paths'."""

    citation = "Hou et al., GraphMAE, KDD 2022."
    # a plain loop: ``train`` takes what ``fit`` reads (no Lightning values: nothing would apply them)
    recipe_keys = {
        "model": tuple(p for p in inspect.signature(GraphMAEGIN).parameters if p != "in_dim"),
        "train": ("max_epoch", "batch_size", "lr", "weight_decay"),
        "data": (),
        "evaluate": (),
    }
    default_batch_size = 64
    default_epochs = 20

    def max_epochs(self) -> int:
        return int(self.train_cfg.get("max_epoch", self.default_epochs))

    def data(self) -> PretrainData:
        from fmzoo.core import InputSpecError

        from ..data.tu import load_tu, tu_dir

        if self.data_path is not None:
            path = self.data_path
            names = sorted(p.name[: -len("_A.txt")] for p in path.glob("*_A.txt")) if path.is_dir() else []
            if len(names) != 1:
                raise InputSpecError(f"--data {path}: expected a TU-format directory (NAME_A.txt, "
                                     "NAME_graph_indicator.txt, NAME_graph_labels.txt, NAME_node_labels.txt); found "
                                     f"{len(names)} *_A.txt files")
            name = names[0]
            graphs = load_tu(name, path)
            files = sorted(tu_dir(name, path).glob(f"{name}_*.txt"))
            desc = (f"The user's TU dataset {name} ({path}): {len(graphs)} graphs, {graphs[0]['x'].shape[1]} one-hot "
                    "node labels; graph labels unused during pretraining (used by the SVM evaluation).")
        else:
            graphs = load_tu("MUTAG")
            files, desc = sorted(tu_dir("MUTAG").glob("MUTAG_*.txt")), ""
        return PretrainData(graphs, files=files, description=desc)

    def model(self, data: PretrainData) -> GraphMAEGIN:
        return GraphMAEGIN(data.dataset[0]["x"].shape[1], **{**MUTAG_CFG, **self.recipe.get("model", {})})

    def task(self, model, data: PretrainData, steps_per_epoch: int, max_epochs: int):
        return model

    def loader(self, data: PretrainData, batch_size: int):
        return data.dataset  # pretrain_graphs batches them, unshuffled (the official loader)

    def fit(self, task, loader, max_epochs: int, trainer_kwargs: dict):
        from fmzoo.core.method import PlainRun
        from fmzoo.core.training import one_part_record

        tr, batch_size = self.train_cfg, self.global_batch()
        self.t0, self.epochs = time.time(), max_epochs
        self.losses = pretrain_graphs(task, loader, max_epochs, float(tr.get("lr", 5e-4)),
                                      float(tr.get("weight_decay", 0.0)), batch_size)
        steps = max_epochs * math.ceil(len(loader) / batch_size)  # batches x epochs
        return PlainRun({}, one_part_record(time.time() - self.t0, steps))

    def evaluate(self, model, data: PretrainData) -> dict:
        x, y = graph_embeddings(model, data.dataset)
        acc, std = svm_eval(x, y)
        return {"pretrain_epochs": self.epochs, "final_loss": self.losses[-1], "svm_accuracy": acc,
                "svm_fold_std": std, "seconds": round(time.time() - self.t0, 1)}

    def card(self, data: PretrainData, metrics: dict) -> dict:
        card = mutag_card(self.seed, metrics["svm_accuracy"])
        if self.data_path is not None:
            card["training_data"] = data.description
        return card

    def provenance(self, data: PretrainData) -> dict:
        from fmzoo.core import sha256_file

        return {"data_sha256": {Path(f).name: sha256_file(f) for f in data.files}}


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
