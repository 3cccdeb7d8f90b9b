r"""The same models in PyMC: the empirical-Bayes plug-in model and full hierarchical Bayes.

The plug-in model takes the fitted prior of the group effects (N(mu_hat, tau_hat^2) for a
one-way fit, N(0, cov_re_hat) for the deviations of a mixed fit) and combines it with each
group's likelihood given sigma_hat. Its posterior is normal with mean = the BLUPs (``coef()``)
and SD = ``ranef_sd()``, exactly (:func:`plugin_posterior` gives it without sampling). With
``mu="flat"`` the fixed effects get a flat prior instead of being plugged in; the posterior
means are still the BLUPs and the SDs become ``pred_sd()`` (Henderson's equivalence). The full
model puts priors on every parameter and averages over them; where REML puts a variance at 0
it still pools only partially.

Every entry point takes a fit and dispatches on its type (:func:`functools.singledispatch`):
:mod:`bayeshrink.bayes.oneway` for a :class:`~bayeshrink.ShrinkageFit`,
:mod:`bayeshrink.bayes.mixed` for a :class:`~bayeshrink.MixedFit`,
:mod:`bayeshrink.bayes.glmm` for a :class:`~bayeshrink.glmm.GlmmFit` (binomial or Poisson).

Variable names, the same in every model:

============  ==========================  =====================================================
name          dims                        meaning
============  ==========================  =====================================================
``beta``      ``fixed_term``              fixed effects (when not plugged in)
``b``         ``level``, ``term``         group deviations from the fixed effects (ranef)
``coef``      ``level``, ``term``         fixed + random effects per group (coef, the BLUPs)
``sd_re``     ``term``                    SDs of the random terms (full model)
``sigma``     (scalar)                    residual SD (full model, long data)
``z``         ``level`` (``, term``)      standard-normal innovations (non-centered forms)
============  ==========================  =====================================================

With several grouping factors the same names hold: ``b``, ``coef`` and ``z`` over
(``level``, ``term``) with ``level`` = "factor:label" (e.g. "plate:a") and the coordinates
``factor`` and ``label`` on it (``b.isel(level=b.factor == "plate")`` selects one factor);
``term`` is every factor's terms, and a factor without a term has 0 there; ``sd_re`` is over
``re_term`` = "factor:term", as lme4's VarCorr rows.

Every DataTree from :func:`sample` also holds ``log_likelihood`` (pointwise: per row, or per
group for summary data), ``observed_data`` and ``constant_data``
(:mod:`bayeshrink.bayes.workflow`), so ``az.loo``, ``az.compare``, ``az.plot_ppc_dist`` (after
:func:`sample_posterior_predictive`) and ``az.plot_loo_pit`` work on it as it is.

One-way models keep the textbook names too: ``mu`` (= ``beta[Intercept]``), ``tau``
(= ``sd_re[Intercept]``) and ``theta`` (over ``level``; ``theta == coef[:, "Intercept"]``).
Mixed models add ``corr_re`` and ``chol_re`` (term x term). ``level`` holds the labels of
``fit.groups`` (not "group": ArviZ's ``plot_prior_posterior`` uses that name internally).
When the group effects are integrated out (``marginalize=True``), :func:`sample` draws them
exactly afterwards, so every posterior it returns has ``b`` and ``coef``.
"""

from __future__ import annotations

from functools import singledispatch

import pandas as pd

from ..errors import DataTypeError, DivergenceWarning
from ..glmm.results import GlmmFit
from ..lmm import MixedFit
from ..lmm.multi import MultiFit
from ..posterior import (
    FIXED_DIM,
    GROUP_DIM,
    TERM_DIM,
    count_divergences,
    posterior_table,
    term_posterior_table,
)
from ..results import ShrinkageFit
from . import glmm, mixed, multi, oneway
from .model import PriorSpec, ShrinkageModel
from .report import CheckReport, check
from .sampling import default_sampler, sample
from .sensitivity import PriorSensitivity, prior_sensitivity
from .workflow import sample_posterior_predictive, sample_prior_predictive

__all__ = [
    "FIXED_DIM",
    "GROUP_DIM",
    "TERM_DIM",
    "CheckReport",
    "DivergenceWarning",
    "PriorSensitivity",
    "PriorSpec",
    "ShrinkageModel",
    "add_effects",
    "add_theta",
    "check",
    "compare",
    "count_divergences",
    "default_priors",
    "default_sampler",
    "hierarchical_model",
    "hyperparameters",
    "plugin_model",
    "plugin_posterior",
    "posterior_table",
    "prior_sensitivity",
    "sample",
    "sample_posterior_predictive",
    "sample_prior_predictive",
    "term_posterior_table",
]


def _not_a_fit(fit):
    raise DataTypeError(
        f"`fit` must be a ShrinkageFit or MixedFit from bs.fit or bs.fit_summary; got "
        f"{type(fit).__name__}. Fit the model first, e.g. `fit = bs.fit(df, y=..., group=...)`."
    )


@singledispatch
def plugin_model(fit, mu: str = "fixed", *, data=None) -> ShrinkageModel:
    """The empirical-Bayes plug-in model of ``fit``: the fitted prior of the group effects, the
    data given sigma_hat; ``mu="fixed"`` plugs in the fixed effects (posterior SD =
    ``ranef_sd()``), ``mu="flat"`` gives them a flat prior (posterior SD = ``pred_sd()``).

    Examples
    --------
    >>> import bayeshrink as bs
    >>> fit = bs.fit(bs.load_dataset("seed_demo").query("model == '2'"), y="y", group="group")
    >>> model = bs.plugin_model(fit)
    >>> sorted(v.name for v in model.deterministics)
    ['b', 'coef', 'theta']
    """
    _not_a_fit(fit)


@singledispatch
def plugin_posterior(fit, mu: str = "fixed") -> pd.DataFrame:
    """The exact (conjugate) plug-in posterior without sampling: mean = ``coef()``, SD =
    ``ranef_sd()`` (``mu="fixed"``) or ``pred_sd()`` (``mu="flat"``); indexed by level for a
    one-way fit, by (level, term) for a mixed fit."""
    _not_a_fit(fit)


@singledispatch
def default_priors(fit) -> dict[str, PriorSpec]:
    """The default priors of :func:`hierarchical_model`, scaled to the data, with reasons."""
    _not_a_fit(fit)


@singledispatch
def hierarchical_model(
    fit,
    priors=None,
    parametrization: str = "noncentered",
    marginalize=None,
    *,
    eta=None,
    data=None,
    pooling: str = "partial",
) -> ShrinkageModel:
    """Full hierarchical Bayes: priors on the fixed effects, the random-effect SDs (and
    correlations, LKJ(``eta``), for several terms) and sigma. ``data``: the rows the fit was
    made from, for a per-row log-likelihood and predictive draws (see
    :mod:`bayeshrink.bayes.workflow`). ``pooling`` ("partial", "none", "complete"; every fit
    type) gives the three models of the pooling comparison, each with its priors in its
    description. See
    :func:`bayeshrink.bayes.oneway.hierarchical_model` and
    :func:`bayeshrink.bayes.mixed.hierarchical_model` for the options of each."""
    _not_a_fit(fit)


@singledispatch
def hyperparameters(fit, full=None, prob: float = 0.95) -> pd.DataFrame:
    """The estimated hyperparameters beside their full-Bayes posteriors, one row each."""
    _not_a_fit(fit)


@singledispatch
def compare(fit, plugin=None, full=None, prob: float = 0.95) -> pd.DataFrame:
    """One row per group (and term): the fit, the plug-in and the full-Bayes posteriors.

    The same columns for every fit: n, no_pooling, blup (a GLMM's cond_mode), cond_sd (and
    pred_sd for one-way fits); with ``plugin`` plugin_mean, plugin_sd, plugin_mcse,
    plugin_rhat, plugin_ess_bulk, plugin_ess_tail, plugin_gap_mcse (= (plugin_mean - blup) /
    plugin_mcse); with ``full`` the same full_* columns and full_lo, full_hi (the central
    ``prob`` interval, 95% by default). ``attrs`` holds "hyperparameters", "divergences" and
    "prob".
    """
    _not_a_fit(fit)


for _name in (
    "plugin_model",
    "plugin_posterior",
    "default_priors",
    "hierarchical_model",
    "hyperparameters",
    "compare",
):
    globals()[_name].register(ShrinkageFit, getattr(oneway, _name))
    globals()[_name].register(MixedFit, getattr(mixed, _name))
    globals()[_name].register(MultiFit, getattr(multi, _name))
    globals()[_name].register(GlmmFit, getattr(glmm, _name))  # plugin_posterior: quadrature


def add_effects(model, idata, random_seed=None):
    """Add exact draws of the integrated-out group effects (``b``, ``coef``; ``theta`` for a
    one-way model) to the posterior of a marginalized hierarchical model.

    :func:`sample` calls this itself; use it after calling ``pm.sample`` directly. Returns
    ``idata`` unchanged for a model that samples its effects.
    """
    return model.add_effects(idata, random_seed)


add_theta = add_effects  # the one-way name
