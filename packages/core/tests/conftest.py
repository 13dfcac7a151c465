"""A fake domain plugin for the core's own tests, so they run with only fmzoo-core installed.

It registers one architecture (``DigitsMLP``, a small MLP over sklearn's bundled handwritten digits, real data that
ships with scikit-learn) with downstream hooks, through the same ``Plugin`` a domain package returns."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from fmzoo.core import HubMixin, Plugin
from fmzoo.core.downstream import DownstreamHooks, Split, Task

MODULE = "fmzoo_fake_domain"


class DigitsMLP(nn.Module, HubMixin):
    def __init__(self, in_dim: int = 64, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.input_spec = {"num_features": in_dim, "dataset": "digits"}

    def forward(self, x):
        return self.net(x)


class DigitsHooks(DownstreamHooks):
    datasets = ("digits",)
    data_format = "a .npz file with arrays x_train, y_train, x_test, y_test"
    epochs = 3
    lr = 1e-3
    batch_size = 64

    def load(self, model, dataset, path):
        if path is not None:
            d = np.load(path)
            x, y, xt, yt = d["x_train"], d["y_train"], d["x_test"], d["y_test"]
            source = str(path)
        else:
            from sklearn.datasets import load_digits

            x, y = load_digits(return_X_y=True)
            x = (x / 16.0).astype(np.float32)
            x, y, xt, yt = x[:1200], y[:1200], x[1200:], y[1200:]
            source = "sklearn load_digits (UCI optical digits)"
        return Task("digits", "classification", Split(x, y), Split(xt, yt), n_outputs=10, metric="accuracy",
                    source=source)

    def features(self, model, inputs):
        return model(inputs)


def plugin() -> Plugin:
    return Plugin(name="fake", models={"DigitsMLP": f"{MODULE}:DigitsMLP"},
                  downstream={"DigitsMLP": f"{MODULE}:DigitsHooks"})


@pytest.fixture
def fake_plugin(monkeypatch):
    """The registry sees exactly the fake domain (and no installed domain package)."""
    from fmzoo.core import registry

    module = types.ModuleType(MODULE)
    module.DigitsMLP, module.DigitsHooks = DigitsMLP, DigitsHooks
    monkeypatch.setitem(sys.modules, MODULE, module)
    monkeypatch.setattr(registry, "plugins", lambda: {"fake": plugin()})
    return module


@pytest.fixture
def digits_checkpoint(fake_plugin, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "digits-mlp"
    DigitsMLP().save_pretrained(path)
    return path
