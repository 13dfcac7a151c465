"""GPHT under the core's downstream contract (``fmzoo evaluate`` / ``fmzoo finetune``): long-horizon forecasting.

The task is the LTSF protocol GPHT is evaluated with (Informer/Autoformer/PatchTST splits, see data/ltsf.py):

- an item is one channel's context window of ``context_len`` values (336, the checkpoint's input spec and the
  paper's lookback); its target is the next ``horizon`` values of that channel (default 96; the paper reports
  96/192/336/720). Channel independence, as GPHT: a dataset with C columns gives C items per window;
- values are standardized with the train split's per-column statistics and the metric is the MSE (and MAE) on
  these normalized values, as every LTSF table;
- windows are evenly spaced over each split (``train_windows`` / ``test_windows`` window positions, times the
  channels) so a run takes about a minute on a laptop CPU; the test positions are those of
  ``fmzoo reproduce gpht-etth1 --quick`` (256 per horizon);
- the forecast is GPHT's own: autoregressive, one 48-step token at a time, summed over the hierarchical stages.
  ``finetune`` trains every weight end to end through that rollout with the forecasting MSE; ``evaluate`` is the
  paper's fine-tuning protocol: the pretrained transformer frozen (eval mode) and only the stages' forecast heads
  trained, from their pretrained values;
- the baseline is the naive forecast (repeat the last observed value) on the same test windows.

Default data: the dataset the checkpoint's recipe names in its provenance.json (``checkpoint_dir``, set by the CLI):
the one dataset a fine-tune or a from-scratch control trained on (gpht-etth1 and gpht-etth1-scratch: ETTh1,
gpht-etth2-scratch: ETTh2), or, for a mixture, the first dataset the recipe evaluates on (gpht-mixed: ETTh1,
gpht-mixed-no-etth2: ETTh2, the dataset it holds out); else ETTh1. ``--dataset`` takes every registered LTSF
dataset; ``--data PATH`` a CSV with a ``date`` column plus one or more numeric columns (split 70/10/20 in time order).

Options (``--option NAME=VALUE``): ``horizon`` (forecast length, default 96), ``train_windows`` and
``test_windows`` (evenly spaced window positions per split, default 256 each; ``null`` takes every position, stride 1:
the full LTSF test protocol).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.downstream import DownstreamHooks, Split, Task
from fmzoo.timeseries.data.ltsf import DATASETS, LTSFData, eval_windows, forecast_metrics, load_csv, load_ltsf
from fmzoo.timeseries.provenance import checkpoint_recipe, default_dataset
from torch import nn

DATA_FORMAT = ("a time-series CSV: a 'date' column (strictly increasing timestamps) plus one or more numeric "
               "columns, one row per time step; split 70% / 10% / 20% in time order, each column standardized "
               "with the train rows' statistics")


def channel_windows(data: LTSFData, split: str, context_len: int, horizon: int,
                    max_windows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(contexts [W*C, context_len], futures [W*C, horizon]) of ``max_windows`` evenly spaced window positions of a
    split, one row per (position, channel), position-major."""
    ctx, fut = eval_windows(data, split, horizon, context_len, max_windows=max_windows)
    if len(ctx) == 0:
        rows = data.borders[split][1] - data.borders[split][0]
        lead = f" (with the {context_len} context rows before it)" if split != "train" else ""
        need = int(max((context_len + horizon) / 0.7, horizon / 0.2)) + 1  # for a 70/10/20 split
        raise InputSpecError(f"{data.name}: the {split} split has {rows} rows{lead}; a window needs context_len + "
                             f"horizon = {context_len + horizon}. Give a longer series (about {need} rows or more)")
    return (ctx.permute(0, 2, 1).reshape(-1, context_len).numpy(), fut.permute(0, 2, 1).reshape(-1, horizon).numpy())


def metrics(pred, true) -> dict[str, float]:
    """MSE and MAE (float64) of forecasts against targets (tensors or arrays of the same shape)."""
    return forecast_metrics(torch.as_tensor(pred), torch.as_tensor(true))


class GPHTForecaster(nn.Module):
    """A GPHT as a forecaster of ``horizon`` steps (its differentiable autoregressive rollout). With ``freeze`` only
    the stages' forecast heads learn and the rest stays in eval mode (dropout off), as the official fine-tuning."""

    def __init__(self, model, horizon: int, freeze: bool):
        super().__init__()
        self.model, self.horizon, self.freeze = model, int(horizon), freeze
        if freeze:
            for name, p in model.named_parameters():
                p.requires_grad_(".head." in name)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.rollout(x, self.horizon)


class GPHTHooks(DownstreamHooks):
    datasets = tuple(DATASETS)  # ETTh1 first: the default when the checkpoint's provenance names none
    data_format = DATA_FORMAT
    options = ("horizon", "train_windows", "test_windows")  # --option NAME=VALUE
    horizon = 96  # forecast length (the paper's shortest; --option horizon=192 / 336 / 720)
    train_windows = 256  # evenly spaced window positions of the train split (x channels = training items)
    test_windows = 256  # evenly spaced window positions of the test split (those of the quick gpht-etth1 table)

    def configure(self, options: dict) -> None:
        super().configure(options)
        self._check_options()

    def _check_options(self) -> None:
        for name in self.options:
            value = getattr(self, name)
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0
            if not ok and not (name != "horizon" and value is None):
                what = "a positive integer" + ("" if name == "horizon" else " or null (every window position)")
                raise InputSpecError(f"option {name} (--option {name}=VALUE) expects {what}, got {value!r}")
    epochs = 3
    lr = 1e-4  # end to end: the fine-tuning lr of the recipe gpht-etth1 and the paper
    frozen_lr = 3e-4  # forecast heads only
    batch_size = 32
    eval_batch_size = 256

    def load(self, model, dataset: str | None, path: Path | None) -> Task:
        self._check_options()
        spec = getattr(model, "input_spec", None) or {}
        context_len = int(spec.get("context_len", model.context_len))
        if path is not None:
            data = load_csv(path, context_len=context_len)
            source = f"{path} (your CSV; split 70/10/20 in time order, train-split standardization)"
        else:
            name, why = dataset or spec.get("dataset"), ""
            if not name:
                name, why = default_dataset(checkpoint_recipe(self.checkpoint_dir), DATASETS)
                name = name or self.datasets[0]
            if name not in DATASETS:
                raise InputSpecError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
            data = load_ltsf(name, context_len=context_len)
            source = (f"{name} ({data.path}; standard LTSF splits, train-split standardization"
                      f"{'; default: ' + why if why else ''})")
        h = int(self.horizon)
        train = channel_windows(data, "train", context_len, h, self.train_windows)
        test = channel_windows(data, "test", context_len, h, self.test_windows)
        c = len(data.columns)
        notes = (f"items: one channel's {context_len}-step context (channel-independent), target: its next {h} "
                 f"values; {len(train[0]) // c} train and {len(test[0]) // c} test window positions, evenly spaced, "
                 f"x {c} channels; mse/mae on train-split-standardized values")
        return Task(f"{data.name} forecasting (H={h})", "forecasting", Split(*train), Split(*test), n_outputs=h,
                    metric="mse", source=source, notes=notes)

    def collate_targets(self, task: Task, targets):
        return torch.as_tensor(np.asarray(targets, dtype=np.float32))

    def features(self, model, inputs):
        return model.token_states(inputs)

    def network(self, model, task: Task, freeze: bool):
        return GPHTForecaster(model, task.n_outputs, freeze)

    def loss(self, task: Task, outputs, targets):
        return nn.functional.mse_loss(outputs, targets)

    def score(self, task: Task, outputs, targets) -> dict[str, float]:
        return metrics(outputs, np.asarray(targets))

    def baseline(self, task: Task, train: Split) -> tuple[str, dict[str, float]]:
        ctx = np.asarray(task.test.items)
        pred = np.repeat(ctx[:, -1:], task.n_outputs, axis=1)
        return "repeat last value", metrics(pred, np.asarray(task.test.targets))
