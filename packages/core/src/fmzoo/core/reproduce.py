"""Paper tables as data: run one, print ours beside the paper's, write JSON and a PNG."""

from __future__ import annotations

import json
import math
import sys
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


def per_seed(seeds, fn, desc: str = "seeds") -> list:
    """``[fn(seed) for seed in seeds]``, each call after ``seed_everything(seed)``: how a table runner repeats a
    protocol over seeds (the core seeds; a runner never calls torch.manual_seed itself). On a terminal a progress
    bar (stderr) counts the seeds; the bar draws no random numbers."""
    from tqdm.auto import tqdm

    from .runtime import seed_everything

    seeds = list(seeds)
    out = []
    for seed in tqdm(seeds, desc=desc, leave=False, file=sys.stderr, disable=None if len(seeds) > 1 else True):
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
    digits = 4 if abs(v) < 10 else 2  # a std is shown to the decimals of its mean
    s = f"{v:.{digits}f}"
    if std:
        s += f" ± {std:.{digits}f}"
    return s


SETTINGS = {"quick": "quick: the shipped checkpoint, a short protocol (minutes on a laptop CPU)",
            "full": "full: the paper's protocol, pretraining included",
            "smoke": "smoke: a seconds-long check of the runner on a sliver of the data; the numbers mean nothing"}


def _ours(r: dict) -> str:
    n = len(r["seeds"])
    return f"{_fmt(r['ours'], r['std'] or 0.0)}" + ("" if r["std"] else " ± 0") + f" (n={n})" if n > 1 \
        else f"{_fmt(r['ours'])} (n=1)"


def _wrap(text: str, indent: str = "  ", width: int = 118) -> list[str]:
    import textwrap

    return textwrap.wrap(" ".join(str(text).split()), width=width, initial_indent=indent,
                         subsequent_indent=" " * len(indent))


def format_table(result: dict) -> str:
    """Ours beside the paper's, for a terminal: the setting and caveats first, one line per row (under ~120
    characters), paper sources and row notes as numbered footnotes."""
    lines = [f"{result['table']}: {result.get('title', '')}".rstrip(": ")]
    lines += _wrap(SETTINGS.get(result["setting"], result["setting"]), indent="  setting: ")
    if result.get("notes"):
        lines += _wrap(result["notes"], indent="  caveats: ")
    notes: list[str] = []

    def ref(text):
        if not text:
            return ""
        if text not in notes:
            notes.append(text)
        return f"[{notes.index(text) + 1}]"

    rows = [("model", "init", "metric", "ours (mean ± std, n seeds)", "paper", "")]
    for r in result["rows"]:
        paper = _fmt(r["paper"], r.get("paper_std")) if r.get("paper") is not None else "—"
        marks = " ".join(m for m in (ref(r.get("paper_source")), ref(r.get("note"))) if m)
        rows.append((r["model"], r["init"], r["metric"] + (" ↑" if r["higher_is_better"] else " ↓"), _ours(r), paper,
                     marks))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for i, text in enumerate(notes, 1):
        lines += _wrap(text, indent=f"  [{i}] ")
    return "\n".join(lines)


def plot_table(result: dict, path: Path) -> None:
    """Horizontal bars of ours (error bars only where n > 1, value labels), the paper's value as a marker; one panel
    per metric, labels that stay readable for long tables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    heights = [sum(r["metric"] == m for r in rows) for m in metrics]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(9, 1.2 + 0.32 * sum(heights) + 0.5 * len(metrics)),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        sub = [r for r in rows if r["metric"] == metric]
        ys = list(range(len(sub)))[::-1]
        ours = [r["ours"] for r in sub]
        err = [r["std"] if len(r["seeds"]) > 1 else 0.0 for r in sub]
        colors = {"pretrained": "tab:blue", "scratch": "tab:gray", "reference": "tab:green"}
        ax.barh(ys, ours, xerr=[e if e else float("nan") for e in err] if any(err) else None, capsize=3, height=0.6,
                color=[colors.get(r["init"], "tab:blue") for r in sub])
        for y, r in zip(ys, sub, strict=True):
            ax.text(r["ours"], y, f" {_fmt(r['ours'])}", va="center", fontsize=7)
            if r.get("paper") is not None:
                ax.plot(r["paper"], y, marker="D", color="tab:red", markersize=5, linestyle="none")
        ax.set_yticks(ys, [f"{r['model']} ({r['init']})" for r in sub], fontsize=7)
        arrow = "higher is better" if sub[0]["higher_is_better"] else "lower is better"
        ax.set_xlabel(f"{metric} ({arrow})", fontsize=8)
        ax.margins(x=0.15)
    handles = [plt.Line2D([], [], marker="D", color="tab:red", linestyle="none", label="paper")] \
        if any(r.get("paper") is not None for r in rows) else []
    handles += [plt.Rectangle((0, 0), 1, 1, color=c, label=k) for k, c in
                (("pretrained", "tab:blue"), ("scratch", "tab:gray"), ("reference", "tab:green"))
                if any(r["init"] == k for r in rows)]
    axes[0, 0].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(f"{result['table']} ({result['setting']})", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
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
    runner = table_runner(table)
    start = time.perf_counter()
    from .runtime import threads

    setting = "smoke" if smoke else "quick" if quick else "full"
    print(f"{name} ({setting}, {table_threads(table)} threads): running; the table prints when it ends",
          file=sys.stderr, flush=True)
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
