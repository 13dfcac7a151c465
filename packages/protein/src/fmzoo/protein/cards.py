"""Render the shipped card of fmzoo/tape-transformer-small from ``fmzoo reproduce`` results (weights untouched).

    python -m fmzoo.protein.cards /tmp/pr6/tape-ss-cb513.json /tmp/pr6/tape-gb1.json \
        (the card is the checkpoint's README.md; `fmzoo card fmzoo/tape-transformer-small` prints it)

The card text is the ``card:`` block of the committed recipe (recipes/tape-transformer-small.yaml); it is also
stored in provenance.json ``card``, so ``fmzoo card --results`` re-renders the same text (with one table's rows).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHIPPED_DIR = Path(__file__).parent / "checkpoints" / "tape-transformer-small"


def render_shipped_card(results: list[dict], ckpt_dir: str | Path = SHIPPED_DIR, card: dict | None = None) -> str:
    """Re-render ``ckpt_dir``'s README.md: held-out MLM rows from provenance, then the rows of each reproduce
    result. Only README.md and provenance.json (``card`` and ``evaluations``) change; weights and config do not."""
    from fmzoo.core.card import refresh_card

    from .methods.mlm import CITATION

    ckpt_dir = Path(ckpt_dir)
    prov = json.loads((ckpt_dir / "provenance.json").read_text())
    if card is None:
        from fmzoo.core import load_recipe

        card = load_recipe("tape-transformer-small")["card"]
    card = dict(card)
    card.setdefault("citation", CITATION)
    held = prov["metrics"]
    n_val = prov["recipe"].get("data", {}).get("val_sequences", 300)
    rows = [
        {"metric": "held-out MLM perplexity", "value": f"{held['perplexity']:.3f}",
         "setting": f"{n_val} held-out FLIP train proteins, 15% masking, {held['masked_tokens']} masked tokens"},
        {"metric": "held-out masked-token accuracy", "value": f"{held['masked_accuracy']:.4f}", "setting": "same"},
    ]
    card["results"] = rows
    return refresh_card(ckpt_dir, results, card=card)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="fmzoo reproduce JSON files (tape-ss-cb513.json, tape-gb1.json)")
    ap.add_argument("--checkpoint", default=str(SHIPPED_DIR))
    ap.add_argument("--write", metavar="PATH", help="also write the card to PATH (e.g. a copy for a paper's supplement)")
    args = ap.parse_args(argv)
    text = render_shipped_card([json.loads(Path(p).read_text()) for p in args.results], args.checkpoint)
    if args.write:
        Path(args.write).write_text(text)
    print(f"rendered {args.checkpoint}/README.md" + (f" and {args.write}" if args.write else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
