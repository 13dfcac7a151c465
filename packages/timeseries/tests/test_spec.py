import numpy as np
import pandas as pd
import pytest
from fmzoo.core import InputSpecError


@pytest.fixture(scope="module")
def frame(etth1):
    return pd.DataFrame(etth1.values[:200], columns=etth1.columns).assign(date=etth1.dates[:200])


def test_forecast_dataframe_with_timestamps(frame, tiny_gpht):
    m = tiny_gpht()
    out = m.forecast(frame, horizon=30)
    assert list(out.columns) == [c for c in frame.columns if c != "date"]
    assert len(out) == 30 and out.index[0] == frame["date"].iloc[-1] + pd.Timedelta(hours=1)
    assert (out.index[1:] - out.index[:-1] == pd.Timedelta(hours=1)).all()
    # values in original units, equal to the tensor API on the last context_len rows
    import torch

    ref = m.generate(torch.tensor(frame.drop(columns="date").to_numpy()[-96:], dtype=torch.float32)[None], 30)[0]
    np.testing.assert_allclose(out.to_numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    # DatetimeIndex input works too
    out2 = m.forecast(frame.set_index("date")[["OT"]], horizon=5)
    assert list(out2.columns) == ["OT"] and len(out2) == 5


def test_dataframe_errors(frame, tiny_gpht):
    m = tiny_gpht()
    with pytest.raises(InputSpecError, match="irregular timestamps"):
        m.forecast(frame.drop(index=[150]), horizon=5)
    with pytest.raises(InputSpecError, match="strictly increasing"):
        m.forecast(frame.iloc[::-1], horizon=5)
    gap = frame.copy()
    gap.loc[190, "OT"] = np.nan
    with pytest.raises(InputSpecError, match="NaN"):
        m.forecast(gap, horizon=5)
    with pytest.raises(InputSpecError, match="context too short"):
        m.forecast(frame.iloc[:50], horizon=5)
    with pytest.raises(InputSpecError, match="must hold real numbers"):
        m.forecast(frame.assign(label="a"), horizon=5)
    with pytest.raises(InputSpecError, match="timestamp"):
        m.forecast(frame.drop(columns="date"), horizon=5)
    with pytest.raises(InputSpecError, match="horizon"):
        m.forecast(frame, horizon=0)
