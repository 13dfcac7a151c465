"""Fixtures shared by every package's tests: the real data root and an isolated local hub."""

import os
from pathlib import Path

import pytest

# Reproducible, contention-safe CPU settings for the whole test session.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("FMZOO_OFFLINE", "1")  # tests never touch the network
_DEFAULT_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"
if "FMZOO_DATA" not in os.environ and _DEFAULT_DATA.is_dir():
    os.environ["FMZOO_DATA"] = str(_DEFAULT_DATA)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("FMZOO_DATA")
    if not root or not Path(root).is_dir():
        pytest.fail("the real data are required: set FMZOO_DATA (CI uses ../shared/data)")
    return Path(root)


@pytest.fixture
def tmp_hub(tmp_path, monkeypatch) -> Path:
    hub = tmp_path / "hub"
    monkeypatch.setenv("FMZOO_HUB", str(hub))
    return hub


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
