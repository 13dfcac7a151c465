"""GraphMAE pretraining on molecules (official ``chem/pretraining.py``): MolGIN encoder, [MASK]-atom masking
(``int(n * 0.25 + 1)`` atoms per molecule), decoder PReLU -> linear -> re-mask -> GIN layer to 119 atom types,
SCE (gamma = 1) against the one-hot atom type of the masked atoms; Adam lr 1e-3, weight decay 0, batch 256,
dropout 0. The paper pretrains on 2M ZINC15 molecules for 100 epochs; fmzoo's CPU-scale recipe uses the
MoleculeNet SMILES that are *not* in the downstream sets (see ``pretraining_smiles``) and a few epochs.
"""
from __future__ import annotations

import inspect
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from fmzoo.core.method import CORE_TRAIN_KEYS, Method, PretrainData

from ..data.molecules import collate, featurize, pretraining_smiles
from ..models.gin import MolGIN, MolGraphIndex, MolGraphMAEDecoder, mask_atoms
from ..models.graphmae import sce_loss
from ..spec import validate_mol_batch


def mol_mae_loss(encoder: MolGIN, decoder: MolGraphMAEDecoder, b: dict, mask_rate: float = 0.25,
                 alpha_l: float = 1.0) -> torch.Tensor:
    xm, masked = mask_atoms(b["x"], b["batch"], b["num_graphs"], mask_rate)
    validate_mol_batch(xm, b["edge_index"], b["edge_attr"])
    g = MolGraphIndex(b["edge_index"], b["edge_attr"], xm.shape[0])  # shared by encoder and decoder
    h, p = encoder.encode_padded(xm, g)  # h carries p zero columns (faster GEMMs), read as such by the decoder
    pred = decoder.masked_padded(h, masked, g, p)  # = decoder(encoder(xm, ...), ...)[masked]
    target = F.one_hot(b["x"][masked, 0], num_classes=119).float()
    return sce_loss(target, pred, alpha_l)


def _task_class():
    from fmzoo.core.training import SSLTask

    class MolGraphMAETask(SSLTask):
        def __init__(self, model: MolGIN, lr: float = 1e-3, weight_decay: float = 0.0, mask_rate: float = 0.25,
                     alpha_l: float = 1.0):
            super().__init__(model, lr=lr, weight_decay=weight_decay, schedule="constant")
            self.decoder = MolGraphMAEDecoder(model.emb_dim, 119)
            self.mask_rate, self.alpha_l = mask_rate, alpha_l

        def ssl_loss(self, batch):
            return {"loss": mol_mae_loss(self.model, self.decoder, batch, self.mask_rate, self.alpha_l)}

        def configure_optimizers(self):  # official: Adam (L2 decay 0), no schedule
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    return MolGraphMAETask


class _Graphs(torch.utils.data.Dataset):
    def __init__(self, graphs):
        self.graphs = graphs

    def __len__(self):
        return len(self.graphs)

    def __getitem__(self, i):
        return self.graphs[i]


class GraphMAEMol(Method):
    """Recipe ``method: graphmae-mol``: the MoleculeNet pretraining SMILES of the recipe's ``data`` section, or the
    user's SMILES CSV (``--data FILE``: a column named smiles, else the first column; other columns ignored)."""

    citation = "Hou et al., GraphMAE, KDD 2022; Hu et al., Strategies for Pre-training Graph Neural Networks, ICLR 2020."
    default_batch_size = 256
    default_epochs = 2
    # ``train.epochs`` is the length (the official name; ``max_epochs`` is not read)
    recipe_keys = {
        "model": tuple(inspect.signature(MolGIN).parameters),
        "train": ("epochs", "lr", "weight_decay", "mask_rate", "alpha_l",
                  *(k for k in CORE_TRAIN_KEYS if k != "max_epochs")),
        "data": ("sources", "exclude", "max_molecules"),
        "evaluate": (),
    }

    def max_epochs(self) -> int:
        return int(self.train_cfg.get("epochs", self.default_epochs))

    def data(self) -> PretrainData:
        from fmzoo.core import InputSpecError
        from fmzoo.core.runtime import generator

        from ..data.molecules import MOLECULENET, moleculenet_dir, read_csv

        cfg = self.recipe.get("data", {})
        t0 = time.time()
        if self.data_path is not None:
            path = self.data_path
            if not path.is_file():
                raise InputSpecError(f"--data {path}: expected a CSV file with a SMILES column (named smiles, else "
                                     "the first column)")
            frame = read_csv(path)
            col = {c.lower(): c for c in frame.columns}.get("smiles", frame.columns[0])
            smiles, files = frame[col].tolist(), [path]
        else:
            sources = list(cfg.get("sources", ["hiv", "toxcast", "lipophilicity", "esol", "freesolv"]))
            exclude = list(cfg.get("exclude", ["bbbp", "bace", "clintox", "tox21", "sider"]))
            smiles = pretraining_smiles(exclude=exclude, sources=sources)
            d = moleculenet_dir()
            files = [d / MOLECULENET[n][0] for n in sources + exclude]
        if cfg.get("max_molecules"):
            g = generator(self.seed)
            keep = torch.randperm(len(smiles), generator=g)[: int(cfg["max_molecules"])].sort().values.tolist()
            smiles = [smiles[i] for i in keep]
        # the user's file: a row RDKit cannot parse is an error naming the row; the MoleculeNet corpus skips them
        graphs, _ = featurize(smiles, strict=self.data_path is not None)
        self.prep_s = time.time() - t0
        desc = ""
        if self.data_path is not None:
            desc = (f"The user's SMILES file {self.data_path}: {len(graphs)} molecules"
                    + (f" (a seeded random subset of max_molecules {cfg['max_molecules']})" if cfg.get("max_molecules")
                       else "") + ", read as unlabelled molecules (other columns unused).")
        return PretrainData(_Graphs(graphs), files=files, description=desc, collate_fn=collate)

    def model(self, data: PretrainData) -> MolGIN:
        m = self.recipe.get("model", {})
        return MolGIN(int(m.get("num_layer", 5)), int(m.get("emb_dim", 300)), m.get("JK", "last"),
                      float(m.get("drop_ratio", 0.0)))

    def task(self, model, data: PretrainData, steps_per_epoch: int, max_epochs: int):
        tr = self.train_cfg
        self.epochs, self.steps_per_epoch = max_epochs, steps_per_epoch
        return _task_class()(model, float(tr.get("lr", 1e-3)), float(tr.get("weight_decay", 0.0)),
                             float(tr.get("mask_rate", 0.25)), float(tr.get("alpha_l", 1.0)))

    def loader(self, data: PretrainData, batch_size: int):
        # shuffled by the process's global generator (seeded by run_pretraining), as the official loader
        return torch.utils.data.DataLoader(data.dataset, batch_size=batch_size, shuffle=True, collate_fn=collate,
                                           num_workers=0)

    def fit(self, task, loader, max_epochs: int, trainer_kwargs: dict):
        self.trainer = super().fit(task, loader, max_epochs, trainer_kwargs)
        return self.trainer

    def evaluate(self, model, data: PretrainData) -> dict:
        from fmzoo.core.training import training_seconds

        return {"pretrain_molecules": len(data.dataset), "pretrain_epochs": self.epochs,
                "pretrain_steps": self.epochs * self.steps_per_epoch,
                "featurize_seconds": round(self.prep_s, 1), "pretrain_seconds": round(training_seconds(self.trainer), 1)}

    def card(self, data: PretrainData, metrics: dict) -> dict:
        card = mol_card(self.recipe, metrics)
        if self.data_path is not None:
            card["training_data"] = data.description
        return card

    def provenance(self, data: PretrainData) -> dict:
        from fmzoo.core import sha256_file

        return {"data_sha256": {Path(f).name: sha256_file(f) for f in data.files}}


def mol_card(recipe: dict, metrics: dict, results: list | None = None) -> dict:
    return {
        "title": f"GraphMAE molecular GIN encoder ({recipe.get('name', 'graphmae-mol')})",
        "summary": "A 5-layer GIN (300 hidden, Hu et al. 2020 atom/bond features) pretrained with GraphMAE's "
                   "masked-atom reconstruction (mask rate 0.25, re-mask, GIN decoder, SCE gamma 1). Small-scale CPU "
                   f"run: {metrics['pretrain_molecules']} molecules x {metrics['pretrain_epochs']} epochs "
                   "(the paper: 2M ZINC15 molecules x 100 epochs).",
        "intended_use": "Initialisation of molecular property predictors fine-tuned on small labelled sets "
                        "(SMILES -> fmzoo.graph.data.molecules.smiles_to_graph -> MolGIN).",
        "training_data": "Unlabelled SMILES of MoleculeNet HIV, ToxCast, Lipophilicity, ESOL and FreeSolv (chemprop "
                         "copies), deduplicated by canonical SMILES, minus every molecule occurring in BBBP, BACE, "
                         "ClinTox, Tox21 or SIDER (the downstream evaluation sets).",
        "results": (results or []) + [
            {"metric": "paper: fine-tuned ROC-AUC (scaffold split)", "value":
             "BBBP 72.0±0.6, Tox21 75.5±0.6, ToxCast 64.1±0.3, SIDER 60.3±1.1, ClinTox 82.3±1.2, MUV 76.3±2.4, "
             "HIV 77.2±1.0, BACE 83.1±0.9", "setting": "GraphMAE paper Table 4 (full training sets, ZINC-2M pretraining)"}],
        "citation": "Hou et al., GraphMAE, KDD 2022; Hu et al., Strategies for Pre-training Graph Neural Networks, ICLR 2020.",
        "license": "mit",
        "tags": ["graph", "molecules", "graphmae", "gin", "self-supervised"],
        "datasets": ["moleculenet"],
        "limitations": "Tiny pretraining budget compared with the paper; expect smaller gains than reported there.",
    }
