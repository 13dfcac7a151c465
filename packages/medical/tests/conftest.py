import os

import pytest
import torch

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def hippo_root():
    from fmzoo.core import data_root

    return data_root() / "medical3d" / "msd_hippocampus"


@pytest.fixture(scope="session")
def totalseg_root():
    from fmzoo.core import data_root

    return data_root() / "medical3d" / "totalsegmentator_examples"
