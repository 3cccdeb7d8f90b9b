"""bayeshrink: the Bayesian reading of mixed models.

The BLUPs of a one-way mixed model are posterior means under an empirical-Bayes plug-in prior
N(mu_hat, tau_hat^2). bayeshrink fits the model exactly as lme4 / metafor do, shows the
shrinkage, and builds the same models in PyMC.

The public API is re-exported here; importing bayeshrink imports neither PyMC nor matplotlib.
"""

from __future__ import annotations

from .data import GroupStats, group_stats, summary_stats
from .datasets import describe_dataset, list_datasets, load_dataset
from .errors import (
    BayeshrinkError,
    BayeshrinkWarning,
    ColumnError,
    DataError,
    DataTypeError,
    MethodError,
    RowsDroppedWarning,
)
from .estimate import VarianceComponents
from .fitting import fit, fit_stats, fit_summary
from .results import ShrinkageFit

__version__ = "0.1.0"

__all__ = [
    "BayeshrinkError",
    "BayeshrinkWarning",
    "ColumnError",
    "DataError",
    "DataTypeError",
    "GroupStats",
    "MethodError",
    "RowsDroppedWarning",
    "ShrinkageFit",
    "VarianceComponents",
    "describe_dataset",
    "fit",
    "fit_stats",
    "fit_summary",
    "group_stats",
    "list_datasets",
    "load_dataset",
    "summary_stats",
]
