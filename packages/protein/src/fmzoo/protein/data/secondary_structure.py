"""Secondary-structure data: FLIP's NetSurfP-2.0 training proteins (3-state) and CB513 (3/8-state).

Label ids: 3-state H=0, E=1, C=2 (TAPE's ``ss3`` order); 8-state G H I B E S T C = 0..7 (TAPE's
``ss8`` order, DSSP letters as in NetSurfP-2.0). Residues excluded from evaluation get -1 (TAPE's
``ignore_index``): FLIP ``mask.fasta`` 0, CB513 ``disorder`` 0 (NetSurfP/TAPE evaluation mask).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fmzoo.core import InputSpecError, data_root

from .fasta import read_fasta

SS3 = "HEC"
SS8 = "GHIBESTC"


@dataclass
class SSRecord:
    id: str
    sequence: str
    ss3: np.ndarray  # int64, -1 = not evaluated
    ss8: np.ndarray | None
    split: str  # train / valid / test


def _labels(letters: str, alphabet: str, where: str) -> np.ndarray:
    lut = {c: i for i, c in enumerate(alphabet)}
    try:
        return np.array([lut[c] for c in letters], dtype=np.int64)
    except KeyError as exc:
        raise InputSpecError(f"{where}: label {exc.args[0]!r} is not one of {alphabet!r}") from None


def load_flip_ss(root: str | Path | None = None) -> list[SSRecord]:
    root = Path(root) if root else data_root() / "proteins" / "flip_secondary_structure"
    seqs = {rid: s for rid, _, s in read_fasta(root / "sequences.fasta")}
    masks = {rid: s for rid, _, s in read_fasta(root / "mask.fasta")}
    out = []
    for rid, desc, lab in read_fasta(root / "sampled.fasta"):
        if rid not in seqs or rid not in masks:
            lacking = " and ".join(f for f, d in (("sequences.fasta", seqs), ("mask.fasta", masks)) if rid not in d)
            raise InputSpecError(f"{str(root)!r}: the labels of {rid!r} (sampled.fasta) have no record in {lacking}; "
                                 "expected every labelled id in sequences.fasta and mask.fasta")
        seq, mask = seqs[rid], masks[rid]
        if not (len(seq) == len(lab) == len(mask)):
            raise InputSpecError(f"{rid!r}: sequence/labels/mask lengths differ ({len(seq)}/{len(lab)}/{len(mask)})")
        y = _labels(lab, SS3, rid)
        y[np.frombuffer(mask.encode(), dtype=np.uint8) != ord("1")] = -1
        split = "test" if "SET=test" in desc else ("valid" if "VALIDATION=True" in desc else "train")
        out.append(SSRecord(rid, seq, y, None, split))
    return out


def load_cb513(root: str | Path | None = None) -> list[SSRecord]:
    root = Path(root) if root else data_root() / "proteins" / "cb513"
    path = root / "CB513_HHblits.csv"
    out = []
    with path.open() as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = next(reader)
        if header[:4] != ["input", "dssp3", "dssp8", "disorder"]:
            raise InputSpecError(f"{str(path)!r}: unexpected header {header}")
        for i, row in enumerate(reader):
            seq, s3, s8, dis = row[0].split(), row[1].split(), row[2].split(), row[3].split()
            if not (len(seq) == len(s3) == len(s8) == len(dis)):
                raise InputSpecError(f"{str(path)!r} row {i}: token counts differ")
            y3, y8 = _labels("".join(s3), SS3, f"CB513 row {i}"), _labels("".join(s8), SS8, f"CB513 row {i}")
            keep = np.array([float(d) for d in dis]) > 0.5
            y3[~keep] = -1
            y8[~keep] = -1
            out.append(SSRecord(f"cb513_{i}", "".join(seq), y3, y8, "test"))
    return out
