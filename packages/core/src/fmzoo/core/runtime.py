"""Process state the pipeline owns: seeds, random generators and CPU threads.

Domain packages never call ``torch.manual_seed`` or ``torch.set_num_threads`` themselves: the core's
pipelines (``fmzoo pretrain``, ``fmzoo finetune``/``evaluate``, ``fmzoo reproduce``) seed and set threads
through these functions, and a method that owns a random stream asks for one with ``generator(seed)``."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (CPU and every CUDA device), and ``PL_GLOBAL_SEED`` for Lightning's
    worker seeding. Returns the seed."""
    import torch

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    os.environ["PL_SEED_WORKERS"] = "1"
    return seed


def generator(seed: int):
    """A torch CPU generator of its own (a data loader's shuffle, a method's masks): seeded, independent of the
    global stream, so two parts of a pipeline never consume each other's numbers."""
    import torch

    return torch.Generator().manual_seed(int(seed))


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (``None`` keeps the current count); returns the count before."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        torch.set_num_threads(threads)
    return before


def _native_pools(count: int):
    """Cap the native thread pools that torch's setting does not reach: the BLAS (OpenBLAS/MKL) that NumPy and
    SciPy (so scikit-learn) load, and the OpenMP runtimes of scikit-learn's compiled loops. Without it a
    ``threads(1)`` block still spins a second BLAS thread in every NumPy product and scikit-learn fit.
    SciPy's BLAS is loaded first (a library loaded after the cap keeps its own default). Returns the
    threadpoolctl limiter whose ``restore_original_limits()`` undoes it."""
    import numpy  # noqa: F401  (its BLAS must be loaded to be capped)
    from threadpoolctl import threadpool_limits

    with contextlib.suppress(ImportError):
        import scipy.linalg  # noqa: F401  (scikit-learn's BLAS)
    return threadpool_limits(limits=count)


@contextlib.contextmanager
def threads(count: int | None):
    """Run a block with ``count`` CPU threads and restore the caller's settings afterwards: torch's intra-op
    threads, and the BLAS and OpenMP pools of NumPy, SciPy and scikit-learn (through threadpoolctl).
    ``None`` changes nothing."""
    import torch

    before = set_threads(None)
    if count is None:
        yield
        return
    set_threads(count)  # validates count first: nothing is capped for a bad one
    try:
        limiter = _native_pools(count)
        try:
            yield
        finally:
            limiter.restore_original_limits()
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def seeded(seed: int, count: int | None = None):
    """``threads(count)`` and ``seed_everything(seed)`` for one block: how every pipeline step starts."""
    with threads(count):
        seed_everything(seed)
        yield
