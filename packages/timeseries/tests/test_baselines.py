import torch
from fmzoo.timeseries.models.baselines import DLinearLS, moving_average, repeat_last
from fmzoo.timeseries.tasks.evaluation import evaluate_dlinear, evaluate_repeat_last


def test_repeat_last_and_moving_average():
    x = torch.arange(12.0).view(2, 6)
    assert torch.equal(repeat_last(x, 3), torch.tensor([[5.0] * 3, [11.0] * 3]))
    import numpy as np

    ma = moving_average(np.ones((1, 30)) * 2.0, 25)
    np.testing.assert_allclose(ma, 2.0)
    lin = np.arange(40.0)[None]
    np.testing.assert_allclose(moving_average(lin, 5)[0, 5:-5], lin[0, 5:-5])


def test_dlinear_beats_repeat_last_on_etth1(etth1):
    last = evaluate_repeat_last(etth1, [96], max_windows=64)[96]
    lin = evaluate_dlinear(etth1, [96], max_windows=64, fit_stride=8)[96]
    assert lin["mse"] < 0.5 * last["mse"]
    assert 0.3 < lin["mse"] < 0.5  # DLinear paper, ETTh1 96: 0.375 (input 336)


def test_dlinear_multivariate_equals_per_channel(etth1):
    m = DLinearLS(336, 48).fit(etth1, stride=16)
    x = torch.randn(3, 336, 2)
    y = m.predict(x)
    torch.testing.assert_close(y[:, :, 1], m.predict(x[:, :, 1].contiguous()))
