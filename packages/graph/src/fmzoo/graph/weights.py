"""Import state dicts laid out like the official GraphMAE code (THUDM/GraphMAE) into fmzoo models.

The weight format ``graphmae-chem-gin`` (``ChemGINRelease``) reads a released chem-GIN ``.pth`` file with
``fmzoo.core.weights.safe_torch_load`` (``torch.load(weights_only=True)``: tensors and plain containers only, no
code runs; a file holding anything else is refused), so ``fmzoo.core.from_pretrained("pretrained.pth")`` and
``fmzoo import pretrained.pth`` convert it; ``OFFICIAL`` lists the released files (GraphMAE's and the nine GIN
files of Hu et al.'s pretrain-gnns, which share the layout). The converter functions below take state dicts of
tensors. Mappings:

Molecular GIN (``chem/model.py: GNN``; the released ``chem/init_weights/pretrained.pth`` is this state dict,
a ``GNN_graphpred`` state dict has the same keys under ``gnn.``) -> ``MolGIN``: identical names::

    x_embedding1.weight [120, D], x_embedding2.weight [3, D]
    gnns.<i>.mlp.0.{weight [2D, D], bias}, gnns.<i>.mlp.2.{weight [D, 2D], bias}
    gnns.<i>.edge_embedding1.weight [6, D], gnns.<i>.edge_embedding2.weight [3, D]
    batch_norms.<i>.{weight, bias, running_mean, running_var, num_batches_tracked}

Node GraphMAE (``PreModel``) -> ``GraphMAE``, for both official branches:

=================================================  ===========================================
official (DGL ``main`` / PyG ``pyg`` branch)         fmzoo
=================================================  ===========================================
{encoder,decoder}.gat_layers.<l>.fc.weight          {encoder,decoder}.layers.<l>.fc.weight
  (pyg: ...lin_src.weight; its alias lin_dst.weight is dropped)
...gat_layers.<l>.attn_l (pyg: att_src)             ...layers.<l>.attn_src
...gat_layers.<l>.attn_r (pyg: att_dst)             ...layers.<l>.attn_dst
...gat_layers.<l>.bias                              ...layers.<l>.bias
...gat_layers.<l>.res_fc.weight                     ...layers.<l>.res_fc.weight
...gat_layers.<l>.activation.weight (PReLU)         ...layers.<l>.act.weight
...gat_layers.<l>.norm.*                            ...layers.<l>.norm.*
enc_mask_token, encoder_to_decoder.weight           same names
{encoder,decoder}.activation.weight (pyg; unused)   dropped
=================================================  ===========================================
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from fmzoo.core import CheckpointError
from fmzoo.core.weights import OfficialWeights, WeightFormat, pickle_head, safe_torch_load


def _strip(sd: dict, prefix: str) -> dict:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def convert_official_chem_gin(state_dict: dict) -> dict:
    """Official chem ``GNN`` / ``GNN_graphpred`` state dict -> ``MolGIN`` state dict."""
    sd = {k: v for k, v in state_dict.items() if torch.is_tensor(v)}
    sd = _strip(_strip(sd, "module."), "gnn.")
    if any(k.startswith("gnn.") for k in sd):  # graph-pred model: keep the encoder only
        sd = {k[4:]: v for k, v in sd.items() if k.startswith("gnn.")}
    pat = re.compile(r"^(x_embedding[12]\.weight|gnns\.\d+\.(mlp\.[02]\.(weight|bias)|edge_embedding[12]\.weight)|"
                     r"batch_norms\.\d+\.(weight|bias|running_mean|running_var|num_batches_tracked))$")
    unknown = [k for k in sd if not pat.match(k)]
    if unknown:
        raise CheckpointError(f"not an official GraphMAE/pretrain-gnns chem GIN state dict: unexpected keys {unknown[:5]}")
    for k in [k for k in sd if k.endswith(".running_mean")]:  # files of torch < 0.4.1 have no counter (unused in eval)
        sd.setdefault(k.replace("running_mean", "num_batches_tracked"), torch.tensor(0))
    return dict(sd)


_NODE_RULES = [
    (re.compile(r"^(encoder|decoder)\.gat_layers\.(\d+)\.(fc|lin_src)\.weight$"), r"\1.layers.\2.fc.weight"),
    (re.compile(r"^(encoder|decoder)\.gat_layers\.(\d+)\.(attn_l|att_src)$"), r"\1.layers.\2.attn_src"),
    (re.compile(r"^(encoder|decoder)\.gat_layers\.(\d+)\.(attn_r|att_dst)$"), r"\1.layers.\2.attn_dst"),
    (re.compile(r"^(encoder|decoder)\.gat_layers\.(\d+)\.bias$"), r"\1.layers.\2.bias"),
    (re.compile(r"^(encoder|decoder)\.gat_layers\.(\d+)\.res_fc\.weight$"), r"\1.layers.\2.res_fc.weight"),
    (re.compile(r"^(encoder|decoder)\.gat_layers\.(\d+)\.activation\.weight$"), r"\1.layers.\2.act.weight"),
    (re.compile(r"^(encoder|decoder)\.gat_layers\.(\d+)\.norm\.(.+)$"), r"\1.layers.\2.norm.\3"),
    (re.compile(r"^(enc_mask_token|encoder_to_decoder\.weight)$"), r"\1"),
]
_NODE_DROP = [re.compile(r"^(encoder|decoder)\.gat_layers\.\d+\.lin_dst\.weight$"),
              re.compile(r"^(encoder|decoder)\.activation\.weight$"),
              re.compile(r"^(encoder|decoder)\.head\..*$")]


def convert_official_graphmae(state_dict: dict) -> dict:
    """Official node-level ``PreModel`` state dict (DGL main or PyG branch) -> ``GraphMAE`` state dict."""
    sd = _strip({k: v for k, v in state_dict.items() if torch.is_tensor(v)}, "module.")
    out, unknown = {}, []
    for k, v in sd.items():
        if any(p.match(k) for p in _NODE_DROP):
            if k.endswith("lin_dst.weight"):
                src = k.replace("lin_dst", "lin_src")
                if src in sd and not torch.equal(sd[src], v):
                    raise CheckpointError(f"{k} differs from {src}: a bipartite GAT, which GraphMAE does not use")
            continue
        for pat, rep in _NODE_RULES:
            if pat.match(k):
                out[pat.sub(rep, k)] = v
                break
        else:
            unknown.append(k)
    if unknown:
        raise CheckpointError(f"not an official GraphMAE PreModel state dict: unexpected keys {unknown[:5]}")
    return out


def load_official_graphmae(model, state_dict: dict) -> None:
    """Strictly load an official node-level state dict into a ``GraphMAE`` built with matching arguments."""
    _strict_load(model, convert_official_graphmae(state_dict))


def load_official_chem_gin(model, state_dict: dict) -> None:
    _strict_load(model, convert_official_chem_gin(state_dict))


def _strict_load(model, sd: dict) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    bad = [f"{k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or extra or bad:
        raise CheckpointError(f"official state dict does not fit {type(model).__name__}: missing {missing[:5]}, "
                              f"unexpected {extra[:5]}, shape mismatches {bad[:5]}")
    model.load_state_dict(sd, strict=True)


# ------------------------------------------------------------------------------------------- weight format




_CHEM_MARKERS = (b"x_embedding1.weight", b"x_embedding2.weight", b"gnns.0.mlp.0.weight", b"edge_embedding1.weight",
                 b"batch_norms.0.running_mean")


def _state_dict(obj) -> dict:
    """The tensors of a loaded release: the dict itself, or a checkpoint's ``state_dict`` / ``model`` entry."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                return obj[key]
        return obj
    raise CheckpointError(f"expected a state dict (a dict of tensors), the file holds a {type(obj).__name__}")


class ChemGINRelease(WeightFormat):
    """The molecular GIN of Hu et al. 2020 (``pretrain-gnns chem/model.py: GNN``, ``gnn_type="gin"``) as released by
    GraphMAE (``chem/init_weights/pretrained.pth``) and pretrain-gnns (``chem/model_gin/*.pth``): a ``GNN``
    ``state_dict()`` (a ``GNN_graphpred`` one is accepted too: its encoder under ``gnn.``, the head dropped).
    Depth and width are read from the tensors (the releases: 5 layers x 300); ``JK`` cannot be (option, default
    ``"last"``, every release's setting). Exact: the same tensors, the same computation (tested against a
    torch-geometric ``MessagePassing`` reference of the official module)."""

    name = "graphmae-chem-gin"
    input = "molecules (SMILES) -> Hu et al. atom/bond types (119 atoms, chirality; 4 bond types, direction)"
    architecture = "MolGIN"
    description = ("a .pth/.pt file holding the state_dict of the chem GIN of Hu et al. 2020 (keys x_embedding1/2, "
                   "gnns.<i>.mlp.{0,2}, gnns.<i>.edge_embedding1/2, batch_norms.<i>): GraphMAE chem/init_weights/"
                   "pretrained.pth, pretrain-gnns chem/model_gin/*.pth")
    pickle_allow = ()  # tensors in an (Ordered)dict: nothing beyond torch.load(weights_only=True)'s own list

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_file():
            return False
        if path.suffix == ".safetensors":
            from fmzoo.core.weights import state_dict_keys

            try:
                keys = " ".join(state_dict_keys(path)).encode()
            except Exception:
                return False
        else:
            keys = pickle_head(path)
        return all(m in keys for m in _CHEM_MARKERS)

    def convert(self, path: Path, JK: str = "last", **options):
        from .models.gin import MolGIN

        if options:
            raise CheckpointError(f"{self.name}: unknown options {sorted(options)} (known: JK)")
        path = Path(path)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = safe_torch_load(path, allow=self.pickle_allow)
        sd = convert_official_chem_gin(_state_dict(obj))
        if "x_embedding1.weight" not in sd or "batch_norms.0.weight" not in sd:
            raise CheckpointError(f"{str(path)!r}: not a chem GIN state dict (no x_embedding1 / batch_norms.0 tensors)")
        num_layer = len({k.split(".")[1] for k in sd if k.startswith("batch_norms.")})
        emb_dim = int(sd["x_embedding1.weight"].shape[1])
        model = MolGIN(num_layer=num_layer, emb_dim=emb_dim, JK=JK, drop_ratio=0.0)
        _strict_load(model, sd)
        model.input_spec = dict(model.input_spec, release=(
            "Hu et al. 2020 simplified features (RDKit): atom [atomic number - 1, chirality tag], bond [type, "
            "direction], two directed edges per bond; the GIN adds one self loop per atom (bond type 4); "
            "graph embedding = mean of the atom representations (GNN_graphpred graph_pooling='mean')"))
        return model.eval()


_GIN_PARAMS = "1.86M"  # 5 layers x 300: embeddings 36.9k + 5 x (MLP 360.9k + edge embeddings 2.7k + batch norm 0.6k)
_PRETRAIN_GNNS = "https://github.com/snap-stanford/pretrain-gnns/blob/master/chem/model_gin/{}.pth"
_HU_CITATION = ("Hu, Liu, Gomes, Zitnik, Liang, Pande, Leskovec. Strategies for Pre-training Graph Neural Networks. "
                "ICLR 2020.")
_PRETRAIN_GNNS_FILES = {  # file stem -> what the GIN was pre-trained with (pretrain-gnns README / chem scripts)
    "contextpred": "self-supervised Context Prediction on 2M ZINC15 molecules",
    "masking": "self-supervised Attribute Masking on 2M ZINC15 molecules",
    "edgepred": "self-supervised Edge Prediction on 2M ZINC15 molecules",
    "infomax": "self-supervised Deep Graph Infomax on 2M ZINC15 molecules",
    "supervised": "supervised graph-level multi-task pre-training on the 456k ChEMBL molecules, no node-level step",
    "supervised_contextpred": "Context Prediction, then supervised graph-level pre-training on ChEMBL",
    "supervised_masking": "Attribute Masking, then supervised graph-level pre-training on ChEMBL",
    "supervised_edgepred": "Edge Prediction, then supervised graph-level pre-training on ChEMBL",
    "supervised_infomax": "Deep Graph Infomax, then supervised graph-level pre-training on ChEMBL",
}

_SHORT = {"contextpred": "ContextPred", "masking": "AttrMasking", "edgepred": "EdgePred", "infomax": "Infomax",
          "supervised": "Supervised"}
_SHORT |= {f"supervised_{k}": f"{v} + Supervised" for k, v in list(_SHORT.items())[:4]}

OFFICIAL = [
    OfficialWeights(
        id="THUDM/graphmae-chem", method="GraphMAE (chem GIN)", format="graphmae-chem-gin",
        source="https://github.com/THUDM/GraphMAE/blob/main/chem/init_weights/pretrained.pth", license="MIT",
        params=_GIN_PARAMS, hf_repo=None, files=("chem/init_weights/pretrained.pth",),
        citation="Hou, Liu, Cen, Dong, Yang, Wang, Tang. GraphMAE: Self-Supervised Masked Graph Autoencoders. KDD 2022.",
        notes="GIN (5 layers, 300 dims) of Hu et al. 2020 pre-trained with GraphMAE's masked atom-type "
              "reconstruction on 2M ZINC15 molecules; the paper's Table 4 fine-tunes it (chem/finetune.sh)."),
    *[OfficialWeights(
        id=f"snap-stanford/pretrain-gnns-gin-{stem.replace('_', '-')}", method=f"Hu et al. GIN ({_SHORT[stem]})",
        format="graphmae-chem-gin", source=_PRETRAIN_GNNS.format(stem), license="MIT", params=_GIN_PARAMS,
        hf_repo=None, files=(f"chem/model_gin/{stem}.pth",), citation=_HU_CITATION,
        notes=f"GIN (5 layers, 300 dims), {what}.") for stem, what in _PRETRAIN_GNNS_FILES.items()],
]
