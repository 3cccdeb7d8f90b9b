r"""Prior sensitivity of the between-group SD tau: full Bayes refitted under several priors.

Gelman (2006, "Prior distributions for variance parameters in hierarchical models") shows on
the eight schools that the inverse-gamma(eps, eps) prior on tau^2, once the "noninformative"
default, is not: with few groups the posterior of tau follows eps, while a uniform prior on tau
or a half-Cauchy with a scale a little above the data's is what the data can live with.
:func:`prior_sensitivity` runs that comparison for any one-way fit and returns a tidy table
(one row per prior) and the draws of tau (one row per draw), which
:func:`bayeshrink.plots_bayes.plot_prior_sensitivity` draws.

Priors are written as strings:

==============================  ===================================================
``"uniform"``                   improper uniform on (0, inf) (``pm.HalfFlat``)
``"uniform(lower, upper)"``     uniform on (lower, upper)
``"halfcauchy(scale)"``         half-Cauchy (``"half-cauchy"`` too)
``"halfnormal(scale)"``         half-normal (``"half-normal"`` too)
``"invgamma(shape, scale)"``    inverse-gamma **on the variance** tau^2 (``"inverse-gamma"``)
==============================  ===================================================

or as anything :func:`bayeshrink.hierarchical_model` takes for ``priors["tau"]`` (a
``pm.<Dist>.dist(...)`` variable, or a function of the name that creates it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataTypeError, MethodError
from ..posterior import posterior_table

__all__ = ["PriorSensitivity", "parse_tau_prior", "prior_sensitivity"]

_FORMS = (
    "'uniform', 'uniform(lower, upper)', 'halfcauchy(scale)', 'halfnormal(scale)', "
    "'invgamma(shape, scale)' (on tau^2)"
)
_ARITY = {"uniform": (0, 2), "halfcauchy": (1,), "halfnormal": (1,), "invgamma": (2,)}
_ALIASES = {
    "flat": "uniform",
    "half-cauchy": "halfcauchy",
    "half_cauchy": "halfcauchy",
    "half-normal": "halfnormal",
    "half_normal": "halfnormal",
    "inverse-gamma": "invgamma",
    "inverse_gamma": "invgamma",
    "inversegamma": "invgamma",
}


def _bad(label, spec, why: str = "") -> MethodError:
    return MethodError(
        f"`priors[{label!r}]` must be one of {_FORMS}, a pm.<Dist>.dist(...) variable or a "
        f"function of the name; got {spec!r}{'' if not why else ' (' + why + ')'}. E.g. "
        "priors={'half-Cauchy': 'halfcauchy(25)'}."
    )


def parse_tau_prior(label, spec):
    """The ``priors["tau"]`` of :func:`bayeshrink.hierarchical_model` for a prior string."""
    if not isinstance(spec, str):
        if callable(spec) or hasattr(spec, "owner"):
            return spec
        raise _bad(label, spec, f"a {type(spec).__name__}")
    m = re.fullmatch(r"\s*([A-Za-z_\-]+)\s*(?:\((.*)\))?\s*", spec)
    if m is None:
        raise _bad(label, spec)
    name = m.group(1).lower()
    name = _ALIASES.get(name, name)
    if name not in _ARITY:
        raise _bad(label, spec, f"unknown distribution {m.group(1)!r}")
    args: list[float] = []
    if m.group(2) is not None and m.group(2).strip():
        try:
            args = [float(a) for a in m.group(2).split(",")]
        except ValueError:
            raise _bad(label, spec, "the parameters must be numbers") from None
    if len(args) not in _ARITY[name]:
        raise _bad(label, spec, f"{name} takes {' or '.join(map(str, _ARITY[name]))} numbers")
    if not all(math.isfinite(a) for a in args):
        raise _bad(label, spec, "the parameters must be finite")
    import pymc as pm
    import pytensor.tensor as pt

    if name == "uniform" and not args:
        return "uniform"
    if name == "uniform":
        lo, hi = args
        if not 0 <= lo < hi:
            raise _bad(label, spec, "need 0 <= lower < upper")
        return pm.Uniform.dist(lower=lo, upper=hi)
    if any(a <= 0 for a in args):
        raise _bad(label, spec, "the parameters must be positive")
    if name == "halfcauchy":
        return pm.HalfCauchy.dist(beta=args[0])
    if name == "halfnormal":
        return pm.HalfNormal.dist(sigma=args[0])
    alpha, beta = args

    def tau_from_variance(var_name):
        tau2 = pm.InverseGamma(f"{var_name}2", alpha=alpha, beta=beta)
        return pm.Deterministic(var_name, pt.sqrt(tau2))

    tau_from_variance.__name__ = f"sqrt of tau^2 ~ InverseGamma(alpha={alpha:g}, beta={beta:g})"
    return tau_from_variance


def default_tau_priors(fit) -> dict[str, str]:
    """Gelman's (2006) three: uniform, half-Cauchy (scale twice the data's spread, 25 on the
    eight schools) and inverse-gamma(0.001, 0.001) on tau^2."""
    from .oneway import data_scale

    scale = float(f"{2 * data_scale(fit)[1]:.2g}")
    return {
        "uniform": "uniform",
        f"half-Cauchy({scale:g})": f"halfcauchy({scale:g})",
        "inverse-gamma(0.001, 0.001)": "invgamma(0.001, 0.001)",
    }


@dataclass(frozen=True)
class PriorSensitivity:
    """What :func:`prior_sensitivity` returns.

    ``table``: one row per prior (indexed by its label, in the order given): ``prior`` (as the
    model states it), the posterior ``mean``, ``sd``, ``lo``, ``median``, ``hi`` (central
    ``prob`` interval) of tau, ``mcse``, ``rhat``, ``ess_bulk``, ``ess_tail`` and
    ``divergences``; ``attrs["tau_hat"]`` is the fit's estimate. ``draws``: the draws of tau, one
    row each, columns ``prior`` (the label) and ``tau``: a tidy table to plot.
    ``idata``: the DataTree of each run, by label.
    """

    table: pd.DataFrame
    draws: pd.DataFrame
    idata: dict = field(repr=False)

    def plot(self, **kwargs):
        """:func:`bayeshrink.plots_bayes.plot_prior_sensitivity` of this result."""
        from ..plots_bayes import plot_prior_sensitivity

        return plot_prior_sensitivity(self, **kwargs)


def prior_sensitivity(
    fit,
    priors: Mapping | None = None,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    prob: float = 0.95,
    **sample_kwargs,
) -> PriorSensitivity:
    """Full Bayes for ``fit`` under each prior on tau: a table and the draws of tau.

    Parameters
    ----------
    fit : ShrinkageFit
        A one-way fit (long or summary data).
    priors : dict, optional
        Label -> prior on tau (see :mod:`bayeshrink.bayes.sensitivity` for the strings). By
        default Gelman's (2006) three: uniform, half-Cauchy and inverse-gamma(0.001, 0.001) on
        tau^2. The other priors stay the defaults of :func:`bayeshrink.default_priors`.
    draws, tune, chains, random_seed, sample_kwargs
        For :func:`bayeshrink.sample`, the same for every prior.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> fit = bs.fit_summary(bs.load_dataset("eight_schools"), estimate="y", se="sigma",
    ...                      group="school")
    >>> result = bs.prior_sensitivity(fit)  # doctest: +SKIP
    >>> result.table[["mean", "median", "hi"]]  # doctest: +SKIP
    >>> result.plot()  # doctest: +SKIP
    """
    from ..posterior import check_prob, count_divergences
    from ..results import ShrinkageFit
    from .oneway import hierarchical_model
    from .sampling import sample

    if not isinstance(fit, ShrinkageFit):
        raise DataTypeError(
            "`fit` must be a one-way fit (y ~ 1 + (1 | g), from bs.fit or bs.fit_summary), "
            f"whose between-group SD is tau; got {type(fit).__name__}."
        )
    prob = check_prob(prob)
    if priors is None:
        priors = default_tau_priors(fit)
    if not isinstance(priors, Mapping) or not priors:
        raise DataTypeError(
            "`priors` must be a non-empty dict of label -> prior on tau; got "
            f"{priors!r}. E.g. {{'uniform': 'uniform', 'half-Cauchy': 'halfcauchy(25)'}}."
        )
    specs = {str(label): parse_tau_prior(label, spec) for label, spec in priors.items()}
    rows, tidy, runs = [], [], {}
    for i, (label, spec) in enumerate(specs.items()):
        model = hierarchical_model(fit, priors={"tau": spec})
        seed = None if random_seed is None else random_seed + i
        idata = sample(model, draws=draws, tune=tune, chains=chains, random_seed=seed,
                       **sample_kwargs)  # fmt: skip
        runs[label] = idata
        t = posterior_table(idata, "tau", prob).iloc[0]
        tau = idata["posterior"]["tau"].values.ravel()
        rows.append(
            {
                "prior": model.priors["tau"],
                "mean": t["mean"],
                "sd": t["sd"],
                "lo": t["lo"],
                "median": float(np.median(tau)),
                "hi": t["hi"],
                "mcse": t["mcse"],
                "rhat": t["rhat"],
                "ess_bulk": t["ess_bulk"],
                "ess_tail": t["ess_tail"],
                "divergences": count_divergences(idata),
            }
        )
        tidy.append(pd.DataFrame({"prior": label, "tau": tau}))
    table = pd.DataFrame(rows, index=pd.Index(list(specs), name="label"))
    table.attrs["tau_hat"] = float(fit.tau)
    table.attrs["prob"] = prob
    long = pd.concat(tidy, ignore_index=True)
    long["prior"] = pd.Categorical(long["prior"], categories=list(specs), ordered=True)
    return PriorSensitivity(table, long, runs)
