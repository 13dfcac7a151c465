"""fmzoo-timeseries: GPHT (generative pretrained hierarchical transformer, Liu et al. KDD 2024).

    from fmzoo.timeseries import GPHT
    model = GPHT.from_pretrained("fmzoo/gpht-mixed")
    future = model.forecast(df, horizon=96)   # DataFrame with a DatetimeIndex or a 'date' column
    pred = model.predict_df(long_df, prediction_length=96)   # item_id / timestamp / target -> predictions, "0.1", ...
"""
from fmzoo.timeseries.forecasting import predict_df, predict_quantiles
from fmzoo.timeseries.models.gpht import GPHT

__all__ = ["GPHT", "predict_df", "predict_quantiles"]
__version__ = "0.1.0"
