import os

import pytest
import torch

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def etth1():
    from fmzoo.timeseries.data.ltsf import load_ltsf

    return load_ltsf("ETTh1")


def _tiny_gpht(**kw):
    from fmzoo.timeseries.models.gpht import GPHT

    cfg = dict(context_len=96, token_len=24, pooling=[4, 2, 1], d_model=16, n_heads=2, d_ff=32, n_layers=1, dropout=0.0)
    cfg.update(kw)
    torch.manual_seed(0)
    return GPHT(**cfg).eval()


@pytest.fixture
def tiny_gpht():
    return _tiny_gpht
