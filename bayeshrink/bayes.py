r"""The same models in PyMC: the empirical-Bayes plug-in model and full hierarchical Bayes.

The plug-in model takes the fitted N(mu_hat, tau_hat^2) as the prior of every group's effect
theta_j and combines it with the group's likelihood given sigma_hat. Its posterior is normal with
mean = BLUP and SD = cond_sd, exactly (:func:`plugin_posterior` gives it without sampling). With
``mu="flat"``, mu gets a flat prior instead of being fixed at mu_hat; the posterior means are
still the BLUPs and the SDs become pred_sd (Henderson's equivalence).

The full model puts priors on mu and tau (and on sigma for long data) and averages over them;
where REML puts tau at 0 it still pools only partially.

Long data enter through each group's sufficient statistics, so a model costs O(groups):

    ybar_j | theta_j, sigma ~ N(theta_j, sigma^2 / n_j)
    plus, for sigma, the within-group term  -(N - J) log sigma - SSW / (2 sigma^2)

which is the row-level likelihood up to a constant (a test checks the two posteriors agree).

The group effects are the variable ``theta`` with one dimension, ``level`` (the levels of the
grouping factor, lme4's word), whose coordinates are the labels of ``fit.table()``. (It is not
called "group": ArviZ's ``plot_prior_posterior`` uses that name internally.)
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from . import shrinkage as _shr
from .errors import BayeshrinkError, BayeshrinkWarning, DataTypeError, MethodError
from .results import ShrinkageFit, check_fit

__all__ = [
    "GROUP_DIM",
    "ShrinkageModel",
    "add_theta",
    "compare",
    "default_priors",
    "hierarchical_model",
    "hyperparameters",
    "plugin_model",
    "plugin_posterior",
    "sample",
]

GROUP_DIM = "level"
PARAMETRIZATIONS = ("noncentered", "centered")


class DivergenceWarning(BayeshrinkWarning):
    """The sampler reported divergent transitions: the posterior may be biased."""


class ShrinkageModel(pm.Model):
    """A ``pm.Model`` that knows the fit it was built from and says what it is.

    ``str(model)`` starts with a plain-language description of the model; ``model.fit`` is the
    :class:`~bayeshrink.ShrinkageFit`; ``model.kind`` is "plugin" or "hierarchical";
    ``model.priors`` names the priors used.
    """

    description: str = ""
    kind: str = ""
    fit: ShrinkageFit | None = None
    priors: dict | None = None
    #: sampler start values by variable name, used by :func:`sample` unless ``initvals`` is given
    start: dict | None = None

    def __str__(self) -> str:
        return f"{self.description}\n\n{self.str_repr()}"


def _mixed(fit) -> bool:
    """A MixedFit (general formula): its PyMC models live in :mod:`bayeshrink.bayes_mixed`."""
    from .lmm import MixedFit

    return isinstance(fit, MixedFit)


def _coords(fit: ShrinkageFit) -> dict:
    return {GROUP_DIM: list(fit.groups)}


def _observed_name(fit: ShrinkageFit) -> str:
    return "ybar" if fit.kind == "long" else "y"


# --------------------------------------------------------------------------- plug-in model


def plugin_model(fit: ShrinkageFit, mu: str = "fixed"):
    """The empirical-Bayes plug-in model: theta_j ~ N(mu_hat, tau_hat^2), data given sigma_hat.

    For a :class:`~bayeshrink.lmm.MixedFit` the prior is multivariate: each group's deviations
    b_j ~ N(0, cov_re_hat), and the posterior means of ``coef`` are ``fit.coef()``
    (see :func:`bayeshrink.bayes_mixed.plugin_model_mixed`).

    Parameters
    ----------
    fit : ShrinkageFit
        From :func:`bayeshrink.fit` or :func:`bayeshrink.fit_summary`.
    mu : {"fixed", "flat"}
        "fixed" plugs in mu_hat (posterior SD = cond_sd); "flat" gives mu a flat prior
        (posterior SD = pred_sd).

    Returns
    -------
    pymc.Model
        With free variables ``z`` (standard normal; theta_j = mu + tau_hat z_j) and ``mu`` when
        flat, the deterministic ``theta`` over dimension ``level``, and the observed group means
        (``ybar``) or estimates (``y``). On a boundary fit (tau_hat = 0) the prior is a point mass:
        theta is pinned at mu, the model still builds and samples, and its description says so.
    """
    if _mixed(fit):
        from . import bayes_mixed

        return bayes_mixed.plugin_model_mixed(fit, mu)
    fit = check_fit(fit)
    if mu not in ("fixed", "flat"):
        raise MethodError(
            f"`mu` must be 'fixed' (plug in mu_hat) or 'flat' (a flat prior on mu); got {mu!r}."
        )
    se = np.asarray(fit.se, dtype=float)
    model = ShrinkageModel(coords=_coords(fit))
    with model:
        mu_var = fit.mu if mu == "fixed" else pm.Flat("mu")
        z = pm.Normal("z", 0.0, 1.0, dims=GROUP_DIM)
        theta = pm.Deterministic("theta", mu_var + fit.tau * z, dims=GROUP_DIM)
        pm.Normal(_observed_name(fit), mu=theta, sigma=se, observed=fit.stats.mean, dims=GROUP_DIM)
    what = "mu_hat" if mu == "fixed" else "mu (flat prior)"
    lik = (
        f"ybar_j ~ N(theta_j, sigma_hat^2 / n_j), sigma_hat = {fit.sigma:.6g}"
        if fit.kind == "long"
        else "y_j ~ N(theta_j, se_j^2), se_j known"
    )
    if fit.boundary:
        prior = (
            f"prior: theta_j = {what}, a point mass (boundary fit: tau_hat = 0, so every group "
            "is pooled completely and theta is pinned at mu; z is left free only so the model "
            "samples)"
        )
    else:
        prior = f"prior: theta_j ~ N({what}, tau_hat^2), tau_hat = {fit.tau:.6g}"
    model.description = (
        f"Empirical-Bayes plug-in model ({fit.method.upper()} fit, {fit.n_groups} groups"
        f"{', mu fixed at ' + format(fit.mu, '.6g') if mu == 'fixed' else ', flat prior on mu'})\n"
        f"  {prior}\n  likelihood: {lik}\n"
        f"  posterior mean = BLUP; posterior SD = {'cond_sd' if mu == 'fixed' else 'pred_sd'}"
    )
    model.kind, model.fit, model.priors = "plugin", fit, {"mu": mu}
    return model


def plugin_posterior(fit: ShrinkageFit, mu: str = "fixed") -> pd.DataFrame:
    """The exact (conjugate) plug-in posterior of each theta_j: mean = BLUP, SD = cond_sd.

    With ``mu="flat"`` the SD is pred_sd. No sampling; a DataFrame indexed by group. For a
    :class:`~bayeshrink.lmm.MixedFit`: one row per (level, term), mean = ``coef()``, SD =
    ``ranef_sd()`` (fixed) or ``pred_sd()`` (flat prior on the fixed effects).
    """
    if _mixed(fit):
        if mu not in ("fixed", "flat"):
            raise MethodError(f"`mu` must be 'fixed' or 'flat'; got {mu!r}.")
        sd = fit.ranef_sd() if mu == "fixed" else fit.pred_sd()
        mean = fit.coef()[fit.random_terms]
        out = pd.DataFrame({"mean": mean.stack(), "sd": sd.stack()})
        out.index = out.index.set_names([GROUP_DIM, "term"])
        return out
    fit = check_fit(fit)
    if mu not in ("fixed", "flat"):
        raise MethodError(f"`mu` must be 'fixed' or 'flat'; got {mu!r}.")
    t = fit.table()
    return pd.DataFrame(
        {"mean": t["blup"], "sd": t["cond_sd"] if mu == "fixed" else t["pred_sd"]},
        index=t.index,
    )


# --------------------------------------------------------------------------- full Bayes


@dataclass(frozen=True)
class PriorSpec:
    """A default prior: the PyMC distribution, its parameters, and why."""

    dist: str
    params: dict
    reason: str

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"{self.dist}({args})"


def _data_scale(fit: ShrinkageFit) -> tuple[float, float]:
    """Centre and spread of the data: the scale every default prior is written in."""
    centre = fit.complete_pooling
    if fit.kind == "long":
        stats = fit.stats
        total_ss = float(stats.ssw.sum() + np.dot(stats.n, (stats.mean - centre) ** 2))
        spread = math.sqrt(total_ss / max(fit.n_obs - 1, 1))
    else:
        spread = float(np.std(fit.stats.mean, ddof=1))
        spread = max(spread, float(np.median(fit.se)))
    return centre, spread


def default_priors(fit: ShrinkageFit) -> dict[str, PriorSpec]:
    """The default priors of :func:`hierarchical_model`, scaled to the data, with reasons.

    With m the complete-pooling mean and s the SD of the data (all rows for long data; the
    estimates, or their median SE if larger, for summary data):

    * mu ~ Normal(m, 2.5 s): weakly informative, centred where the data are, wide enough that
      the likelihood dominates (the autoscaling rstanarm and bambi use);
    * tau ~ HalfNormal(2.5 s): allows between-group SDs several times the data's spread but
      not absurdly large ones, and puts mass near 0, so that a boundary-like data set still
      gets partial (not complete) pooling;
    * sigma ~ HalfNormal(2.5 s) (long data only): the same weak scale for the residual SD.
    """
    if _mixed(fit):
        from . import bayes_mixed

        return bayes_mixed.default_priors_mixed(fit)
    fit = check_fit(fit)
    centre, spread = _data_scale(fit)
    priors = {
        "mu": PriorSpec(
            "Normal",
            {"mu": centre, "sigma": 2.5 * spread},
            "weakly informative, centred on the complete-pooling mean, 2.5 data SDs wide",
        ),
        "tau": PriorSpec(
            "HalfNormal",
            {"sigma": 2.5 * spread},
            "between-group SD up to a few data SDs; mass near 0 keeps partial pooling",
        ),
    }
    if fit.kind == "long":
        priors["sigma"] = PriorSpec(
            "HalfNormal", {"sigma": 2.5 * spread}, "residual SD on the same weak scale"
        )
    return priors


_SHORTCUTS = {
    "flat": "Flat (improper uniform on the real line)",
    "uniform": "HalfFlat (improper uniform on (0, inf), as BDA3 section 5.4)",
}


def _make_prior(model, name: str, spec, default: PriorSpec):
    """Create the prior of ``name`` from a user override or the default."""
    positive = name != "mu"
    if spec is None:
        return getattr(pm, default.dist)(name, **default.params), str(default)
    if isinstance(spec, str):
        key = spec.lower()
        if key in ("flat", "uniform") and not positive:
            return pm.Flat(name), "Flat()"
        if key in ("flat", "uniform", "halfflat") and positive:
            return pm.HalfFlat(name), "HalfFlat() (uniform on (0, inf))"
        raise MethodError(
            f"`priors[{name!r}]` must be 'flat'/'uniform', a PyMC distribution made with "
            f"`.dist(...)`, or a function of the name that creates the variable; got {spec!r}."
        )
    if callable(spec) and not hasattr(spec, "owner"):
        return spec(name), getattr(spec, "__name__", "custom")
    if hasattr(spec, "owner"):  # an unregistered distribution, e.g. pm.HalfCauchy.dist(beta=5)
        op = spec.owner.op
        label = getattr(op, "_print_name", (None,))[0] or type(op).__name__
        return model.register_rv(spec, name), f"{label}(...)"
    raise DataTypeError(
        f"`priors[{name!r}]` must be a string shortcut, a `pm.<Dist>.dist(...)` variable or a "
        f"callable; got {type(spec).__name__}."
    )


def hierarchical_model(
    fit: ShrinkageFit,
    priors: Mapping[str, Any] | None = None,
    parametrization: str = "noncentered",
    marginalize: bool | None = None,
    *,
    eta: float | None = None,
):
    """Full hierarchical Bayes: priors on mu and tau (and sigma for long data).

    For a :class:`~bayeshrink.lmm.MixedFit` (a formula with covariates or random slopes) this
    builds :func:`bayeshrink.bayes_mixed.hierarchical_model_mixed`: priors on beta and sigma, and
    an LKJ(``eta``) prior on the random-effect correlations (``priors`` keys "beta", "sigma").

    Parameters
    ----------
    fit : ShrinkageFit
        Supplies the data (per-group sufficient statistics or estimates with SEs) and, through
        :func:`default_priors`, the scale of the default priors. Its estimates are not used.
    priors : dict, optional
        Overrides by name ("mu", "tau", "sigma"): ``"flat"`` / ``"uniform"`` for an improper
        uniform prior (``{"mu": "flat", "tau": "uniform"}`` reproduces BDA3's eight-schools
        analysis), a PyMC distribution such as ``pm.HalfCauchy.dist(beta=5)``, or a function
        ``f(name)`` that creates the variable inside the model.
    parametrization : {"noncentered", "centered"}
        How theta enters when it is sampled by NUTS (``marginalize=False``). "noncentered"
        (default): theta_j = mu + tau z_j with z_j ~ N(0, 1), which keeps NUTS free of the
        funnel between tau and theta when groups have little data. "centered": theta_j itself
        is sampled, which mixes better when every group has strong data.
    marginalize : bool, optional
        True (the default with "noncentered"): theta is integrated out of the likelihood,
        ybar_j ~ N(mu, tau^2 + se_j^2), so NUTS samples only mu, tau (and sigma), and
        :func:`sample` then draws theta exactly from its conditional normal given each draw,
        still in non-centered form: theta_j = m_j + s_j z_j, z_j ~ N(0, 1), with
        m_j = mu + (1 - B_j)(ybar_j - mu), s_j^2 = (1 - B_j) se_j^2, B_j = se_j^2 /
        (se_j^2 + tau^2). The joint posterior is the same as the textbook form's; the sampler
        needs a few gradient steps per draw instead of dozens, the draws of theta are
        independent given the hyperparameters, and the bundled examples show no divergences.
        False: the textbook form, theta sampled by NUTS (the default with "centered").

    Returns
    -------
    pymc.Model
        Free variables mu, tau, (sigma), and z or theta when not marginalized; ``theta`` over
        dimension ``level`` is in every posterior that :func:`sample` returns. (Calling
        ``pm.sample`` directly on a marginalized model, add theta with :func:`add_theta`.)
    """
    if _mixed(fit):
        from . import bayes_mixed

        if parametrization != "noncentered":
            raise MethodError(
                "a mixed-model fit is sampled non-centered (b_j = L z_j) or with b_j "
                f"marginalized out; got parametrization={parametrization!r}."
            )
        return bayes_mixed.hierarchical_model_mixed(fit, priors, eta, marginalize)
    fit = check_fit(fit)
    if parametrization not in PARAMETRIZATIONS:
        raise MethodError(
            f"`parametrization` must be one of {PARAMETRIZATIONS}; got {parametrization!r}."
        )
    if marginalize is None:
        marginalize = parametrization == "noncentered"
    if marginalize and parametrization == "centered":
        raise MethodError(
            "`parametrization='centered'` describes theta sampled by NUTS, so it needs "
            "`marginalize=False`; got marginalize=True. With marginalize=True theta is drawn "
            "exactly after sampling and needs no parametrization."
        )
    priors = dict(priors or {})
    allowed = {"mu", "tau"} | ({"sigma"} if fit.kind == "long" else set())
    unknown = set(priors) - allowed
    if unknown:
        extra = (
            " Summary data have known standard errors, so there is no sigma."
            if "sigma" in unknown
            else ""
        )
        raise MethodError(
            f"`priors` keys must be among {sorted(allowed)}; got {sorted(unknown)}.{extra}"
        )
    defaults = default_priors(fit)
    stats = fit.stats
    obs = stats.mean
    used: dict[str, str] = {}
    model = ShrinkageModel(coords=_coords(fit))
    with model:
        mu, used["mu"] = _make_prior(model, "mu", priors.get("mu"), defaults["mu"])
        tau, used["tau"] = _make_prior(model, "tau", priors.get("tau"), defaults["tau"])
        if fit.kind == "long":
            sigma, used["sigma"] = _make_prior(
                model, "sigma", priors.get("sigma"), defaults["sigma"]
            )
            se = sigma / np.sqrt(stats.n.astype(float))
            resid_df = float(fit.n_obs - fit.n_groups)
            if resid_df > 0:
                # the within-group part of the row-level likelihood (SSW is sufficient)
                pm.Potential(
                    "within_groups",
                    -resid_df * pt.log(sigma) - float(stats.ssw.sum()) / (2.0 * sigma**2),
                )
        else:
            se = np.asarray(fit.se, dtype=float)
        name = _observed_name(fit)
        if marginalize:
            pm.Normal(name, mu=mu, sigma=pt.sqrt(tau**2 + se**2), observed=obs, dims=GROUP_DIM)
        else:
            if parametrization == "noncentered":
                z = pm.Normal("z", 0.0, 1.0, dims=GROUP_DIM)
                theta = pm.Deterministic("theta", mu + tau * z, dims=GROUP_DIM)
            else:
                theta = pm.Normal("theta", mu=mu, sigma=tau, dims=GROUP_DIM)
            pm.Normal(name, mu=theta, sigma=se, observed=obs, dims=GROUP_DIM)
    form = (
        "theta marginalized out, drawn exactly after sampling" if marginalize else parametrization
    )
    lines = [
        f"Full hierarchical model ({form}, {fit.n_groups} groups)",
        f"  theta_j ~ N(mu, tau^2);  mu ~ {used['mu']};  tau ~ {used['tau']}",
    ]
    if fit.kind == "long":
        lines.append(
            f"  ybar_j ~ N(theta_j, sigma^2 / n_j) with the within-group SSW term; "
            f"sigma ~ {used['sigma']}"
        )
    else:
        lines.append("  y_j ~ N(theta_j, se_j^2), se_j known")
    model.description = "\n".join(lines)
    model.kind, model.fit, model.priors = "hierarchical", fit, used
    model.marginalized = bool(marginalize)
    return model


def _conditional_theta(fit: ShrinkageFit, mu, tau, sigma, z) -> np.ndarray:
    """theta = m + s z from its normal conditional given (mu, tau, sigma); arrays broadcast.

    m and s are the BLUP and cond_sd formulas of :mod:`bayeshrink.shrinkage`, evaluated at each
    posterior draw instead of at the estimates.
    """
    se = sigma / np.sqrt(fit.stats.n) if fit.kind == "long" else fit.se
    b = _shr.shrinkage_factor(se, tau**2)
    return _shr.blup(fit.stats.mean, mu, b) + _shr.cond_sd(se, b) * z


def add_theta(model, idata, random_seed=None):
    """Add exact draws of theta to the posterior of a marginalized hierarchical model.

    :func:`sample` calls this itself; use it after calling ``pm.sample`` directly. Each draw of
    (mu, tau, sigma) gets one draw of theta from its conditional normal (see
    :func:`hierarchical_model`). Returns ``idata`` with ``posterior["theta"]`` added.
    """
    if not getattr(model, "marginalized", False):
        return idata
    if _mixed(model.fit):
        from .bayes_mixed import add_effects

        return add_effects(model, idata, random_seed)
    fit = model.fit
    post = idata["posterior"]
    rng = np.random.default_rng(random_seed)
    mu = post["mu"].values[..., None]
    tau = post["tau"].values[..., None]
    sigma = post["sigma"].values[..., None] if fit.kind == "long" else None
    theta = np.empty((*mu.shape[:2], fit.n_groups))
    for c in range(theta.shape[0]):  # chain by chain: bounded temporaries on big models
        z = rng.standard_normal(theta.shape[1:])
        theta[c] = _conditional_theta(fit, mu[c], tau[c], None if sigma is None else sigma[c], z)
    da = xr.DataArray(
        theta,
        dims=("chain", "draw", GROUP_DIM),
        coords={
            "chain": post["chain"].values,
            "draw": post["draw"].values,
            GROUP_DIM: list(fit.groups),
        },
    )
    idata["posterior"] = post.to_dataset().assign(theta=da)
    return idata


# --------------------------------------------------------------------------- sampling


def _interactive() -> bool:
    if "PYTEST_CURRENT_TEST" in os.environ or os.environ.get("CI"):
        return False
    if "ipykernel" in sys.modules:  # PyMC's notebook progress bar needs ipywidgets
        return importlib.util.find_spec("ipywidgets") is not None
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def default_sampler() -> str:
    """'nutpie' where it is installed (PyMC's default then), else PyMC's own NUTS."""
    return "nutpie" if importlib.util.find_spec("nutpie") is not None else "pymc"


def sample(
    model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    *,
    progressbar: bool | None = None,
    sampler: str | None = None,
    target_accept: float | None = None,
    **kwargs,
):
    """Sample a model from :func:`plugin_model` or :func:`hierarchical_model` with NUTS.

    Uses nutpie where installed and PyMC's NUTS otherwise (``sampler="pymc"`` forces it).
    The progress bar shows in interactive use and never under pytest or CI; ``random_seed``
    makes runs reproducible (for the same compiled model and cache state). Returns the
    ``xarray.DataTree`` of ``pm.sample``. Divergent transitions raise a
    :class:`DivergenceWarning` that says how many.

    ``target_accept`` for hierarchical models defaults to 0.99 below 20 groups and 0.95 above:
    with few groups the posterior of tau is weakly identified (a sharp peak near 0 and a long
    tail), and at the sampler's default of 0.8 the 5- and 6-group examples showed a few
    divergences per run; at 0.95 about one run in 20 still had one, at 0.99 none in 30. The
    model costs O(groups), so the smaller steps are cheap. Plug-in models are Gaussian and keep
    the sampler's default.
    """
    start = getattr(model, "start", None)
    if start and "initvals" not in kwargs:
        # an explicit start for the LKJ factors: nutpie (0.16) cannot build their default
        # initial point (a scan) and fails with "bad initial gradient" without it
        kwargs["initvals"] = dict(start)
    sampler = sampler or default_sampler()
    if sampler == "pymc":
        # numba, as nutpie uses: PyTensor's C backend needs a BLAS it often cannot find
        kwargs.setdefault("compile_kwargs", {"mode": "NUMBA"})
    if sampler not in ("nutpie", "pymc"):
        raise MethodError(f"`sampler` must be 'nutpie' or 'pymc'; got {sampler!r}.")
    if progressbar is None:
        progressbar = _interactive()
    if target_accept is None and getattr(model, "kind", "") == "hierarchical":
        target_accept = 0.99 if model.fit.n_groups < 20 else 0.95
    if target_accept is not None:
        kwargs["target_accept"] = target_accept
    with warnings.catch_warnings():
        # PyMC's own chatter about small sample sizes is for its users' defaults, not ours
        warnings.filterwarnings("ignore", message=".*number of samples is too small.*")
        # PyTensor's C backend compiles PyMC's initial-point function (of an LKJ prior, a scan)
        # and says it found no BLAS; sampling itself runs on numba, so nothing is slowed
        warnings.filterwarnings(
            "ignore", message="PyTensor could not link to a BLAS", category=UserWarning
        )
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=min(chains, os.cpu_count() or 1),
            random_seed=random_seed,
            progressbar=progressbar,
            nuts_sampler=sampler,
            model=model,
            **kwargs,
        )
    # theta of a marginalized model: exact draws given each posterior draw, seeded from the run
    theta_seed = None if random_seed is None else np.random.SeedSequence([random_seed, 1])
    idata = add_theta(model, idata, theta_seed)
    n_div = count_divergences(idata)
    if n_div:
        warnings.warn(
            f"{n_div} divergent transitions in {chains * draws} draws: the posterior may be "
            "biased. Try `target_accept=0.99`, `marginalize=True` or the other parametrization.",
            DivergenceWarning,
            stacklevel=2,
        )
    return idata


def count_divergences(idata) -> int:
    """Number of divergent transitions recorded in a DataTree's sample_stats."""
    try:
        return int(idata["sample_stats"]["diverging"].sum())
    except KeyError:
        return 0


# --------------------------------------------------------------------------- comparison


def posterior_table(idata, var: str = "theta", prob: float = 0.94) -> pd.DataFrame:
    """Posterior mean, SD, central ``prob`` interval and Monte Carlo SE of ``var`` per level."""
    import arviz as az

    da = idata["posterior"][var]
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    dims = ("chain", "draw")
    mean = da.mean(dims)
    sd = da.std(dims, ddof=1)
    q = da.quantile([lo_q, hi_q], dim=dims)
    mcse = az.mcse(idata, var_names=[var])[var]
    ess = az.ess(idata, var_names=[var])[var]
    index = pd.Index(mean[GROUP_DIM].values, name=GROUP_DIM) if GROUP_DIM in da.dims else [var]
    table = pd.DataFrame(
        {
            "mean": np.atleast_1d(mean.values),
            "sd": np.atleast_1d(sd.values),
            "lo": np.atleast_1d(q.isel(quantile=0).values),
            "hi": np.atleast_1d(q.isel(quantile=1).values),
            "mcse": np.atleast_1d(mcse.values),
            "ess": np.atleast_1d(ess.values),
        },
        index=index,
    )
    # A point mass (theta pinned on a boundary fit): report it exactly, without rounding noise.
    lo_v, hi_v = np.atleast_1d(da.min(dims).values), np.atleast_1d(da.max(dims).values)
    pinned = lo_v == hi_v
    table.loc[pinned, ["mean", "lo", "hi"]] = lo_v[pinned, None]
    table.loc[pinned, ["sd", "mcse"]] = 0.0
    table.loc[pinned, "ess"] = np.nan
    return table


def hyperparameters(fit: ShrinkageFit, full=None, prob: float = 0.94) -> pd.DataFrame:
    """mu_hat, tau_hat (and sigma_hat) beside their full-Bayes posteriors, one row each.

    Columns: estimate, and with ``full`` posterior_mean, posterior_sd, posterior_lo,
    posterior_hi (central ``prob`` interval) and posterior_mcse.
    """
    fit = check_fit(fit)
    names = ["mu", "tau"] + (["sigma"] if fit.kind == "long" else [])
    hyper = pd.DataFrame(
        {"estimate": [fit.mu, fit.tau] + ([fit.sigma] if fit.kind == "long" else [])},
        index=names,
    )
    if full is not None:
        for name in names:
            if name in full["posterior"]:
                row = posterior_table(full, name, prob).iloc[0]
                for col in ("mean", "sd", "lo", "hi", "mcse"):
                    hyper.loc[name, f"posterior_{col}"] = row[col]
    return hyper


def _add_posterior_columns(out: pd.DataFrame, tag: str, post: pd.DataFrame) -> None:
    """Columns {tag}_mean, _sd, (_lo, _hi for "full"), _mcse, and for "plugin" the gap between
    the posterior mean and ``out["blup"]`` in Monte Carlo SEs; ``post`` is aligned with ``out``."""
    out[f"{tag}_mean"] = post["mean"]
    out[f"{tag}_sd"] = post["sd"]
    if tag == "full":
        out["full_lo"] = post["lo"]
        out["full_hi"] = post["hi"]
    out[f"{tag}_mcse"] = post["mcse"]
    if tag == "plugin":
        diff = post["mean"] - out["blup"]
        with np.errstate(divide="ignore", invalid="ignore"):
            # a pinned theta has no Monte Carlo error: its gap is 0 or infinite
            out["plugin_gap"] = np.where(
                post["mcse"] > 0, diff / post["mcse"], np.where(diff == 0, 0.0, np.inf)
            )


def compare(
    fit: ShrinkageFit,
    plugin=None,
    full=None,
    prob: float = 0.94,
) -> pd.DataFrame:
    """One row per group: the fit, the plug-in posterior and the full-Bayes posterior.

    Columns: n, no_pooling, blup, cond_sd, pred_sd; with ``plugin`` (a DataTree from the plug-in
    model) plugin_mean, plugin_sd, plugin_mcse and plugin_gap (= (plugin_mean - blup) /
    plugin_mcse, in Monte Carlo SEs); with ``full`` full_mean, full_sd, full_lo, full_hi (the
    central ``prob`` interval, 94% by default) and full_mcse.

    ``attrs["hyperparameters"]`` sets tau_hat (and mu_hat, sigma_hat) next to their full-Bayes
    posteriors (as a dict; :func:`hyperparameters` gives the same as a DataFrame);
    ``attrs["divergences"]`` counts divergent transitions per run.
    """
    if _mixed(fit):
        from . import bayes_mixed

        return bayes_mixed.compare_mixed(fit, plugin, full, prob)
    fit = check_fit(fit)
    t = fit.table()
    out = t[["n", "no_pooling", "blup", "cond_sd", "pred_sd"]].copy()
    divergences = {}
    labels = list(t.index)
    for tag, idata in (("plugin", plugin), ("full", full)):
        if idata is None:
            continue
        post = posterior_table(idata, "theta", prob)
        if [str(x) for x in post.index] != [str(x) for x in labels]:
            raise BayeshrinkError(
                f"`{tag}` must be sampled from a model built on this fit; its levels "
                f"{list(post.index)[:5]} do not match the fit's groups {labels[:5]}."
            )
        post.index = t.index
        _add_posterior_columns(out, tag, post)
        divergences[tag] = count_divergences(idata)
    hyper = hyperparameters(fit, full, prob)
    # plain dicts, not DataFrames: pandas compares attrs when concatenating
    out.attrs["hyperparameters"] = hyper.to_dict(orient="index")
    out.attrs["divergences"] = divergences
    out.attrs["prob"] = prob
    return out
