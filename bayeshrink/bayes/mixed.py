r"""PyMC models of a :class:`~bayeshrink.MixedFit`: several correlated random terms per group.

The plug-in model puts the estimated multivariate normal prior on every group's deviations,

    b_j ~ N(0, cov_re_hat),  as  b_j = L_hat z_j,  z_j ~ N(0, I),  L_hat = sigma_hat Lambda_hat

(``Lambda_hat`` is lme4's relative covariance factor, so a singular ``cov_re_hat`` needs no
special case), and the group's data given beta_hat and sigma_hat as its likelihood. Its
posterior means are ``fit.coef()`` (the BLUPs) and its SDs ``fit.ranef_sd()``.

The full model puts priors on beta, sigma, the random-effect SDs and an LKJ prior on their
correlations (``pm.LKJCholeskyCov``), non-centered as above. It carries a start for each LKJ
factor (diagonal, at the REML SDs): nutpie 0.16 cannot build the factor's default initial point
and stops with "bad initial gradient" without one.

Both use the data only through the per-group cross-products of ``[X | Z | y]``: the row-level
residual sum of squares is

    RSS = y'y - 2 beta'X'y + beta'X'X beta
          + sum_j ( b_j'Z_j'Z_j b_j - 2 b_j'Z_j'y_j + 2 b_j'Z_j'X_j beta )

so a model costs O(groups x terms^2) per gradient, whatever the number of rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from ..errors import MethodError
from ..lmm import MixedFit
from ..posterior import (
    FIXED_DIM,
    GROUP_DIM,
    TERM_DIM,
    check_prob,
    count_divergences,
    posterior_table,
)
from .checks import check_draws, merge_posterior
from .covariance import block_cholesky
from .effects import coef, effects
from .model import (
    PriorSpec,
    ShrinkageModel,
    check_mu,
    check_pooling,
    format_prior,
    make_prior,
    no_pooling_prior,
)
from .workflow import rows_of

__all__ = [
    "add_effects",
    "compare",
    "default_priors",
    "hierarchical_model",
    "hyperparameters",
    "plugin_model",
    "plugin_posterior",
]


def _coords(fit: MixedFit) -> dict:
    return {
        GROUP_DIM: list(fit.groups),
        TERM_DIM: fit.random_terms,
        f"{TERM_DIM}_bis": fit.random_terms,
        FIXED_DIM: fit.fixed_terms,
    }


def _rss(fit: MixedFit, beta, b):
    """Residual sum of squares from the cross-products; beta (p,), b (J, q) are tensors."""
    s = fit.design.stats
    beta_s = _shifted(fit, beta)
    A = pt.as_tensor(s.A)
    B = pt.as_tensor(s.B)
    c = pt.as_tensor(s.c)
    quad_b = pt.sum(b[:, :, None] * A * b[:, None, :])
    cross_b = pt.sum(b * c) - pt.sum(b * pt.tensordot(B, beta_s, axes=[[2], [0]]))
    fixed = s.yty - 2.0 * pt.dot(beta_s, s.Xty) + pt.dot(beta_s, pt.dot(s.XtX, beta_s))
    return fixed + quad_b - 2.0 * cross_b


def _loglik(fit: MixedFit, beta, b, sigma) -> None:
    """Row-level normal log-likelihood (up to a constant) as a Potential."""
    n = float(fit.n_obs)
    pm.Potential("loglik", -n * pt.log(sigma) - _rss(fit, beta, b) / (2.0 * sigma**2))


def _effects(fit: MixedFit, chol):
    """z and b = z L' over (level, term): the one builder of :mod:`bayeshrink.bayes.effects`
    with this fit's one factor."""
    factor = SimpleNamespace(name=fit.group, labels=fit.groups)
    return effects([factor], None, {fit.group: chol}, several=False)


def _shifted(fit: MixedFit, beta):
    """beta on the scale of the cross-products (whose y is shifted by y_shift)."""
    s = fit.design.stats
    shift = np.zeros(s.p)
    if s.intercept_col is not None:
        shift[s.intercept_col] = s.y_shift
    return beta - shift


def _marginal_loglik(fit: MixedFit, beta, chol, sigma) -> None:
    """The likelihood with every b_j integrated out, as a Potential (q <= 2, closed form).

    With L = chol, e_j = Z_j'(y_j - X_j beta), u_j = L'e_j and M_j = sigma^2 I + L'Z_j'Z_j L:
    -2 log p = sum_j log|M_j| + (N - J q) log sigma^2 + (RSS(beta) - sum_j u_j'M_j^-1 u_j)/sigma^2.
    """
    s = fit.design.stats
    q, J = s.q, fit.n_groups
    beta_s = _shifted(fit, beta)
    A = pt.as_tensor(s.A)
    e = pt.as_tensor(s.c) - pt.tensordot(pt.as_tensor(s.B), beta_s, axes=[[2], [0]])  # (J, q)
    u = pt.dot(e, chol)  # rows u_j' = e_j' L
    AL = pt.tensordot(A, chol, axes=[[2], [0]])  # (J, q, q): A_j L
    P = pt.tensordot(AL, chol, axes=[[1], [0]])  # (J, q, q): (L'A_j L)' = L'A_j L
    s2 = sigma**2
    if q == 1:
        m = s2 + P[:, 0, 0]
        logdet = pt.sum(pt.log(m))
        quad = pt.sum(u[:, 0] ** 2 / m)
    else:
        a, b, d = s2 + P[:, 0, 0], P[:, 0, 1], s2 + P[:, 1, 1]
        det = a * d - b**2
        logdet = pt.sum(pt.log(det))
        quad = pt.sum((d * u[:, 0] ** 2 - 2 * b * u[:, 0] * u[:, 1] + a * u[:, 1] ** 2) / det)
    rss = s.yty - 2.0 * pt.dot(beta_s, s.Xty) + pt.dot(beta_s, pt.dot(s.XtX, beta_s))
    n = float(fit.n_obs)
    pm.Potential("loglik", -0.5 * (logdet + (n - J * q) * pt.log(s2) + (rss - quad) / s2))


def add_effects(model, idata, random_seed=None):
    """Draw b_j and coef exactly from their conditional normal given each posterior draw.

    For a marginalized :func:`hierarchical_model` (``bayeshrink.sample`` calls it):
    b_j | beta, sigma, L, y ~ N(L M_j^-1 u_j, sigma^2 L M_j^-1 L'), drawn as
    b_j = L (M_j^-1 u_j + sigma C_j^-T z_j) with C_j C_j' = M_j and z_j ~ N(0, I).
    """
    import xarray as xr

    if not getattr(model, "marginalized", False):
        return idata
    fit = model.fit
    s = fit.design.stats
    post = idata["posterior"]
    rng = np.random.default_rng(random_seed)
    beta = post["beta"].values  # (chain, draw, p)
    sigma = post["sigma"].values
    L_all = post["chol_re"].values  # (chain, draw, q, q)
    n_chain, n_draw = sigma.shape
    q = s.q
    shift = -_shifted(fit, np.zeros(s.p))
    E = fit.fixed_of_random
    b = np.empty((n_chain, n_draw, fit.n_groups, q))
    step = max(1, 2_000_000 // max(fit.n_groups * q * q, 1))  # bounded temporaries
    for c in range(n_chain):
        for lo in range(0, n_draw, step):
            sl = slice(lo, min(lo + step, n_draw))
            L = L_all[c, sl]  # (d, q, q)
            e = s.c[None] - np.einsum("jqp,dp->djq", s.B, beta[c, sl] - shift)
            u = np.einsum("dki,djk->dji", L, e)
            M = np.einsum("dki,jkl,dlm->djim", L, s.A, L)
            M = M + (sigma[c, sl] ** 2)[:, None, None, None] * np.eye(q)
            C = np.linalg.cholesky(M)
            mean = np.linalg.solve(M, u[..., None])[..., 0]
            z = rng.standard_normal(u.shape)
            x = np.linalg.solve(np.swapaxes(C, -1, -2), z[..., None])[..., 0]
            inner = mean + sigma[c, sl][:, None, None] * x
            b[c, sl] = np.einsum("dik,djk->dji", L, inner)
    coef = b + np.einsum("kp,cdp->cdk", E, beta)[:, :, None, :]
    coords = {
        "chain": post["chain"].values,
        "draw": post["draw"].values,
        GROUP_DIM: list(fit.groups),
        TERM_DIM: fit.random_terms,
    }
    dims = ("chain", "draw", GROUP_DIM, TERM_DIM)
    idata["posterior"] = (
        post.to_dataset()
        .assign(b=xr.DataArray(b, dims=dims, coords=coords))
        .assign(coef=xr.DataArray(coef, dims=dims, coords=coords))
    )
    return idata


def plugin_model(fit: MixedFit, mu: str = "fixed", *, data=None) -> ShrinkageModel:
    """The empirical-Bayes plug-in model of a mixed fit: b_j ~ N(0, cov_re_hat), sigma_hat fixed.

    ``mu="fixed"`` (default) fixes the fixed effects at beta_hat (posterior SD = ranef_sd());
    ``mu="flat"`` gives them a flat prior (posterior means are still coef()).
    Variables: ``z`` (level x term), ``b`` and ``coef`` (deterministic, level x term), and
    ``beta`` when flat.
    """
    check_mu(mu, "beta_hat")
    L_hat = fit.sigma * fit.components.Lambda
    model = ShrinkageModel(coords=_coords(fit))
    with model:
        if mu == "fixed":
            beta = pt.as_tensor(fit.fixef.to_numpy())
        else:
            beta = pm.Flat("beta", dims=FIXED_DIM)
        b, _ = _effects(fit, pt.as_tensor(L_hat))
        coef(b, fit.fixed_of_random, beta)
        _loglik(fit, beta, b, fit.sigma)
    cov = np.array2string(fit.cov_re().to_numpy(), precision=4, suppress_small=True)
    what = "beta fixed at beta_hat" if mu == "fixed" else "flat prior on beta"
    singular = (
        "\n  the estimated covariance is singular (boundary fit): along its null direction every "
        "group is pinned to the population value"
        if fit.boundary
        else ""
    )
    model.description = (
        f"Empirical-Bayes plug-in model for {fit.formula} ({fit.method.upper()} fit, "
        f"{fit.n_groups} groups, {what})\n"
        f"  prior: b_j ~ N(0, cov_re_hat), cov_re_hat over {fit.random_terms} =\n  {cov}"
        f"{singular}\n"
        f"  likelihood: the group's rows given beta and sigma_hat = {fit.sigma:.6g}\n"
        f"  posterior mean of coef = fit.coef() (the BLUPs)"
        + ("; posterior SD = fit.ranef_sd()" if mu == "fixed" else "")
    )
    model.kind, model.fit, model.priors = "plugin", fit, {"beta": mu}
    model.rows = rows_of(fit, data)
    return model


def _scales(fit: MixedFit) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Mean and SD of y, and the SD of each fixed and random column (1 for an intercept)."""
    s = fit.design.stats
    N = float(s.n.sum())
    tot = s.total
    y_mean = tot[s.y_idx, s.intercept_col] / N + s.y_shift if s.intercept_col is not None else 0.0
    # y'y and sum y of the shifted response give the SD directly
    ones = s.intercept_col
    sum_y = tot[s.y_idx, ones] if ones is not None else np.nan
    if ones is not None:
        var_y = (tot[s.y_idx, s.y_idx] - sum_y**2 / N) / (N - 1)
    else:
        var_y = tot[s.y_idx, s.y_idx] / N
    sd_y = math.sqrt(max(var_y, 1e-300))

    def col_sd(i):
        if ones is None:
            return math.sqrt(tot[i, i] / N)
        v = (tot[i, i] - tot[i, ones] ** 2 / N) / (N - 1)
        return math.sqrt(v) if v > 1e-12 * max(tot[i, i] / N, 1e-300) else 1.0

    x_sd = np.array([col_sd(i) for i in s.x_idx])
    z_sd = np.array([col_sd(i) for i in s.z_idx])
    return y_mean, sd_y, x_sd, z_sd


def default_priors(fit: MixedFit) -> dict[str, PriorSpec]:
    """Data-scaled default priors for :func:`hierarchical_model`, with reasons.

    With s_y the SD of the response and s_k the SD of column k (1 for the intercept):

    * beta: Intercept ~ Normal(mean y, 2.5 s_y); slope k ~ Normal(0, 2.5 s_y / s_k), bambi's and
      rstanarm's autoscaling;
    * sd_re (the SDs of the random terms): HalfNormal(2.5 s_y / s_k); its mode at 0
      leans toward more pooling, and a boundary-like term still gets partial pooling because
      the posterior averages over SDs > 0 instead of fixing one at 0;
    * sigma ~ HalfNormal(2.5 s_y);
    * corr_re: LKJ(eta = 2), gently favouring small correlations over +-1.
    """
    y_mean, sd_y, x_sd, z_sd = _scales(fit)
    s = fit.design.stats
    mu = np.zeros(s.p)
    if s.intercept_col is not None:
        mu[s.intercept_col] = y_mean
    return {
        "beta": PriorSpec(
            "Normal",
            {"mu": mu, "sigma": 2.5 * sd_y / x_sd},
            "weakly informative: 2.5 SDs of y per SD of the covariate",
        ),
        "sd_re": PriorSpec(
            "HalfNormal", {"sigma": 2.5 * sd_y / z_sd}, "random-term SDs on the same scale"
        ),
        "sigma": PriorSpec("HalfNormal", {"sigma": 2.5 * sd_y}, "residual SD on the data's scale"),
        "eta": PriorSpec("LKJ", {"eta": 2.0}, "LKJ(2): correlations near 0 slightly favoured"),
    }


def hierarchical_model(
    fit: MixedFit,
    priors: Mapping[str, Any] | None = None,
    parametrization: str = "noncentered",
    marginalize: bool | None = None,
    *,
    eta: float | None = None,
    data=None,
    pooling: str = "partial",
) -> ShrinkageModel:
    """Full Bayes for a mixed fit: priors on beta, sigma and the random-effects covariance.

    Each random block gets ``pm.LKJCholeskyCov`` (LKJ prior on the correlations, HalfNormal on
    the SDs); blocks are independent, as in the formula. ``priors`` may override "beta",
    "sigma" (PyMC ``.dist`` variables or callables of the name, or "flat" for beta); ``eta``
    the LKJ shape (default 2). The fit supplies the data and the prior scales.

    ``marginalize`` (default: True with at most two random terms): the group effects are
    integrated out of the likelihood, y_j ~ N(X_j beta, sigma^2 I + Z_j Sigma_b Z_j'), written
    with each group's 2 x 2 (or 1 x 1) matrix sigma^2 I + L'Z_j'Z_j L in closed form, so NUTS
    samples only beta, sigma and the covariance; :func:`bayeshrink.sample` then draws every b_j
    exactly from its normal conditional given each draw, as the one-way model does with theta.
    False: the textbook form, b_j = L z_j with z_j sampled by NUTS (any number of terms).

    Variables: beta (fixed_term), sigma, sd_re (term), corr_re and chol_re (term x term), and
    b and coef (level x term), sampled or drawn after sampling.
    """
    check_pooling(pooling)
    if parametrization != "noncentered":
        raise MethodError(
            "a mixed-model fit is sampled non-centered (b_j = L z_j) or with b_j "
            f"marginalized out; got parametrization={parametrization!r}."
        )
    priors = dict(priors or {})
    unknown = set(priors) - {"beta", "sigma"}
    if unknown:
        raise MethodError(
            f"`priors` keys must be among ['beta', 'sigma']; got {sorted(unknown)}. Random-term "
            "SDs and correlations are set through `eta` and the defaults (default_priors)."
        )
    defaults = default_priors(fit)
    if pooling != "partial":
        if marginalize:
            raise MethodError(
                f"`marginalize` must be None or False with pooling={pooling!r} (its effects are "
                "sampled, or absent); got True."
            )
        return _pooling_model(fit, pooling, priors, defaults, data)
    eta = float(defaults["eta"].params["eta"] if eta is None else eta)
    if not eta > 0:
        raise MethodError(f"`eta` must be positive; got {eta}.")
    sd_scale = defaults["sd_re"].params["sigma"]
    q = len(fit.random_terms)
    if marginalize is None:
        marginalize = q <= 2
    if marginalize and q > 2:
        raise MethodError(
            f"`marginalize=True` is written for at most two random terms; this fit has {q} "
            f"({', '.join(fit.random_terms)}). Use marginalize=False (b_j sampled by NUTS)."
        )
    used = {}
    model = ShrinkageModel(coords=_coords(fit))
    with model:
        if priors.get("beta") is None:
            # beta = m + s * beta_z: the same Normal(m, s) prior, sampled on the unit scale
            # (a vector-valued prior mean as the initial point trips nutpie's start-up here)
            d = defaults["beta"]
            beta_z = pm.Normal("beta_z", 0.0, 1.0, dims=FIXED_DIM)
            beta = pm.Deterministic(
                "beta", d.params["mu"] + d.params["sigma"] * beta_z, dims=FIXED_DIM
            )
            used["beta"] = format_prior(d)
        elif isinstance(priors["beta"], str) and priors["beta"].lower() in ("flat", "uniform"):
            beta = pm.Flat("beta", dims=FIXED_DIM)
            used["beta"] = "Flat()"
        else:
            beta, used["beta"] = make_prior(model, "beta", priors["beta"], defaults["beta"])
        sigma, used["sigma"] = make_prior(model, "sigma", priors.get("sigma"), defaults["sigma"])
        chol, init = block_cholesky(fit.design.block_sizes, sd_scale, fit.sd_re().to_numpy(), eta)
        cov = pt.dot(chol, chol.T)
        sd_re = pm.Deterministic("sd_re", pt.sqrt(pt.diag(cov)), dims=TERM_DIM)
        pm.Deterministic(
            "corr_re", cov / (sd_re[:, None] * sd_re[None, :]), dims=(TERM_DIM, f"{TERM_DIM}_bis")
        )
        pm.Deterministic("chol_re", chol, dims=(TERM_DIM, f"{TERM_DIM}_bis"))
        if marginalize:
            _marginal_loglik(fit, beta, chol, sigma)
        else:
            b, _ = _effects(fit, chol)
            coef(b, fit.fixed_of_random, beta)
            _loglik(fit, beta, b, sigma)
    model.description = "\n".join(
        [
            f"Full hierarchical model for {fit.formula} ({fit.n_groups} groups, "
            + (
                "b_j marginalized out, drawn exactly after sampling)"
                if marginalize
                else "non-centered, b_j sampled)"
            ),
            f"  b_j ~ N(0, Sigma_b); Sigma_b: SDs ~ {format_prior(defaults['sd_re'])}, "
            f"correlations ~ LKJ(eta={eta:g}) per block {list(fit.design.block_sizes)}",
            f"  beta ~ {used['beta']};  sigma ~ {used['sigma']}",
            "  y_j ~ N(X_j beta + Z_j b_j, sigma^2 I), through per-group cross-products",
        ]
    )
    model.kind, model.fit, model.priors = "hierarchical", fit, used
    model.marginalized = bool(marginalize)
    model.effect_sampler = add_effects
    model.start = init
    model.rows = rows_of(fit, data)
    return model


def _beta_prior(model, priors, defaults, used, shared=None):
    """beta with its default prior (sampled on the unit scale: a vector-valued prior mean as the
    initial point trips nutpie's start-up here), "flat", or a user's; ``shared``: the positions
    that are in the model (the others are 0)."""
    d = defaults["beta"]
    p = len(d.params["mu"])
    shared = list(range(p)) if shared is None else shared
    if not shared:  # every fixed effect is a group's own coefficient
        used["beta"] = "none shared (0: every group has its own coefficients)"
        return pm.Deterministic("beta", pt.zeros(p), dims=FIXED_DIM)
    if priors.get("beta") is None:
        mu, sd = d.params["mu"][shared], d.params["sigma"][shared]
        beta_z = pm.Normal("beta_z", 0.0, 1.0, shape=len(shared))
        vals = mu + sd * beta_z
        used["beta"] = format_prior(PriorSpec("Normal", {"mu": mu, "sigma": sd}, ""))
    elif isinstance(priors["beta"], str) and priors["beta"].lower() in ("flat", "uniform"):
        vals = pm.Flat("beta_free", shape=len(shared))
        used["beta"] = "Flat()"
    else:
        raise MethodError(
            "`priors['beta']` must be None or 'flat' for a no- or complete-pooling model; got "
            f"{priors['beta']!r}."
        )
    if len(shared) == p:
        return pm.Deterministic("beta", vals, dims=FIXED_DIM)
    return pm.Deterministic("beta", pt.set_subtensor(pt.zeros(p)[shared], vals), dims=FIXED_DIM)


def _pooling_model(fit: MixedFit, pooling: str, priors, defaults, data) -> ShrinkageModel:
    """The complete-pooling (no random effects: b = 0) and no-pooling (every group's own
    coefficients, nothing learnt about their spread) models of :func:`hierarchical_model`."""
    terms = list(fit.random_terms)
    J, q = fit.n_groups, len(terms)
    used: dict[str, str] = {}
    model = ShrinkageModel(coords=_coords(fit))
    with model:
        sigma, used["sigma"] = make_prior(model, "sigma", priors.get("sigma"), defaults["sigma"])
        if pooling == "complete":
            beta = _beta_prior(model, priors, defaults, used)
            b = pm.Deterministic("b", pt.zeros((J, q)), dims=(GROUP_DIM, TERM_DIM))
            effects_text = "  no random effects (complete pooling): b = 0, coef = the fixed effects"
        else:
            mean, sd, shared = no_pooling_prior(
                terms,
                fit.fixed_terms,
                defaults["beta"].params["mu"],
                defaults["beta"].params["sigma"],
                defaults["sd_re"].params["sigma"],
            )
            beta = _beta_prior(model, priors, defaults, used, shared)
            z = pm.Normal("z", 0.0, 1.0, dims=(GROUP_DIM, TERM_DIM))
            # coef = b + E beta with beta's entries of these terms 0, so b = coef
            b = pm.Deterministic("b", mean + sd * z, dims=(GROUP_DIM, TERM_DIM))
            effects_text = (
                f"  no pooling: every group's own coefficients of {terms}, coef_j,k ~ "
                f"Normal(mu_k, s_k) independently, mu = {np.array2string(mean, precision=4)}, "
                f"s = {np.array2string(sd, precision=4)} (the priors of the fixed effects); "
                "nothing is shared between groups but sigma"
                + (" and the other fixed effects" if shared else "")
            )
        coef(b, fit.fixed_of_random, beta)
        _loglik(fit, beta, b, sigma)
    head = "Complete-pooling model" if pooling == "complete" else "No-pooling model"
    model.description = "\n".join(
        [
            f"{head} for {fit.formula} ({fit.n_groups} groups)",
            effects_text,
            f"  beta ~ {used['beta']};  sigma ~ {used['sigma']}",
            "  y_j ~ N(X_j beta + Z_j b_j, sigma^2 I), through per-group cross-products",
        ]
    )
    model.kind, model.fit, model.priors = "hierarchical", fit, used
    model.pooling = pooling
    model.rows = rows_of(fit, data)
    return model


def plugin_posterior(fit: MixedFit, mu: str = "fixed") -> pd.DataFrame:
    """The exact plug-in posterior of coef: one row per (level, term), mean = ``coef()``, SD =
    ``ranef_sd()`` (fixed) or ``pred_sd()`` (flat prior on the fixed effects)."""
    check_mu(mu, "beta_hat")
    sd = fit.ranef_sd() if mu == "fixed" else fit.pred_sd()
    mean = fit.coef()[fit.random_terms]
    out = pd.DataFrame({"mean": mean.stack(), "sd": sd.stack()})
    out.index = out.index.set_names([GROUP_DIM, TERM_DIM])
    return out


def hyperparameters(fit: MixedFit, full=None, prob: float = 0.95) -> pd.DataFrame:
    """beta_hat, the random-term SDs and sigma_hat beside their full-Bayes posteriors.

    One row per fixed effect (``beta[term]``), random-term SD (``sd_re[term]``) and ``sigma``;
    columns as :func:`bayeshrink.hyperparameters`.
    """
    rows = [(f"beta[{t}]", "beta", FIXED_DIM, t, v) for t, v in fit.fixef.items()]
    rows += [(f"sd_re[{t}]", "sd_re", TERM_DIM, t, v) for t, v in fit.sd_re().items()]
    rows.append(("sigma", "sigma", None, None, fit.sigma))
    hyper = pd.DataFrame({"estimate": [r[4] for r in rows]}, index=[r[0] for r in rows])
    if full is not None:
        import xarray as xr

        ds = full["posterior"].to_dataset()
        for label, var, dim, key, _ in rows:
            if var not in ds:
                continue
            sub = ds[[var]] if dim is None else ds[[var]].sel({dim: key}, drop=True)
            row = posterior_table(xr.DataTree.from_dict({"posterior": sub}), var, prob).iloc[0]
            for col in ("mean", "sd", "lo", "hi", "mcse"):
                hyper.loc[label, f"posterior_{col}"] = row[col]
    return hyper


def compare(fit: MixedFit, plugin=None, full=None, prob: float = 0.95) -> pd.DataFrame:
    """One row per (group, term): own fit, coef (BLUP), cond_sd, and the posteriors of coef.

    Columns as :func:`bayeshrink.compare`: plugin_mean, plugin_sd, plugin_mcse, plugin_gap_mcse (in
    Monte Carlo SEs), full_mean, full_sd, full_lo, full_hi, full_mcse.
    """
    prob = check_prob(prob)
    for tag, idata in (("plugin", plugin), ("full", full)):
        if idata is not None:
            check_draws(idata, tag, fit)
    rows = []
    for term in fit.random_terms:
        t = fit.table(term)
        rows.append(
            pd.DataFrame(
                {col: t[col].to_numpy() for col in ("n", "no_pooling", "blup", "cond_sd")},
                index=pd.MultiIndex.from_arrays(
                    [[str(g) for g in t.index], [term] * len(t)], names=[GROUP_DIM, TERM_DIM]
                ),
            )
        )
    out = pd.concat(rows)
    divergences = {}
    for tag, idata in (("plugin", plugin), ("full", full)):
        if idata is None:
            continue
        merge_posterior(out, tag, idata, out.index, prob)
        divergences[tag] = count_divergences(idata)
    out.attrs["hyperparameters"] = hyperparameters(fit, full, prob).to_dict(orient="index")
    out.attrs["divergences"] = divergences
    out.attrs["prob"] = prob
    return out
