"""Table runners for ``fmzoo reproduce`` (graph domain). ``reproduce`` sets the table's threads around a runner;
a runner repeats a protocol over seeds with the core's ``per_seed`` (which seeds every call). ``smoke=True``: the quick protocol
on a sliver (seconds; the rows have the table's shape and mean nothing)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from fmzoo.core.reproduce import make_row, per_seed

SMOKE_PROBE_EPOCHS = 30  # graphmae-cora smoke: one probe seed, 30 probe epochs (the table: 3 seeds x 300)
SMOKE_MOLECULES = 300  # graphmae-moleculenet smoke: the first set (BBBP), its first 300 molecules, one seed
SMOKE_GRAPHS = 100  # graphmae-mutag smoke: the first MUTAG graphs
MOL_INIT_SEED = 1000  # graphmae-moleculenet: seed s draws the encoder's random init from 1000 + s, its head from s


def run_cora(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    """graphmae-cora: quick = shipped checkpoint + 3 probe seeds; full = 3 pretraining seeds x 1500 epochs."""
    from fmzoo.core import load_recipe

    from .data.planetoid import load_cora
    from .methods.graphmae import build_model
    from .models.graphmae import GraphMAE
    from .tasks.node_probe import node_linear_probe

    g = load_cora()
    recipe = load_recipe("graphmae-cora")
    probe = recipe["probe"]
    pk = dict(lr=float(probe["lr"]), weight_decay=float(probe["weight_decay"]),
              epochs=SMOKE_PROBE_EPOCHS if smoke else int(probe["epochs"]))
    seeds = [0] if smoke else [0, 1, 2]
    rows = []
    if quick:
        model = GraphMAE.from_pretrained("fmzoo/graphmae-cora")
        with torch.no_grad():
            emb = model.embed(g.x, g.edge_index)
        res = [node_linear_probe(emb, g.y, g.train_mask, g.val_mask, g.test_mask, seed=s, **pk) for s in seeds]
        rows.append(make_row(table, "GraphMAE", "pretrained", [100 * r["test_acc"] for r in res], seeds,
                             note="shipped checkpoint fmzoo/graphmae-cora (pretraining seed 0); seeds = probe seeds",
                             final_epoch_acc=[100 * r["final_test_acc"] for r in res]))
    else:
        vals, finals, notes = [], [], []
        runs = _cora_full_runs(recipe, seeds, Path(out_dir))
        for s_, m in zip(seeds, runs, strict=True):
            vals.append(100 * m["linear_probe_test_acc"])
            finals.append(100 * m["linear_probe_final_test_acc"])
            notes.append(f"seed {s_}: {m['pretrain_seconds'] / m['pretrain_epochs']:.2f} s/epoch")
        rows.append(make_row(table, "GraphMAE", "pretrained", vals, seeds,
                             note=f"full protocol, {recipe['train']['max_epoch']} epochs per seed via "
                                  f"`fmzoo pretrain graphmae-cora --seed S` (run dirs {out_dir}/seedS); " + "; ".join(notes),
                             final_epoch_acc=finals))
    # scratch baseline: the same encoder at random init, same probe
    def scratch(s):
        model = build_model(g.num_features, recipe["model"]).eval()
        with torch.no_grad():
            emb = model.embed(g.x, g.edge_index)
        return 100 * node_linear_probe(emb, g.y, g.train_mask, g.val_mask, g.test_mask, seed=s, **pk)["test_acc"]

    svals = per_seed(seeds, scratch)
    rows.append(make_row(table, "GAT (random init)", "scratch", svals, seeds,
                         note="encoder weights at random init (seed = init seed), same linear probe"))
    return rows


def _same_recipe(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("method", "dataset", "model", "train", "probe"))


def _pretrain_seed(args):
    """One full-protocol seed in its own process: ``run_pretraining`` sets the recipe's threads (1) and seed."""
    recipe, seed, run_dir = args
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from fmzoo.core.pretrain import run_pretraining

    run_pretraining({**recipe, "seed": seed}, Path(run_dir), {"progress": False})


def _cora_full_runs(recipe: dict, seeds: list[int], out_dir: Path) -> list[dict]:
    """Pretrain+probe every seed with the recipe (in parallel processes, one thread each), reusing finished
    run directories ``out_dir/seed<S>`` whose provenance holds the same recipe (so a long run can resume)."""
    import multiprocessing as mp

    def done(s):
        p = out_dir / f"seed{s}" / "checkpoint" / "provenance.json"
        if not p.is_file():
            return None
        prov = json.loads(p.read_text())
        ok = _same_recipe(prov.get("recipe", {}), recipe) and prov.get("seed") == s
        return prov.get("metrics") if ok else None

    todo = [s for s in seeds if done(s) is None]
    if todo:
        ctx = mp.get_context("spawn")
        with ctx.Pool(len(todo)) as pool:
            pool.map(_pretrain_seed, [(recipe, s, str(out_dir / f"seed{s}")) for s in todo])
    out = []
    for s in seeds:
        m = done(s)
        if m is None:
            raise RuntimeError(f"graphmae-cora seed {s}: no finished run in {out_dir / f'seed{s}'}")
        out.append(m)
    return out


def run_moleculenet(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    """graphmae-moleculenet: scratch vs pretrained MolGIN at a small label budget on scaffold splits."""
    import numpy as np

    from .data.molecules import load_moleculenet
    from .models.gin import MolGIN
    from .tasks.mol import finetune, frozen_probe

    names = table.get("datasets", ["bbbp", "bace", "clintox", "tox21", "sider"])
    budget = int(table.get("budget", 100))
    seeds = list(table.get("seeds", [0, 1, 2]))
    ft_epochs = int(table.get("finetune_epochs", 100))
    if smoke:
        names, seeds, budget = names[:1], seeds[:1], min(budget, 50)
    pretrained = MolGIN.from_pretrained("fmzoo/graphmae-mol-gin")
    state = {k: v.clone() for k, v in pretrained.state_dict().items()}
    cfg = pretrained.init_args
    rows, means = [], {"scratch": [], "pretrained": []}
    how = "frozen encoder + logistic regression" if quick else f"fine-tuned (official recipe, {ft_epochs} epochs)"
    log = []
    for name in names:
        ds = load_moleculenet(name, max_rows=SMOKE_MOLECULES if smoke else None)
        per = {"scratch": [], "pretrained": []}
        pre_cache: dict = {}  # frozen pretrained embeddings are the same for every seed
        for init in ("scratch", "pretrained"):
            def one(init_seed, init=init, ds=ds, name=name, pre_cache=pre_cache):
                s = init_seed - MOL_INIT_SEED
                enc = MolGIN(**cfg)  # scratch: the random init drawn from init_seed
                if init == "pretrained":
                    enc.load_state_dict(state)
                if quick:
                    r = frozen_probe(enc, ds, budget, s, cache=pre_cache if init == "pretrained" else None)
                else:  # the head's initialisation and the dropout masks draw from seed s
                    r = per_seed([s], lambda s: finetune(enc, ds, budget, s, epochs=ft_epochs))[0]
                log.append({"dataset": name, "init": init, "seed": s, **r})
                (Path(out_dir) / "graphmae-moleculenet-runs.json").write_text(json.dumps(log, indent=2))
                return r

            runs = per_seed([MOL_INIT_SEED + s for s in seeds], one)
            per[init] = [r["roc_auc"] for r in runs]
            last = runs[-1]
            model = f"GraphMAE-GIN {name}" if init == "pretrained" else f"GIN {name}"
            rows.append(make_row(table, model, init, per[init], seeds, note=f"{how}; {budget} labels; tasks scored "
                                 f"{last['tasks_scored']}; test n={last['n_test']}"))
            means[init].append(float(np.mean(per[init])))
    for init in ("scratch", "pretrained"):
        # per-seed means over datasets
        vals = [float(np.mean([e["roc_auc"] for e in log if e["init"] == init and e["seed"] == s])) for s in seeds]
        rows.append(make_row(table, f"mean over {len(names)} datasets", init, vals, seeds,
                             note=f"{how}; {budget} labels; per-seed mean over {', '.join(names)}"))
    return rows


def run_mutag(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    from fmzoo.core import load_recipe

    from .data.tu import load_mutag
    from .methods.graphmae_graph import graph_embeddings, pretrain_graphs, svm_eval
    from .models.graphmae_graph import GraphMAEGIN

    graphs = load_mutag()
    if smoke:
        graphs = graphs[:SMOKE_GRAPHS]
    recipe = load_recipe("graphmae-mutag")
    tr = recipe["train"]
    rows = []
    if quick:
        model = GraphMAEGIN.from_pretrained("fmzoo/graphmae-mutag")
        acc, std = svm_eval(*graph_embeddings(model, graphs))
        rows.append(make_row(table, "GraphMAE", "pretrained", [100 * acc], [0],
                             note=f"shipped checkpoint (seed 0); fold std {100 * std:.2f}"))
        seeds = [0]
    else:
        seeds = [0, 1, 2, 3, 4]
        def pretrained(s):
            model = GraphMAEGIN(graphs[0]["x"].shape[1], **recipe["model"])
            pretrain_graphs(model, graphs, int(tr["max_epoch"]), float(tr["lr"]), float(tr["weight_decay"]),
                            int(tr["batch_size"]))
            return 100 * svm_eval(*graph_embeddings(model, graphs))[0]

        vals = per_seed(seeds, pretrained)
        rows.append(make_row(table, "GraphMAE", "pretrained", vals, seeds, note="full protocol, 5 pretraining seeds"))
    def scratch(s):
        model = GraphMAEGIN(graphs[0]["x"].shape[1], **recipe["model"]).eval()
        return 100 * svm_eval(*graph_embeddings(model, graphs))[0]

    svals = per_seed(seeds, scratch)
    rows.append(make_row(table, "GIN (random init)", "scratch", svals, seeds, note="random init, same SVM protocol"))
    return rows
