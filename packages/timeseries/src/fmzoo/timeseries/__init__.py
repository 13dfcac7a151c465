"""fmzoo-timeseries: GPHT (generative pretrained hierarchical transformer, Liu et al. KDD 2024).

    from fmzoo.timeseries import GPHT
    model = GPHT.from_pretrained("fmzoo/gpht-mixed")
    future = model.forecast(df, horizon=96)   # DataFrame with a DatetimeIndex or a 'date' column
"""
from fmzoo.timeseries.models.gpht import GPHT

__all__ = ["GPHT"]
__version__ = "0.1.0"
