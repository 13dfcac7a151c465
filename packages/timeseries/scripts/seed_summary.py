"""Mean ± std over seeds of the ETTh1 test MSE/MAE recorded by `fmzoo pretrain` runs (their recipe's evaluate block:
256 evenly spaced test windows per horizon x 7 channels, the same windows as `fmzoo reproduce gpht-etth1 --quick`).

    python seed_summary.py LABEL=RUN_OR_CHECKPOINT_DIR[,DIR...] [LABEL=...] [--json OUT.json]

Each DIR is a run directory (with metrics.json) or a checkpoint directory (with provenance.json).
"""
import json
import statistics
import sys
from pathlib import Path

H = ("96", "192", "336", "720")


def metrics(d: Path) -> dict:
    d = Path(d)
    if (d / "metrics.json").is_file():
        return json.loads((d / "metrics.json").read_text())
    prov = json.loads((d / "provenance.json").read_text())
    return {**prov["metrics"], "seed": prov["seeds"][0]}


def main(argv):
    out_json = None
    if "--json" in argv:
        i = argv.index("--json")
        out_json = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    summary = {}
    for arg in argv:
        label, dirs = arg.split("=", 1)
        runs = [metrics(Path(p)) for p in dirs.split(",")]
        entry = {}
        for m in ("mse", "mae"):
            per = {h: [r[f"ETTh1/{h}/{m}"] for r in runs] for h in H}
            per["avg"] = [sum(r[f"ETTh1/{h}/{m}"] for h in H) / len(H) for r in runs]
            entry[m] = {h: {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                            "values": v} for h, v in per.items()}
        val = [r["val_next_token_mse"]["ETTh1"] for r in runs if "val_next_token_mse" in r]
        entry["val_next_token_mse"] = val
        entry["n"] = len(runs)
        summary[label] = entry
        mse = entry["mse"]
        print(f"{label} (n={len(runs)}): MSE " + " / ".join(f"{mse[h]['mean']:.4f}±{mse[h]['std']:.4f}" for h in H)
              + f"  avg {mse['avg']['mean']:.4f}±{mse['avg']['std']:.4f}  per-seed avg "
              + ", ".join(f"{v:.4f}" for v in mse["avg"]["values"])
              + (f"  val {', '.join(f'{v:.4f}' for v in val)}" if val else ""))
    if out_json:
        Path(out_json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
