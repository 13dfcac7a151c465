"""Runner for the ``speech-fsdd`` table: SUPERB-style probes (frozen upstream, softmax-weighted layer sum,
mean pooling, linear classifier) for spoken-digit and speaker identification on FSDD (README split).

Rows: the log-mel surface-feature baseline (no pretraining), TERA and wav2vec 2.0, each from a random
initialisation (scratch, one init per seed) and from the shipped pretrained checkpoint (probe seed varies).
quick: a class-balanced 300-clip subset of the training split (5 per digit x speaker) (all 300 test clips) so the table runs in
about two minutes; full: all 2700 training clips; smoke (``fmzoo reproduce speech-fsdd --smoke``): the quick
protocol on 30 training and 30 test clips, seed 0 only, probes of 30 steps: seconds long, numbers meaningless.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import torch
from fmzoo.core.evaluation import label_budget
from fmzoo.core.reproduce import make_row, per_seed

from .data.fsdd import list_fsdd, load_fsdd, load_items
from .models.tera import TERA
from .spec import ResampleWarning
from .tasks.probe import layer_means, logmel_means, train_probe

__all__ = ["run_fsdd", "evaluate_upstreams"]

CHECKPOINTS = {"TERA": "fmzoo/tera-small", "wav2vec 2.0": "fmzoo/wav2vec2-small"}


def _balanced_subset(items, per_cell: int) -> list[int]:
    seen: dict = {}
    keep = []
    for i, it in enumerate(items):
        key = (it.digit, it.speaker)
        if seen.get(key, 0) < per_cell:
            seen[key] = seen.get(key, 0) + 1
            keep.append(i)
    return keep


SMOKE_TRAIN = SMOKE_TEST = 30  # smoke: one clip per digit 0-4 x speaker of each split (5 per speaker)
SMOKE_PROBE_STEPS = 30  # smoke: the probe's full-batch Adam runs 30 steps, not 300 (the same code path)


def _smoke_items(split: str) -> list:
    items = [it for it in list_fsdd(split) if it.digit < 5]
    return [items[i] for i in _balanced_subset(items, 1)]


FEW_LABELS = (2, 5)  # labelled training clips per speaker in the few-label speaker-ID rows


def _probe_both(tr, te, ytr, yte, seed, **probe_kw):
    """Digit and speaker probes on all training clips, plus speaker probes that see only ``n`` labelled clips
    per speaker (subset drawn by ``fmzoo.core.evaluation.label_budget`` with this seed): the full speaker task
    is nearly saturated (6 speakers), the few-label rows are the harder protocol. ``probe_kw``: passed to
    ``train_probe`` (smoke: fewer steps)."""
    res = {task: train_probe(tr, ytr[task], te, yte[task], n, seed=seed, **probe_kw)["accuracy"]
           for task, n in (("digit", 10), ("speaker", 6))}
    for n in FEW_LABELS:
        idx = torch.as_tensor(label_budget(ytr["speaker"].numpy(), per_class=n, seed=seed))
        res[f"speaker@{n}"] = train_probe(tr[idx], ytr["speaker"][idx], te, yte["speaker"], 6, seed=seed,
                                          **probe_kw)["accuracy"]
    return res


def evaluate_upstreams(quick: bool, seeds=(0, 1, 2), checkpoints: dict | None = None, echo=print,
                       smoke: bool = False) -> dict:
    """Returns {(model, init): {"digit": [...], "speaker": [...], "speaker@2": [...], "speaker@5": [...]}}
    over ``seeds`` (``speaker@n``: speaker probe trained on n labelled clips per speaker). Runs with the caller's
    thread count (the speech-fsdd table sets 1). ``smoke``: the quick protocol on a sliver (one clip per digit 0-4
    x speaker of each split, only these clips read) with SMOKE_PROBE_STEPS probe steps."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        if smoke:
            tr_w, tr_d, tr_s, tr_items = load_items(_smoke_items("train"))
            te_w, te_d, te_s, _ = load_items(_smoke_items("test"))
        else:
            tr_w, tr_d, tr_s, tr_items = load_fsdd("train")
            te_w, te_d, te_s, _ = load_fsdd("test")
    if quick and not smoke:
        keep = _balanced_subset(tr_items, 5)
        tr_w = [tr_w[i] for i in keep]
        tr_d, tr_s = tr_d[keep], tr_s[keep]
    ytr, yte = {"digit": tr_d, "speaker": tr_s}, {"digit": te_d, "speaker": te_s}
    probe_kw = {"steps": SMOKE_PROBE_STEPS} if smoke else {}
    results: dict = {}
    t0 = time.time()
    a, b = logmel_means(tr_w), logmel_means(te_w)
    results[("log-mel", "scratch")] = _collect([_probe_both(a, b, ytr, yte, s, **probe_kw) for s in seeds])
    echo(f"  log-mel done ({time.time() - t0:.0f} s)")
    from fmzoo.core import from_pretrained

    for name, repo in (checkpoints or CHECKPOINTS).items():
        pre = from_pretrained(repo)
        a, b = layer_means(pre, tr_w), layer_means(pre, te_w)
        results[(name, "pretrained")] = _collect([_probe_both(a, b, ytr, yte, s, **probe_kw) for s in seeds])
        echo(f"  {name} pretrained done ({time.time() - t0:.0f} s)")
        def scratch_run(s, pre=pre):  # seeded with s by the core (per_seed): the random init of this seed
            scratch = type(pre)(**pre.init_args).eval()
            if isinstance(scratch, TERA):  # data statistics, not learned weights: same as the pretrained model's
                scratch.cmvn_mean.copy_(pre.cmvn_mean)
                scratch.cmvn_std.copy_(pre.cmvn_std)
            a, b = layer_means(scratch, tr_w), layer_means(scratch, te_w)
            return _probe_both(a, b, ytr, yte, s, **probe_kw)

        results[(name, "scratch")] = _collect(per_seed(seeds, scratch_run, f"{name} scratch seeds"))
        echo(f"  {name} scratch done ({time.time() - t0:.0f} s)")
    return results


def _collect(runs: list[dict]) -> dict:
    return {k: [r[k] for r in runs] for k in runs[0]}


def run_fsdd(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    """The table's rows; ``smoke``: the quick protocol on a sliver (30 training clips, 30 test clips, seed 0,
    probes of SMOKE_PROBE_STEPS steps)."""
    seeds = [0] if smoke else [0, 1, 2]
    res = evaluate_upstreams(quick, seeds, smoke=smoke)
    setting = "300-clip balanced train subset" if quick else "full train split (2700 clips)"
    test_clips = "test 300 clips"
    if smoke:
        setting, test_clips = (f"smoke: {SMOKE_TRAIN}-clip train sliver (1 per digit 0-4 x speaker), "
                               f"probe {SMOKE_PROBE_STEPS} steps", f"test {SMOKE_TEST} clips")
    rows = []
    for (model, init), vals in res.items():
        tasks = [("digit", "digit", "digit_accuracy"), ("speaker", "speaker", "speaker_accuracy")]
        tasks += [(f"speaker@{n}", f"speaker, {n} labels/speaker", "speaker_accuracy") for n in FEW_LABELS]
        for task, label, metric in tasks:
            note = f"{setting}; {test_clips}; frozen upstream + weighted layer sum + mean pool + linear"
            if "@" in task:
                note = (f"{task.split('@')[1]} labelled clips per speaker drawn from the {setting} by "
                        "fmzoo.core.evaluation.label_budget (seed = label-subset seed); " + note)
            if model == "log-mel":
                note = "no pretraining: time-averaged 80-d log-mel; " + note
            elif init == "scratch":
                note = "random init (seed = init seed), frozen; " + note
            else:
                note = f"shipped checkpoint {CHECKPOINTS[model]} (probe seed varies); " + note
            rows.append(make_row(table, model=f"{model} [{label}]", init=init, values=vals[task], seeds=seeds,
                                 note=note, metric=metric))
    return rows

