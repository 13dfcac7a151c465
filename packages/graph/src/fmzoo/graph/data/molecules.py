"""Molecules as graphs with RDKit. Two featurisations, chosen with ``features=`` wherever SMILES are featurised
(``smiles_to_graph``, ``smiles_to_data``, ``featurize``, ``load_moleculenet``):

``features="hu"`` (the default): the molecular transfer setting of Hu et al. (ICLR 2020), which GraphMAE's chem
experiments use unchanged and the only one ``MolGIN`` (its shipped and official checkpoints) takes.
Atom features: [atom type index (atomic number - 1, 0..117; 119 = [MASK] during pretraining), chirality tag
(0 unspecified, 1 CW, 2 CCW; any other tag -> 0)]. Bond features: [bond type (0 single, 1 double, 2 triple,
3 aromatic; 4 = self loop, 5 = masked), bond direction (0 none, 1 end-up-right, 2 end-down-right; others -> 0)].
Every bond becomes two directed edges, in RDKit's bond order.

``features="ogb"``: the 9 atom / 3 bond features of the OGB molecule datasets with torch_geometric's vocabularies,
the ids of ``torch_geometric.utils.from_smiles`` (its ``x_map`` / ``e_map``): atom [atomic number (0..118),
chirality tag (9 RDKit tags), total degree (0..10), formal charge (-5..6 -> 0..11), total H count (0..8), radical
electrons (0..4), hybridisation (UNSPECIFIED, S, SP, SP2, SP3, SP3D, SP3D2, OTHER), aromatic, in a ring], bond
[bond type (RDKit's 22 types, SINGLE = 1, AROMATIC = 12), stereo (NONE, ANY, Z, E, CIS, TRANS), conjugated]; two
directed edges per bond, sorted by (source, target) as ``from_smiles`` sorts them. These are PyG's ids, not those of
``ogb.utils.smiles2graph`` (same properties, other tables: atomic number - 1, a "misc" id for values outside the
table, stereo in another order, bonds unsorted). Where ``from_smiles`` raises (a value outside its tables, e.g. RDKit's
SP2D hybridisation or an atropisomer bond) this raises ``InputSpecError`` naming the atom or bond; where it returns an
empty graph (a SMILES RDKit cannot parse) this raises too.

Readers of the MoleculeNet CSVs (chemprop copies under ``graphs/moleculenet``): SMILES in column 0, one column
per task, empty = missing label. ``featurize(..., strict=True)`` raises ``InputSpecError`` naming the row of
the first SMILES RDKit cannot parse; dataset loaders use ``strict=False`` and drop such rows (as the
MoleculeNet loaders of Hu et al. do), reporting how many were dropped.
"""
from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fmzoo.core import InputSpecError

NUM_ATOM_TYPE = 120  # 118 elements + (index 118 unused) + [MASK] = 119
MASK_ATOM = 119
NUM_CHIRALITY = 3
NUM_BOND_TYPE = 6  # 4 bond types + self loop (4) + masked (5)
NUM_BOND_DIR = 3
SELF_LOOP_BOND = 4

#: the featurisations of ``features=``: "hu" (Hu et al. 2020, what MolGIN takes) and "ogb" (PyG's ``from_smiles``)
FEATURES = ("hu", "ogb")

# features="ogb": one vocabulary per feature, in torch_geometric.utils.smiles' x_map / e_map order (the id is the
# position of the RDKit value; tests/test_molecule_features.py checks these against the installed torch_geometric)
OGB_ATOM_VOCAB = {
    "atomic_num": tuple(range(0, 119)),
    "chirality": ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER", "CHI_TETRAHEDRAL",
                  "CHI_ALLENE", "CHI_SQUAREPLANAR", "CHI_TRIGONALBIPYRAMIDAL", "CHI_OCTAHEDRAL"),
    "degree": tuple(range(0, 11)),
    "formal_charge": tuple(range(-5, 7)),
    "num_hs": tuple(range(0, 9)),
    "num_radical_electrons": tuple(range(0, 5)),
    "hybridization": ("UNSPECIFIED", "S", "SP", "SP2", "SP3", "SP3D", "SP3D2", "OTHER"),
    "is_aromatic": (False, True),
    "is_in_ring": (False, True),
}
OGB_BOND_VOCAB = {
    "bond_type": ("UNSPECIFIED", "SINGLE", "DOUBLE", "TRIPLE", "QUADRUPLE", "QUINTUPLE", "HEXTUPLE", "ONEANDAHALF",
                  "TWOANDAHALF", "THREEANDAHALF", "FOURANDAHALF", "FIVEANDAHALF", "AROMATIC", "IONIC", "HYDROGEN",
                  "THREECENTER", "DATIVEONE", "DATIVE", "DATIVEL", "DATIVER", "OTHER", "ZERO"),
    "stereo": ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS"),
    "is_conjugated": (False, True),
}
NUM_OGB_ATOM_FEATURES, NUM_OGB_BOND_FEATURES = len(OGB_ATOM_VOCAB), len(OGB_BOND_VOCAB)  # 9, 3
_OGB_IDS = {k: {v: i for i, v in enumerate(vocab)} for k, vocab in (*OGB_ATOM_VOCAB.items(), *OGB_BOND_VOCAB.items())}

MOLECULENET = {  # name -> (file, task columns or None for all, kind)
    "bbbp": ("BBBP.csv", None, "classification"),
    "bace": ("bace.csv", None, "classification"),
    "clintox": ("clintox.csv", None, "classification"),
    "tox21": ("tox21.csv", None, "classification"),
    "sider": ("sider.csv", None, "classification"),
    "toxcast": ("toxcast.csv.gz", None, "classification"),
    "hiv": ("HIV.csv.gz", None, "classification"),
    "esol": ("delaney.csv", None, "regression"),
    "freesolv": ("freesolv.csv", None, "regression"),
    "lipophilicity": ("lipo.csv", None, "regression"),
}


def _rdkit():
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    return Chem


def check_features(features) -> str:
    """``features`` if it names a featurisation of this module, else an InputSpecError naming the choices."""
    if features not in FEATURES:
        raise InputSpecError(f"features={features!r}: expected one of {' | '.join(map(repr, FEATURES))} ('hu': Hu et "
                             "al. 2020, what MolGIN takes; 'ogb': torch_geometric.utils.from_smiles' 9 atom / 3 bond "
                             "features)")
    return features


def _ogb_id(feature: str, value, what: str) -> int:
    try:
        return _OGB_IDS[feature][value]
    except KeyError:
        vocab = OGB_ATOM_VOCAB.get(feature) or OGB_BOND_VOCAB[feature]
        shown = f"{vocab[0]}..{vocab[-1]}" if isinstance(vocab[0], int) and not isinstance(vocab[0], bool) \
            else ", ".join(map(str, vocab))
        raise ValueError(f"{what} has {feature} {value!r}, outside the 'ogb' (torch_geometric from_smiles) table "
                         f"[{shown}]") from None


def mol_to_graph_ogb(mol) -> dict:
    """An RDKit molecule -> {"x": [n, 9], "edge_index": [2, 2b], "edge_attr": [2b, 3]}, the ids of
    ``torch_geometric.utils.from_rdmol`` (module docstring); ValueError naming an atom / bond outside its tables."""
    atoms = []
    for a in mol.GetAtoms():
        what = f"atom {a.GetIdx()} ({a.GetSymbol()})"
        atoms.append((
            _ogb_id("atomic_num", a.GetAtomicNum(), what),
            _ogb_id("chirality", a.GetChiralTag().name, what),
            _ogb_id("degree", a.GetTotalDegree(), what),
            _ogb_id("formal_charge", a.GetFormalCharge(), what),
            _ogb_id("num_hs", a.GetTotalNumHs(), what),
            _ogb_id("num_radical_electrons", a.GetNumRadicalElectrons(), what),
            _ogb_id("hybridization", a.GetHybridization().name, what),
            int(a.GetIsAromatic()),
            int(a.IsInRing()),
        ))
    if not atoms:
        raise ValueError("molecule has no atoms")
    n = len(atoms)
    edges = {}  # source * n + target -> ((source, target), features): from_smiles sorts the edges by this key
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        what = f"bond {b.GetIdx()} ({i}-{j})"
        f = (_ogb_id("bond_type", b.GetBondType().name, what), _ogb_id("stereo", b.GetStereo().name, what),
             int(b.GetIsConjugated()))
        edges[i * n + j] = ((i, j), f)
        edges[j * n + i] = ((j, i), f)
    ordered = [edges[k] for k in sorted(edges)]
    x = torch.tensor(atoms, dtype=torch.long)
    ei = torch.tensor([e for e, _ in ordered], dtype=torch.long).t().reshape(2, -1)
    ea = torch.tensor([f for _, f in ordered], dtype=torch.long).reshape(-1, NUM_OGB_BOND_FEATURES)
    return {"x": x, "edge_index": ei, "edge_attr": ea}


def mol_to_graph(mol, features: str = "hu") -> dict:
    """An RDKit molecule -> graph dict in the featurisation ``features`` ("hu" or "ogb", module docstring)."""
    if check_features(features) == "ogb":
        return mol_to_graph_ogb(mol)
    Chem = _rdkit()
    chir = {Chem.rdchem.ChiralType.CHI_UNSPECIFIED: 0, Chem.rdchem.ChiralType.CHI_TETRAHEDRAL_CW: 1,
            Chem.rdchem.ChiralType.CHI_TETRAHEDRAL_CCW: 2}
    bt = {Chem.rdchem.BondType.SINGLE: 0, Chem.rdchem.BondType.DOUBLE: 1, Chem.rdchem.BondType.TRIPLE: 2,
          Chem.rdchem.BondType.AROMATIC: 3}
    bd = {Chem.rdchem.BondDir.NONE: 0, Chem.rdchem.BondDir.ENDUPRIGHT: 1, Chem.rdchem.BondDir.ENDDOWNRIGHT: 2}
    atoms = []
    for a in mol.GetAtoms():
        z = a.GetAtomicNum()
        if not 1 <= z <= 118:
            raise ValueError(f"atom {a.GetIdx()} has atomic number {z} (dummy/query atom); expected 1..118")
        atoms.append((z - 1, chir.get(a.GetChiralTag(), 0)))
    if not atoms:
        raise ValueError("molecule has no atoms")
    edges, attrs = [], []
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        t = bt.get(b.GetBondType())
        if t is None:
            raise ValueError(f"bond {b.GetIdx()} has unsupported type {b.GetBondType()}")
        f = (t, bd.get(b.GetBondDir(), 0))
        edges += [(i, j), (j, i)]
        attrs += [f, f]
    x = torch.tensor(atoms, dtype=torch.long)
    ei = torch.tensor(edges, dtype=torch.long).t().reshape(2, -1)
    ea = torch.tensor(attrs, dtype=torch.long).reshape(-1, 2)
    return {"x": x, "edge_index": ei, "edge_attr": ea}


def smiles_to_graph(smiles: str, row: int | None = None, features: str = "hu") -> dict:
    """One SMILES -> {"x": [n, 2], "edge_index": [2, 2b], "edge_attr": [2b, 2]} (long tensors; ``features="ogb"``:
    x [n, 9], edge_attr [2b, 3], the ids of ``torch_geometric.utils.from_smiles``)."""
    check_features(features)
    where = f"row {row}: " if row is not None else ""
    if not isinstance(smiles, str) or not smiles.strip():
        raise InputSpecError(f"{where}empty or non-string SMILES {smiles!r}")
    Chem = _rdkit()
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise InputSpecError(f"{where}invalid SMILES {smiles!r} (RDKit cannot parse it)")
    try:
        return mol_to_graph(mol, features)
    except ValueError as e:
        raise InputSpecError(f"{where}SMILES {smiles!r}: {e}") from None


def smiles_to_data(smiles: str, features: str = "hu"):
    """One SMILES -> ``torch_geometric.data.Data`` (x, edge_index, edge_attr, smiles): the official
    ``mol_to_graph_data_obj_simple`` layout, or with ``features="ogb"`` what ``torch_geometric.utils.from_smiles``
    gives."""
    from ..pyg import to_data

    data = to_data(smiles_to_graph(smiles, features=features))
    data.smiles = smiles
    return data


def featurize(smiles, strict: bool = True, with_scaffold: bool = False, features: str = "hu"):
    """Graphs of a list of SMILES (``features``: "hu" or "ogb", module docstring); returns (graphs, kept row
    indices[, scaffolds]). strict: a bad row raises."""
    check_features(features)
    Chem = _rdkit()
    graphs, kept, scaffolds = [], [], []
    for i, s in enumerate(smiles):
        try:
            if not isinstance(s, str) or not s.strip():
                raise InputSpecError(f"row {i}: empty or non-string SMILES {s!r}")
            mol = Chem.MolFromSmiles(s)
            if mol is None:
                raise InputSpecError(f"row {i}: invalid SMILES {s!r} (RDKit cannot parse it)")
            try:
                graphs.append(mol_to_graph(mol, features))
            except ValueError as e:
                raise InputSpecError(f"row {i}: SMILES {s!r}: {e}") from None
            kept.append(i)
            if with_scaffold:
                from rdkit.Chem.Scaffolds import MurckoScaffold

                scaffolds.append(MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True))
        except InputSpecError:
            if strict:
                raise
    return (graphs, kept, scaffolds) if with_scaffold else (graphs, kept)


@dataclass
class MolDataset:
    name: str
    smiles: list[str]
    graphs: list[dict]
    y: torch.Tensor  # [n, tasks] float, NaN = missing
    tasks: list[str]
    kind: str
    dropped_rows: list[int] = field(default_factory=list)
    scaffolds: list[str] = field(default_factory=list)
    features: str = "hu"  # the featurisation of ``graphs`` ("hu" or "ogb", module docstring)

    def __len__(self):
        return len(self.graphs)

    def to_pyg(self) -> list:
        """One ``torch_geometric.data.Data`` per molecule: x, edge_index, edge_attr, y [1, tasks] (NaN = missing),
        smiles."""
        from ..pyg import to_data

        out = []
        for g, y, s in zip(self.graphs, self.y, self.smiles, strict=True):
            d = to_data(g)
            d.y, d.smiles = y[None], s
            out.append(d)
        return out


def moleculenet_dir(root: Path | None = None) -> Path:
    if root is None:
        from fmzoo.core import data_root

        root = data_root()
    root = Path(root)
    for cand in (root / "graphs" / "moleculenet", root / "moleculenet", root):
        if (cand / "BBBP.csv").exists():
            return cand
    raise InputSpecError(f"MoleculeNet CSVs (BBBP.csv, ...) not found under {root}")


def read_csv(path: Path) -> pd.DataFrame:
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return pd.read_csv(io.BytesIO(fh.read()))
        return pd.read_csv(path)
    except (OSError, EOFError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputSpecError(f"cannot read {path}: {type(e).__name__}: {e}") from None


def load_moleculenet(name: str, root: Path | None = None, max_rows: int | None = None, features: str = "hu",
                     as_data: bool = False):
    """A MoleculeNet set (``MOLECULENET``) featurised as ``features`` ("hu" or "ogb"): a ``MolDataset``, or with
    ``as_data=True`` its ``to_pyg()`` list of ``torch_geometric.data.Data``. Rows RDKit cannot parse are dropped."""
    check_features(features)
    key = name.lower()
    if key not in MOLECULENET:
        raise InputSpecError(f"unknown MoleculeNet set {name!r}; expected one of {sorted(MOLECULENET)}")
    fname, cols, kind = MOLECULENET[key]
    df = read_csv(moleculenet_dir(root) / fname)
    if max_rows is not None:
        df = df.iloc[:max_rows]
    tasks = cols or list(df.columns[1:])
    smiles = df.iloc[:, 0].astype(str).tolist()
    graphs, kept, scaffolds = featurize(smiles, strict=False, with_scaffold=True, features=features)
    y = torch.tensor(df[tasks].to_numpy(dtype=np.float64), dtype=torch.float32)[kept]
    dropped = sorted(set(range(len(smiles))) - set(kept))
    ds = MolDataset(key, [smiles[i] for i in kept], graphs, y, tasks, kind, dropped, scaffolds, features)
    return ds.to_pyg() if as_data else ds


# ------------------------------------------------------------------ batching
def collate(graphs: list[dict]) -> dict:
    """Disjoint union of molecule graphs: x, edge_index (offset), edge_attr, batch vector, num_graphs."""
    xs, eis, eas, bs = [], [], [], []
    off = 0
    for i, g in enumerate(graphs):
        n = g["x"].shape[0]
        xs.append(g["x"])
        eis.append(g["edge_index"] + off)
        eas.append(g["edge_attr"])
        bs.append(torch.full((n,), i, dtype=torch.long))
        off += n
    return {"x": torch.cat(xs), "edge_index": torch.cat(eis, 1), "edge_attr": torch.cat(eas),
            "batch": torch.cat(bs), "num_graphs": len(graphs)}


# ------------------------------------------------------------------ scaffold split
def scaffold(smiles: str) -> str:
    from rdkit.Chem.Scaffolds import MurckoScaffold

    return MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=True)


def scaffold_split(smiles: list[str], frac_train: float = 0.8, frac_valid: float = 0.1,
                   scaffolds: list[str] | None = None):
    """Deterministic Bemis-Murcko scaffold split (Hu et al.): scaffold sets sorted by (size, first index)
    descending fill train, then valid, then test. Returns (train, valid, test) index arrays."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(smiles):
        groups.setdefault(scaffolds[i] if scaffolds else scaffold(s), []).append(i)
    sets = sorted(groups.values(), key=lambda idx: (len(idx), idx[0]), reverse=True)
    n = len(smiles)
    train, valid, test = [], [], []
    for idx in sets:
        if len(train) + len(idx) > frac_train * n:
            if len(train) + len(valid) + len(idx) > (frac_train + frac_valid) * n:
                test += idx
            else:
                valid += idx
        else:
            train += idx
    return tuple(np.array(sorted(part), dtype=np.int64) for part in (train, valid, test))


def canonical(smiles: str) -> str | None:
    Chem = _rdkit()
    m = Chem.MolFromSmiles(smiles)
    return None if m is None else Chem.MolToSmiles(m)


def pretraining_smiles(exclude: list[str] = ("bbbp", "bace", "clintox", "tox21", "sider"),
                       sources: list[str] = ("hiv", "toxcast", "lipophilicity", "esol", "freesolv"),
                       root: Path | None = None) -> list[str]:
    """Unlabelled pretraining molecules: every parseable SMILES of ``sources``, deduplicated (canonical
    SMILES), minus any molecule that occurs in the downstream sets ``exclude`` (no test-set leakage)."""
    d = moleculenet_dir(root)
    banned = set()
    for name in exclude:
        for s in read_csv(d / MOLECULENET[name][0]).iloc[:, 0].astype(str):
            c = canonical(s)
            if c:
                banned.add(c)
    out, seen = [], set()
    for name in sources:
        for s in read_csv(d / MOLECULENET[name][0]).iloc[:, 0].astype(str):
            c = canonical(s)
            if c and c not in seen and c not in banned:
                seen.add(c)
                out.append(c)
    return out
