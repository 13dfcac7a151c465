"""Zero-shot variant scoring with a masked LM: no labels, the pretrained model alone.

Masked marginal (Meier et al., 2021, "Language models enable zero-shot prediction of the effects of mutations on
protein function", ESM-1v): the wild type with every position that any variant changes replaced by ``<mask>``
goes through the model once; a variant's score is the sum, over the positions where it differs from the wild
type, of ``log p(variant residue) - log p(wild-type residue)`` at that masked position (log-softmax over the
whole vocabulary). Higher = the model finds the variant more plausible than the wild type.
"""

from __future__ import annotations

import numpy as np
import torch
from fmzoo.core import InputSpecError

from ..spec import MASK_ID, TAPETokenizer


@torch.no_grad()
def masked_marginal_scores(model, wild_type: str, variants: list[str]) -> np.ndarray:
    """One score per variant (same length as ``wild_type``, substitutions only); ``model`` has ``mlm_logits``."""
    tok = TAPETokenizer()
    wt = tok.residue_ids(wild_type)
    var = np.stack([_same_length(tok, wild_type, v) for v in variants]) if variants else np.zeros((0, len(wt)), int)
    changed = np.flatnonzero((var != wt).any(0))
    if changed.size == 0:
        return np.zeros(len(variants))
    ids = torch.as_tensor(tok.encode(wild_type))[None]
    ids[0, changed + 1] = MASK_ID  # +1: <cls> comes first
    model.eval()
    h, _ = model.embed(ids, torch.ones_like(ids))
    logp = torch.log_softmax(model.mlm_logits(h)[0, changed + 1].float(), dim=-1).numpy()  # (n_changed, vocab)
    table = logp - logp[np.arange(changed.size), wt[changed]][:, None]  # log-odds vs the wild-type residue
    rows = np.arange(changed.size)
    return np.array([table[rows, v[changed]].sum() for v in var])


def _same_length(tok: TAPETokenizer, wild_type: str, variant: str) -> np.ndarray:
    if len(variant) != len(wild_type):
        raise InputSpecError(f"variant of length {len(variant)} vs wild type of length {len(wild_type)}: masked-marginal "
                             "scoring takes substitutions only (no insertions or deletions)")
    return tok.residue_ids(variant)
