"""Empirical coverage of GPHT's calibrated quantiles (predict_quantiles / predict_df) on real held-out test windows.

For each row of PLAN: 64 evenly spaced forecast origins of the dataset's test split (those of the quick tables and of
tests/test_forecasting.py), every channel a series on the train-split-standardized scale, H steps ahead; prints one
JSON line per setting (coverage of the 0.1-0.9 interval, the share below 0.1 / above 0.9 / below the 0.5 level, MSE of
the point forecast). ``calibration="series"`` is given 336 + 3H values of each series' history.

    FMZOO_DATA=... python scripts/quantile_coverage.py
"""
import json
import time

import numpy as np
import torch
from fmzoo.timeseries import GPHT
from fmzoo.timeseries.data.ltsf import load_ltsf, window_starts

WINDOWS = 64
PLAN = [  # (checkpoint, test dataset, H, calibrations, contexts)
    ("gpht-mixed", "ETTh1", 96, ("validation", "series"), (336, 96)),
    ("gpht-etth1", "ETTh1", 96, ("validation", "series"), (336, 96)),
    ("gpht-mixed", "ETTh2", 96, ("validation",), (336, 96)),
    ("gpht-mixed-no-etth2", "ETTh2", 96, ("validation",), (336,)),
    ("gpht-etth2-scratch", "ETTh2", 96, ("validation",), (336,)),
    ("gpht-mixed", "ETTh1", 336, ("validation",), (336,)),
    ("gpht-etth1", "ETTh1", 336, ("validation",), (336,)),
    ("gpht-mixed", "ETTh1", 720, ("validation",), (336,)),
]


def main():
    torch.set_num_threads(2)
    models = {}
    for ck, ds, h, calibrations, contexts in PLAN:
        m = models.setdefault(ck, GPHT.from_pretrained(f"fmzoo/{ck}"))
        d = load_ltsf(ds)
        first, end = d.borders["test"]
        first += m.context_len  # the first forecast origin of the test split
        hist = m.context_len + 3 * h
        origins = first + window_starts(end - first, h, 1, WINDOWS)
        x = np.stack([d.scaled[t - hist:t].T for t in origins]).reshape(-1, hist)  # [windows * channels, hist]
        y = np.stack([d.scaled[t:t + h].T for t in origins]).reshape(-1, h)
        for cal in calibrations:
            for n in (contexts if cal == "validation" else (hist,)):
                t0 = time.time()
                q, p = m.predict_quantiles(list(x[:, -n:]), h, (0.1, 0.5, 0.9), calibration=cal)
                print(json.dumps({
                    "ckpt": ck, "data": ds, "H": h, "calibration": cal, "context": min(n, m.context_len),
                    "items": len(x), "cov80": round(float(((y >= q[..., 0]) & (y <= q[..., 2])).mean()), 3),
                    "below_q10": round(float((y < q[..., 0]).mean()), 3),
                    "above_q90": round(float((y > q[..., 2]).mean()), 3),
                    "below_q50": round(float((y <= q[..., 1]).mean()), 3),
                    "mse": round(float(((p - y) ** 2).mean()), 4), "seconds": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
