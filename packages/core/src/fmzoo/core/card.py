"""Model cards: Hugging Face YAML metadata followed by the sections a user reads."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields

from .errors import RecipeError

# Hugging Face metric ids (the `evaluate` library's names) of the metrics fmzoo reports
METRIC_IDS = {"accuracy": "accuracy", "roc_auc": "roc_auc", "roc-auc": "roc_auc", "auroc": "roc_auc", "dice": "dice",
              "mse": "mse", "mae": "mae", "rmse": "rmse", "r2": "r2", "spearman": "spearmanr", "spearmanr": "spearmanr",
              "perplexity": "perplexity", "f1": "f1", "q3": "accuracy", "wer": "wer"}


def metric_id(name: str) -> str | None:
    """The metric id of a result's metric name ("accuracy (linear probe)" -> "accuracy"), None if not a known metric."""
    head = str(name).strip().lower().split(":")[0].split(" (")[0].split()[0] if str(name).strip() else ""
    return METRIC_IDS.get(head)


@dataclass
class ResultRow:
    """One row of the card's results table: a metric, its value (a number or text such as "0.85 ± 0.01") and the
    setting that produced it (command, data, seeds)."""

    metric: str
    value: float | str
    setting: str = ""


@dataclass
class EvalEntry:
    """One structured result for the card's ``model-index`` (Hugging Face ``EvalResult``): the metric must have a
    Hugging Face metric id (``metric_id``) and a numeric value."""

    dataset: str
    metric: str
    value: float
    task_type: str = "feature-extraction"
    dataset_name: str | None = None
    name: str | None = None


@dataclass
class CardData:
    """What a model card says, typed: the ``card:`` block of a recipe, what ``Method.card`` returns and what
    ``fmzoo ship`` renders. Unknown keys are an error naming the key (``from_dict``)."""

    title: str | None = None
    summary: str | None = None
    intended_use: str | None = None
    training_data: str | None = None
    paper_results: str | None = None
    limitations: str | None = None
    citation: str | None = None
    tags: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    license: str = "apache-2.0"
    library_name: str = "fmzoo"
    base_model: str | list[str] | None = None
    pipeline_tag: str | None = None
    language: str | list[str] | None = None
    results: list[ResultRow] = field(default_factory=list)
    eval_results: list[EvalEntry] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict | CardData | None, where: str = "card") -> CardData:
        if isinstance(d, CardData):
            return d
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RecipeError(f"{where}: unknown key(s) {', '.join(unknown)}; a card takes {', '.join(sorted(known))}")
        for key in ("title", "summary", "intended_use", "training_data", "paper_results", "limitations", "citation",
                    "license", "library_name", "pipeline_tag"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise RecipeError(f"{where}.{key}: expected text, got {type(d[key]).__name__}")
        for key in ("tags", "datasets"):
            if d.get(key) is None:
                d.pop(key, None)
            elif not isinstance(d[key], list | tuple) or not all(isinstance(x, str) for x in d[key]):
                raise RecipeError(f"{where}.{key}: expected a list of strings, got {d[key]!r}")
        d["results"] = [_row(r, ResultRow, f"{where}.results[{i}]") for i, r in enumerate(d.get("results") or [])]
        d["eval_results"] = [_row(r, EvalEntry, f"{where}.eval_results[{i}]")
                             for i, r in enumerate(d.get("eval_results") or [])]
        return cls(**d)

    def to_dict(self) -> dict:
        """The card as plain JSON (empty fields left out), as provenance.json stores it."""
        out = asdict(self)
        return {k: v for k, v in out.items() if v not in (None, [], "") or k in ("license", "library_name")}


def _row(r, cls, where: str):
    if isinstance(r, cls):
        return r
    if not isinstance(r, dict):
        raise RecipeError(f"{where}: expected a mapping, got {type(r).__name__}")
    known = {f.name for f in fields(cls)}
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING and f.name not in r]
    problems = ([f"unknown key(s) {', '.join(sorted(set(r) - known))}"] if set(r) - known else []) + (
        [f"missing {', '.join(missing)}"] if missing else [])
    if problems:
        raise RecipeError(f"{where}: {'; '.join(problems)} (a {cls.__name__} has {', '.join(sorted(known))})")
    return cls(**r)


def _metadata(config: dict, card: CardData, title: str) -> str:
    """The card's YAML header, built with huggingface_hub's ModelCardData: metrics are ids, and structured results
    (``card["eval_results"]``: task_type, dataset, dataset_name, metric, value, name) become a ``model-index``."""
    from huggingface_hub import EvalResult, ModelCardData

    evals = []
    for r in card.eval_results:
        mid = metric_id(r.metric)
        if mid is None:
            continue
        evals.append(EvalResult(task_type=r.task_type, dataset_type=r.dataset, dataset_name=r.dataset_name or r.dataset,
                                metric_type=mid, metric_value=float(r.value), metric_name=r.name or r.metric))
    tags = ["fmzoo", "self-supervised", *(t for t in card.tags if t not in ("fmzoo", "self-supervised"))]
    data = ModelCardData(
        library_name=card.library_name, license=card.license, tags=tags, datasets=list(card.datasets) or None,
        base_model=card.base_model, pipeline_tag=card.pipeline_tag, language=card.language,
        metrics=sorted({e.metric_type for e in evals}) or None, model_name=title if evals else None,
        eval_results=evals or None)
    return data.to_yaml()


def render_card(config: dict, card: CardData | dict, provenance: dict | None = None) -> str:
    """The README.md of a checkpoint: YAML metadata (``ModelCardData``) and the sections a user reads."""
    card = CardData.from_dict(card)
    title = card.title or config["architecture"]
    lines = ["---", _metadata(config, card, title).strip(), "---", "", f"# {title}", ""]
    if card.summary:
        lines += [card.summary.strip(), ""]
    lines += ["## Intended use", "", (card.intended_use or "Research use: feature extraction and fine-tuning.").strip(), ""]
    lines += ["## Training data", "", (card.training_data or "See provenance.json.").strip(), ""]
    lines += ["## Results", ""]
    if card.results:
        lines += ["| metric | value | setting |", "|---|---|---|"]
        for r in card.results:
            value = r.value if isinstance(r.value, str) else f"{r.value:.4g}"
            lines.append(f"| {r.metric} | {value} | {r.setting} |")
    else:
        lines.append("No results recorded for this checkpoint.")
    lines.append("")
    if card.paper_results:
        lines += ["## The paper's numbers (context, not our runs)", "", card.paper_results.strip(), ""]
    if card.limitations:
        lines += ["## Limitations", "", card.limitations.strip(), ""]
    lines += ["## Input spec", "", "```json", json.dumps(config.get("input_spec"), indent=2, sort_keys=True), "```", ""]
    lines += ["## Architecture", "", f"`{config['architecture']}` with", "", "```json", json.dumps(config["init_args"], indent=2, sort_keys=True), "```", ""]
    if provenance:
        lines += ["## Provenance", ""]
        if provenance.get("recipe_name"):
            lines.append(f"- recipe: `{provenance['recipe_name']}` (sha256 `{provenance.get('recipe_sha256', '')[:16]}`)")
        seeds = provenance_seeds(provenance)
        if seeds is not None:
            lines.append(f"- seeds: {seeds}")
        imported = provenance.get("imported_from")
        if imported:
            lines.append(f"- converted from `{imported.get('source')}` (format `{imported.get('format')}`)")
            for f in imported.get("files", []):
                lines.append(f"- source file: `{f['name']}` sha256 `{f['sha256'][:16]}`")
        if provenance.get("git_commit"):
            lines.append(f"- git commit: `{provenance['git_commit']}`")
        for f in provenance.get("data_files", []):
            lines.append(f"- data: `{f['path']}` sha256 `{f['sha256'][:16]}`")
        lines.append("")
    lines += ["## Citation", "", "```bibtex", (card.citation or "").strip(), "```", ""]
    return "\n".join(lines)


def provenance_seeds(provenance: dict) -> list[int] | None:
    """The seeds a run used: ``seeds`` (a list), or ``seed`` as written by checkpoints shipped before provenance was
    typed (graph, medical, speech and remote sensing wrote a single ``seed``)."""
    from .provenance import Provenance

    return Provenance.from_dict(provenance).seeds


def eval_results(result: dict, table: dict | None = None) -> list[dict]:
    """Structured results (for the card's model-index) of one ``fmzoo reproduce`` result: our rows whose metric has an
    id, with the table's ``task_type`` and ``dataset`` (default: the table's name)."""
    table = table or {}
    out = []
    for r in result["rows"]:
        if metric_id(r["metric"]) is None or r.get("init") != "pretrained":
            continue
        out.append({"task_type": table.get("task_type", "feature-extraction"), "dataset": table.get("dataset", result["table"]),
                    "metric": r["metric"], "value": r["ours"], "name": f"{r['metric']}: {r['model']} ({result['setting']})"})
    return out


def result_rows(result: dict) -> list[dict]:
    """Card rows ({metric, value, setting}) of one ``fmzoo reproduce`` result (``result["command"]``, when a
    result comes from another command than ``fmzoo reproduce TABLE [--quick]``, names that command)."""
    command = _command(result)
    return [
        {
            "metric": f"{r['metric']}: {r['model']} ({r['init']})",
            "value": f"{r['ours']:.4f} ± {r['std']:.4f}" + (f" (paper {r['paper']})" if r.get("paper") is not None else ""),
            "setting": f"{command}, seeds {r['seeds']}" + (f"; {r['note']}" if r.get("note") else ""),
        }
        for r in result["rows"]
    ]


def _command(result: dict) -> str:
    flag = " --quick" if result["setting"] == "quick" else ""
    return result.get("command") or f"fmzoo reproduce {result['table']}{flag}"


def with_results(card: CardData | dict, results: dict | list[dict]) -> CardData:
    """``card`` plus the rows (and model-index entries) of ``fmzoo reproduce`` results. Rows that an earlier call
    added from the same command are replaced, not repeated, so re-rendering with the same results is idempotent."""
    card = CardData.from_dict(card)
    results = [results] if isinstance(results, dict) else list(results)
    commands = {_command(r) + ", seeds" for r in results}
    rows = [r for r in card.results if not any(r.setting.startswith(c) for c in commands)]
    names = {n for r in results for n in (e["name"] for e in eval_results(r, r.get("table_meta")))}
    evals = [e for e in card.eval_results if e.name not in names]
    for result in results:
        rows += [ResultRow(**r) for r in result_rows(result)]
        evals += [EvalEntry(**e) for e in eval_results(result, result.get("table_meta"))]
    return CardData(**{**card.__dict__, "results": rows, "eval_results": evals})


def card_of(provenance: dict, config: dict) -> CardData:
    """The card a checkpoint's provenance.json holds (``card``; before cards were stored whole: its recipe's
    ``card:`` block), with a title."""
    card = CardData.from_dict(provenance.get("card") or (provenance.get("recipe") or {}).get("card") or {},
                              "provenance.json card")
    if not card.title:
        card.title = f"{config['architecture']} ({provenance.get('recipe_name', '')})"
    return card


def refresh_card(checkpoint_dir, results: dict | list[dict] | None = None, card: CardData | dict | None = None) -> str:
    """Re-render a checkpoint's README.md from its config and provenance.json, which holds the whole card
    (``card``, results rows included): the rendered card always equals what provenance says. ``card`` replaces the
    stored card; ``results`` (``fmzoo reproduce`` JSON, one or a list) add their rows after the card's own
    (``with_results``), and each result's raw rows are recorded under ``evaluations["table:setting"]`` (every
    result of this call with that table and setting; other keys are kept). Weights and config are untouched; both
    files are replaced atomically."""
    from pathlib import Path

    from .files import atomic_write_text

    path = Path(checkpoint_dir)
    config = json.loads((path / "config.json").read_text())
    prov = json.loads((path / "provenance.json").read_text())
    card = CardData.from_dict(card) if card is not None else card_of(prov, config)
    if not card.title:
        card.title = f"{config['architecture']} ({prov.get('recipe_name', '')})"
    if results is not None:
        results = [results] if isinstance(results, dict) else list(results)
        card = with_results(card, results)
        recorded: dict[str, list] = {}  # results of one table and setting (e.g. two partial runs) add up
        for result in results:
            recorded.setdefault(f"{result['table']}:{result['setting']}", []).extend(result["rows"])
        prov.setdefault("evaluations", {}).update(recorded)
    prov["card"] = card.to_dict()
    text = render_card(config, card, prov)
    atomic_write_text(path / "provenance.json", json.dumps(prov, indent=2) + "\n")
    atomic_write_text(path / "README.md", text)
    return text
