"""GraphMAE pretraining on a node graph (Cora): the paper's loop, as a plain loop and as a Lightning task.

Optimiser and schedule as the official code: ``torch.optim.Adam(lr, weight_decay)`` (L2, not AdamW) and,
with ``scheduler: true``, ``LambdaLR(lambda epoch: (1 + cos(pi * epoch / max_epoch)) / 2)`` stepped once per
epoch. One epoch = one full-batch step on the whole graph.

``GraphMAENode`` is the recipe's ``Method`` (``fmzoo pretrain``, through ``fmzoo.core.method.pretrain``): it
trains through ``fmzoo.core.training.fit`` (Lightning; checkpoint/resume, devices, strategy). Because one
GraphMAE epoch is one optimiser step, a Lightning "epoch" here is ``steps_per_epoch`` graph passes (default
50) so that Lightning does not write a checkpoint after every single step; ``--max-epochs`` on the CLI
counts GraphMAE epochs (graph passes).
"""
from __future__ import annotations

import inspect
import math
import time
from pathlib import Path

import torch
from fmzoo.core.method import CORE_TRAIN_KEYS, Method, PretrainData

from ..data.planetoid import NodeGraph
from ..models.graphmae import GraphMAE, PreparedGraph

MODEL_KEYS = tuple(p for p in inspect.signature(GraphMAE).parameters if p != "in_dim")  # in_dim: the graph's


def cosine_lambda(max_epoch: int):
    return lambda epoch: (1 + math.cos(epoch * math.pi / max_epoch)) * 0.5


def build_model(in_dim: int, cfg: dict) -> GraphMAE:
    return GraphMAE(in_dim, **{k: cfg[k] for k in MODEL_KEYS if k in cfg})


def pretrain_loop(model: GraphMAE, graph: NodeGraph | PreparedGraph, epochs: int, lr: float = 1e-3,
                  weight_decay: float = 2e-4, scheduler: bool = True, log_every: int = 0, log=print) -> dict:
    """The official loop: Adam, per-epoch cosine LambdaLR, one full-graph step per epoch."""
    pg = graph if isinstance(graph, PreparedGraph) else model.prepare(graph.x, graph.edge_index)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lambda(epochs)) if scheduler else None
    model.train()
    losses, t0 = [], time.perf_counter()
    for epoch in range(epochs):
        loss = model.loss_prepared(pg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"GraphMAE loss became {losses[-1]} at epoch {epoch}")
        if log_every and (epoch % log_every == 0 or epoch == epochs - 1):
            log(f"epoch {epoch:5d} loss {losses[-1]:.4f} ({(time.perf_counter() - t0) / (epoch + 1):.3f} s/epoch)")
    model.eval()
    return {"losses": losses, "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------- Lightning (fmzoo pretrain)
def _task_class():
    from fmzoo.core.training import SSLTask

    class GraphMAETask(SSLTask):
        """GraphMAE on one full graph; the official Adam + per-epoch cosine schedule (1 step = 1 epoch)."""

        def __init__(self, model: GraphMAE, lr: float, weight_decay: float, total_epochs: int, scheduler: bool = True):
            super().__init__(model, lr=lr, weight_decay=weight_decay, schedule="cosine" if scheduler else "constant")
            self.total_epochs, self.use_sched = total_epochs, scheduler
            self.pg: PreparedGraph | None = None  # set after construction (kept out of Lightning's hparams)

        def ssl_loss(self, batch):
            return {"loss": self.model.loss_prepared(self.pg)}

        def configure_optimizers(self):
            opt = torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
            if not self.use_sched:
                return opt
            sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lambda(self.total_epochs))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return GraphMAETask


class _RepeatGraph(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.zeros(1)


class GraphMAENode(Method):
    """Recipe ``method: graphmae`` on one node graph (Cora / CiteSeer, or ``--data DIR`` with nodes.csv + edges.csv):
    full-graph steps, so the "dataset" is ``steps_per_epoch`` repeats of the graph (a Lightning epoch = that many
    GraphMAE epochs, for the checkpoint cadence). ``max_epochs`` counts GraphMAE epochs (graph passes)."""

    recipe_sections = ("probe",)
    # ``train``: GraphMAE's own names (``max_epoch`` = graph passes; no batch: one full-graph step) plus the Lightning
    # values the core applies; ``batch_size`` and ``max_epochs`` are not read, so they are refused
    recipe_keys = {
        "model": MODEL_KEYS,
        "train": ("max_epoch", "steps_per_epoch", "lr", "weight_decay", "scheduler",
                  *(k for k in CORE_TRAIN_KEYS if k not in ("batch_size", "max_epochs"))),
        "probe": ("lr", "weight_decay", "epochs"),
        "evaluate": ("linear_probe",),
        "data": (),
    }
    citation = "Hou et al., GraphMAE: Self-Supervised Masked Graph Autoencoders, KDD 2022."
    default_batch_size = 1  # one full graph per step
    default_epochs = 1500

    def global_batch(self) -> int:
        return 1

    def max_epochs(self) -> int:
        return int(self.train_cfg.get("max_epoch", self.default_epochs))

    def data(self) -> PretrainData:
        from ..data.planetoid import load_planetoid, planetoid_root

        if self.data_path is not None:
            from ..tasks.downstream import read_node_dir, row_normalise

            what = f"--data {self.data_path}"
            x, ei, nodes = read_node_dir(self.data_path)
            x = row_normalise(x, what)
            g = NodeGraph(name=self.data_path.name, x=x, edge_index=ei, y=None, train_mask=None, val_mask=None,
                          test_mask=None)
            files = [self.data_path / "nodes.csv", self.data_path / "edges.csv"]
            desc = (f"The user's graph {self.data_path} (nodes.csv + edges.csv): {x.shape[0]} nodes, {ei.shape[1]} "
                    f"directed edges (undirected input, both directions), {x.shape[1]} row-normalised features; all "
                    "nodes' features and edges seen during self-supervised pretraining; labels unused.")
        else:
            name = str(self.recipe.get("dataset", "cora"))
            g = load_planetoid({"cora": "Cora", "citeseer": "CiteSeer"}[name.lower()])
            files = sorted(planetoid_root(None, g.name).glob(f"ind.{g.name.lower()}.*"))
            desc = ""
        spe = max(1, int(self.train_cfg.get("steps_per_epoch", 50)))
        return PretrainData(_RepeatGraph(spe), files=files, description=desc, extra={"graph": g})

    def model(self, data: PretrainData) -> GraphMAE:
        g = data.extra["graph"]
        model = build_model(g.num_features, self.recipe.get("model", {}))
        data.extra["pg"] = model.prepare(g.x, g.edge_index)
        return model

    def task(self, model, data: PretrainData, steps_per_epoch: int, max_epochs: int):
        train = self.train_cfg
        data.dataset.n = min(data.dataset.n, max_epochs)  # graph passes per Lightning epoch
        task = _task_class()(model, float(train.get("lr", 1e-3)), float(train.get("weight_decay", 2e-4)), max_epochs,
                             bool(train.get("scheduler", True)))
        task.pg = data.extra["pg"]
        self.epochs = max_epochs
        return task

    def loader(self, data: PretrainData, batch_size: int):
        return torch.utils.data.DataLoader(data.dataset, batch_size=1)

    def fit(self, task, loader, max_epochs: int, trainer_kwargs: dict):
        from fmzoo.core.training import fit, world_size

        kw = dict(trainer_kwargs)
        if world_size(kw) > 1:  # every step is the whole graph: there is no batch to share between processes
            raise ValueError("GraphMAE on a node graph trains full-graph steps in one process: drop --devices/--num-nodes")
        spe = len(loader.dataset)
        kw.setdefault("log_every_n_steps", spe)
        self.trainer = fit(task, loader, self.run_dir, max_epochs=math.ceil(max_epochs / spe), max_steps=max_epochs, **kw)
        return self.trainer

    def evaluate(self, model, data: PretrainData) -> dict:
        from fmzoo.core.training import training_seconds

        metrics = {"pretrain_epochs": self.epochs, "pretrain_seconds": round(training_seconds(self.trainer), 1)}
        g = data.extra["graph"]
        # ``evaluate: {linear_probe: false}`` skips the probe; the user's graph (--data) has no probe split
        if (self.recipe.get("evaluate") or {}).get("linear_probe", True) and g.y is not None:
            from ..tasks.node_probe import node_linear_probe

            with torch.no_grad():
                emb = model.embed(g.x, g.edge_index)
            probe = self.recipe.get("probe", {})
            r = node_linear_probe(emb, g.y, g.train_mask, g.val_mask, g.test_mask, lr=float(probe.get("lr", 0.01)),
                                  weight_decay=float(probe.get("weight_decay", 1e-4)),
                                  epochs=int(probe.get("epochs", 300)), seed=self.seed)
            metrics.update({f"linear_probe_{k}": v for k, v in r.items()})
        return metrics

    def card(self, data: PretrainData, metrics: dict) -> dict:
        card = cora_card(self.recipe, metrics, self.seed)
        if self.data_path is not None:
            card["training_data"] = data.description
        return card

    def provenance(self, data: PretrainData) -> dict:
        from fmzoo.core import sha256_file

        return {"data_sha256": {Path(f).name: sha256_file(f) for f in data.files}}


def cora_card(recipe: dict, metrics: dict, seed: int) -> dict:
    acc = metrics.get("linear_probe_test_acc")
    results = [{"metric": "pretraining epochs", "value": metrics.get("pretrain_epochs"), "setting": "full-batch, CPU"}]
    if acc is not None:
        results.append({"metric": "linear-probe test accuracy (Cora public split, early-stopping on val)",
                        "value": round(100 * acc, 2), "setting": f"seed {seed}, this checkpoint"})
    results.append({"metric": "paper: linear-probe accuracy", "value": "84.2 ± 0.4",
                    "setting": "GraphMAE paper Table 1 / official README (THUDM/GraphMAE), 20 seeds, GPU"})
    return {
        "title": f"GraphMAE GAT encoder pretrained on Cora ({recipe.get('name', 'graphmae-cora')})",
        "summary": "A 2-layer GAT (4 heads x 128 = 512 hidden, PReLU) pretrained with GraphMAE "
                   "(mask rate 0.5, random-replace 0.05, re-mask, GAT decoder, SCE gamma 3) on the Cora citation "
                   "graph. Small-scale CPU run with the paper's full configuration (Adam lr 1e-3, wd 2e-4, cosine).",
        "intended_use": "Node embeddings of Cora-like bag-of-words citation graphs (1433 row-normalised features); "
                        "linear probing / fine-tuning for node classification.",
        "training_data": "Planetoid Cora (Yang et al. 2016; Sen et al. 2008): 2708 nodes, 10556 directed edges, "
                         "1433 features; all nodes' features and edges are seen during self-supervised pretraining "
                         "(transductive, as the paper); labels are not used.",
        "results": results,
        "citation": "Hou et al., GraphMAE: Self-Supervised Masked Graph Autoencoders, KDD 2022.",
        "license": "mit",
        "tags": ["graph", "graphmae", "gat", "self-supervised", "cora"],
        "datasets": ["cora"],
        "limitations": "Trained on CPU at fmzoo's small scale; a single seed per checkpoint. The encoder expects "
                       "exactly 1433 row-normalised features; other graphs need their own pretraining.",
    }
