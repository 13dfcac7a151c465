"""Time the root README's Python example (TJEPAClassifier on all 32,561 Adult training rows: a frozen fit, an
end-to-end fit, predict_proba on the test split) at the estimators' defaults, and print each step's wall and CPU
seconds and both fits' test accuracy (UCI's official test split, seed 0).

    FMZOO_DATA=/path/to/data FMZOO_OFFLINE=1 python benchmarks/tabular_readme_example.py

On a loaded machine compare the CPU seconds (wall time includes waiting for the cores)."""

import time

import numpy as np
from fmzoo.tabular import TJEPAClassifier
from fmzoo.tabular.data.adult import load_adult


def main() -> None:
    t0, c0 = time.time(), time.process_time()

    def lap(msg: str, t: float, c: float) -> None:
        print(f"{msg}: wall {time.time() - t:.1f} s, cpu {time.process_time() - c:.1f} s", flush=True)

    adult = load_adult()
    X, y = adult["train"]
    Xt, yt = adult["test"]
    lap("load", t0, c0)
    t, c = time.time(), time.process_time()
    clf = TJEPAClassifier("fmzoo/tjepa-adult").fit(X, y)  # frozen
    lap("frozen fit", t, c)
    t, c = time.time(), time.process_time()
    ft = TJEPAClassifier("fmzoo/tjepa-adult", finetune=True).fit(X, y)  # end to end
    lap("finetune fit", t, c)
    t, c = time.time(), time.process_time()
    proba = clf.predict_proba(Xt)
    lap("predict_proba", t, c)
    lap("README example total", t0, c0)
    print(f"test accuracy: frozen {(clf.classes_[proba.argmax(1)] == np.asarray(yt)).mean():.4f}, "
          f"fine-tuned {(ft.predict(Xt) == np.asarray(yt)).mean():.4f}")


if __name__ == "__main__":
    main()
