"""Ship a run's checkpoint inside the package and (re)write its model card with measured results.

    python -m fmzoo.remotesensing.publish RUN_CHECKPOINT_DIR NAME [--results reproduce_out/a.json ...]

copies config.json / model.safetensors / provenance.json into
``src/fmzoo/remotesensing/checkpoints/NAME`` (weights unchanged: the sha256 in config.json is checked),
renders README.md from the recipe's card plus every row of the given reproduce JSON files that
concerns NAME (the card lives with the checkpoint: `fmzoo card fmzoo/NAME`).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from fmzoo.core.card import render_card
from fmzoo.core.hub import sha256_file

HERE = Path(__file__).parent
LIMITATIONS = (
    "Small-scale CPU run on 2 shared cores. Evaluated only on the EuroSAT RGB 5-class subset (Forest, "
    "Industrial, Pasture, Residential, River), not on the 10-class or 13-band EuroSAT, nor BigEarthNet. "
    "The multispectral stage saw a single 101x100 px Sentinel-2 patch (5 dates): it exercises the SoftCon "
    "objective on real 13-band data but cannot be expected to reproduce the paper's transfer. The 8-bit "
    "RGB product is a declared conversion (absent bands = their mean), not what the model was trained on "
    "in its last stage."
)
LIMITATIONS_RGB = (
    "Small-scale CPU run on 2 shared cores (3 epochs). A stand-in for the natural-image (ImageNet/DINO) "
    "weights SoftCon starts from: it saw only the EuroSAT RGB 5-class train split (labels unused), so "
    "features evaluated on the same subset's test split are in-domain. Not evaluated on the 10-class EuroSAT."
)
PAPER = (
    "SoftCon (Wang et al. 2024, official README zhu-xlab/softcon): RN50 multispectral EuroSAT linear 98.6, "
    "BigEarthNet-10% linear 84.8 mAP; ViT-S/14 97.1 / 85.0. Corley et al. 2023 (arXiv:2305.13456): ImageNet "
    "ResNet-50 EuroSAT kNN 65.8 (64 px, ÷255), 82.9 (64 px, standardized), 69.1 (224 px, ÷255), 91.9 "
    "(224 px, standardized). Different models, data and scale: context only."
)


def results_from(json_files, name: str) -> list[dict]:
    out = []
    for f in json_files:
        res = json.loads(Path(f).read_text())
        for r in res["rows"]:
            if not r["model"].startswith(name + " |") or r["init"] != "pretrained":
                continue
            setting = f"{res['table']} ({res['setting']}): {r['model'].split(' | ', 1)[1]}; seeds {r['seeds']}"
            if r.get("note"):
                setting += f"; {r['note']}"
            value = f"{r['ours']:.2f}" + (f" ± {r['std']:.2f}" if r["std"] else "")
            out.append({"metric": r["metric"], "value": value, "setting": setting})
    return out


def ship(run_ckpt: str | Path, name: str, results_json=()) -> Path:
    src = Path(run_ckpt)
    config = json.loads((src / "config.json").read_text())
    if sha256_file(src / "model.safetensors") != config["weights_sha256"]:
        raise ValueError(f"{src}: weights do not match config.json")
    prov = json.loads((src / "provenance.json").read_text())
    dst = HERE / "checkpoints" / name
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors", "provenance.json"):
        if (dst / f).resolve() != (src / f).resolve():
            shutil.copyfile(src / f, dst / f)
    card = dict(prov.get("recipe", {}).get("card", {}))
    card.setdefault("title", name)
    card["tags"] = [t for t in card.get("tags", []) if t != "self-supervised"]  # the core adds it
    card["results"] = results_from(results_json, name)
    card["paper_results"] = PAPER
    card["limitations"] = LIMITATIONS if len(config["init_args"]["bands"]) > 3 else LIMITATIONS_RGB
    metrics = prov.get("metrics", {})
    from .methods.softcon import describe_data

    base_desc = prov.get("training_data") or describe_data(prov["recipe"]["data"])
    card["training_data"] = base_desc + (
        f"\n\nPretraining run: {metrics.get('steps')} steps in {metrics.get('train_seconds')} s "
        f"({metrics.get('images_per_second')} scenes/s on a shared 2-core CPU), seed {prov.get('seed')}"
        + (f", continued from {prov['init_from']}" if prov.get("init_from") else "") + "."
    )
    text = render_card(config, card, prov)
    (dst / "README.md").write_text(text)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_checkpoint")
    ap.add_argument("name")
    ap.add_argument("--results", nargs="*", default=[])
    args = ap.parse_args()
    print(ship(args.run_checkpoint, args.name, args.results))


if __name__ == "__main__":
    main()
