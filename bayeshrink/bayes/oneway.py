"""PyMC models of the one-way fit (:class:`~bayeshrink.ShrinkageFit`): theta_j = mu + b_j.

The plug-in model takes the fitted N(mu_hat, tau_hat^2) as the prior of every group's effect
theta_j and combines it with the group's likelihood given sigma_hat; the full model puts priors
on mu and tau (and on sigma for long data). Long data enter through each group's sufficient
statistics, so a model costs O(groups):

    ybar_j | theta_j, sigma ~ N(theta_j, sigma^2 / n_j)
    plus, for sigma, the within-group term  -(N - J) log sigma - SSW / (2 sigma^2)

which is the row-level likelihood up to a constant (a test checks the two posteriors agree).
The variable names are those of every bayeshrink model (see :mod:`bayeshrink.bayes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from .. import shrinkage as _shr
from ..errors import BayeshrinkError, DataTypeError, MethodError
from ..posterior import (
    FIXED_DIM,
    GROUP_DIM,
    TERM_DIM,
    add_posterior_columns,
    check_prob,
    count_divergences,
    posterior_table,
)
from ..results import ShrinkageFit
from .checks import check_draws
from .model import PriorSpec, ShrinkageModel, check_mu, check_pooling, make_prior
from .workflow import rows_of

__all__ = [
    "add_theta",
    "compare",
    "default_priors",
    "hierarchical_model",
    "hyperparameters",
    "plugin_model",
    "plugin_posterior",
]

PARAMETRIZATIONS = ("noncentered", "centered")


def _coords(fit: ShrinkageFit) -> dict:
    return {GROUP_DIM: list(fit.groups), TERM_DIM: ["Intercept"], FIXED_DIM: ["Intercept"]}


def _observed_name(fit: ShrinkageFit) -> str:
    return "ybar" if fit.data_kind == "long" else "y"


def _se(fit: ShrinkageFit) -> np.ndarray:
    return fit.own_se()["Intercept"].to_numpy()


def _effects(theta, mu) -> None:
    """The names every model shares: coef (level x term) = theta, b = theta - mu."""
    pm.Deterministic("coef", theta[:, None], dims=(GROUP_DIM, TERM_DIM))
    pm.Deterministic("b", (theta - mu)[:, None], dims=(GROUP_DIM, TERM_DIM))


# --------------------------------------------------------------------------- plug-in model


def plugin_model(fit: ShrinkageFit, mu: str = "fixed", *, data=None):
    """The empirical-Bayes plug-in model: theta_j ~ N(mu_hat, tau_hat^2), data given sigma_hat.

    (:func:`bayeshrink.plugin_model` dispatches here for a one-way fit and to
    :func:`bayeshrink.bayes.mixed.plugin_model` for a MixedFit.)

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
        flat (and ``beta`` = mu over ``fixed_term``), the deterministics ``theta`` over
        dimension ``level``, ``coef`` (= theta) and ``b`` (= theta - mu) over (``level``,
        ``term``), and the observed group means
        (``ybar``) or estimates (``y``). On a boundary fit (tau_hat = 0) the prior is a point mass:
        theta is pinned at mu, the model still builds and samples, and its description says so.
    """
    check_mu(mu)
    se = _se(fit)
    model = ShrinkageModel(coords=_coords(fit))
    with model:
        if mu == "fixed":
            mu_var = pt.as_tensor(fit.mu)
        else:
            mu_var = pm.Flat("mu")
            pm.Deterministic("beta", mu_var[None], dims=FIXED_DIM)
        z = pm.Normal("z", 0.0, 1.0, dims=GROUP_DIM)
        theta = pm.Deterministic("theta", mu_var + fit.tau * z, dims=GROUP_DIM)
        _effects(theta, mu_var)
        pm.Normal(_observed_name(fit), mu=theta, sigma=se, observed=fit.stats.mean, dims=GROUP_DIM)
    what = "mu_hat" if mu == "fixed" else "mu (flat prior)"
    lik = (
        f"ybar_j ~ N(theta_j, sigma_hat^2 / n_j), sigma_hat = {fit.sigma:.6g}"
        if fit.data_kind == "long"
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
    model.rows = rows_of(fit, data)
    return model


def plugin_posterior(fit: ShrinkageFit, mu: str = "fixed") -> pd.DataFrame:
    """The exact (conjugate) plug-in posterior of each theta_j: mean = BLUP, SD = cond_sd.

    With ``mu="flat"`` the SD is pred_sd. No sampling; a DataFrame indexed by group. For a
    :class:`~bayeshrink.lmm.MixedFit`: one row per (level, term), mean = ``coef()``, SD =
    ``ranef_sd()`` (fixed) or ``pred_sd()`` (flat prior on the fixed effects).
    """
    check_mu(mu)
    t = fit.table()
    return pd.DataFrame(
        {"mean": t["blup"], "sd": t["cond_sd"] if mu == "fixed" else t["pred_sd"]},
        index=t.index,
    )


# --------------------------------------------------------------------------- full Bayes


def _data_scale(fit: ShrinkageFit) -> tuple[float, float]:
    """Centre and spread of the data: the scale every default prior is written in."""
    centre = fit.complete_pooling
    if fit.data_kind == "long":
        stats = fit.stats
        total_ss = float(stats.ssw.sum() + np.dot(stats.n, (stats.mean - centre) ** 2))
        spread = math.sqrt(total_ss / max(fit.n_obs - 1, 1))
    else:
        spread = float(np.std(fit.stats.mean, ddof=1))
        spread = max(spread, float(np.median(_se(fit))))
    return centre, spread


data_scale = _data_scale  # public name for the other bayes modules


def default_priors(fit: ShrinkageFit) -> dict[str, PriorSpec]:
    """The default priors of :func:`hierarchical_model`, scaled to the data, with reasons.

    With m the complete-pooling mean and s the SD of the data (all rows for long data; the
    estimates, or their median SE if larger, for summary data):

    * mu ~ Normal(m, 2.5 s): weakly informative, centred where the data are, wide enough that
      the likelihood dominates (the autoscaling rstanarm and bambi use);
    * tau ~ HalfNormal(2.5 s): allows between-group SDs several times the data's spread but
      not absurdly large ones. Its density is highest at 0, so it favours small tau, i.e. more
      pooling, not less; a boundary-like data set still gets partial pooling from full Bayes
      because the posterior averages over tau > 0 instead of fixing tau_hat = 0;
    * sigma ~ HalfNormal(2.5 s) (long data only): the same weak scale for the residual SD.
    """
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
            "between-group SD up to a few data SDs; the mode at 0 leans toward more pooling",
        ),
    }
    if fit.data_kind == "long":
        priors["sigma"] = PriorSpec(
            "HalfNormal", {"sigma": 2.5 * spread}, "residual SD on the same weak scale"
        )
    return priors


def hierarchical_model(
    fit: ShrinkageFit,
    priors: Mapping[str, Any] | None = None,
    parametrization: str = "noncentered",
    marginalize: bool | None = None,
    *,
    eta: float | None = None,
    data=None,
    pooling: str = "partial",
):
    """Full hierarchical Bayes: priors on mu and tau (and sigma for long data).

    For a MixedFit :func:`bayeshrink.hierarchical_model` dispatches to
    :func:`bayeshrink.bayes.mixed.hierarchical_model` instead (LKJ(``eta``) prior on the
    random-effect correlations); ``eta`` is refused here, a one-way fit has one random term.

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
    data : DataFrame, optional
        The rows the fit was made from (long data): the pointwise log-likelihood and the
        predictive draws are then per row; without them, per group (see
        :mod:`bayeshrink.bayes.workflow`).
    pooling : {"partial", "none", "complete"}
        "partial" (default): the hierarchical model above. "complete": one mean for every
        group, theta_j = mu, with mu's and sigma's priors as above (``priors`` may set "mu",
        "sigma"). "none": every group on its own, theta_j ~ Normal(m, 2.5 s) independently (the
        prior of mu above, for each group; nothing is shared but sigma), sampled by NUTS. The
        three, compared with ``az.compare``, rank the pooling choices by expected predictive
        accuracy (LOO).

    Returns
    -------
    pymc.Model
        Free variables mu, tau, (sigma), and z or theta when not marginalized; ``beta`` (= mu)
        and ``sd_re`` (= tau) as deterministics; ``theta`` over ``level`` and ``coef``, ``b``
        over (``level``, ``term``) are in every posterior that :func:`sample` returns. (Calling
        ``pm.sample`` directly on a marginalized model, add them with
        :func:`bayeshrink.add_effects`.)
    """
    check_pooling(pooling)
    if pooling != "partial":
        return _pooling_model(fit, pooling, priors, data)
    if eta is not None:
        raise MethodError(
            f"`eta` (the LKJ shape of random-effect correlations) is for fits with several "
            f"random terms; got eta={eta!r} for a one-way fit, which has one."
        )
    if priors is not None and not isinstance(priors, Mapping):
        raise DataTypeError(
            f"`priors` must be a dict by name ('mu', 'tau', 'sigma'); got "
            f"{type(priors).__name__}. E.g. priors={{'tau': 'uniform'}}."
        )
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
    allowed = {"mu", "tau"} | ({"sigma"} if fit.data_kind == "long" else set())
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
        mu, used["mu"] = make_prior(model, "mu", priors.get("mu"), defaults["mu"])
        tau, used["tau"] = make_prior(model, "tau", priors.get("tau"), defaults["tau"])
        pm.Deterministic("beta", mu[None], dims=FIXED_DIM)
        pm.Deterministic("sd_re", tau[None], dims=TERM_DIM)
        se = _group_se(model, fit, priors, defaults, used)
        name = _observed_name(fit)
        if marginalize:
            pm.Normal(name, mu=mu, sigma=pt.sqrt(tau**2 + se**2), observed=obs, dims=GROUP_DIM)
        else:
            if parametrization == "noncentered":
                z = pm.Normal("z", 0.0, 1.0, dims=GROUP_DIM)
                theta = pm.Deterministic("theta", mu + tau * z, dims=GROUP_DIM)
            else:
                theta = pm.Normal("theta", mu=mu, sigma=tau, dims=GROUP_DIM)
            _effects(theta, mu)
            pm.Normal(name, mu=theta, sigma=se, observed=obs, dims=GROUP_DIM)
    form = (
        "theta marginalized out, drawn exactly after sampling" if marginalize else parametrization
    )
    lines = [
        f"Full hierarchical model ({form}, {fit.n_groups} groups)",
        f"  theta_j ~ N(mu, tau^2);  mu ~ {used['mu']};  tau ~ {used['tau']}",
    ]
    if fit.data_kind == "long":
        lines.append(
            f"  ybar_j ~ N(theta_j, sigma^2 / n_j) with the within-group SSW term; "
            f"sigma ~ {used['sigma']}"
        )
    else:
        lines.append("  y_j ~ N(theta_j, se_j^2), se_j known")
    model.description = "\n".join(lines)
    model.kind, model.fit, model.priors = "hierarchical", fit, used
    model.marginalized = bool(marginalize)
    model.effect_sampler = add_theta
    model.rows = rows_of(fit, data)
    return model


def _group_se(model, fit: ShrinkageFit, priors, defaults, used):
    """The SD of each group's mean: sigma / sqrt(n_j) with sigma's prior and the within-group
    part of the row-level likelihood (SSW is sufficient) for long data; the known SEs for
    summary data."""
    if fit.data_kind != "long":
        return _se(fit)
    sigma, used["sigma"] = make_prior(model, "sigma", priors.get("sigma"), defaults["sigma"])
    resid_df = float(fit.n_obs - fit.n_groups)
    if resid_df > 0:
        pm.Potential(
            "within_groups",
            -resid_df * pt.log(sigma) - float(fit.stats.ssw.sum()) / (2.0 * sigma**2),
        )
    return sigma / np.sqrt(fit.stats.n.astype(float))


def _pooling_model(fit: ShrinkageFit, pooling: str, priors, data) -> ShrinkageModel:
    """The complete- or no-pooling model of :func:`hierarchical_model`."""
    priors = dict(priors or {})
    long = fit.data_kind == "long"
    allowed = ({"mu"} if pooling == "complete" else set()) | ({"sigma"} if long else set())
    unknown = set(priors) - allowed
    if unknown:
        raise MethodError(
            f"`priors` keys must be among {sorted(allowed)} for pooling={pooling!r}; got "
            f"{sorted(unknown)}."
        )
    defaults = default_priors(fit)
    stats = fit.stats
    used: dict[str, str] = {}
    model = ShrinkageModel(coords=_coords(fit))
    with model:
        se = _group_se(model, fit, priors, defaults, used)
        if pooling == "complete":
            mu, used["mu"] = make_prior(model, "mu", priors.get("mu"), defaults["mu"])
            pm.Deterministic("beta", mu[None], dims=FIXED_DIM)
            theta = pm.Deterministic("theta", mu + pt.zeros(fit.n_groups), dims=GROUP_DIM)
            _effects(theta, mu)
        else:
            d = defaults["mu"]
            theta = pm.Normal("theta", mu=d.params["mu"], sigma=d.params["sigma"], dims=GROUP_DIM)
            used["theta"] = str(d)
            pm.Deterministic("coef", theta[:, None], dims=(GROUP_DIM, "term"))
        pm.Normal(_observed_name(fit), mu=theta, sigma=se, observed=stats.mean, dims=GROUP_DIM)
    if pooling == "complete":
        head = f"Complete-pooling model ({fit.n_groups} groups share one mean)"
        prior = f"  theta_j = mu for every group;  mu ~ {used['mu']}"
    else:
        head = f"No-pooling model ({fit.n_groups} groups, each on its own)"
        prior = f"  theta_j ~ {used['theta']} independently (nothing shared between groups)"
    lik = (
        f"  ybar_j ~ N(theta_j, sigma^2 / n_j) with the within-group SSW term; "
        f"sigma ~ {used['sigma']}"
        if long
        else "  y_j ~ N(theta_j, se_j^2), se_j known"
    )
    model.description = "\n".join([head, prior, lik])
    model.kind, model.fit, model.priors = "hierarchical", fit, used
    model.pooling = pooling
    model.rows = rows_of(fit, data)
    return model


def _conditional_theta(fit: ShrinkageFit, mu, tau, sigma, z) -> np.ndarray:
    """theta = m + s z from its normal conditional given (mu, tau, sigma); arrays broadcast.

    m and s are the BLUP and cond_sd formulas of :mod:`bayeshrink.shrinkage`, evaluated at each
    posterior draw instead of at the estimates.
    """
    se = sigma / np.sqrt(fit.stats.n) if fit.data_kind == "long" else _se(fit)
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
    fit = model.fit
    post = idata["posterior"]
    rng = np.random.default_rng(random_seed)
    mu = post["mu"].values[..., None]
    tau = post["tau"].values[..., None]
    sigma = post["sigma"].values[..., None] if fit.data_kind == "long" else None
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
    coords = {**{k: da[k].values for k in da.dims}, TERM_DIM: ["Intercept"]}
    dims = ("chain", "draw", GROUP_DIM, TERM_DIM)
    coef = xr.DataArray(theta[..., None], dims=dims, coords=coords)
    b = xr.DataArray((theta - mu)[..., None], dims=dims, coords=coords)
    idata["posterior"] = post.to_dataset().assign(theta=da, coef=coef, b=b)
    return idata


# --------------------------------------------------------------------------- comparison


def hyperparameters(fit: ShrinkageFit, full=None, prob: float = 0.95) -> pd.DataFrame:
    """mu_hat, tau_hat (and sigma_hat) beside their full-Bayes posteriors, one row each.

    Columns: estimate, and with ``full`` posterior_mean, posterior_sd, posterior_lo,
    posterior_hi (central ``prob`` interval), posterior_mcse, posterior_rhat,
    posterior_ess_bulk and posterior_ess_tail.
    """
    prob = check_prob(prob)
    if full is not None:
        check_draws(full, "full", fit)
    long = fit.data_kind == "long"
    names = ["mu", "tau"] + (["sigma"] if long else [])
    hyper = pd.DataFrame(
        {"estimate": [fit.mu, fit.tau] + ([fit.sigma] if long else [])},
        index=names,
    )
    if full is not None:
        for name in names:
            if name in full["posterior"]:
                row = posterior_table(full, name, prob).iloc[0]
                for col in ("mean", "sd", "lo", "hi", "mcse", "rhat", "ess_bulk", "ess_tail"):
                    hyper.loc[name, f"posterior_{col}"] = row[col]
    return hyper


def compare(
    fit: ShrinkageFit,
    plugin=None,
    full=None,
    prob: float = 0.95,
) -> pd.DataFrame:
    """One row per group: the fit, the plug-in posterior and the full-Bayes posterior.

    Columns: n, no_pooling, blup, cond_sd, pred_sd; with ``plugin`` (a DataTree from the plug-in
    model) plugin_mean, plugin_sd, plugin_mcse and plugin_gap_mcse (= (plugin_mean - blup) /
    plugin_mcse, in Monte Carlo SEs); with ``full`` full_mean, full_sd, full_lo, full_hi (the
    central ``prob`` interval, 95% by default) and full_mcse. Beside each MCSE, R-hat and bulk
    and tail ESS (``plugin_rhat``, ``plugin_ess_bulk``, ...): an MCSE means something only when
    R-hat is near 1 and the ESS is in the hundreds.

    Draws from :func:`~bayeshrink.sample` remember which model of which fit they come from:
    draws of another fit's model (even with the same group labels), or of the other kind of
    model, are refused.

    ``attrs["hyperparameters"]`` sets tau_hat (and mu_hat, sigma_hat) next to their full-Bayes
    posteriors (as a dict; :func:`hyperparameters` gives the same as a DataFrame);
    ``attrs["divergences"]`` counts divergent transitions per run.
    """
    prob = check_prob(prob)
    for tag, idata in (("plugin", plugin), ("full", full)):
        if idata is not None:
            check_draws(idata, tag, fit)
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
                f"`{tag}` must be sampled from a model of this fit; its levels "
                f"{list(post.index)[:5]} do not match the fit's groups {labels[:5]}."
            )
        post.index = t.index
        add_posterior_columns(out, tag, post)
        divergences[tag] = count_divergences(idata)
    hyper = hyperparameters(fit, full, prob)
    # plain dicts, not DataFrames: pandas compares attrs when concatenating
    out.attrs["hyperparameters"] = hyper.to_dict(orient="index")
    out.attrs["divergences"] = divergences
    out.attrs["prob"] = prob
    return out
