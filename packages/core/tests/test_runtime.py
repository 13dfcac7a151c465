"""``threads(count)`` owns every CPU thread pool of the process, not only torch's."""

import numpy as np
import pytest
import torch
from fmzoo.core.runtime import threads
from threadpoolctl import threadpool_info, threadpool_limits


def _pools(api: str) -> dict[str, int]:
    return {d["filepath"]: d["num_threads"] for d in threadpool_info() if d["user_api"] == api}


def test_threads_caps_blas_and_openmp_pools_and_restores_them():
    import scipy.linalg  # noqa: F401  (scikit-learn's BLAS, loaded so that both BLAS libraries are seen)

    with threadpool_limits(limits=2):  # a known starting point, whatever the machine's core count
        torch.set_num_threads(2)
        blas_before, omp_before = _pools("blas"), _pools("openmp")
        assert blas_before and set(blas_before.values()) == {2}
        with threads(1):
            assert torch.get_num_threads() == 1
            assert set(_pools("blas").values()) == {1}  # NumPy's and SciPy's OpenBLAS: no second BLAS thread
            assert set(_pools("openmp").values()) == {1}
            a = np.random.default_rng(0).normal(size=(64, 64))
            np.testing.assert_allclose(a @ np.linalg.inv(a), np.eye(64), atol=1e-8)
        assert torch.get_num_threads() == 2
        assert _pools("blas") == blas_before and _pools("openmp") == omp_before


def test_threads_restores_after_an_error_and_refuses_a_bad_count():
    import scipy.linalg  # noqa: F401

    with threadpool_limits(limits=2):
        torch.set_num_threads(2)
        before = _pools("blas")
        with pytest.raises(RuntimeError, match="boom"), threads(1):
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2 and _pools("blas") == before
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(ValueError, match="positive integer"), threads(bad):
                pass
            assert torch.get_num_threads() == 2 and _pools("blas") == before
        with threads(None):  # None changes nothing
            assert torch.get_num_threads() == 2 and _pools("blas") == before
