"""GraphMAE pretraining on a node graph (Cora): the paper's loop, as a plain loop and as a Lightning task.

Optimiser and schedule as the official code: ``torch.optim.Adam(lr, weight_decay)`` (L2, not AdamW) and,
with ``scheduler: true``, ``LambdaLR(lambda epoch: (1 + cos(pi * epoch / max_epoch)) / 2)`` stepped once per
epoch. One epoch = one full-batch step on the whole graph.

``pretrain(recipe, run_dir, trainer_kwargs)`` is the recipe entry point used by ``fmzoo pretrain``: it
trains through ``fmzoo.core.training.fit`` (Lightning; checkpoint/resume, devices, strategy). Because one
GraphMAE epoch is one optimiser step, a Lightning "epoch" here is ``steps_per_epoch`` graph passes (default
50) so that Lightning does not write a checkpoint after every single step; ``--max-epochs`` on the CLI
counts GraphMAE epochs (graph passes).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..data.planetoid import NodeGraph
from ..models.graphmae import GraphMAE, PreparedGraph

MODEL_KEYS = ("num_hidden", "num_layers", "nhead", "nhead_out", "activation", "feat_drop", "attn_drop",
              "negative_slope", "residual", "norm", "mask_rate", "replace_rate", "alpha_l", "concat_hidden",
              "sparse_input")


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


def pretrain(recipe: dict, run_dir: Path, trainer_kwargs: dict) -> Path:
    """Recipe entry point (``method: graphmae``) for node graphs; returns ``run_dir/checkpoint``."""
    from fmzoo.core import publish_run, sha256_file
    from fmzoo.core.training import fit, training_seconds, world_size

    from ..data.planetoid import load_planetoid, planetoid_root

    run_dir = Path(run_dir)
    seed = int(recipe.get("seed", 0))  # run_pretraining has seeded the process and set the recipe's threads
    data = recipe.get("dataset", "cora")
    g = load_planetoid({"cora": "Cora", "citeseer": "CiteSeer"}[data.lower()])
    cfg = recipe.get("model", {})
    train = recipe.get("train", {})
    kw = dict(trainer_kwargs)
    if world_size(kw) > 1:  # every step is the whole graph: there is no batch to share between processes
        raise ValueError("GraphMAE on a node graph trains full-graph steps in one process: drop --devices/--num-nodes")
    epochs = int(kw.pop("max_epochs", None) or train.get("max_epoch", 1500))
    spe = max(1, min(int(train.get("steps_per_epoch", 50)), epochs))
    model = build_model(g.num_features, cfg)
    pg = model.prepare(g.x, g.edge_index)
    task = _task_class()(model, float(train.get("lr", 1e-3)), float(train.get("weight_decay", 2e-4)), epochs,
                         bool(train.get("scheduler", True)))
    task.pg = pg
    loader = torch.utils.data.DataLoader(_RepeatGraph(spe), batch_size=1)
    kw.setdefault("log_every_n_steps", spe)
    trainer = fit(task, loader, run_dir, max_epochs=math.ceil(epochs / spe), max_steps=epochs, **kw)
    seconds = training_seconds(trainer)
    model.eval()
    metrics = {"pretrain_epochs": epochs, "pretrain_seconds": round(seconds, 1)}
    if recipe.get("evaluate", True):
        from ..tasks.node_probe import node_linear_probe

        with torch.no_grad():
            emb = model.embed(g.x, g.edge_index)
        probe = recipe.get("probe", {})
        r = node_linear_probe(emb, g.y, g.train_mask, g.val_mask, g.test_mask, lr=float(probe.get("lr", 0.01)),
                              weight_decay=float(probe.get("weight_decay", 1e-4)), epochs=int(probe.get("epochs", 300)),
                              seed=seed)
        metrics.update({f"linear_probe_{k}": v for k, v in r.items()})
    raw = planetoid_root(None, g.name)
    files = sorted(raw.glob(f"ind.{g.name.lower()}.*"))
    card = cora_card(recipe, metrics, seed)
    prov = {"recipe": recipe, "seed": seed, "metrics": metrics, "data_files": [str(f) for f in files],
            "data_sha256": {f.name: sha256_file(f) for f in files}}
    return publish_run(model, run_dir / "checkpoint", card=card, provenance=prov, trainer=trainer)


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
