"""The ``fmzoo`` command line: list, pretrain, finetune, evaluate, publish, reproduce, card."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

from .errors import UsageError

EPILOG = "Data come from $FMZOO_DATA (default ../shared/data); checkpoints from $FMZOO_HUB (default ~/.cache/fmzoo/hub)."


def _set_value(recipe: dict, assignment: str) -> None:
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise UsageError(f"--set expects key=value, got {assignment!r}")
    parts = key.split(".")
    if not all(parts):
        raise UsageError(f"--set expects key=value with a dotted key such as train.lr, got {assignment!r}")
    node = recipe
    for depth, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            where = ".".join(parts[:depth + 1])
            raise UsageError(f"--set {assignment}: {where!r} is {node!r} in the recipe, not a section with keys")
    node[parts[-1]] = yaml_value(raw)


_FLOAT12 = __import__("re").compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_INT12 = __import__("re").compile(r"[-+]?[0-9]+\Z")


def yaml_value(raw: str):
    """A --set value as YAML 1.2 reads it: '3e-4' is a float (YAML 1.1, PyYAML's, reads a string) and '010' is the
    integer 10 (not octal 8); everything else as PyYAML reads it."""
    text = raw.strip()
    if _INT12.match(text):
        return int(text)
    if _FLOAT12.match(text) and any(c in text for c in ".eE"):
        return float(text)
    return yaml.safe_load(raw)


DISTRIBUTION_DEFAULTS = {"devices": 1, "num_nodes": 1, "strategy": "auto", "accelerator": "cpu", "precision": None}
PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "64-true")


def trainer_kwargs(args) -> dict:
    kw = {
        "devices": args.devices,
        "num_nodes": args.num_nodes,
        "strategy": args.strategy,
        "accelerator": args.accelerator,
        **({"precision": args.precision} if args.precision else {}),
        "resume": args.resume,
        "progress": not args.no_progress,
    }
    if args.max_epochs is not None:
        kw["max_epochs"] = args.max_epochs
    return kw


def _wrap_text(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(" ".join(text.split()), width=width) or [""]


def cmd_list(args) -> int:
    from .hub import LocalHub
    from .registry import PLUGIN_ERRORS, _merged, list_models, plugins, recipes, tables

    print("installed packages: " + (", ".join(f"fmzoo-{p}" for p in plugins()) or "none"))
    for name, err in PLUGIN_ERRORS.items():
        print(f"  (plugin {name!r} failed to load: {err})")
    rows = list_models()
    width = max((len(r["name"]) for r in rows), default=0) + 2
    for kind, title in (("architecture", "architectures"),
                        ("checkpoint", "shipped checkpoints (from_pretrained works offline)")):
        print(f"\n{title}:")
        for row in rows:
            if row["kind"] == kind:
                print(f"  {row['name']:<{width}}fmzoo-{row['package']}")
    from .weights import catalogue, input_of

    official = catalogue()
    print("\nofficial released weights (converted once on first use; `fmzoo import FILE` for releases off the Hugging Face Hub):")
    if not official:
        print("  none (no installed package registers any)")
    if official:
        table = [("id", "method", "params", "licence", "format", "source", "input (enforced)")]
        table += [(key, e.method, e.params, e.license, e.format, f"hf:{e.hf_repo}" if e.hf_repo else "file (fmzoo import)",
                   input_of(e)) for key, e in sorted(official.items())]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    unreleased = _merged("no_released_weights")
    if unreleased:
        print("  no released weights (the authors published none; the checkpoints above are fmzoo's own runs):")
        width = max(len(m) for m in unreleased) + 2
        for method, (package, why) in sorted(unreleased.items()):
            for i, line in enumerate(_wrap_text(f"{why} (fmzoo-{package})", 116 - width)):
                print(f"    {method if i == 0 else '':<{width}}{line}")
    hub = LocalHub()
    local = sorted(p.parent.parent.relative_to(hub.root).as_posix() for p in hub.root.glob("*/*/refs/main")) if hub.root.is_dir() else []
    print(f"\nlocal hub {hub.root}: " + (", ".join(local) or "empty"))
    print("\nrecipes:    " + ", ".join(recipes()))
    print("tables:     " + ", ".join(tables()))

    print("datasets:   " + ", ".join(f"{k} ({p})" for k, (p, _) in sorted(_merged("datasets").items()))
          + "\n            (read from $FMZOO_DATA; `fmzoo doctor` says which are present)")
    return 0


def cmd_doctor(args) -> int:
    """Versions, where data and checkpoints come from, and what is installed: the first thing to paste in a bug."""
    import platform

    import torch

    from . import __version__
    from .data import data_root
    from .hub import hub_root, is_offline
    from .provenance import package_versions
    from .registry import PLUGIN_ERRORS, plugins, shipped_checkpoints
    from .weights import catalogue, imported_root

    versions = package_versions()
    print(f"fmzoo-core {__version__}; python {platform.python_version()}; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads; cuda {'yes' if torch.cuda.is_available() else 'no'})")
    for name in plugins():
        print(f"  fmzoo-{name} {versions.get(f'fmzoo-{name}', '?')}")
    for name, err in PLUGIN_ERRORS.items():
        print(f"  fmzoo-{name}: FAILED to load: {err}")
    root = data_root(required=False)
    print(f"data root: {root or 'none (set FMZOO_DATA)'}" + (" (FMZOO_DATA)" if os.environ.get("FMZOO_DATA") else ""))
    if root is not None:
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            sources = len(list(sub.rglob("SOURCE.txt")))
            print(f"  {sub.name:<16}{sources} dataset(s) with SOURCE.txt")
    print(f"local hub: {hub_root()}{' (exists)' if hub_root().is_dir() else ' (empty)'}; "
          f"imported official weights: {imported_root()}")
    print(f"network: {'off (FMZOO_OFFLINE/HF_HUB_OFFLINE)' if is_offline() else 'on (Hugging Face Hub reachable if online)'}")
    print(f"shipped checkpoints: {len(shipped_checkpoints())}; official weights in the catalogue: {len(catalogue())}")
    return 0


def cmd_pretrain(args) -> int:
    from .pretrain import check_recipe, run_pretraining
    from .registry import load_recipe

    recipe = load_recipe(args.recipe)
    for assignment in args.set or []:
        _set_value(recipe, assignment)
    if args.seed is not None:
        recipe["seed"] = args.seed
    # the command line's share of what ran, recorded with the recipe so the provenance says it
    overrides = {"max_epochs": args.max_epochs} if args.max_epochs is not None else {}
    for key, default in DISTRIBUTION_DEFAULTS.items():  # how many processes ran it (recipes give the global batch)
        if getattr(args, key) != default:
            overrides[key] = getattr(args, key)
    if overrides:
        recipe["trainer_overrides"] = overrides
    run_dir = Path(args.out or Path("runs") / f"{recipe['name']}-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.resume:
        _check_resumed_recipe(run_dir, recipe)
    check_recipe(recipe)  # before anything in OUT is touched: an --overwrite with a typo keeps the earlier run
    # the processes a multi-process launcher starts run this command again: only the first decides about OUT
    first_process = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    held = [name for name in RUN_FILES if (run_dir / name).exists()] if first_process else []
    if held and not args.resume:
        if not args.overwrite:
            raise UsageError(f"{run_dir} already holds a run ({', '.join(held)}); continue it with "
                             "--resume, choose another --out, or replace it with --overwrite")
        import shutil

        for name in held:  # the whole earlier run goes: a stale last.ckpt would be resumed later
            (shutil.rmtree if (run_dir / name).is_dir() else Path.unlink)(run_dir / name)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    ckpt = run_pretraining(recipe, run_dir, trainer_kwargs(args), data_path=args.data)
    print(f"checkpoint: {ckpt}")
    if args.publish:
        from .hub import publish_dir

        rev = publish_dir(ckpt, args.publish, hub="local")
        print(f"published {args.publish}@{rev} to the local hub")
    return 0


RUN_FILES = ("checkpoints", "checkpoint", "logs", "recipe.yaml", "ranks")  # what a pretraining run writes in --out


def _training_values(recipe: dict) -> dict:
    """What a resumed run must keep: not the card text, and not the command line's length and process count
    (``trainer_overrides``: a run may be resumed to run longer, or on more devices; provenance records the last)."""
    return {k: v for k, v in recipe.items() if k not in ("card", "trainer_overrides")}


def _check_resumed_recipe(run_dir: Path, recipe: dict) -> None:
    """--resume continues the run that OUT holds: refuse when the recipe (with the command line's seed and --set)
    differs from the one that run started with."""
    saved_path = run_dir / "recipe.yaml"
    if not saved_path.is_file():
        return
    saved = _training_values(yaml.safe_load(saved_path.read_text()) or {})
    now = _training_values(yaml.safe_load(yaml.safe_dump(recipe, sort_keys=False)))  # the saved copy's round trip
    if saved != now:
        keys = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        raise UsageError(f"--resume: the recipe differs from the one {saved_path} started with (keys: {', '.join(keys)});"
                         f" resume with the same recipe, --seed and --set, or start a new run directory")


def _checkpoint_in(run_dir: Path) -> Path:
    for candidate in (run_dir / "checkpoint", run_dir):
        if (candidate / "config.json").is_file():
            return candidate
    raise UsageError(f"{run_dir} holds no checkpoint (expected {run_dir}/checkpoint/config.json)")


def cmd_publish(args) -> int:
    from .hub import publish_dir

    ckpt = _checkpoint_in(Path(args.run_dir))
    hf = {k: getattr(args, k) for k in ("private", "revision", "commit_message", "create_pr", "token")}
    if args.hub != "hf" and any(hf.values()):
        raise UsageError(f"--{next(k for k, v in hf.items() if v).replace('_', '-')} applies to --hub hf only "
                         "(the local hub keeps every revision and has no branches, PRs or visibility)")
    result = publish_dir(ckpt, args.repo_id, hub=args.hub, replace_shipped=args.replace_shipped,
                         **({k: v for k, v in hf.items() if v} if args.hub == "hf" else {}))
    print(f"published {args.repo_id} ({args.hub}): {result}")
    return 0


def _reproduce_in_processes(names: list[str], args) -> list[str]:
    """``--jobs N``: each table in its own ``fmzoo reproduce TABLE`` process, N at a time, longest first
    (by the seconds in OUT/TABLE.json of an earlier run). A table's numbers do not depend on this: every
    runner seeds itself, and every table runs with its own fixed thread count (``threads``), as in one
    process. Output is printed per table, whole, as each finishes. Returns the failed tables."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor, as_completed

    def last_seconds(name):
        try:
            return float(json.loads((Path(args.out) / f"{name}.json").read_text())["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return float("inf")  # never run: start it early

    def run(name):
        cmd = [sys.executable, "-m", "fmzoo.core.cli", "reproduce", name, "--out", str(args.out)]
        cmd += ["--quick"] if args.quick else []
        return subprocess.run(cmd + (["--smoke"] if args.smoke else []), capture_output=True, text=True)

    failed = []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run, n): n for n in sorted(names, key=last_seconds, reverse=True)}
        for done in as_completed(futures):
            name, proc = futures[done], done.result()
            print(proc.stdout, end="", flush=True)
            if proc.returncode:
                failed.append(name)
                tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
                print(f"{name}: FAILED (exit {proc.returncode})\n{tail}", file=sys.stderr, flush=True)
    return sorted(failed, key=names.index)


def cmd_reproduce(args) -> int:
    from .reproduce import all_tables, reproduce

    if args.jobs < 1:
        raise UsageError(f"--jobs must be a positive integer (tables run at once), got {args.jobs}")
    if args.all and args.table:
        raise UsageError(f"give a TABLE or --all, not both (got {args.table!r} and --all)")
    names = all_tables() if args.all else [args.table]
    if not names or names == [None]:
        raise UsageError("give a TABLE or --all")
    if args.jobs > 1 and len(names) > 1:
        failed = _reproduce_in_processes(names, args)
    else:
        failed = []
        for name in names:
            try:
                reproduce(name, quick=args.quick, out_dir=args.out, smoke=args.smoke)
            except Exception as exc:  # keep going with --all, report at the end
                if not args.all:
                    raise
                failed.append(name)
                print(f"{name}: FAILED ({type(exc).__name__}: {exc})", file=sys.stderr)
    if failed:
        print(f"failed tables: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _finetune_or_evaluate(args, mode: str) -> int:
    import math

    from . import from_pretrained
    from .downstream import Budget, format_result, hooks_for, run
    from .hub import read_config, resolve_checkpoint

    # the numbers on the command line are checked before the checkpoint or any data is read
    budget = Budget(per_class=args.per_class, fraction=args.fraction, n=args.n_labelled)
    for flag, value in (("--epochs", args.epochs), ("--steps", args.steps), ("--batch-size", args.batch_size),
                        ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    bad_seeds = [s for s in args.seeds if s < 0]
    if bad_seeds:
        raise UsageError(f"--seeds must be non-negative integers, got {' '.join(map(str, bad_seeds))}")
    config = read_config(resolve_checkpoint(args.model))
    hooks = hooks_for(config["architecture"])
    if args.dataset and args.data:
        raise UsageError("give --dataset or --data, not both")
    if args.dataset and hooks.datasets and args.dataset not in hooks.datasets:
        raise UsageError(f"{config['architecture']} checkpoints take --dataset "
                         f"{' | '.join(hooks.datasets)}, got {args.dataset!r}")
    if args.data and not Path(args.data).exists():
        raise UsageError(f"--data {args.data}: no such file or directory "
                         f"(expected {hooks.data_format or 'the domain format'})")
    model = from_pretrained(args.model)
    if args.target and not args.data:
        raise UsageError("--target names the label column of your own --data; give --data PATH too")
    hooks.target = args.target
    hooks.checkpoint_dir = resolve_checkpoint(args.model)
    options = {}
    for assignment in args.option or []:
        key, sep, raw = assignment.partition("=")
        if not sep:
            raise UsageError(f"--option expects NAME=VALUE, got {assignment!r}")
        options[key] = yaml_value(raw)
    hooks.configure(options)
    task = hooks.load(model, args.dataset, Path(args.data) if args.data else None)
    result = run(mode, model, hooks, task, seeds=args.seeds, budget=budget, scratch=args.scratch, epochs=args.epochs,
                 lr=args.lr, batch_size=args.batch_size, threads=args.threads, progress=not args.no_progress,
                 steps=args.steps, device=args.device, precision=args.precision)
    result = {"model": str(args.model), "architecture": config["architecture"], **result}
    print(format_result(result))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        path = Path(args.out) / f"{mode}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


def cmd_import(args) -> int:
    from .hub import publish_dir, validate_repo_id
    from .weights import catalogue, import_weights

    entry = None
    if args.id:
        entry = catalogue().get(args.id)
        if entry is None:
            raise UsageError(f"{args.id!r} is not in the catalogue (`fmzoo list` shows it)")
    out_dir, repo_id = args.out, None
    if args.out and not Path(args.out).exists() and "/" in args.out and not args.out.startswith((".", "/")):
        validate_repo_id(args.out)
        out_dir, repo_id = None, args.out
    fmt = args.format or (entry.format if entry else None)
    print(f"importing {args.source} ({'format ' + fmt if fmt else 'detecting its format'}): hashing it, reading it "
          "with weights_only, converting, writing, checking", file=sys.stderr, flush=True)
    path = import_weights(args.source, fmt, out=out_dir, entry=entry, progress=not args.no_progress)
    print(f"converted {args.source} -> {path}")
    if repo_id:
        rev = publish_dir(path, repo_id, hub="local")
        print(f"published {repo_id}@{rev} to the local hub")
    return 0


def cmd_ship(args) -> int:
    from .ship import check_cards, ship

    if args.check:
        bad = check_cards()
        print("\n".join(bad) if bad else "every shipped card agrees with its provenance")
        return 1 if bad else 0
    if not args.source:
        raise UsageError("give the run directory, checkpoint directory or shipped id to ship (or --check)")
    results = [_read_results(r) for r in args.results]
    dest = ship(args.source, name=args.name, package=args.package, results=results, card_file=args.card,
                replace=args.replace)
    print(f"shipped {dest} (fmzoo/{dest.name}; `fmzoo card fmzoo/{dest.name}` prints its card)")
    return 0


def _read_results(path: str) -> dict:
    """A `fmzoo reproduce` JSON given on the command line (--results), or a one-line error naming the file."""
    try:
        result = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--results {path}: expected the JSON file that `fmzoo reproduce` writes, but it is not "
                         f"valid JSON ({exc})") from None
    if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
        raise UsageError(f"--results {path}: expected the JSON that `fmzoo reproduce` writes (an object with 'table' "
                         f"and 'rows'), got {type(result).__name__} without a 'rows' list")
    return result


def cmd_card(args) -> int:
    from .hub import CARD_NAME, resolve_checkpoint

    path = resolve_checkpoint(args.model)
    if args.results:
        from .card import refresh_card
        from .hub import LocalHub

        if not Path(args.model).is_dir():
            raise UsageError("--results re-renders a card in place: give a checkpoint directory, not a hub id")
        if LocalHub().contains(path):
            raise UsageError(f"--results: {path} is a published revision of the local hub, which is never modified; "
                             "re-render a copy of it and publish that as a new revision")
        refresh_card(path, _read_results(args.results))
    text = (path / CARD_NAME).read_text()
    if args.write:
        Path(args.write).write_text(text)
        print(f"wrote {args.write}")
    else:
        print(text)
    return 0


class _Parser(argparse.ArgumentParser):
    """A subcommand parser whose epilog may be a function: the installed packages' choices (tables, recipes,
    datasets) are listed only when its help is printed, so a plain command does not import every plugin. The
    epilog is printed as written (names are never split at hyphens)."""

    def format_help(self) -> str:
        epilog = self.epilog() if callable(self.epilog) else self.epilog
        self.epilog = None
        try:
            text = super().format_help()
        finally:
            self.epilog = epilog
        return text + (f"\n{epilog}\n" if epilog else "")


def _registry_names(what: str) -> list[str]:
    from . import registry

    return sorted(getattr(registry, what)())


def _choices(title: str, names) -> str:
    import textwrap

    names = list(names)
    return textwrap.fill(f"{title} ({len(names)}): " + (", ".join(names) or "none installed"), 110,
                         subsequent_indent="  ", break_on_hyphens=False, break_long_words=False)


def _dataset_choices() -> str:
    """Each architecture's datasets (its downstream hooks' ``datasets``), for finetune/evaluate --dataset."""
    from . import registry

    lines = []
    for arch in sorted(registry._merged("downstream")):
        try:
            names = registry.downstream_hooks(arch).datasets
        except Exception as exc:  # a broken plugin must not break --help
            names = [f"(unavailable: {type(exc).__name__})"]
        lines.append(f"  {arch}: {', '.join(names) or '-- (use --data)'}")
    return "--dataset choices per architecture (default: the checkpoint's own):\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="fmzoo", description="Self-supervised foundation models for science.", epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"fmzoo {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("list", help="installed packages, architectures, checkpoints, recipes and tables",
                       description="List what the installed fmzoo packages provide and what the local hub holds.")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("doctor", help="versions, data root, hubs and what is installed",
                       description="Print versions, the data root and which domain data it holds, the hubs, and the "
                       "shipped and official checkpoints: what to paste in a bug report.")
    s.set_defaults(fn=cmd_doctor)

    s = sub.add_parser("pretrain", help="run a pretraining recipe",
                       description="Pretrain with a recipe (a name from `fmzoo list` or a YAML path). "
                       "Checkpoints every epoch to OUT/checkpoints; --resume continues an interrupted run.",
                       epilog=lambda: "example: fmzoo pretrain tjepa-adult-cpu --out runs/tjepa --max-epochs 5\n\n"
                       + _choices("recipes", _registry_names("recipes")))
    s.add_argument("recipe", help="recipe name or path to a recipe YAML")
    s.add_argument("--out", help="run directory (default runs/<recipe>-<time>)")
    s.add_argument("--data", metavar="PATH", help="pretrain on your own data in the domain's everyday format "
                   "(methods that support it; the card then describes these data)")
    s.add_argument("--seed", type=int, help="override the recipe's seed")
    s.add_argument("--max-epochs", type=int, help="override the recipe's number of epochs (recorded in the provenance as recipe.trainer_overrides)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe value, e.g. --set model.depth=4")
    s.add_argument("--devices", default=DISTRIBUTION_DEFAULTS["devices"], type=lambda v: v if v == "auto" else int(v), help="devices per node (Lightning)")
    s.add_argument("--num-nodes", type=int, default=DISTRIBUTION_DEFAULTS["num_nodes"], help="number of nodes (Lightning)")
    s.add_argument("--strategy", default=DISTRIBUTION_DEFAULTS["strategy"], help="Lightning strategy: auto, ddp, fsdp, ...")
    s.add_argument("--accelerator", default=DISTRIBUTION_DEFAULTS["accelerator"], help="cpu (default), gpu, auto")
    s.add_argument("--precision", choices=PRECISIONS, help="Lightning precision (default: the recipe's train.precision, "
                   "else 32-true); bf16-mixed = bf16 autocast, also on CPU (recorded in recipe.trainer_overrides)")
    s.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    s.add_argument("--overwrite", action="store_true", help="replace the run that OUT holds (default: refuse)")
    s.add_argument("--publish", metavar="REPO_ID", help="publish the result to the local hub under this id")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(fn=cmd_pretrain)

    for name, mode in (("finetune", "finetune"), ("evaluate", "evaluate")):
        desc = ("Fine-tune a checkpoint on a labelled set (optionally a label budget) and report test metrics."
                if mode == "finetune" else "Evaluate a checkpoint's frozen representations (linear probe / the package's protocol).")
        s = sub.add_parser(name, help=desc.split(" (")[0].split(" and")[0].lower(), description=desc,
                           epilog=_dataset_choices)
        s.add_argument("model", help="repo id (e.g. fmzoo/tjepa-adult) or checkpoint directory")
        s.add_argument("--dataset", help="a dataset of the checkpoint's domain on $FMZOO_DATA (default: the checkpoint's own)")
        s.add_argument("--data", metavar="PATH", help="your own labelled data in the domain's everyday format "
                       "(see the package README: CSV, FASTA + labels, WAV folder, NIfTI pairs, image folder, ...)")
        s.add_argument("--target", metavar="NAME", help="with --data: the column (or field) holding the labels")
        s.add_argument("--option", action="append", metavar="NAME=VALUE",
                       help="a setting of the domain's task (e.g. horizon=192 for forecasting; the package README lists them)")
        s.add_argument("--seeds", type=int, nargs="+", default=[0],
                       help="seeds: each draws its own labelled subset and initialisation (default 0)")
        budget = s.add_mutually_exclusive_group()
        budget.add_argument("--per-class", type=int, help="label budget: N labelled examples per class")
        budget.add_argument("--fraction", type=float, help="label budget: a stratified fraction of the training labels")
        budget.add_argument("--n-labelled", type=int, help="label budget: N labelled examples (any task)")
        s.add_argument("--scratch", action="store_true", help="also run the same protocol from a random initialisation")
        s.add_argument("--epochs", type=int, help="training epochs (fine-tuning; frozen segmentation/forecasting heads)")
        s.add_argument("--steps", type=int, help="training length in optimiser steps (instead of --epochs)")
        s.add_argument("--lr", type=float, help="learning rate (default: the domain's)")
        s.add_argument("--batch-size", type=int, help="batch size (default: the domain's)")
        s.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
        s.add_argument("--device", default="cpu", metavar="{cpu,cuda,cuda:N,mps,auto}",
                       help="where the encoder and networks run (default cpu; probes and scores stay on the CPU)")
        s.add_argument("--precision", choices=("32", "bf16"), default="32",
                       help="bf16: bf16 autocast for the encoder and networks (also on CPU); default 32")
        s.add_argument("--out", help="directory for the JSON result")
        s.add_argument("--no-progress", action="store_true", help="hide progress bars")
        s.set_defaults(fn=lambda a, m=mode: _finetune_or_evaluate(a, m))

    s = sub.add_parser("publish", help="publish a run's checkpoint to the local hub or the Hugging Face Hub",
                       description="Publish RUN_DIR/checkpoint (or RUN_DIR itself) as REPO_ID. Local publishes are atomic and keep revisions.")
    s.add_argument("run_dir")
    s.add_argument("repo_id", help="org/name")
    s.add_argument("--hub", choices=("local", "hf"), default="local",
                   help="local: the local hub, $FMZOO_HUB (default); hf: the Hugging Face Hub (what "
                   "model.push_to_hub() does by default)")
    s.add_argument("--replace-shipped", action="store_true",
                   help="allow publishing an id that an installed package ships (it then shadows the shipped checkpoint)")
    hf = s.add_argument_group("Hugging Face Hub (--hub hf)")
    hf.add_argument("--private", action="store_true", help="create the repository private (default: public)")
    hf.add_argument("--revision", help="the branch to commit to (created from main if missing; default main)")
    hf.add_argument("--commit-message", help="the commit message (default: names the fmzoo version)")
    hf.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to the branch")
    hf.add_argument("--token", help="a Hugging Face token (default: the logged-in one, HF_TOKEN)")
    s.set_defaults(fn=cmd_publish)

    s = sub.add_parser("ship", help="ship a run's checkpoint inside its package (card rendered from provenance)",
                       description="Copy a pretraining run's checkpoint (run dir, checkpoint dir or a shipped id) into "
                       "its package's checkpoints/NAME with the card its provenance holds, updated by --card and "
                       "--results, and swap the folder in whole. A shipped id re-renders that checkpoint in place "
                       "(weights untouched). --check: verify every shipped README is what its provenance renders.",
                       epilog="examples:\n  fmzoo ship runs/tera --name tera-small --results out/speech-fsdd.json\n"
                       "  fmzoo ship fmzoo/tjepa-adult --results reproduce_out/tjepa-adult.json\n  fmzoo ship --check")
    s.add_argument("source", nargs="?", help="run directory, checkpoint directory or shipped id (fmzoo/NAME)")
    s.add_argument("--name", help="the shipped name (its id is fmzoo/NAME; default: the source folder's name)")
    s.add_argument("--package", help="the fmzoo package to ship into (default: the one registering the architecture)")
    s.add_argument("--results", nargs="+", default=[], metavar="JSON", help="`fmzoo reproduce` JSON whose rows join the card")
    s.add_argument("--card", metavar="YAML", help="card keys (title, summary, limitations, ...) replacing the card's")
    s.add_argument("--replace", action="store_true", help="ship over an existing checkpoint of that name")
    s.add_argument("--check", action="store_true", help="check that every shipped card agrees with its provenance")
    s.set_defaults(fn=cmd_ship)

    s = sub.add_parser("reproduce", help="run a paper table and print ours beside the paper's",
                       description="Run a paper table (see `fmzoo list`); writes OUT/TABLE.json and OUT/TABLE.png. "
                       "--quick uses the shipped checkpoint and takes minutes on a laptop CPU; without it the paper's protocol runs.",
                       epilog=lambda: _choices("tables", _registry_names("tables")))
    s.add_argument("table", nargs="?", help="table name (listed below)")
    s.add_argument("--all", action="store_true", help="every table of every installed package")
    s.add_argument("--quick", action="store_true", help="shipped checkpoint, short protocol")
    s.add_argument("--smoke", action="store_true", help="a seconds-long run of the quick protocol on a sliver of the data "
                   "(what CI runs to check every runner; its numbers mean nothing)")
    s.add_argument("--out", default="reproduce_out", help="output directory (default reproduce_out)")
    s.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="with --all: run N tables at a time, each in its own process (same numbers; default 1)")
    s.set_defaults(fn=cmd_reproduce)

    s = sub.add_parser("import", help="convert a released checkpoint (official layout) into an fmzoo checkpoint",
                       description="Convert the authors' released weights (a folder or file in the official layout: "
                       "transformers, fairseq, s3prl, TAPE, VoCo, SoftCon, ...) into an fmzoo checkpoint, once. Pickled "
                       "files are read with torch.load(weights_only=True): nothing in them runs.")
    s.add_argument("source", help="the release: a folder or a file")
    s.add_argument("--format", help="the release layout (default: detected; `fmzoo list` shows the catalogue's formats)")
    s.add_argument("--id", help="the catalogue id the file belongs to (its card then names source, licence, base model)")
    s.add_argument("--out", help="a directory, or an org/name to publish to the local hub (default: the import cache)")
    s.add_argument("--no-progress", action="store_true", help="hide the step bar (shown only on a terminal)")
    s.set_defaults(fn=cmd_import)

    s = sub.add_parser("card", help="print (or write) a checkpoint's model card",
                       description="Print the model card (README.md) of a checkpoint, or write it to a file with --write.")
    s.add_argument("model", help="repo id or checkpoint directory")
    s.add_argument("--write", metavar="PATH", help="write the card to PATH (e.g. a copy to attach elsewhere)")
    s.add_argument("--results", metavar="JSON", help="re-render the card of a checkpoint directory with the rows of a `fmzoo reproduce` JSON")
    s.set_defaults(fn=cmd_card)
    return p


def main(argv=None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import CheckpointError, InputSpecError, RecipeError, RepoIdError, UnknownNameError

    try:
        return int(args.fn(args) or 0)
    except (UsageError, UnknownNameError, CheckpointError, InputSpecError, RecipeError, RepoIdError,
            FileNotFoundError) as exc:  # the user's input; anything else is a bug and keeps its traceback
        print(f"fmzoo {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
