"""Paper tables as data: run one, print ours beside the paper's, write JSON and a PNG."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from .evaluation import mean_std
from .registry import load_table, table_runner, tables

ROW_KEYS = ("model", "init", "metric", "higher_is_better", "ours", "std", "seeds", "paper", "paper_source")
INITS = ("scratch", "pretrained", "reference")


def _paper_row(table: dict, model: str, init: str, metric: str | None = None) -> dict:
    """The YAML row of the same model and init (and metric, where the YAML row names one)."""
    for row in table.get("rows", []):
        if row.get("model") == model and row.get("init") == init:
            if metric is None or row.get("metric") in (None, metric):
                return row
    return {}


def per_seed(seeds, fn) -> list:
    """``[fn(seed) for seed in seeds]``, each call after ``seed_everything(seed)``: how a table runner repeats a
    protocol over seeds (the core seeds; a runner never calls torch.manual_seed itself)."""
    from .runtime import seed_everything

    out = []
    for seed in seeds:
        seed_everything(int(seed))
        out.append(fn(seed))
    return out


def make_row(table: dict, model: str, init: str, values, seeds, note: str = "", metric: str | None = None,
             higher_is_better: bool | None = None, **extra) -> dict:
    """One result row: our mean ± std over seeds beside the paper's value for the same model+init."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    values = [float(v) for v in values]
    if any(math.isnan(v) for v in values):
        raise ValueError(f"{model} ({init}): a seed produced NaN")
    mean, std = mean_std(values)
    paper = _paper_row(table, model, init, metric)
    row = {
        "model": model,
        "init": init,
        "metric": metric or paper.get("metric") or table["metric"],
        "higher_is_better": bool(table.get("higher_is_better", True) if higher_is_better is None else higher_is_better),
        "ours": mean,
        "std": std,
        "seeds": list(seeds),
        "values": values,
        "paper": paper.get("paper"),
        "paper_std": paper.get("paper_std"),
        "paper_source": paper.get("paper_source"),
    }
    if note or paper.get("note"):
        row["note"] = note or paper.get("note")
    row.update(extra)
    return row


def _fmt(v, std=None) -> str:
    if v is None:
        return "—"
    s = f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    if std:
        s += f" ± {std:.4f}" if abs(std) < 10 else f" ± {std:.2f}"
    return s


def format_table(result: dict) -> str:
    head = f"{result['table']} ({result['setting']}): {result.get('title', '')}"
    rows = [("model", "init", "metric", "ours (mean ± std, seeds)", "paper", "paper source")]
    for r in result["rows"]:
        rows.append((
            r["model"], r["init"], r["metric"] + (" ↑" if r["higher_is_better"] else " ↓"),
            f"{_fmt(r['ours'], r['std'])} (n={len(r['seeds'])})",
            _fmt(r["paper"], r.get("paper_std")), r.get("paper_source") or "",
        ))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [head]
    for i, row in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_table(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(6, 1.1 * len(rows) + 2), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = [r for r in rows if r["metric"] == metric]
        labels = [f"{r['model']}\n{r['init']}" for r in sub]
        xs = range(len(sub))
        ax.bar([x - 0.2 for x in xs], [r["ours"] for r in sub], 0.4, yerr=[r["std"] for r in sub], label="ours", capsize=3)
        paper = [r["paper"] if r["paper"] is not None else 0 for r in sub]
        if any(r["paper"] is not None for r in sub):
            ax.bar([x + 0.2 for x in xs], paper, 0.4, label="paper", alpha=0.7)
        ax.set_xticks(list(xs), labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(metric)
        ax.legend(fontsize=7)
    fig.suptitle(f"{result['table']} ({result['setting']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def validate_result(result: dict) -> None:
    for r in result["rows"]:
        missing = [k for k in ROW_KEYS if k not in r]
        if missing:
            raise ValueError(f"{result['table']}: row {r.get('model')} lacks {missing}")
        if r["init"] not in INITS:
            raise ValueError(f"{result['table']}: row {r['model']} has init {r['init']!r}")


def table_threads(table: dict) -> int:
    """The CPU threads a table runs with (its ``threads``): fixed so that its numbers do not change with the
    machine's core count (summation order, and so the last digits of full-batch training, depends on it)."""
    threads = table.get("threads")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"{table['table']}: 'threads' must be a positive integer (the CPU threads its numbers "
                         f"were measured with), got {threads!r}")
    return threads


def reproduce(name: str, quick: bool = False, out_dir: str | Path = "reproduce_out", echo=print, smoke: bool = False) -> dict:
    """Run a table. ``smoke``: the quick protocol on a sliver of the data (every runner takes ``smoke=``), seconds
    long, so CI runs every runner; its rows have the table's shape and mean nothing (setting "smoke")."""
    quick = quick or smoke
    table = load_table(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runner = table_runner(table.get("runner", name))
    start = time.perf_counter()
    from .runtime import threads

    with threads(table_threads(table)):  # restored afterwards: it must not leak into the next table of `--all`
        rows = runner(table, quick, out_dir, smoke=True) if smoke else runner(table, quick, out_dir)
    result = {
        "table": name,
        "title": table.get("title", ""),
        "setting": "smoke" if smoke else "quick" if quick else "full",
        "rows": rows,
        "seconds": round(time.perf_counter() - start, 1),
        "notes": table.get("notes", ""),
    }
    validate_result(result)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_table(result, out_dir / f"{name}.png")
    echo(format_table(result))
    echo(f"wrote {out_dir / (name + '.json')} and {out_dir / (name + '.png')} in {result['seconds']} s\n")
    return result


def all_tables() -> list[str]:
    return list(tables())
