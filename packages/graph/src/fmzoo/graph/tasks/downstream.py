"""``fmzoo evaluate`` / ``fmzoo finetune`` hooks of the graph domain (the core owns the protocols, see
``fmzoo.core.downstream``); one class per architecture:

* ``NodeHooks`` (``GraphMAE``, GAT node encoder): transductive node classification. The items are node ids of
  one graph that the hooks hold after ``load``; every batch embeds the whole graph (full batch, as GraphMAE) and
  takes the rows of its nodes. Default: Planetoid Cora, public split (140 train / 1000 test nodes; the 500
  validation nodes are not used). ``--data DIR``: ``nodes.csv`` + ``edges.csv`` (see ``NodeHooks.data_format``).
* ``MoleculeHooks`` (``MolGIN``): molecular property prediction on the single-task MoleculeNet sets, scaffold
  split 80/10/10 (Hu et al. 2020; train / test, the valid part unused). ``--data FILE``: a SMILES CSV.
* ``GraphHooks`` (``GraphMAEGIN``): graph classification (MUTAG), a fixed stratified 80/20 split.
  ``--data DIR``: a TU-format directory.
"""
from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.downstream import DownstreamHooks, Split, Task

from ..data.molecules import (
    MOLECULENET,
    collate,
    featurize,
    load_moleculenet,
    moleculenet_dir,
    read_csv,
    scaffold_split,
)
from ..data.planetoid import load_planetoid, planetoid_root
from ..data.tu import load_tu, tu_dir
from ..models.graphmae import PreparedGraph
from ..models.graphmae_graph import collate_tu
from ..spec import validate_graph

SPLIT_SEED = 0  # the fixed draw of a held-out test part where the data name none (not a pipeline seed)


def stratified_holdout(labels: np.ndarray, test_fraction: float = 0.2, seed: int = SPLIT_SEED):
    """(train, test) positions: ``test_fraction`` of every class (at least one, never a class's only example)
    held out by a fixed draw, so every run of the same data sees the same split."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = min(len(idx) - 1, max(1, int(round(test_fraction * len(idx)))))
        test += idx[:k].tolist()
        train += idx[k:].tolist()
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(test, dtype=np.int64))


def class_ids(values) -> tuple[np.ndarray, list]:
    """Labels (numbers or strings) -> class ids 0..K-1 in sorted label order, and the label of each id."""
    names, ids = np.unique(np.asarray(values), return_inverse=True)
    return ids.astype(np.int64), names.tolist()


def _split_column(frame: pd.DataFrame, what: str) -> pd.Series | None:
    col = {c.lower(): c for c in frame.columns}.get("split")
    if col is None:
        return None
    split = frame[col].astype(str).str.strip().str.lower()
    if not split.eq("train").any() or not split.eq("test").any():
        raise InputSpecError(f"{what}: the split column needs rows marked 'train' and rows marked 'test' "
                             f"(others, e.g. 'val', are not used); got {sorted(split.unique())[:5]}")
    return split


# ----------------------------------------------------------------------------- node classification (GraphMAE)


def read_node_dir(path: Path) -> tuple[torch.Tensor, torch.Tensor, pd.DataFrame]:
    """A node-classification graph in everyday files: ``(x [N, F] float, edge_index [2, E] undirected, nodes)``
    with ``nodes`` the rows of nodes.csv (``id``, ``label``, optional ``split``)."""
    what = f"--data {path}"
    if not path.is_dir() or not (path / "nodes.csv").is_file() or not (path / "edges.csv").is_file():
        raise InputSpecError(f"{what}: expected {NodeHooks.data_format}")
    nodes, edges = read_csv(path / "nodes.csv"), read_csv(path / "edges.csv")
    cols = {c.lower(): c for c in nodes.columns}
    if "id" not in cols or "label" not in cols:
        raise InputSpecError(f"{what}: nodes.csv needs columns 'id' and 'label' (then the features); "
                             f"got {list(nodes.columns)[:6]}")
    if nodes.empty:
        raise InputSpecError(f"{what}: nodes.csv has a header and no rows; expected one row per node")
    feat = [c for c in nodes.columns if c.lower() not in ("id", "label", "split")]
    if not feat:
        raise InputSpecError(f"{what}: nodes.csv has no feature columns (every column besides id, label, split)")
    try:
        x = nodes[feat].to_numpy(dtype=np.float32)
    except ValueError as e:
        raise InputSpecError(f"{what}: nodes.csv feature columns must be numbers ({e})") from None
    ids = nodes[cols["id"]]
    if ids.duplicated().any():
        raise InputSpecError(f"{what}: nodes.csv lists node id {ids[ids.duplicated()].iloc[0]!r} twice")
    ecols = {c.lower(): c for c in edges.columns}
    if "src" not in ecols or "dst" not in ecols:
        raise InputSpecError(f"{what}: edges.csv needs columns 'src' and 'dst' (node ids); got {list(edges.columns)[:4]}")
    pos = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    ends = []
    for end in ("src", "dst"):
        e = edges[ecols[end]]
        known = e.isin(pos.index)
        if not known.all():
            row = int(np.flatnonzero(~known.to_numpy())[0])
            raise InputSpecError(f"{what}: edges.csv row {row}: {end} {e.iloc[row]!r} is not an id of nodes.csv")
        ends.append(torch.from_numpy(pos[e.to_numpy()].to_numpy().astype(np.int64)))
    src, dst = ends
    ei = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # undirected
    ei = torch.unique(ei[:, ei[0] != ei[1]], dim=1)
    return torch.from_numpy(x), ei, nodes


def row_normalise(x: torch.Tensor, what: str) -> torch.Tensor:
    """The checkpoint's feature preprocessing (PyG ``NormalizeFeatures``): each row divided by its sum."""
    if bool((x < 0).any()):
        raise InputSpecError(f"{what}: node features must be non-negative (they are row-normalised to sum to 1, "
                             "as the checkpoint's bag-of-words features)")
    s = x.sum(1, keepdim=True)
    return x / s.clamp(min=1e-12) * (s > 0)


class NodeHooks(DownstreamHooks):
    """GraphMAE's GAT encoder: node ids in, the rows of the full-graph embedding out."""

    datasets = ("cora", "citeseer")
    data_format = ("a directory with nodes.csv (columns id, label, optional split = train / test, then one numeric "
                   "column per node feature; an empty label = an unlabelled node, still in the graph) and edges.csv "
                   "(columns src, dst: node ids; read as undirected)")
    epochs = 50
    lr = 1e-3
    batch_size = 512  # node ids per step; the whole graph is embedded for every step
    eval_batch_size = 1 << 30  # one full-graph pass embeds every node asked for

    def __init__(self):
        self.graph: PreparedGraph | None = None
        self._frozen = None  # (weakref to the model, its parameters' versions, its embedding) of the last no-grad pass

    def load(self, model, dataset, path):
        spec = getattr(model, "input_spec", None) or {}
        num_features = spec.get("num_features")
        if path is not None:
            x, ei, nodes = read_node_dir(path)
            what = f"--data {path}"
            validate_graph(x, ei, num_features, what)  # the checkpoint's feature count, named, before anything else
            x = row_normalise(x, what)
            label_col = {c.lower(): c for c in nodes.columns}["label"]
            labelled = np.flatnonzero(nodes[label_col].notna().to_numpy())
            if len(labelled) < 2:
                raise InputSpecError(f"{what}: nodes.csv needs labelled nodes (a non-empty label column)")
            y, names = class_ids(nodes[label_col].iloc[labelled].astype(str) if nodes[label_col].dtype == object
                                 else nodes[label_col].iloc[labelled])
            split = _split_column(nodes, what)
            if split is not None:
                part = split.iloc[labelled].to_numpy()
                train, test = np.flatnonzero(part == "train"), np.flatnonzero(part == "test")
                how = "train / test from the split column"
            else:
                train, test = stratified_holdout(y)
                how = f"a fixed stratified 80/20 draw of the labelled nodes (seed {SPLIT_SEED})"
            name, source = Path(path).name, str(path)
            notes = (f"transductive: all {x.shape[0]} nodes and {ei.shape[1]} directed edges are embedded; "
                     f"{len(labelled)} labelled nodes, {how}")
            train_items, test_items = labelled[train], labelled[test]
            ytr, yte = y[train], y[test]
        else:
            name = (dataset or self._default(num_features)).lower()
            g = load_planetoid({"cora": "Cora", "citeseer": "CiteSeer"}[name])
            x, ei = g.x, g.edge_index
            validate_graph(x, ei, num_features, f"{g.name}")
            y_all = g.y.numpy()
            train_items = np.flatnonzero(g.train_mask.numpy())
            test_items = np.flatnonzero(g.test_mask.numpy())
            ytr, yte, names = y_all[train_items], y_all[test_items], None
            source = f"Planetoid {g.name}, public split ({planetoid_root(None, g.name)})"
            notes = (f"transductive: all {g.num_nodes} nodes are embedded; train = the {len(train_items)} public "
                     f"training nodes, test = the {len(test_items)} public test nodes (the 500 validation nodes, "
                     "which the paper's probe uses for early stopping, are not used)")
        self.graph = PreparedGraph(x.float(), ei.long())
        n_classes = int(max(ytr.max(), yte.max())) + 1
        return Task(name, "classification", Split(train_items, ytr), Split(test_items, yte), n_outputs=n_classes,
                    metric="accuracy", source=source, class_names=names, notes=notes)

    @staticmethod
    def _default(num_features) -> str:
        return {3703: "citeseer"}.get(num_features, "cora")  # the Planetoid set with the checkpoint's feature count

    def collate(self, model, items):
        return torch.as_tensor(np.asarray(items, dtype=np.int64))

    def features(self, model, inputs):
        if self.graph is None:
            raise RuntimeError("NodeHooks.features before load(): the hooks hold the graph")
        if torch.is_grad_enabled() or model.training:
            return model.embed_prepared(self.graph)[inputs]
        # frozen passes (the train and test nodes of evaluate, a fine-tuned network's predictions) of unchanged
        # weights share one full-graph embedding; an optimiser step bumps the parameters' versions
        versions = tuple(t._version for t in (*model.parameters(), *model.buffers()))
        cached = self._frozen
        if cached is None or cached[0]() is not model or cached[1] != versions:
            cached = self._frozen = (weakref.ref(model), versions, model.embed_prepared(self.graph))
        return cached[2][inputs]


# ----------------------------------------------------------------------------- molecules (MolGIN)


FINETUNE_DROPOUT = 0.5  # the official fine-tuning recipe (GNN_graphpred, dropout_ratio 0.5)


class MoleculeHooks(DownstreamHooks):
    """The molecular GIN: featurised molecules in, mean-pooled atom representations out."""

    datasets = ("bbbp", "bace", "esol", "freesolv", "lipophilicity")  # the single-task MoleculeNet sets
    data_format = ("a CSV file with a SMILES column (named smiles, else the first column) and a label column (named "
                   "label, else the only other column); optional split column (train / test), else a scaffold split "
                   "80/10/10; text or integer labels = classification, other numbers = regression")
    epochs = 100  # the official recipe: 100 epochs, lr 1e-3, batch 32
    lr = 1e-3
    batch_size = 32
    eval_batch_size = 256

    def load(self, model, dataset, path):
        if path is not None:
            return self._load_csv(Path(path))
        name = (dataset or self.datasets[0]).lower()
        ds = load_moleculenet(name)
        y = ds.y[:, 0].numpy()
        keep = np.flatnonzero(~np.isnan(y))
        train, _, test = scaffold_split([ds.smiles[i] for i in keep], scaffolds=[ds.scaffolds[i] for i in keep])
        graphs = [ds.graphs[i] for i in keep]
        y = y[keep]
        kind = MOLECULENET[name][2]
        source = f"MoleculeNet {name} ({moleculenet_dir() / MOLECULENET[name][0]}; target {ds.tasks[0]})"
        notes = (f"scaffold split 80/10/10 (Hu et al. 2020): train = scaffold-train, test = scaffold-test (the valid "
                 f"part is not used); {len(ds.dropped_rows)} rows RDKit cannot parse dropped")
        return self._task(name, kind, graphs, y, train, test, source, notes)

    def _load_csv(self, path: Path) -> Task:
        what = f"--data {path}"
        if not path.is_file():
            raise InputSpecError(f"{what}: expected {self.data_format}")
        frame = read_csv(path)
        if frame.empty or not len(frame.columns):
            raise InputSpecError(f"{what}: expected {self.data_format}; got no rows (columns: {list(frame.columns)[:6]})")
        cols = {c.lower(): c for c in frame.columns}
        smiles_col = cols.get("smiles", frame.columns[0])
        rest = [c for c in frame.columns if c != smiles_col and c.lower() != "split"]
        label_col = cols.get("label", rest[0] if len(rest) == 1 else None)
        if label_col is None:
            raise InputSpecError(f"{what}: name the label column 'label' (columns: {list(frame.columns)[:6]})")
        # every row first, so that an InputSpecError names the row of the file (0-based, after the header)
        try:
            graphs, _, scaffolds = featurize(frame[smiles_col].tolist(), strict=True, with_scaffold=True)
        except InputSpecError as e:
            guess = "" if "smiles" in cols else " (no column is named 'smiles', so the first column is read as SMILES)"
            raise InputSpecError(f"{what}: column {smiles_col!r}{guess}, {e}") from None
        labelled = frame[label_col].notna().to_numpy()
        if not labelled.any():
            raise InputSpecError(f"{what}: the label column {label_col!r} is empty; expected a label on the molecules "
                                 "to train and test on")
        keep = np.flatnonzero(labelled)
        graphs, scaffolds = [graphs[i] for i in keep], [scaffolds[i] for i in keep]
        frame = frame[labelled].reset_index(drop=True)
        raw = frame[label_col]
        numeric = pd.api.types.is_numeric_dtype(raw)
        if numeric and not np.isfinite(raw.to_numpy(dtype=float)).all():
            row = int(np.flatnonzero(~np.isfinite(raw.to_numpy(dtype=float)))[0])
            raise InputSpecError(f"{what}: label {float(raw.iloc[row])} of molecule {frame[smiles_col].iloc[row]!r}; expected "
                                 "finite numbers (an empty cell marks an unlabelled molecule)")
        if numeric and not np.allclose(raw.to_numpy(dtype=float), np.round(raw.to_numpy(dtype=float))):
            kind, y, names = "regression", raw.to_numpy(dtype=np.float32), None
        else:
            kind = "classification"
            y, names = class_ids(raw.astype(str) if not numeric else raw.astype(np.int64))
        split = _split_column(frame, what)
        if split is not None:
            train, test = np.flatnonzero(split.eq("train")), np.flatnonzero(split.eq("test"))
            how = "train / test from the split column"
        else:
            train, _, test = scaffold_split(frame[smiles_col].tolist(), scaffolds=scaffolds)
            how = "scaffold split 80/10/10 (train / test; the valid part is not used)"
        notes = f"{len(frame)} labelled molecules ({int((~labelled).sum())} rows without a label dropped); {how}"
        return self._task(path.stem, kind, graphs, y, train, test, str(path), notes, names)

    @staticmethod
    def _task(name, kind, graphs, y, train, test, source, notes, names=None) -> Task:
        if not len(train) or not len(test):
            raise InputSpecError(f"{source}: the split leaves {len(train)} molecule(s) to train on and {len(test)} to test "
                                 f"on ({notes}); expected both parts non-empty: give more molecules (a scaffold split "
                                 "holds whole scaffold sets) or a split column")
        if kind == "classification":
            y = y.astype(np.int64)
            n_out, metric = int(y.max()) + 1, "accuracy"
        else:
            y = y.astype(np.float32)
            n_out, metric = 1, "rmse"
        return Task(name, kind, Split([graphs[i] for i in train], y[train]), Split([graphs[i] for i in test], y[test]),
                    n_outputs=n_out, metric=metric, source=source, class_names=names, notes=notes)

    def collate(self, model, items):
        return collate(list(items))

    def features(self, model, inputs):
        h = model(inputs["x"], inputs["edge_index"], inputs["edge_attr"])
        return model.pool(h, inputs["batch"], inputs["num_graphs"])

    def network(self, model, task, freeze):
        if not freeze:  # ``model`` is the caller's copy of the checkpoint
            model.drop_ratio = FINETUNE_DROPOUT
        return super().network(model, task, freeze)


# ----------------------------------------------------------------------------- graph classification (GraphMAEGIN)


class GraphHooks(DownstreamHooks):
    """Graph-level GraphMAE's GIN: TU graphs in, sum-pooled node representations out."""

    datasets = ("mutag",)
    data_format = ("a TU-format directory (Morris et al., TUDataset): NAME_A.txt, NAME_graph_indicator.txt, "
                   "NAME_graph_labels.txt, NAME_node_labels.txt; the node labels become one-hot features")
    epochs = 50
    lr = 1e-3
    batch_size = 32
    eval_batch_size = 256

    def load(self, model, dataset, path):
        spec = getattr(model, "input_spec", None) or {}
        if path is not None:
            path = Path(path)
            names = sorted(p.name[: -len("_A.txt")] for p in path.glob("*_A.txt")) if path.is_dir() else []
            if len(names) != 1:
                raise InputSpecError(f"--data {path}: expected {self.data_format} (found {len(names)} *_A.txt files)")
            name, graphs, source = names[0], load_tu(names[0], path), str(path)
        else:
            name = (dataset or self.datasets[0]).upper()
            graphs, source = load_tu(name), f"TUDataset {name} ({tu_dir(name)})"
        width, expected = graphs[0]["x"].shape[1], spec.get("num_features")
        if expected is not None and width != expected:
            raise InputSpecError(f"{source}: the node labels give {width} one-hot features; the checkpoint expects "
                                 f"{expected} (input_spec num_features)")
        y = np.asarray([g["y"] for g in graphs], dtype=np.int64)
        train, test = stratified_holdout(y)
        notes = (f"{len(graphs)} graphs, a fixed stratified 80/20 split (seed {SPLIT_SEED}); the paper's protocol "
                 "(10-fold SVM on all graphs) is the graphmae-mutag table")
        return Task(name.lower(), "classification", Split([graphs[i] for i in train], y[train]),
                    Split([graphs[i] for i in test], y[test]), n_outputs=int(y.max()) + 1, metric="accuracy",
                    source=source, notes=notes)

    def collate(self, model, items):
        return collate_tu(list(items))

    def features(self, model, inputs):
        return model.embed(inputs["x"], inputs["edge_index"], inputs["batch"], inputs["num_graphs"])
