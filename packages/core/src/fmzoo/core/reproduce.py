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


LINE_WIDTH = 118  # a terminal table's lines stay under ~120 characters


def _columns(rows: list[tuple], width: int = LINE_WIDTH, wrappable: tuple[int, ...] = (0, 2)) -> list[str]:
    """Rows as aligned columns (header, then a rule) no wider than ``width``: a column too long for the line (the
    model name first, then the metric) wraps onto continuation lines of its row; nothing is cut."""
    import textwrap

    rows = [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    while (excess := sum(widths) + 2 * (len(widths) - 1) - width) > 0:  # narrow the widest wrappable column
        col = max(wrappable, key=lambda j: widths[j])
        if widths[col] <= 12:
            break
        others = [widths[j] for j in wrappable if j != col]
        widths[col] = max(12, widths[col] - excess, min(max(others, default=0), widths[col] - 1))
    lines = []
    for i, row in enumerate(rows):
        cells = [textwrap.wrap(c, w, subsequent_indent=" ", break_on_hyphens=False) or [""] if j in wrappable else [c]
                 for j, (c, w) in enumerate(zip(row, widths, strict=True))]
        for k in range(max(len(c) for c in cells)):
            lines.append("  ".join((c[k] if k < len(c) else "").ljust(w)
                                   for c, w in zip(cells, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def format_table(result: dict) -> str:
    """Ours beside the paper's, for a terminal: the setting and caveats first, one line per row (under ~120
    characters), paper sources and row notes as numbered footnotes."""
    lines = _wrap(f"{result['table']}: {result.get('title', '')}".rstrip(": "), indent="", width=LINE_WIDTH)
    lines = lines[:1] + ["  " + line for line in lines[1:]]
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
    lines += _columns(rows)
    for i, text in enumerate(notes, 1):
        lines += _wrap(text, indent=f"  [{i}] ")
    return "\n".join(lines)


PLOT_MAX_ROWS = 15  # bars per panel: a longer metric is split over panels of a grid
INIT_COLORS = {"pretrained": "tab:blue", "scratch": "tab:gray", "reference": "tab:green"}


def _panels(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """(metric, rows) per panel: one metric per panel, split in near-equal chunks of at most PLOT_MAX_ROWS bars."""
    out = []
    for metric in dict.fromkeys(r["metric"] for r in rows):
        sub = [r for r in rows if r["metric"] == metric]
        chunks = math.ceil(len(sub) / PLOT_MAX_ROWS)
        size = math.ceil(len(sub) / chunks)
        out += [(metric, sub[i:i + size]) for i in range(0, len(sub), size)]
    return out


def _plot_footnote(result: dict, width_chars: int) -> str:
    import textwrap

    sources = list(dict.fromkeys(r["paper_source"] for r in result["rows"]
                                 if r.get("paper") is not None and r.get("paper_source")))
    if sources:
        text = "paper values (\u25c6) from: " + "; ".join(sources)
    elif any(r.get("paper") is not None for r in result["rows"]):
        text = "paper values (\u25c6): source not recorded"
    else:
        text = "no paper value for these rows (see the table's caveats)"
    n = {len(r["seeds"]) for r in result["rows"]}
    text += (f". Bars: our mean over {'/'.join(str(k) for k in sorted(n))} seed(s)"
             + ("; error bars: ± std where n > 1" if max(n) > 1 else ""))
    return "\n".join(textwrap.wrap(text, width_chars))


def _value_labels(ax, rows: list[dict], xlim: list[float]) -> None:
    """Each bar's value, never on an error-bar cap or a paper marker: inside the bar (white, ending before the error
    bar) where the bar is long enough, else beyond the bar's end, its error bar and its paper marker."""
    span = xlim[1] - xlim[0]
    for y, r in zip(list(range(len(rows)))[::-1], rows, strict=True):
        v = r["ours"]
        e = r["std"] if len(r["seeds"]) > 1 and r["std"] else 0.0
        sign = 1.0 if v >= 0 else -1.0
        text = _fmt(v)
        inner = abs(v) - e  # the bar's length short of its error bar
        width = span * (0.012 * len(text) + 0.03)  # the label's extent in data units, about
        paper = r.get("paper")
        clear = paper is None or not (inner - width - 0.02 * span <= paper * sign <= inner + 0.02 * span)
        if inner > width and clear:
            ax.annotate(text, (v - sign * e, y), xytext=(-3 * sign, 0), textcoords="offset points", color="white",
                        ha="right" if sign > 0 else "left", va="center", fontsize=6.5)
            continue
        end = v + sign * e
        if r.get("paper") is not None and (r["paper"] - end) * sign > 0:
            end = r["paper"]
        ax.annotate(text, (end, y), xytext=(5 * sign, 0), textcoords="offset points", ha="left" if sign > 0 else "right",
                    va="center", fontsize=6.5)


def plot_table(result: dict, path: Path) -> None:
    """Horizontal bars of ours (error bars only where n > 1), value labels beside the bar end beyond the error bar,
    the paper's value as a marker, and the paper's source as a footnote. One panel per metric; a metric with more than
    ``PLOT_MAX_ROWS`` rows is split over panels laid out in a grid, so that long tables keep a readable height."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    panels = _panels(rows)
    ncols = 1 if len(rows) <= 24 or len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    label = {id(r): "\n".join(textwrap.wrap(f"{r['model']} ({r['init']})", 40 if ncols > 1 else 52,
                                             break_on_hyphens=False)) for r in rows}
    pitch = 0.24 * max(1, max(v.count("\n") + 1 for v in label.values()) * 0.75)  # inches per bar
    grid_heights = [max(len(panels[i][1]) for i in range(g * ncols, min(len(panels), (g + 1) * ncols)))
                    for g in range(nrows)]
    width = 9.0 if ncols == 1 else 13.0
    footnote = _plot_footnote(result, int(width * 15))
    height = 1.0 + sum(pitch * h + 0.65 for h in grid_heights) + 0.14 * (footnote.count("\n") + 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained",
                             gridspec_kw={"height_ratios": grid_heights})
    limits: dict[str, list[float]] = {}
    for (metric, sub), ax in zip(panels, axes.flat, strict=False):
        ys = list(range(len(sub)))[::-1]
        err = [r["std"] if len(r["seeds"]) > 1 and r["std"] else 0.0 for r in sub]
        ax.barh(ys, [r["ours"] for r in sub], height=0.62, color=[INIT_COLORS.get(r["init"], "tab:blue") for r in sub],
                xerr=err if any(err) else None, capsize=2.5, error_kw={"elinewidth": 0.8, "capthick": 0.8})
        for y, r in zip(ys, sub, strict=True):
            if r.get("paper") is not None:
                ax.plot(r["paper"], y, marker="D", color="tab:red", markersize=4.5, linestyle="none", zorder=3)
        ax.set_yticks(ys, [label[id(r)] for r in sub], fontsize=6.5)
        ax.tick_params(axis="x", labelsize=7)
        arrow = "higher is better" if sub[0]["higher_is_better"] else "lower is better"
        ax.set_xlabel(f"{metric} ({arrow})", fontsize=7.5)
        ax.axvline(0, color="black", linewidth=0.5)
        ax.margins(x=0.18, y=0.5 / max(len(sub), 1))
        lo, hi = ax.get_xlim()
        limits.setdefault(metric, [lo, hi])
        limits[metric] = [min(limits[metric][0], lo), max(limits[metric][1], hi)]
    for (metric, sub), ax in zip(panels, axes.flat, strict=False):
        ax.set_xlim(*limits[metric])  # the panels of one metric share its scale
        _value_labels(ax, sub, limits[metric])
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], marker="D", color="tab:red", linestyle="none", label="paper")] \
        if any(r.get("paper") is not None for r in rows) else []
    handles += [plt.Rectangle((0, 0), 1, 1, color=c, label=k) for k, c in INIT_COLORS.items()
                if any(r["init"] == k for r in rows)]
    fig.legend(handles=handles, fontsize=7, loc="outside right upper", frameon=False)
    title = textwrap.fill(f"{result['table']} ({result['setting']}): {result.get('title', '')}".rstrip(": "),
                          int(width * 11))
    fig.suptitle(title, fontsize=9)
    fig.supxlabel(footnote, fontsize=6.5, x=0.01, ha="left", color="dimgray")
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
