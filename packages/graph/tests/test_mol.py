import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.graph.data.molecules import collate, featurize, load_moleculenet
from fmzoo.graph.methods.graphmae_mol import mol_mae_loss
from fmzoo.graph.models.gin import MolGIN, MolGraphMAEDecoder, mask_atoms


def test_molgin_shapes_and_pooling():
    graphs, _ = featurize(["CCO", "c1ccccc1", "[Na+].[Cl-]"])
    b = collate(graphs)
    enc = MolGIN(num_layer=2, emb_dim=16).eval()
    h = enc(b["x"], b["edge_index"], b["edge_attr"])
    assert h.shape == (3 + 6 + 2, 16)
    g = enc.pool(h, b["batch"], b["num_graphs"])
    assert g.shape == (3, 16)
    assert torch.allclose(g[0], h[:3].mean(0), atol=1e-6)
    # batching does not change a molecule's embedding (eval mode)
    single = enc(graphs[1]["x"], graphs[1]["edge_index"], graphs[1]["edge_attr"])
    assert torch.allclose(single, h[3:9], atol=1e-5)


def test_mask_atoms_official_count():
    b = collate(featurize(["CCCCCCCCCC", "CCO"])[0])
    xm, masked = mask_atoms(b["x"], b["batch"], 2, 0.25)
    assert masked.numel() == int(10 * 0.25 + 1) + int(3 * 0.25 + 1)
    assert (xm[masked, 0] == 119).all() and (xm[masked, 1] == 0).all()


def test_mol_graphmae_learns(data_root):
    torch.manual_seed(0)
    ds = load_moleculenet("bace", root=data_root, max_rows=128)
    enc, dec = MolGIN(num_layer=2, emb_dim=32), MolGraphMAEDecoder(32, 119)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=3e-3)
    b = collate(ds.graphs)
    losses = []
    for _ in range(25):
        loss = mol_mae_loss(enc, dec, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:3]) / 3


def test_embed_smiles_bad_inputs():
    enc = MolGIN(num_layer=2, emb_dim=8)
    assert enc.embed_smiles(["CCO", "CCN"]).shape == (2, 8)
    with pytest.raises(InputSpecError, match="row 1: invalid SMILES"):
        enc.embed_smiles(["CCO", "C1CC"])
    with pytest.raises(InputSpecError, match=r"\[num_atoms, 2\]"):
        enc(torch.zeros(3, 5, dtype=torch.long), torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 2, dtype=torch.long))
    with pytest.raises(InputSpecError, match="atom type"):
        enc(torch.tensor([[130, 0]]), torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 2, dtype=torch.long))


def test_fast_paths_equal_the_plain_computation(data_root):
    """Pretraining's path (per-WL-colour layers, bond-code counts, masked-only decoder) computes the same loss and
    gradients as the official arithmetic of ``forward`` (every atom through every layer, one message per bond, the
    full decoder output indexed by the masked atoms), in float64."""
    import torch.nn.functional as F
    from fmzoo.graph.models.graphmae import sce_loss

    b = collate(load_moleculenet("bbbp", root=data_root, max_rows=64).graphs)
    torch.manual_seed(0)
    enc, dec = MolGIN(num_layer=3, emb_dim=24).double().train(), MolGraphMAEDecoder(24, 119).double().train()
    rows_seen = []  # layer 1 of the fast path: (distinct input rows, rows its MLP output is computed for)
    conv0 = enc.gnns[0]
    conv0.mlp_from_colours = lambda h, colour, k, g, rows=None, p=0: (
        rows_seen.append((k, g.n if rows is None else rows.numel())),
        type(conv0).mlp_from_colours(conv0, h, colour, k, g, rows, p))[1]
    start = {k: v.clone() for k, v in enc.state_dict().items()}

    def run(fast: bool):
        torch.manual_seed(1)
        enc.load_state_dict(start)  # same running statistics before each side
        enc.zero_grad(), dec.zero_grad()
        if fast:
            loss = mol_mae_loss(enc, dec, b)
        else:
            xm, masked = mask_atoms(b["x"], b["batch"], b["num_graphs"], 0.25)
            pred = dec(enc(xm, b["edge_index"], b["edge_attr"]), b["edge_index"], b["edge_attr"], masked)[masked]
            loss = sce_loss(F.one_hot(b["x"][masked, 0], num_classes=119).double(), pred, 1.0)
        loss.backward()
        return (loss.item(), {k: p.grad.clone() for k, p in [*enc.named_parameters(), *dec.named_parameters()]},
                {k: v.clone() for k, v in enc.named_buffers()})

    (lf, gf, bf), (lp, gp, bp) = run(True), run(False)
    del conv0.mlp_from_colours
    n = b["x"].shape[0]
    assert enc.padding() == 8  # the fast path carried 24 + 8 columns
    assert len(rows_seen) == 1 and rows_seen[0][0] < 0.05 * n and rows_seen[0][1] < 0.5 * n  # once per colour
    assert abs(lf - lp) < 1e-12
    for k in bp:  # running statistics (and num_batches_tracked) as the plain batch norm leaves them
        assert torch.allclose(bf[k].double(), bp[k].double(), rtol=0, atol=1e-12), k
    scale = max(g.abs().max().item() for g in gp.values())
    for k in gp:  # (the biases before batch norm have a zero gradient: both sides are rounding noise there)
        assert (gf[k] - gp[k]).abs().max().item() < 1e-10 * scale, k
    h = enc.eval()(b["x"], b["edge_index"], b["edge_attr"])
    masked = torch.arange(0, n, 3)
    full = dec(h, b["edge_index"], b["edge_attr"], masked)
    assert torch.allclose(dec.forward_masked(h, b["edge_index"], b["edge_attr"], masked), full[masked], atol=1e-12)
