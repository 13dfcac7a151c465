"""Official GraphMAE key layouts -> fmzoo models, on synthetic state dicts written with the official names."""
import pytest
import torch
from fmzoo.core import CheckpointError
from fmzoo.graph.models.gat import GraphIndex
from fmzoo.graph.models.gin import MolGIN
from fmzoo.graph.models.graphmae import GraphMAE
from fmzoo.graph.weights import (
    convert_official_chem_gin,
    convert_official_graphmae,
    load_official_chem_gin,
    load_official_graphmae,
)


def official_chem_state(num_layer=2, d=8, prefix=""):
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    sd = {"x_embedding1.weight": r(120, d), "x_embedding2.weight": r(3, d)}
    for i in range(num_layer):
        sd |= {f"gnns.{i}.mlp.0.weight": r(2 * d, d), f"gnns.{i}.mlp.0.bias": r(2 * d),
               f"gnns.{i}.mlp.2.weight": r(d, 2 * d), f"gnns.{i}.mlp.2.bias": r(d),
               f"gnns.{i}.edge_embedding1.weight": r(6, d), f"gnns.{i}.edge_embedding2.weight": r(3, d),
               f"batch_norms.{i}.weight": r(d), f"batch_norms.{i}.bias": r(d),
               f"batch_norms.{i}.running_mean": r(d), f"batch_norms.{i}.running_var": r(d).abs() + 0.5,
               f"batch_norms.{i}.num_batches_tracked": torch.tensor(7)}
    return {prefix + k: v for k, v in sd.items()}


def test_chem_gin_layout():
    sd = official_chem_state()
    m = MolGIN(num_layer=2, emb_dim=8)
    load_official_chem_gin(m, sd)
    assert torch.equal(m.gnns[1].mlp[2].weight, sd["gnns.1.mlp.2.weight"])
    assert torch.equal(m.batch_norms[0].running_var, sd["batch_norms.0.running_var"])
    # a GNN_graphpred state dict: encoder under gnn., head dropped
    gp = official_chem_state(prefix="gnn.") | {"graph_pred_linear.weight": torch.zeros(1, 8),
                                                "graph_pred_linear.bias": torch.zeros(1)}
    assert set(convert_official_chem_gin(gp)) == set(sd)
    with pytest.raises(CheckpointError, match="unexpected keys"):
        convert_official_chem_gin(sd | {"gnns.0.weird": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="does not fit"):
        load_official_chem_gin(MolGIN(num_layer=3, emb_dim=8), sd)


def official_node_state(branch: str, in_dim=12, hidden=8, heads=2):
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    c = hidden // heads
    fc, al, ar = ("lin_src.weight", "att_src", "att_dst") if branch == "pyg" else ("fc.weight", "attn_l", "attn_r")
    sd = {"enc_mask_token": r(1, in_dim), "encoder_to_decoder.weight": r(hidden, hidden)}
    dims = [(in_dim, c, heads), (hidden, c, heads)]
    for layer, (i, o, h) in enumerate(dims):
        p = f"encoder.gat_layers.{layer}."
        sd |= {p + fc: r(o * h, i), p + al: r(1, h, o), p + ar: r(1, h, o), p + "bias": r(o * h),
               p + "activation.weight": torch.tensor([0.3 + layer])}
        if branch == "pyg":
            sd[p + "lin_dst.weight"] = sd[p + fc]
    p = "decoder.gat_layers.0."
    sd |= {p + fc: r(in_dim, hidden), p + al: r(1, 1, in_dim), p + ar: r(1, 1, in_dim), p + "bias": r(in_dim)}
    if branch == "pyg":
        sd[p + "lin_dst.weight"] = sd[p + fc]
        sd["encoder.activation.weight"] = torch.tensor([0.25])  # unused module of the PyG GAT wrapper
        sd["decoder.activation.weight"] = torch.tensor([0.25])
    return sd


@pytest.mark.parametrize("branch", ["dgl", "pyg"])
def test_node_graphmae_layout(branch):
    sd = official_node_state(branch)
    m = GraphMAE(12, num_hidden=8, nhead=2).eval()
    load_official_graphmae(m, sd)
    fc = "lin_src.weight" if branch == "pyg" else "fc.weight"
    al = "att_src" if branch == "pyg" else "attn_l"
    assert torch.equal(m.encoder.layers[1].fc.weight, sd[f"encoder.gat_layers.1.{fc}"])
    assert torch.equal(m.encoder.layers[0].attn_src, sd[f"encoder.gat_layers.0.{al}"])
    assert m.encoder.layers[1].act.weight.item() == pytest.approx(1.3)
    assert torch.equal(m.decoder.layers[0].fc.weight, sd[f"decoder.gat_layers.0.{fc}"])
    # the loaded encoder computes the official GAT: check layer 0 by hand (single node with one neighbour)
    x = torch.rand(2, 12)
    ei = torch.tensor([[0, 1], [1, 0]])
    gi = GraphIndex.from_edge_index(ei, 2)
    W = sd[f"encoder.gat_layers.0.{fc}"]
    z = (x @ W.t()).view(2, 2, 4)
    a_s = (z * sd[f"encoder.gat_layers.0.{al}"]).sum(-1)
    a_d = (z * sd[f"encoder.gat_layers.0.{'att_dst' if branch == 'pyg' else 'attn_r'}"]).sum(-1)
    e = torch.nn.functional.leaky_relu(a_s[[0, 1]] + a_d[0], 0.2)  # messages 0->0 and 1->0
    att = e.softmax(0)
    out0 = (att.unsqueeze(-1) * z[[0, 1]]).sum(0).reshape(-1) + sd["encoder.gat_layers.0.bias"]
    out0 = torch.where(out0 > 0, out0, 0.3 * out0)
    assert torch.allclose(m.encoder.layers[0](x, gi)[0], out0, atol=1e-5)


def test_node_layout_rejects_foreign_keys():
    sd = official_node_state("dgl")
    with pytest.raises(CheckpointError, match="unexpected keys"):
        convert_official_graphmae(sd | {"encoder.something.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="does not fit"):
        load_official_graphmae(GraphMAE(13, num_hidden=8, nhead=2), sd)
