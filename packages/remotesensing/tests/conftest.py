import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def rs_root() -> Path:
    """The real data root (FMZOO_DATA or ../shared/data), via the core."""
    from fmzoo.core import data_root

    return data_root()


@pytest.fixture
def isolated_hub(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setenv("FMZOO_HUB", str(hub))
    monkeypatch.setenv("FMZOO_OFFLINE", "1")
    return hub
