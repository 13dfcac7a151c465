"""Re-render a checkpoint's card with downstream results measured after pretraining (weights unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

from fmzoo.core import from_pretrained, load_recipe, publish_run


def republish_with_results(ckpt_dir: str | Path, results: list[dict], recipe_name: str) -> Path:
    """``results``: [{metric, value, setting}] appended to the card; card text comes from the committed recipe."""
    ckpt_dir = Path(ckpt_dir)
    prov = json.loads((ckpt_dir / "provenance.json").read_text())
    model = from_pretrained(ckpt_dir)
    card = dict(load_recipe(recipe_name).get("card", {}))
    card.setdefault("title", f"TAPE transformer ({recipe_name})")
    from .methods.mlm import CITATION

    card.setdefault("citation", CITATION)
    held = prov["metrics"]
    card["results"] = [
        {"metric": "held-out MLM perplexity", "value": f"{held['perplexity']:.3f}",
         "setting": f"300 held-out FLIP train proteins, 15% masking, {held['masked_tokens']} masked tokens"},
        {"metric": "held-out masked-token accuracy", "value": f"{held['masked_accuracy']:.4f}", "setting": "same"},
        *results,
    ]
    prov.pop("created_utc", None)
    return publish_run(model, ckpt_dir, card=card, provenance=prov)
