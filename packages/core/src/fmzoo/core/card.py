"""Model cards: Hugging Face YAML metadata followed by the sections a user reads."""

from __future__ import annotations

import json

# Hugging Face metric ids (the `evaluate` library's names) of the metrics fmzoo reports
METRIC_IDS = {"accuracy": "accuracy", "roc_auc": "roc_auc", "roc-auc": "roc_auc", "auroc": "roc_auc", "dice": "dice",
              "mse": "mse", "mae": "mae", "rmse": "rmse", "r2": "r2", "spearman": "spearmanr", "spearmanr": "spearmanr",
              "perplexity": "perplexity", "f1": "f1", "q3": "accuracy", "wer": "wer"}


def metric_id(name: str) -> str | None:
    """The metric id of a result's metric name ("accuracy (linear probe)" -> "accuracy"), None if not a known metric."""
    head = str(name).strip().lower().split(":")[0].split(" (")[0].split()[0] if str(name).strip() else ""
    return METRIC_IDS.get(head)


def _metadata(config: dict, card: dict, title: str) -> str:
    """The card's YAML header, built with huggingface_hub's ModelCardData: metrics are ids, and structured results
    (``card["eval_results"]``: task_type, dataset, dataset_name, metric, value, name) become a ``model-index``."""
    from huggingface_hub import EvalResult, ModelCardData

    evals = []
    for r in card.get("eval_results") or []:
        mid = metric_id(r["metric"])
        if mid is None:
            continue
        evals.append(EvalResult(task_type=r.get("task_type", "feature-extraction"), dataset_type=r["dataset"],
                                dataset_name=r.get("dataset_name", r["dataset"]), metric_type=mid,
                                metric_value=float(r["value"]), metric_name=r.get("name", r["metric"])))
    data = ModelCardData(
        library_name=card.get("library_name", "fmzoo"), license=card.get("license", "apache-2.0"),
        tags=["fmzoo", "self-supervised", *card.get("tags", [])], datasets=list(card.get("datasets") or []) or None,
        base_model=card.get("base_model"), pipeline_tag=card.get("pipeline_tag"), language=card.get("language"),
        metrics=sorted({e.metric_type for e in evals}) or None, model_name=title if evals else None,
        eval_results=evals or None)
    return data.to_yaml()


def render_card(config: dict, card: dict, provenance: dict | None = None) -> str:
    title = card.get("title") or config["architecture"]
    lines = ["---", _metadata(config, card, title).strip(), "---", "", f"# {title}", ""]
    if card.get("summary"):
        lines += [card["summary"].strip(), ""]
    lines += ["## Intended use", "", (card.get("intended_use") or "Research use: feature extraction and fine-tuning.").strip(), ""]
    lines += ["## Training data", "", (card.get("training_data") or "See provenance.json.").strip(), ""]
    results = card.get("results") or []
    lines += ["## Results", ""]
    if results:
        lines += ["| metric | value | setting |", "|---|---|---|"]
        for r in results:
            value = r["value"] if isinstance(r["value"], str) else f"{r['value']:.4g}"
            lines.append(f"| {r['metric']} | {value} | {r.get('setting', '')} |")
    else:
        lines.append("No results recorded for this checkpoint.")
    lines.append("")
    if card.get("paper_results"):
        lines += ["## The paper's numbers (context, not our runs)", "", card["paper_results"].strip(), ""]
    if card.get("limitations"):
        lines += ["## Limitations", "", card["limitations"].strip(), ""]
    lines += ["## Input spec", "", "```json", json.dumps(config.get("input_spec"), indent=2), "```", ""]
    lines += ["## Architecture", "", f"`{config['architecture']}` with", "", "```json", json.dumps(config["init_args"], indent=2), "```", ""]
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
    lines += ["## Citation", "", "```bibtex", (card.get("citation") or "").strip(), "```", ""]
    return "\n".join(lines)


def provenance_seeds(provenance: dict) -> list[int] | None:
    """The seeds a run used: ``seeds`` (a list), or ``seed`` as written by checkpoints shipped before provenance was
    typed (graph, medical, speech and remote sensing wrote a single ``seed``)."""
    if provenance.get("seeds") is not None:
        return list(provenance["seeds"])
    if provenance.get("seed") is not None:
        return [provenance["seed"]]
    return None


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
    flag = " --quick" if result["setting"] == "quick" else ""
    command = result.get("command") or f"fmzoo reproduce {result['table']}{flag}"
    return [
        {
            "metric": f"{r['metric']}: {r['model']} ({r['init']})",
            "value": f"{r['ours']:.4f} ± {r['std']:.4f}" + (f" (paper {r['paper']})" if r.get("paper") is not None else ""),
            "setting": f"{command}, seeds {r['seeds']}" + (f"; {r['note']}" if r.get("note") else ""),
        }
        for r in result["rows"]
    ]


def refresh_card(checkpoint_dir, results: dict | list[dict] | None = None, card: dict | None = None) -> str:
    """Re-render a checkpoint's README.md from its config, provenance (whose recipe holds the card
    text) and, optionally, reproduction results (``fmzoo reproduce`` JSON, one or a list) whose rows
    follow any rows already in ``card["results"]``. Weights and config are untouched; each result's
    rows are also recorded in provenance.json under ``evaluations["table:setting"]`` (the rows of every result
    of this call with that table and setting; other keys are kept). Both files are
    replaced atomically."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(checkpoint_dir)
    config = json.loads((path / "config.json").read_text())
    prov = json.loads((path / "provenance.json").read_text())
    card = dict(card or prov.get("card") or (prov.get("recipe") or {}).get("card") or {})
    prov["card"] = {k: v for k, v in card.items() if k != "results"}
    card.setdefault("title", f"{config['architecture']} ({prov.get('recipe_name', '')})")
    if results is not None:
        results = [results] if isinstance(results, dict) else list(results)
        card["results"] = list(card.get("results") or [])
        recorded: dict[str, list] = {}  # results of one table and setting (e.g. two partial runs) add up
        card["eval_results"] = list(card.get("eval_results") or [])
        for result in results:
            card["results"] += result_rows(result)
            card["eval_results"] += eval_results(result, result.get("table_meta"))
            recorded.setdefault(f"{result['table']}:{result['setting']}", []).extend(result["rows"])
        prov.setdefault("evaluations", {}).update(recorded)
    text = render_card(config, card, prov)
    for name, content in (("provenance.json", json.dumps(prov, indent=2) + "\n"), ("README.md", text)):
        fd, tmp = tempfile.mkstemp(dir=path, prefix=f".{name}.")
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path / name)
    return text
