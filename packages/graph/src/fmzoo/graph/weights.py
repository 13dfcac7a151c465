"""Import state dicts laid out like the official GraphMAE code (THUDM/GraphMAE) into fmzoo models.

Only tensors are handled (load them yourself from a *safe* format, e.g. ``safetensors.torch.load_file``;
fmzoo never unpickles ``.pth`` files). Mappings:

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

import torch
from fmzoo.core import CheckpointError


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
