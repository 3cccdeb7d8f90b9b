r"""PyMC models of a :class:`~bayeshrink.glmm.GlmmFit` (binomial or Poisson GLMM, one grouping
factor or several).

The plug-in model is the posterior whose mode lme4 reports as the conditional mode:

    b_j ~ N(0, Sigma_hat),  as  b_j = T_hat z_j,  z_j ~ N(0, I)   (Sigma_hat = T_hat T_hat')
    y_i | b ~ Binomial(m_i, g^-1(eta_i))  or  Poisson(g^-1(eta_i)),
    eta_i = offset_i + x_i' beta_hat + z_i' b_j(i)

with the fit's link g. Its MAP is ``fit.ranef()``; its posterior is not normal, and its exact
moments per group (one scalar term) are :func:`bayeshrink.plugin_posterior` (adaptive grid).

The full model puts weakly informative priors on beta and on the random-effects covariance
(:func:`default_priors`) and samples the effects non-centred. Both models read the data only
through sufficient statistics: the rows are collapsed to their distinct patterns (group,
covariates, offset), each with its successes and trials (binomial) or its count and weight
(Poisson), so a model costs O(patterns) per gradient; the binomial kernel
``s eta - m log(1 + e^eta)`` (logit) is exact up to a constant.

After sampling the pointwise log-likelihood is computed per row of the data, with the binomial
coefficient (``log_likelihood[<successes>]`` over ``obs``: ``binom.logpmf(s_i, m_i, p_i)``, or
``poisson.logpmf(y_i, mu_i)``), ``observed_data`` holds the successes (or counts) under the
name of the successes column, ``constant_data`` the trials, the covariates, the offset and the
group of every row, and :func:`bayeshrink.sample_posterior_predictive` draws the counts.

Variables, named as in every bayeshrink model: ``z``, ``b`` and ``coef`` over (``level``,
``term``); in the full model also ``beta`` (``fixed_term``), ``sd_re`` (``term``), and
``chol_re``/``corr_re`` for correlated terms. With several grouping factors, as for the
linear models: ``level`` = "factor:label" with the coordinates ``factor`` and ``label``,
``term`` every factor's terms (0 where a factor lacks one), ``sd_re`` over ``re_term`` =
"factor:term" (lme4's VarCorr rows); the log-likelihood and predictive draws stay per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from ..errors import DataError, MethodError
from ..glmm.results import GlmmFit
from ..posterior import (
    FIXED_DIM,
    GROUP_DIM,
    TERM_DIM,
    add_posterior_columns,
    check_prob,
    count_divergences,
    posterior_table,
)
from .checks import aligned_posterior, check_draws
from .covariance import block_cholesky
from .effects import coef, effects, fixed_of_random, linear_part
from .model import PriorSpec, ShrinkageModel, check_pooling, column_sd, format_prior
from .workflow import OBS_DIM, EffectLayout, effect_layout

__all__ = [
    "compare",
    "default_priors",
    "hierarchical_model",
    "hyperparameters",
    "plugin_model",
    "plugin_posterior",
]


# --------------------------------------------------------------------------- the data
#: the dimension of ``sd_re`` with several factors (as for the linear models)
SD_DIM = "re_term"


def _several(fit: GlmmFit) -> bool:
    return len(fit._factors) > 1


def _layout(fit: GlmmFit):
    """The :class:`~bayeshrink.bayes.workflow.EffectLayout` of the effects: one factor's labels
    as they are, or "factor:label" with several factors."""
    if _several(fit):
        return effect_layout(fit, fit._factors)
    f = fit._factors[0]
    labels = [str(v) for v in f.labels]
    terms = list(f.terms)
    return EffectLayout(
        labels,
        [f.name] * len(labels),
        labels,
        terms,
        {f.name: 0},
        {f.name: list(range(len(terms)))},
    )


def _check_data(fit: GlmmFit, data) -> None:
    """The fit keeps its rows; ``data`` given must hold as many rows as the fit used."""
    if data is None:
        return
    n = len(data)
    if n - fit._design.n_dropped != fit.n_obs:
        raise DataError(
            f"`data` must be the rows the fit was made from ({fit.n_obs} rows used); got {n} "
            "rows. Leave `data` out: a GLMM fit keeps its rows."
        )


@dataclass(frozen=True)
class _Patterns:
    """The distinct (levels, x, z, offset) patterns of the rows with their summed successes
    and trials (binomial: sum wt*y and sum wt; Poisson: sum wt*y and sum wt)."""

    codes: list  # per factor, (k,)
    X: np.ndarray
    Z: list  # per factor, (k, q_f)
    offset: np.ndarray
    s: np.ndarray
    m: np.ndarray


def _patterns(fit: GlmmFit) -> _Patterns:
    des, fs = fit._design, fit._factors
    cols = [f.codes.astype(float)[:, None] for f in fs] + [des.X] + [f.Z for f in fs]
    key = np.column_stack([*cols, des.offset])
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    k = len(uniq)
    s = np.bincount(inv, weights=des.wt * des.y, minlength=k)
    m = np.bincount(inv, weights=des.wt, minlength=k)
    nf, p = len(fs), des.X.shape[1]
    codes = [uniq[:, i].astype(int) for i in range(nf)]
    pos, Z = nf + p, []
    for f in fs:
        Z.append(uniq[:, pos : pos + f.Z.shape[1]])
        pos += f.Z.shape[1]
    return _Patterns(codes, uniq[:, nf : nf + p], Z, uniq[:, pos], s, m)


def _mean_tensor(link: str, eta):
    if link == "logit":
        return pm.math.sigmoid(eta)
    if link == "probit":
        return 0.5 * pt.erfc(-eta / math.sqrt(2.0))
    if link == "cloglog":
        return -pt.expm1(-pt.exp(eta))
    return pt.exp(eta)


def _kernel(fit: GlmmFit, eta, s, m):
    """Log-likelihood kernel of the patterns (exact up to a constant)."""
    if fit.family == "binomial":
        if fit.link == "logit":
            return pt.sum(s * eta - m * pt.softplus(eta))
        p = _mean_tensor(fit.link, eta)
        return pt.sum(s * pt.log(p) + (m - s) * pt.log1p(-p))
    if fit.link == "log":
        return pt.sum(s * eta - m * pt.exp(eta))
    raise AssertionError(fit.link)  # pragma: no cover


def _coords(fit: GlmmFit, lay) -> dict:
    coords = {**lay.coords(), FIXED_DIM: list(fit.fixed_terms)}
    if _several(fit):
        coords[SD_DIM] = [f"{f.name}:{t}" for f in fit._factors for t in f.terms]
    else:
        coords[f"{TERM_DIM}_bis"] = list(lay.terms)
    return coords


def _fixed_of_random(fit: GlmmFit, lay) -> np.ndarray:
    return fixed_of_random(lay.terms, fit.fixed_terms)


def _effects(fit: GlmmFit, lay, chols: dict):
    return effects(fit._factors, lay, chols, _several(fit))


def _random_part(fit: GlmmFit, pat: _Patterns, blocks: dict):
    """sum_f z_fi' b_f,l(i) over the patterns."""
    return linear_part(
        blocks, [(f.name, c, Z) for f, c, Z in zip(fit._factors, pat.codes, pat.Z, strict=True)]
    )


def _response_name(fit: GlmmFit) -> str:
    """The name of the observed counts: the successes of ``cbind(successes, failures)``, else
    the response."""
    r = str(fit.response).strip()
    if r.startswith("cbind(") and r.endswith(")"):
        inner, depth = r[6:-1], 0
        for i, ch in enumerate(inner):
            depth += ch in "([{"
            depth -= ch in ")]}"
            if ch == "," and depth == 0:
                return inner[:i].strip()
    return r


def _family_text(fit: GlmmFit) -> str:
    if fit.family == "binomial":
        return f"s_i ~ Binomial(m_i, {fit.link}^-1(eta_i))"
    return "y_i ~ Poisson(exp(eta_i))"


def _finish(model: ShrinkageModel, fit: GlmmFit, kind: str, lay) -> ShrinkageModel:
    model.kind, model.fit = kind, fit
    model.rows = None
    model.workflow = _GlmmWorkflow()
    model.glmm_layout = lay
    if _several(fit):
        model.layout = lay  # the factor and label coordinates on `level`
        # crossed factors leave a ridge (see bayes/multi.py): nutpie's low-rank mass matrix
        model.nutpie_kwargs = {"adaptation": "low_rank"}
    return model


# --------------------------------------------------------------------------- plug-in
def _factors_text(fit: GlmmFit) -> str:
    return ", ".join(f"{f.name} ({len(f.labels)} levels)" for f in fit._factors)


def plugin_model(fit: GlmmFit, mu: str = "fixed", *, data=None) -> ShrinkageModel:
    """The plug-in model of a GLMM: each factor's effects b ~ N(0, Sigma_hat of the factor),
    beta at beta_hat, the fit's family, link and offset. Its MAP is the conditional modes
    (``fit.ranef(factor)``); its posterior means (not the modes) are
    :func:`bayeshrink.plugin_posterior`'s ``mean`` (one scalar term).

    Variables: ``z`` (level x term, standard normal), and the deterministics ``b`` (ranef) and
    ``coef`` (coef), over (``level``, ``term``).
    """
    if mu != "fixed":
        raise MethodError(
            f"`mu` must be 'fixed' for a GLMM (beta plugged in at beta_hat, the posterior whose "
            f"mode is lme4's conditional mode); got {mu!r}."
        )
    _check_data(fit, data)
    lay = _layout(fit)
    pat = _patterns(fit)
    beta_hat = fit.fixef.to_numpy(dtype=float)
    eta0 = pat.offset + pat.X @ beta_hat
    model = ShrinkageModel(coords=_coords(fit, lay))
    with model:
        b, blocks = _effects(fit, lay, {f.name: pt.as_tensor(f.T) for f in fit._factors})
        fixed = _fixed_of_random(fit, lay) @ beta_hat
        pm.Deterministic("coef", b + fixed[None, :], dims=(GROUP_DIM, TERM_DIM))
        pm.Potential("loglik", _kernel(fit, eta0 + _random_part(fit, pat, blocks), pat.s, pat.m))
    if _several(fit):
        prior = f"  prior: the effects of every level of {_factors_text(fit)} ~ N(0, Sigma_hat "
        prior += "of its factor)"
        for f in fit._factors:
            cov = np.array2string(f.T @ f.T.T, precision=4, suppress_small=True)
            prior += f"\n  Sigma_hat of {f.name} over {list(f.terms)} = {cov}"
        eta_text = "x_i' beta_hat + sum_f z_fi' b_f,l(i)"
    else:
        f = fit._factors[0]
        cov = np.array2string(f.T @ f.T.T, precision=4, suppress_small=True)
        prior = f"  prior: b_j ~ N(0, Sigma_hat), Sigma_hat over {list(f.terms)} =\n  {cov}"
        eta_text = "x_i' beta_hat + z_i' b_j(i)"
    model.description = (
        f"Empirical-Bayes plug-in model for {fit.formula} ({fit.family}, {fit.link} link, "
        f"{fit.method} fit, {_factors_text(fit)}, beta fixed at beta_hat)\n"
        f"{prior}\n"
        f"  likelihood: {_family_text(fit)}, eta_i = offset_i + {eta_text}; "
        f"from {len(pat.s)} distinct (levels, covariates) patterns of {fit.n_obs} rows\n"
        "  posterior mode of b = fit.ranef() (the conditional modes); the posterior mean lies "
        "elsewhere (bs.plugin_posterior(fit))"
    )
    model.priors = {"beta": "fixed"}
    return _finish(model, fit, "plugin", lay)


def plugin_posterior(fit: GlmmFit, mu: str = "fixed", **kwargs) -> pd.DataFrame:
    """``bs.plugin_posterior`` for a GLMM: exact per-group moments by quadrature
    (:func:`bayeshrink.glmm.posterior.plugin_posterior`)."""
    from ..glmm.posterior import plugin_posterior as exact

    if mu != "fixed":
        raise MethodError(f"`mu` must be 'fixed' for a GLMM (beta at beta_hat); got {mu!r}.")
    return exact(fit, **kwargs)


# --------------------------------------------------------------------------- full Bayes
_col_sd = column_sd


def default_priors(fit: GlmmFit) -> dict[str, PriorSpec]:
    """Weakly informative priors on the link scale (rstanarm's autoscaling), with reasons.

    With s_k the SD of column k (1 for the intercept):

    * beta: Intercept ~ Normal(g(overall rate), 2.5); slope k ~ Normal(0, 2.5 / s_k): a change
      of one SD of a covariate moves the log-odds (log-rate) by at most about 5;
    * sd_re: HalfNormal(2.5 / s_k) on each random term's SD: between-group SDs of the
      log-odds above 5 (odds ratios of e^10 between typical groups) are implausible;
    * correlations of a block: LKJ(2).

    With several grouping factors ``sd_re``'s scale is a dict by factor.
    """
    des = fit._design
    x_sd = np.array([_col_sd(des.X[:, j]) for j in range(des.X.shape[1])])
    z_sd = {
        f.name: 2.5 / np.array([_col_sd(f.Z[:, k]) for k in range(f.Z.shape[1])])
        for f in fit._factors
    }
    s, m = float(np.sum(des.wt * des.y)), float(np.sum(des.wt))
    if fit.family == "binomial":
        rate = min(max(s / m, 0.5 / m), 1 - 0.5 / m)
    else:
        rate = max(s, 0.5) / float(np.sum(des.wt * np.exp(des.offset)))
    centre = float(fit._family.link.link(np.array([rate]))[0])
    mu = np.where(np.all(des.X == 1.0, axis=0), centre, 0.0)
    return {
        "beta": PriorSpec(
            "Normal",
            {"mu": mu, "sigma": 2.5 / x_sd},
            "weakly informative on the link scale: 2.5 per SD of the covariate; the intercept "
            "centred at the link of the overall rate",
        ),
        "sd_re": PriorSpec(
            "HalfNormal",
            {"sigma": z_sd if _several(fit) else z_sd[fit._factors[0].name]},
            "random-term SDs on the link scale",
        ),
        "eta": PriorSpec("LKJ", {"eta": 2.0}, "LKJ(2): correlations near 0 slightly favoured"),
    }


def _sd_scale(fit: GlmmFit, pri) -> dict:
    sc = pri["sd_re"].params["sigma"]
    return sc if isinstance(sc, dict) else {fit._factors[0].name: sc}


def hierarchical_model(
    fit: GlmmFit,
    priors=None,
    parametrization: str = "noncentered",
    marginalize=None,
    *,
    eta=None,
    data=None,
    pooling: str = "partial",
) -> ShrinkageModel:
    """Full Bayes for a GLMM: beta and the random-effects covariance get the priors of
    :func:`default_priors` (stated in the model's description), b = L z non-centred, and
    the likelihood is read from the rows' sufficient statistics (successes and trials, or
    counts and weights, per level and covariate pattern). The effects cannot be integrated out
    in closed form, so ``marginalize`` must be None or False.

    ``pooling``: "partial" (the hierarchical model), "complete" (no random effects: the GLM
    with beta's prior; ``b`` is 0) or "none" (nothing learnt about the spread of the effects:
    with one factor every group gets its own coefficient for each random term, with the prior
    of that term's fixed effect, and the shared fixed effects keep theirs; with several factors
    every level's effects get a fixed N(0, S^2) prior, S the scale of the SDs' prior).
    """
    check_pooling(pooling)
    _check_data(fit, data)
    if priors:
        raise MethodError(
            "`priors` must be None for a GLMM (the defaults of bs.default_priors(fit) are used); "
            f"got {sorted(priors)}."
        )
    if parametrization != "noncentered" or marginalize:
        raise MethodError(
            "a GLMM is sampled non-centred with every effect sampled (no closed-form marginal); "
            f"got parametrization={parametrization!r}, marginalize={marginalize!r}."
        )
    pri = default_priors(fit)
    eta_lkj = float(pri["eta"].params["eta"] if eta is None else eta)
    if not eta_lkj > 0:
        raise MethodError(f"`eta` must be positive; got {eta_lkj}.")
    lay = _layout(fit)
    pat = _patterns(fit)
    scale = _sd_scale(fit, pri)
    E = _fixed_of_random(fit, lay)
    pb = pri["beta"].params
    p = len(fit.fixed_terms)
    # with no pooling and one factor, each group has its own coefficient for every random
    # term: the fixed effects of those terms are not in the model (0)
    own = pooling == "none" and not _several(fit)
    shared = [j for j in range(p) if not (own and E[:, j].any())]
    init: dict[str, np.ndarray] = {}
    model = ShrinkageModel(coords=_coords(fit, lay))
    lines = []
    with model:
        beta = pt.zeros(p)
        if shared:
            beta_z = pm.Normal("beta_z", 0.0, 1.0, shape=len(shared))
            beta = pt.set_subtensor(beta[shared], pb["mu"][shared] + pb["sigma"][shared] * beta_z)
        beta = pm.Deterministic("beta", beta, dims=FIXED_DIM)
        shape = (len(lay.levels), len(lay.terms))
        if pooling == "complete":
            b = pm.Deterministic("b", pt.zeros(shape), dims=(GROUP_DIM, TERM_DIM))
            random = 0.0
            lines.append("  no random effects (complete pooling): b = 0, coef = the fixed effects")
        elif own:
            f = fit._factors[0]
            mean = np.array(
                [pb["mu"][E[k].argmax()] if E[k].any() else 0.0 for k in range(len(lay.terms))]
            )
            sd = np.array(
                [
                    pb["sigma"][E[k].argmax()] if E[k].any() else scale[f.name][k]
                    for k in range(len(lay.terms))
                ]
            )
            z = pm.Normal("z", 0.0, 1.0, dims=(GROUP_DIM, TERM_DIM))
            b = pm.Deterministic("b", mean + sd * z, dims=(GROUP_DIM, TERM_DIM))
            random = _random_part(fit, pat, {f.name: b})
            lines.append(
                f"  no pooling: every group's own coefficients, coef_j,k ~ Normal(mu_k, s_k) "
                f"independently, mu = {np.array2string(mean, precision=4)}, s = "
                f"{np.array2string(sd, precision=4)} (the priors of the fixed effects); "
                "nothing is shared between groups but the other fixed effects"
            )
        else:
            chols = {}
            for f in fit._factors:
                if pooling == "none":
                    chols[f.name] = pt.as_tensor(np.diag(scale[f.name]))
                    continue
                sfx = None
                if _several(fit):
                    names = [
                        f"{f.name}.{k}" if len(f.block_sizes) > 1 else f.name
                        for k in range(len(f.block_sizes))
                    ]
                    sfx = [f":{n}" for n in names]
                chols[f.name], start = block_cholesky(
                    f.block_sizes, scale[f.name], np.sqrt(np.diag(f.T @ f.T.T)), eta_lkj, sfx
                )
                init.update(start)
            if pooling == "partial":
                _covariance_deterministics(fit, chols)
                text = ", ".join(
                    f"{k}: {format_prior(PriorSpec('HalfNormal', {'sigma': v}, ''))}"
                    for k, v in scale.items()
                )
                q_max = max(len(f.terms) for f in fit._factors)
                lines.append(
                    "  b ~ N(0, Sigma_b) per factor; SDs ~ "
                    + text
                    + (f", correlations ~ LKJ(eta={eta_lkj:g}) per block" if q_max > 1 else "")
                )
            else:
                lines.append(
                    "  no pooling: every level's effects ~ N(0, S^2) independently, S fixed at "
                    "the scale of the SDs' prior ("
                    + ", ".join(f"{k}: {np.array2string(v, precision=4)}" for k, v in scale.items())
                    + "); nothing is learnt about their spread"
                )
            b, blocks = _effects(fit, lay, chols)
            random = _random_part(fit, pat, blocks)
        coef(b, E, beta)
        lin = pat.offset + pt.dot(pat.X, beta) + random
        pm.Potential("loglik", _kernel(fit, lin, pat.s, pat.m))
    head = {
        "partial": "Full hierarchical model",
        "complete": "Complete-pooling model",
        "none": "No-pooling model",
    }[pooling]
    beta_text = (
        format_prior(
            PriorSpec("Normal", {"mu": pb["mu"][shared], "sigma": pb["sigma"][shared]}, "")
        )
        if shared
        else "none shared (0: every group has its own coefficients)"
    )
    model.description = "\n".join(
        [
            f"{head} for {fit.formula} ({fit.family}, {fit.link} link, {_factors_text(fit)}"
            + (", non-centred, b sampled)" if pooling == "partial" else ")"),
            *lines,
            f"  beta{'' if len(shared) == p else [fit.fixed_terms[j] for j in shared]} ~ "
            f"{beta_text}",
            f"  {_family_text(fit)}, eta_i = offset_i + x_i' beta"
            + ("" if pooling == "complete" else " + sum_f z_fi' b_f,l(i)")
            + "; from "
            f"{len(pat.s)} distinct (levels, covariates) patterns of {fit.n_obs} rows",
        ]
    )
    model.priors = {k: format_prior(v) for k, v in pri.items() if k != "sd_re"}
    model.priors["sd_re"] = {k: np.asarray(v).tolist() for k, v in scale.items()}
    model.start = init
    model.pooling = pooling
    return _finish(model, fit, "hierarchical", lay)


def _covariance_deterministics(fit: GlmmFit, chols: dict) -> None:
    """sd_re (term, or re_term with several factors); corr_re and chol_re for one factor
    with several terms."""
    if _several(fit):
        sds = [pt.sqrt(pt.diag(pt.dot(c, c.T))) for c in chols.values()]
        pm.Deterministic("sd_re", pt.concatenate(sds), dims=SD_DIM)
        return
    chol = next(iter(chols.values()))
    cov = pt.dot(chol, chol.T)
    sd_re = pm.Deterministic("sd_re", pt.sqrt(pt.diag(cov)), dims=TERM_DIM)
    if len(fit._factors[0].terms) > 1:
        dims = (TERM_DIM, f"{TERM_DIM}_bis")
        pm.Deterministic("corr_re", cov / (sd_re[:, None] * sd_re[None, :]), dims=dims)
        pm.Deterministic("chol_re", chol, dims=dims)


# --------------------------------------------------------------------------- ArviZ groups
def _draws(ds, name, c):
    return np.asarray(ds[name].isel(chain=c).values, float)


def row_eta(fit: GlmmFit, ds, c) -> np.ndarray:
    """(draw, rows) linear predictor of every row in chain ``c`` of the draws ``ds``:
    offset + x_i' beta + sum_f z_fi' b_f,l(i), each factor's block read from ``b`` (level x
    term) through the layout."""
    des, lay = fit._design, _layout(fit)
    b = _draws(ds, "b", c)  # (draw, levels, terms)
    n_draw = b.shape[0]
    if "beta" in ds:
        eta = _draws(ds, "beta", c) @ des.X.T
    else:
        eta = np.repeat((des.X @ fit.fixef.to_numpy(dtype=float))[None, :], n_draw, axis=0)
    eta += des.offset
    for f in fit._factors:
        first = lay.offset[f.name]
        for k, t in enumerate(lay.term_pos[f.name]):
            eta += b[:, first + f.codes, t] * f.Z[:, k]
    return eta


def _inverse_link(link: str, eta: np.ndarray) -> np.ndarray:
    if link == "logit":
        return special.expit(eta)
    if link == "probit":
        return special.ndtr(eta)
    if link == "cloglog":
        return -np.expm1(-np.exp(eta))
    return np.exp(eta)


def _counts(fit: GlmmFit) -> tuple[np.ndarray, np.ndarray]:
    """(observed counts, trials or weights) per row."""
    des = fit._design
    if fit.family == "binomial":
        return np.round(des.wt * des.y), np.round(des.wt)
    return des.y.astype(float), des.wt.astype(float)


def _row_loglik(fit: GlmmFit, eta: np.ndarray) -> np.ndarray:
    y, m = _counts(fit)
    mu = _inverse_link(fit.link, eta)
    if fit.family == "binomial":
        lchoose = special.gammaln(m + 1) - special.gammaln(y + 1) - special.gammaln(m - y + 1)
        if fit.link == "logit":  # log p = -softplus(-eta), log(1 - p) = -softplus(eta)
            return lchoose - y * np.logaddexp(0.0, -eta) - (m - y) * np.logaddexp(0.0, eta)
        return lchoose + special.xlogy(y, mu) + special.xlog1py(m - y, -mu)
    return m * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))


class _GlmmWorkflow:
    """The workflow hooks of a GLMM model (see :mod:`bayeshrink.bayes.workflow`)."""

    def coords(self, fit: GlmmFit) -> dict:
        coords = {OBS_DIM: np.arange(fit.n_obs)}
        for f in fit._factors:
            labels = np.asarray([str(v) for v in f.labels])
            coords[f.name] = (OBS_DIM, labels[f.codes])
        return coords

    def pointwise(self, model, ds, rng=None, loglik: bool = True):
        fit = model.fit
        if rng is not None and fit.family == "poisson" and np.any(fit._design.wt != 1.0):
            raise DataError(
                "`draws` must come from a Poisson GLMM without prior weights to draw predicted "
                "counts (a weighted Poisson row has no count distribution); got weights other "
                "than 1. Refit without `weights`."
            )
        shape = (int(ds.sizes["chain"]), int(ds.sizes["draw"]), fit.n_obs)
        ll = np.empty(shape) if loglik else None
        pp = np.empty(shape) if rng is not None else None
        _, m = _counts(fit)
        for c in range(shape[0]):
            eta = row_eta(fit, ds, c)
            if ll is not None:
                ll[c] = _row_loglik(fit, eta)
            if pp is not None:
                mu = _inverse_link(fit.link, eta)
                if fit.family == "binomial":
                    pp[c] = rng.binomial(m.astype(np.int64), np.clip(mu, 0.0, 1.0))
                else:
                    pp[c] = rng.poisson(mu)
        coords = {"chain": ds["chain"].values, "draw": ds["draw"].values, **self.coords(fit)}
        dims = ("chain", "draw", OBS_DIM)

        def wrap(a):
            return None if a is None else xr.DataArray(a, dims=dims, coords=coords)

        return _response_name(fit), wrap(ll), wrap(pp)

    def observed(self, model):
        fit = model.fit
        des = fit._design
        coords = self.coords(fit)
        y, m = _counts(fit)
        obs = xr.Dataset({_response_name(fit): ((OBS_DIM,), y)}, coords=coords)
        const = {("trials" if fit.family == "binomial" else "weights"): ((OBS_DIM,), m)}
        for j, name in enumerate(fit.fixed_terms):
            const[name] = ((OBS_DIM,), des.X[:, j])
        for f in fit._factors:
            for k, term in enumerate(f.terms):
                key = f"{term}|{f.name}" if _several(fit) else term
                const.setdefault(key, ((OBS_DIM,), f.Z[:, k]))
        if np.any(des.offset != 0.0):
            const["offset"] = ((OBS_DIM,), des.offset)
        for f in fit._factors:
            const[f.name] = coords[f.name]
        return obs, xr.Dataset(const, coords={OBS_DIM: coords[OBS_DIM]})


# --------------------------------------------------------------------------- comparison
def hyperparameters(fit: GlmmFit, full=None, prob: float = 0.95) -> pd.DataFrame:
    """beta_hat and the random-term SDs beside their full-Bayes posteriors (posterior_mean,
    _sd, _lo, _hi, _mcse)."""
    rows = [(f"beta[{t}]", "beta", FIXED_DIM, t, v) for t, v in fit.fixef.items()]
    for f in fit._factors:
        for t, v in fit.sd_re(f.name).items():
            key = f"{f.name}:{t}" if _several(fit) else t
            rows.append((f"sd_re[{key}]", "sd_re", SD_DIM if _several(fit) else TERM_DIM, key, v))
    hyper = pd.DataFrame({"estimate": [r[4] for r in rows]}, index=[r[0] for r in rows])
    if full is not None:
        ds = full["posterior"].to_dataset()
        for label, var, dim, key, _ in rows:
            if var not in ds or key not in ds[var][dim].values:
                continue
            sub = ds[[var]].sel({dim: key}, drop=True)
            row = posterior_table(xr.DataTree.from_dict({"posterior": sub}), var, prob).iloc[0]
            for col in ("mean", "sd", "lo", "hi", "mcse"):
                hyper.loc[label, f"posterior_{col}"] = row[col]
    return hyper


def compare(fit: GlmmFit, plugin=None, full=None, prob: float = 0.95) -> pd.DataFrame:
    """One row per (group, term) on the link scale: where the conditional mode, the plug-in
    posterior's mode and mean, and the full-Bayes mean lie.

    Columns: n, events, trials, no_pooling (the group's own GLM), cond_mode (``coef()``: lme4's
    conditional mode plus the fixed effect), cond_sd (condVar); from the exact plug-in
    posterior (:func:`plugin_posterior`, one scalar term): plugin_mode (= cond_mode),
    plugin_mean, plugin_sd; with ``plugin`` (draws of :func:`plugin_model`) its sampled
    moments sampled_mean, sampled_sd, sampled_mcse, sampled_rhat, sampled_ess_bulk,
    sampled_ess_tail and sampled_gap_mcse (= (sampled_mean - plugin_mean) / sampled_mcse);
    with ``full`` (draws of :func:`hierarchical_model`) full_mean, full_sd, full_lo, full_hi,
    full_mcse, full_rhat, full_ess_bulk, full_ess_tail. ``attrs``: "hyperparameters",
    "divergences", "prob".
    """
    prob = check_prob(prob)
    for tag, idata in (("plugin", plugin), ("full", full)):
        if idata is not None:
            check_draws(idata, tag, fit)
    several = _several(fit)
    frames = []
    for f in fit._factors:
        for term in f.terms:
            t = fit.table(term, factor=f.name)
            labels = [f"{f.name}:{g}" if several else str(g) for g in t.index]
            frames.append(
                pd.DataFrame(
                    {
                        "n": t["n"].to_numpy(),
                        "events": t["events"].to_numpy(),
                        "trials": t["trials"].to_numpy(),
                        "no_pooling": t["no_pooling"].to_numpy(),
                        "cond_mode": t["cond_mode"].to_numpy(),
                        "cond_sd": t["cond_sd"].to_numpy(),
                    },
                    index=pd.MultiIndex.from_arrays(
                        [labels, [term] * len(t)], names=[GROUP_DIM, TERM_DIM]
                    ),
                )
            )
    out = pd.concat(frames)
    exact = not several and len(fit._factors[0].terms) == 1
    if exact:
        post = plugin_posterior(fit)
        out["plugin_mode"] = post["mode"].to_numpy()
        out["plugin_mean"] = post["mean"].to_numpy()
        out["plugin_sd"] = post["sd"].to_numpy()
    divergences = {}
    for tag, idata in (("plugin", plugin), ("full", full)):
        if idata is None:
            continue
        tab = aligned_posterior(tag, idata, out.index, prob)
        tab.index = out.index
        if tag == "full":
            add_posterior_columns(out, "full", tab)  # as every fit's (checks.merge_posterior)
        else:
            for col in ("mean", "sd", "mcse", "rhat", "ess_bulk", "ess_tail"):
                out[f"sampled_{col}"] = tab[col].to_numpy()
            if exact:
                with np.errstate(divide="ignore", invalid="ignore"):
                    out["sampled_gap_mcse"] = (out["sampled_mean"] - out["plugin_mean"]) / out[
                        "sampled_mcse"
                    ]
        divergences[tag] = count_divergences(idata)
    out.attrs["hyperparameters"] = hyperparameters(fit, full, prob).to_dict(orient="index")
    out.attrs["divergences"] = divergences
    out.attrs["prob"] = prob
    return out
