"""GraphMAE pretraining on molecules (official ``chem/pretraining.py``): MolGIN encoder, [MASK]-atom masking
(``int(n * 0.25 + 1)`` atoms per molecule), decoder PReLU -> linear -> re-mask -> GIN layer to 119 atom types,
SCE (gamma = 1) against the one-hot atom type of the masked atoms; Adam lr 1e-3, weight decay 0, batch 256,
dropout 0. The paper pretrains on 2M ZINC15 molecules for 100 epochs; fmzoo's CPU-scale recipe uses the
MoleculeNet SMILES that are *not* in the downstream sets (see ``pretraining_smiles``) and a few epochs.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.molecules import collate, featurize, pretraining_smiles
from ..models.gin import MolGIN, MolGraphMAEDecoder, mask_atoms
from ..models.graphmae import sce_loss


def mol_mae_loss(encoder: MolGIN, decoder: MolGraphMAEDecoder, b: dict, mask_rate: float = 0.25,
                 alpha_l: float = 1.0) -> torch.Tensor:
    xm, masked = mask_atoms(b["x"], b["batch"], b["num_graphs"], mask_rate)
    h = encoder(xm, b["edge_index"], b["edge_attr"])
    pred = decoder(h, b["edge_index"], b["edge_attr"], masked)
    target = F.one_hot(b["x"][masked, 0], num_classes=119).float()
    return sce_loss(target, pred[masked], alpha_l)


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


def pretrain_loader(graphs, batch_size: int, trainer_kwargs: dict) -> tuple[torch.utils.data.DataLoader, int]:
    """``(loader, optimizer steps per epoch)``. ``batch_size`` is the recipe's global batch: the loader holds this
    process's share, the steps per epoch count global batches (last one partial, as the official loader)."""
    from fmzoo.core.training import per_device_batch

    loader = torch.utils.data.DataLoader(_Graphs(graphs), batch_size=per_device_batch(batch_size, trainer_kwargs),
                                         shuffle=True, collate_fn=collate, num_workers=0)
    return loader, math.ceil(len(graphs) / batch_size)


def pretrain(recipe: dict, run_dir: Path, trainer_kwargs: dict) -> Path:
    """Recipe entry point (``method: graphmae-mol``); returns ``run_dir/checkpoint`` (the MolGIN encoder)."""
    from fmzoo.core import publish_run, sha256_file
    from fmzoo.core.runtime import generator
    from fmzoo.core.training import fit, training_seconds

    from ..data.molecules import MOLECULENET, moleculenet_dir

    run_dir = Path(run_dir)
    seed = int(recipe.get("seed", 0))  # run_pretraining has seeded the process and set the recipe's threads
    data = recipe.get("data", {})
    sources = list(data.get("sources", ["hiv", "toxcast", "lipophilicity", "esol", "freesolv"]))
    exclude = list(data.get("exclude", ["bbbp", "bace", "clintox", "tox21", "sider"]))
    t0 = time.time()
    smiles = pretraining_smiles(exclude=exclude, sources=sources)
    if data.get("max_molecules"):
        g = generator(seed)
        keep = torch.randperm(len(smiles), generator=g)[: int(data["max_molecules"])].sort().values.tolist()
        smiles = [smiles[i] for i in keep]
    graphs, _ = featurize(smiles, strict=False)
    prep_s = time.time() - t0
    m = recipe.get("model", {})
    model = MolGIN(int(m.get("num_layer", 5)), int(m.get("emb_dim", 300)), m.get("JK", "last"),
                   float(m.get("drop_ratio", 0.0)))
    tr = recipe.get("train", {})
    task = _task_class()(model, float(tr.get("lr", 1e-3)), float(tr.get("weight_decay", 0.0)),
                         float(tr.get("mask_rate", 0.25)), float(tr.get("alpha_l", 1.0)))
    kw = dict(trainer_kwargs)
    loader, steps_per_epoch = pretrain_loader(graphs, int(tr.get("batch_size", 256)), kw)
    epochs = int(kw.pop("max_epochs", None) or tr.get("epochs", 2))
    trainer = fit(task, loader, run_dir, max_epochs=epochs, **kw)
    train_s = training_seconds(trainer)
    model.eval()
    d = moleculenet_dir()
    files = [d / MOLECULENET[n][0] for n in sources + exclude]
    metrics = {"pretrain_molecules": len(graphs), "pretrain_epochs": epochs,
               "pretrain_steps": epochs * steps_per_epoch,
               "featurize_seconds": round(prep_s, 1), "pretrain_seconds": round(train_s, 1)}
    card = mol_card(recipe, metrics)
    prov = {"recipe": recipe, "seed": seed, "metrics": metrics, "data_files": [str(f) for f in files],
            "data_sha256": {f.name: sha256_file(f) for f in files}}
    return publish_run(model, run_dir / "checkpoint", card=card, provenance=prov, trainer=trainer)


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
