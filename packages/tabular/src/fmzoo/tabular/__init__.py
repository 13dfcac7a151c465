"""fmzoo.tabular: T-JEPA for tables, with scikit-learn estimators.

    from fmzoo.tabular import TJEPAClassifier
    clf = TJEPAClassifier("fmzoo/tjepa-adult").fit(train_df, y)   # frozen T-JEPA representations + MLP
    clf.predict_proba(test_df)
"""

from .models.tjepa import TJEPA
from .spec import TabularInput, TabularSchema
from .tasks.estimators import TJEPAClassifier, TJEPARegressor

__all__ = ["TJEPA", "TJEPAClassifier", "TJEPARegressor", "TabularInput", "TabularSchema"]
