"""Re-render the shipped cards with measured results: python render_cards.py reproduce_out/gpht-etth1.json"""
import json, sys
from pathlib import Path
from fmzoo.core.card import render_card
CK = Path(__file__).resolve().parents[1] / "src" / "fmzoo" / "timeseries" / "checkpoints"
res = json.loads(Path(sys.argv[1]).read_text())
by = {r["model"]: r for r in res["rows"]}
def results_for(prefix, setting):
    out = []
    for m in ("mse", "mae"):
        for h in ("96", "192", "336", "720", "avg"):
            r = by[f"{prefix}/{m}/{h}"]
            out.append({"metric": f"ETTh1 {m.upper()} H={h}", "value": r["ours"], "setting": setting})
    return out
quick = "fmzoo reproduce gpht-etth1 --quick: 256 evenly spaced ETTh1 test windows per horizon x 7 channels, input 336, normalized values, seed 0"
plan = {
  "gpht-mixed": [("GPHT-zero-ft", "no fine-tuning; " + quick), ("GPHT-heads-ft", "heads fine-tuned 150 x 64 windows; " + quick)],
  "gpht-etth1-scratch": [("GPHT-scratch", quick)],
}
plan["gpht-etth1-lr1e-3"] = [("GPHT", "fine-tuned checkpoint; " + quick)]
for name, items in plan.items():
    d = CK / name
    config = json.loads((d / "config.json").read_text())
    prov = json.loads((d / "provenance.json").read_text())
    card = dict(prov["recipe"].get("card", {}))
    card.setdefault("title", name)
    results = []
    for prefix, setting in items:
        results += results_for(prefix, setting)
    for ref in ("repeat-last", "DLinear-LS"):
        for h in ("avg",):
            results.append({"metric": f"ETTh1 MSE H={h} ({ref}, same run)", "value": by[f"{ref}/mse/{h}"]["ours"], "setting": quick})
    card["results"] = results
    card["limitations"] = (card.get("limitations", "") + " Measured honestly at this scale: after fine-tuning on ETTh1, "
        "the mixture-pretrained model (avg MSE %.4f) did not beat the same architecture trained from scratch on ETTh1 "
        "with the same number of steps (%.4f); it beats repeat-last (%.4f) and the DLinear-style baseline (%.4f)." % (
        by["GPHT/mse/avg"]["ours"], by["GPHT-scratch/mse/avg"]["ours"], by["repeat-last/mse/avg"]["ours"],
        by["DLinear-LS/mse/avg"]["ours"]))
    lim = card.get("limitations", "")
    if "small-scale cpu run" not in lim.lower():
        card["limitations"] = "This is a small-scale CPU run. " + lim
    (d / "README.md").write_text(render_card(config, card, prov))
    print("wrote", d / "README.md")
