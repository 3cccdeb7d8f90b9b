"""bayeshrink: the Bayesian reading of mixed models.

The BLUPs of a one-way mixed model are posterior means under an empirical-Bayes plug-in prior
N(mu_hat, tau_hat^2). bayeshrink fits the model exactly as lme4 / metafor do, shows the
shrinkage, and builds the same models in PyMC.

Models with covariates, correlated random slopes and several grouping factors (crossed or
nested) come from an lme4-style formula: ``bs.fit(df, formula="y ~ x + (x | g)")``,
``bs.fit(df, formula="y ~ x + (1 | subj) + (1 | item)")`` (see :mod:`bayeshrink.lmm`).

The public API is re-exported here; importing bayeshrink imports neither PyMC, matplotlib,
scipy.optimize (scipy.stats) nor formulae: each loads on first use.
"""

from __future__ import annotations

from .api import FitResult
from .data import GroupStats, group_stats, summary_stats
from .datasets import describe_dataset, list_datasets, load_dataset
from .errors import (
    BayeshrinkError,
    BayeshrinkWarning,
    ColumnError,
    ConvergenceWarning,
    DataError,
    DataTypeError,
    DivergenceWarning,
    FamilyWarning,
    FormulaError,
    MethodError,
    NonIntegerWarning,
    OutputError,
    PirlsConvergenceError,
    RefitWarning,
    RepeatedLabelsWarning,
    RowsDroppedWarning,
    SamplerConvergenceWarning,
    SeparationError,
    TimeConvertedWarning,
)
from .estimate import VarianceComponents
from .fitting import fit, fit_stats, fit_summary
from .inference import anova
from .lmm import MixedFit  # formulae is imported on first use of a formula
from .lmm.multi import FactorFit, MultiFit
from .notebook import NotebookSettings, notebook_setup
from .results import ShrinkageFit
from .simulate import simulate
from .study import Design, simulation_study

__version__ = "0.1.0"

# PyMC and matplotlib are slow to import; their layers load on first use (PEP 562), as does
# the worked example (bs.demo.SCENARIOS, bs.demo_fits()).
_LAZY = {
    "demo_fits": "demo",
    "plugin_model": "bayes",
    "plugin_posterior": "bayes",
    "hierarchical_model": "bayes",
    "default_priors": "bayes",
    "sample": "bayes",
    "add_theta": "bayes",
    "add_effects": "bayes",
    "compare": "bayes",
    "hyperparameters": "bayes",
    "sample_posterior_predictive": "bayes",
    "sample_prior_predictive": "bayes",
    "check": "bayes",
    "prior_sensitivity": "bayes",
    "PriorSensitivity": "bayes",
    "plot_prior_sensitivity": "plots_bayes",
    "plot_triplot": "plots",
    "plot_shrinkage": "plots",
    "plot_shrinkage_curve": "plots",
    "plot_forest": "plots",
    "plot_shrinkage_2d": "plots",
    "explore": "explorer",
    "Explorer": "explorer",
    "plot_predictions": "plots",
}


def __getattr__(name: str):
    import importlib

    if name == "demo":  # the submodule itself
        return importlib.import_module(".demo", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bayeshrink' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | {"demo"})


__all__ = [
    "BayeshrinkError",
    "BayeshrinkWarning",
    "ColumnError",
    "ConvergenceWarning",
    "DataError",
    "DataTypeError",
    "Design",
    "DivergenceWarning",
    "FamilyWarning",
    "FitResult",
    "FormulaError",
    "GroupStats",
    "MethodError",
    "MixedFit",
    "MultiFit",
    "FactorFit",
    "NonIntegerWarning",
    "NotebookSettings",
    "OutputError",
    "PirlsConvergenceError",
    "RepeatedLabelsWarning",
    "RowsDroppedWarning",
    "SamplerConvergenceWarning",
    "SeparationError",
    "ShrinkageFit",
    "RefitWarning",
    "TimeConvertedWarning",
    "VarianceComponents",
    "anova",
    "describe_dataset",
    "fit",
    "fit_stats",
    "fit_summary",
    "group_stats",
    "list_datasets",
    "load_dataset",
    "notebook_setup",
    "simulate",
    "simulation_study",
    "summary_stats",
    *_LAZY,
]
