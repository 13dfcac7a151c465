"""A fake domain plugin for the core's own tests, so they run with only fmzoo-core installed.

It registers one architecture (``DigitsMLP``, a small MLP over sklearn's bundled handwritten digits, real data that
ships with scikit-learn) with downstream hooks, through the same ``Plugin`` a domain package returns."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from fmzoo.core import HubMixin, Plugin
from fmzoo.core.downstream import DownstreamHooks, Split, Task
from fmzoo.core.errors import InputSpecError
from fmzoo.core.method import CORE_TRAIN_KEYS, Method, PretrainData
from fmzoo.core.runtime import generator
from fmzoo.core.spec import InputSpec
from fmzoo.core.training import SSLTask
from fmzoo.core.weights import OfficialWeights, WeightFormat, safe_torch_load
from torch import nn

MODULE = "fmzoo_fake_domain"


class DigitsInput(InputSpec):
    modality = "digits"
    required = {"num_features": int}
    optional = {"dataset": str}

    @classmethod
    def check(cls, spec, where):
        if spec["num_features"] < 1:
            raise InputSpecError(f"{where}['num_features']: expected a positive count, got {spec['num_features']}")


class DigitsMLP(nn.Module, HubMixin):
    input_spec_class = DigitsInput

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


def _digits_file():
    from pathlib import Path

    import sklearn

    return Path(sklearn.__file__).parent / "datasets" / "data" / "digits.csv.gz"


class DigitsMAE(Method):
    """A toy masked-feature autoencoder over the digits' 64 pixels (exercises the core pipeline, not a paper)."""

    recipe_sections = ("mask",)
    recipe_keys = {"train": CORE_TRAIN_KEYS, "data": ("rows",), "mask": ("rate",)}
    citation = "fake"

    def data(self):
        if self.data_path is not None:
            x = np.loadtxt(self.data_path, delimiter=",", dtype=np.float32)
            return PretrainData(torch.utils.data.TensorDataset(torch.as_tensor(x)), files=[self.data_path],
                                description=f"{len(x)} rows of {self.data_path.name} (the user's own data)")
        x = np.loadtxt(_digits_file(), delimiter=",", dtype=np.float32)[:, :64] / 16.0
        n = int(self.recipe.get("data", {}).get("rows", len(x)))
        return PretrainData(torch.utils.data.TensorDataset(torch.as_tensor(x[:n])), files=[_digits_file()],
                            description=f"{n} handwritten digits (sklearn's bundled UCI optical digits)")

    def model(self, data):
        return DigitsMLP(**self.recipe.get("model", {}))

    def task(self, model, data, steps_per_epoch, max_epochs):
        rate = float(self.recipe.get("mask", {}).get("rate", 0.5))

        seed = self.seed

        class Task(SSLTask):
            def __init__(self, model):
                super().__init__(model, lr=1e-3)
                self.decoder = nn.Linear(model.net[-1].out_features, model.net[0].in_features)
                self.gen = generator(seed)  # the method's own mask stream (saved and restored on resume)

            def ssl_loss(self, batch):
                (x,) = batch
                keep = (torch.rand(x.shape, generator=self.gen) > rate).float()
                noisy = x * keep + 0.01 * torch.randn_like(x)  # and a draw from the global stream
                return {"loss": ((self.decoder(self.model(noisy)) - x) ** 2 * (1 - keep)).mean()}

        return Task(model)


class DigitsRelease(WeightFormat):
    """A stand-in 'official layout' for the core's tests: a folder with a transformers-style config.json
    (model_type digits-mlp) and a pickled pytorch_model.bin whose keys carry an ``encoder.`` prefix."""

    name = "digits-release"
    architecture = "DigitsMLP"
    description = "a folder with config.json (model_type digits-mlp) and pytorch_model.bin"

    def detect(self, path):
        import json

        cfg = path / "config.json" if path.is_dir() else None
        return bool(cfg and cfg.is_file() and json.loads(cfg.read_text()).get("model_type") == "digits-mlp")

    def convert(self, path, **options):
        import json

        cfg = json.loads((path / "config.json").read_text())
        state = safe_torch_load(path / "pytorch_model.bin")
        model = DigitsMLP(hidden=cfg["hidden"])
        model.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items()}, strict=True)
        model.input_spec = {"num_features": 64, "dataset": "digits", "scale": "pixels / 16"}
        return model


OFFICIAL = [OfficialWeights(id="fake-org/digits-mlp", method="digits MAE", format="digits-release",
                            source="https://example.org/digits", license="mit", params="3k", hf_repo="fake-org/digits-mlp",
                            files=("config.json", "pytorch_model.bin"))]


def plugin() -> Plugin:
    return Plugin(name="fake", models={"DigitsMLP": f"{MODULE}:DigitsMLP"},
                  downstream={"DigitsMLP": f"{MODULE}:DigitsHooks"}, methods={"digits-mae": f"{MODULE}:DigitsMAE"},
                  weight_formats={"digits-release": f"{MODULE}:DigitsRelease"}, official=f"{MODULE}:OFFICIAL")


def install_fake_plugin(setitem, setattr_):
    from fmzoo.core import registry

    module = types.ModuleType(MODULE)
    module.DigitsMLP, module.DigitsHooks, module.DigitsMAE = DigitsMLP, DigitsHooks, DigitsMAE
    module.DigitsRelease, module.OFFICIAL, module.plugin = DigitsRelease, OFFICIAL, plugin
    setitem(sys.modules, MODULE, module)
    setattr_(registry, "plugins", lambda: {"fake": plugin()})
    return module


DOMAINS = ("graph", "medical", "protein", "remotesensing", "speech", "tabular", "timeseries")


class _NoDomainPackages:
    """A meta-path finder that refuses to import any fmzoo domain package."""

    def find_spec(self, name, path=None, target=None):
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == "fmzoo" and parts[1] in DOMAINS:
            raise ImportError(f"{name}: the core's tests run with only fmzoo-core installed; use the fake plugin "
                              "(packages/core/tests/conftest.py)")
        return None

    def find_spec_safe(self, name) -> bool:
        try:
            self.find_spec(name)
        except ImportError:
            return True
        return False


@pytest.fixture(autouse=True)
def only_fmzoo_core(monkeypatch):
    """Every core test runs as if only fmzoo-core were installed: the registry sees no domain plugin (subprocesses
    too: FMZOO_PLUGINS is empty) and importing a domain package fails, even where another test of the same worker
    imported it before (its modules are hidden for the test and put back after)."""
    from fmzoo.core import registry

    hidden = {k: v for k, v in sys.modules.items() if _NoDomainPackages().find_spec_safe(k)}
    for k in hidden:
        del sys.modules[k]
    finder = _NoDomainPackages()
    sys.meta_path.insert(0, finder)
    monkeypatch.setenv("FMZOO_PLUGINS", "")
    monkeypatch.setattr(registry, "plugins", lambda: {})
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        sys.modules.update(hidden)


@pytest.fixture
def fake_plugin(monkeypatch):
    """The registry sees exactly the fake domain (and no installed domain package)."""
    return install_fake_plugin(monkeypatch.setitem, monkeypatch.setattr)


@pytest.fixture
def digits_checkpoint(fake_plugin, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "digits-mlp"
    DigitsMLP().save_pretrained(path)
    return path
