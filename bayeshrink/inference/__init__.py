r"""lme4's everyday API after a fit: predict, fitted, resid, simulate, confint, information
criteria and anova, as methods of every fit (:class:`InferenceMixin`).

The subpackage, one idea per module: :mod:`.model` (the small model API every method is written
over: :class:`ModelPieces`, one :class:`Term` per grouping factor), :mod:`.backends` (its
deviance, conditional covariance, simulated responses and refits, from per-group
cross-products or from rows), :mod:`.predict` (predict, pooling lines), :mod:`.rows` (fitted,
resid, simulate), :mod:`.profile` (parameter names, lme4's profile), :mod:`.bootstrap`
(bootMer), :mod:`.confint`, :mod:`.anova` (information criteria, likelihood-ratio tests).

Every function takes a fitted model (a one-way :class:`~bayeshrink.ShrinkageFit`, a formula
:class:`~bayeshrink.MixedFit` or a several-factor :class:`~bayeshrink.MultiFit`) and works from
its :func:`model_of`: one implementation whatever the number of grouping factors (a one-factor
fit is the one-term case). The one-way fit is the formula ``y ~ 1 + (1 | g)``: its
cross-products are built from its group sizes, means and within-group sums of squares.

The Bayesian reading, term by term:

* ``predict(interval="prediction")`` for a row of an observed group j draws from the group's
  posterior N(BLUP_j, Var(b_j | y)) plus the residual sigma^2; for a group never observed, from
  the plug-in *prior* N(fixef, cov_re) plus sigma^2. The plug-in prior of the fit becomes the
  predictive distribution of a new group.
* With ``fixef_uncertainty=True`` the fixed effects get a flat prior instead of being plugged in
  (Henderson's prediction error variance; the one-way ``pred_sd``), so a row's variance gains
  k' vcov(beta) k, with k = x - X_j'Z_j S_j z for an observed group (the BLUP moves with beta)
  and k = x for a new one.
* ``confint(method="profile")`` inverts the likelihood-ratio test, as lme4's ``profile``.

Random-effects parameters are named as lme4's ``confint(m, oldNames = FALSE)``:
``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sigma``; fixed effects by the
fit's own term names, with the intercept written ``(Intercept)`` as lme4 does.
"""

from __future__ import annotations

import functools

from ..errors import RefitWarning
from .anova import anova, information
from .backends import MultiSystem, RowsBackend, refit_from_stats
from .bootstrap import bootstrap
from .confint import confint
from .model import (
    ModelPieces,
    ModelRows,
    Term,
    factor_columns,
    level_values,
    model_of,
    response_values,
)
from .predict import pooling_predictions, predict
from .profile import Profile, variance_parameter_names
from .rows import fitted, model_rows, resid, simulate

__all__ = [
    "InferenceMixin",
    "ModelPieces",
    "ModelRows",
    "MultiSystem",
    "Profile",
    "RefitWarning",
    "RowsBackend",
    "Term",
    "anova",
    "bootstrap",
    "confint",
    "factor_columns",
    "fitted",
    "information",
    "level_values",
    "model_of",
    "model_rows",
    "pooling_predictions",
    "predict",
    "refit_from_stats",
    "resid",
    "response_values",
    "simulate",
    "variance_parameter_names",
]


# =============================================================================== fit methods


def _method(function):
    """``function(fit, ...)`` as a method of every fit, with its signature and docstring."""

    @functools.wraps(function)
    def method(self, *args, **kwargs):
        return function(self, *args, **kwargs)

    return method


class InferenceMixin:
    """lme4's after-fit API as methods of every fit (ShrinkageFit, MixedFit, MultiFit): each
    is the function of this package of the same name, written once over the fit's model."""

    predict = _method(predict)
    confint = _method(confint)
    fitted = _method(fitted)
    resid = _method(resid)
    simulate = _method(simulate)

    @property
    def n_params(self) -> int:
        """Number of parameters: lme4's ``attr(logLik(m), "df")``."""
        return information(self)["n_params"]

    @property
    def aic(self) -> float:
        """lme4's ``AIC(m)``: -2 logLik + 2 n_params (the REML logLik for a REML fit)."""
        return information(self)["aic"]

    @property
    def bic(self) -> float:
        """lme4's ``BIC(m)``: -2 logLik + n_params log(n_obs)."""
        return information(self)["bic"]

    @property
    def deviance(self) -> float:
        """lme4 1.1-31's ``deviance(m)``: -2 logLik for an ML fit, and for a REML fit the REML
        criterion (lme4's ``REMLcrit(m)``, which lme4's deviance() returns there with a warning
        that the use is deprecated). Compare models by ``bs.anova``, which refits by ML."""
        return information(self)["deviance"]
