r"""PyMC models of a :class:`~bayeshrink.glmm.GlmmFit` (binomial or Poisson GLMM, one factor).

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
``chol_re``/``corr_re`` for correlated terms.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from ..errors import BayeshrinkError, DataError, MethodError
from ..glmm.results import GlmmFit
from ..posterior import (
    FIXED_DIM,
    GROUP_DIM,
    TERM_DIM,
    add_posterior_columns,
    check_prob,
    count_divergences,
    posterior_table,
    term_posterior_table,
)
from .checks import check_draws
from .covariance import block_cholesky
from .model import PriorSpec, ShrinkageModel, check_pooling, format_prior
from .workflow import OBS_DIM

__all__ = [
    "compare",
    "default_priors",
    "hierarchical_model",
    "hyperparameters",
    "plugin_model",
    "plugin_posterior",
]


# --------------------------------------------------------------------------- the data
def _one_factor(fit: GlmmFit):
    if len(fit._factors) != 1:
        raise MethodError(
            "`fit` must have one grouping factor for the GLMM's PyMC models; got "
            f"{fit.factors}. Fit one factor, e.g. (1 | g), or use bs.fit's estimates."
        )
    return fit._factors[0]


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


def _patterns(fit: GlmmFit):
    """The distinct (group, x, z, offset) patterns of the rows with their summed successes
    and trials (binomial: sum wt*y and sum wt; Poisson: sum wt*y and sum wt)."""
    des, f = fit._design, _one_factor(fit)
    key = np.column_stack([f.codes.astype(float), des.X, f.Z, des.offset])
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    k = len(uniq)
    s = np.bincount(inv, weights=des.wt * des.y, minlength=k)
    m = np.bincount(inv, weights=des.wt, minlength=k)
    p, q = des.X.shape[1], f.Z.shape[1]
    codes = uniq[:, 0].astype(int)
    X = uniq[:, 1 : 1 + p]
    Z = uniq[:, 1 + p : 1 + p + q]
    offset = uniq[:, 1 + p + q]
    return codes, X, Z, offset, s, m


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


def _coords(fit: GlmmFit) -> dict:
    f = _one_factor(fit)
    return {
        GROUP_DIM: [str(g) for g in f.labels],
        TERM_DIM: list(f.terms),
        f"{TERM_DIM}_bis": list(f.terms),
        FIXED_DIM: list(fit.fixed_terms),
    }


def _fixed_of_random(fit: GlmmFit) -> np.ndarray:
    """(q, p): coef = b + E beta (the fixed effect of each random term, 0 where none)."""
    f = _one_factor(fit)
    E = np.zeros((len(f.terms), len(fit.fixed_terms)))
    for k, t in enumerate(f.terms):
        if t in fit.fixed_terms:
            E[k, fit.fixed_terms.index(t)] = 1.0
    return E


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


def _finish(model: ShrinkageModel, fit: GlmmFit, kind: str) -> ShrinkageModel:
    model.kind, model.fit = kind, fit
    model.rows = None
    model.workflow = _GlmmWorkflow()
    return model


# --------------------------------------------------------------------------- plug-in
def plugin_model(fit: GlmmFit, mu: str = "fixed", *, data=None) -> ShrinkageModel:
    """The plug-in model of a GLMM: b_j ~ N(0, Sigma_hat), beta at beta_hat, the fit's family,
    link and offset. Its MAP is ``fit.ranef()`` (the conditional modes); its posterior means
    (not the modes) are :func:`bayeshrink.plugin_posterior`'s ``mean``.

    Variables: ``z`` (level x term, standard normal), and the deterministics ``b`` (ranef) and
    ``coef`` (coef), over (``level``, ``term``).
    """
    if mu != "fixed":
        raise MethodError(
            f"`mu` must be 'fixed' for a GLMM (beta plugged in at beta_hat, the posterior whose "
            f"mode is lme4's conditional mode); got {mu!r}."
        )
    _check_data(fit, data)
    f = _one_factor(fit)
    codes, X, Z, offset, s, m = _patterns(fit)
    eta0 = offset + X @ fit.fixef.to_numpy(dtype=float)
    model = ShrinkageModel(coords=_coords(fit))
    with model:
        z = pm.Normal("z", 0.0, 1.0, dims=(GROUP_DIM, TERM_DIM))
        b = pm.Deterministic("b", pt.dot(z, pt.as_tensor(f.T).T), dims=(GROUP_DIM, TERM_DIM))
        fixed = _fixed_of_random(fit) @ fit.fixef.to_numpy(dtype=float)
        pm.Deterministic("coef", b + fixed[None, :], dims=(GROUP_DIM, TERM_DIM))
        eta = eta0 + pt.sum(b[codes] * Z, axis=1)
        pm.Potential("loglik", _kernel(fit, eta, s, m))
    cov = np.array2string(f.T @ f.T.T, precision=4, suppress_small=True)
    model.description = (
        f"Empirical-Bayes plug-in model for {fit.formula} ({fit.family}, {fit.link} link, "
        f"{fit.method} fit, {len(f.labels)} groups, beta fixed at beta_hat)\n"
        f"  prior: b_j ~ N(0, Sigma_hat), Sigma_hat over {list(f.terms)} =\n  {cov}\n"
        f"  likelihood: {_family_text(fit)}, eta_i = offset_i + x_i' beta_hat + z_i' b_j(i); "
        f"from {len(s)} distinct (group, covariate) patterns of {fit.n_obs} rows\n"
        "  posterior mode of b = fit.ranef() (the conditional modes); the posterior mean lies "
        "elsewhere (bs.plugin_posterior(fit))"
    )
    model.priors = {"beta": "fixed"}
    return _finish(model, fit, "plugin")


def plugin_posterior(fit: GlmmFit, mu: str = "fixed", **kwargs) -> pd.DataFrame:
    """``bs.plugin_posterior`` for a GLMM: exact per-group moments by quadrature
    (:func:`bayeshrink.glmm.posterior.plugin_posterior`)."""
    from ..glmm.posterior import plugin_posterior as exact

    if mu != "fixed":
        raise MethodError(f"`mu` must be 'fixed' for a GLMM (beta at beta_hat); got {mu!r}.")
    return exact(fit, **kwargs)


# --------------------------------------------------------------------------- full Bayes
def _col_sd(col: np.ndarray) -> float:
    if np.all(col == col[0]):
        return 1.0
    return float(np.std(col, ddof=1))


def default_priors(fit: GlmmFit) -> dict[str, PriorSpec]:
    """Weakly informative priors on the link scale (rstanarm's autoscaling), with reasons.

    With s_k the SD of column k (1 for the intercept):

    * beta: Intercept ~ Normal(g(overall rate), 2.5); slope k ~ Normal(0, 2.5 / s_k): a change
      of one SD of a covariate moves the log-odds (log-rate) by at most about 5;
    * sd_re: HalfNormal(2.5 / s_k) on each random term's SD: between-group SDs of the
      log-odds above 5 (odds ratios of e^10 between typical groups) are implausible;
    * correlations of a block: LKJ(2).
    """
    des, f = fit._design, _one_factor(fit)
    x_sd = np.array([_col_sd(des.X[:, j]) for j in range(des.X.shape[1])])
    z_sd = np.array([_col_sd(f.Z[:, k]) for k in range(f.Z.shape[1])])
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
            "HalfNormal", {"sigma": 2.5 / z_sd}, "random-term SDs on the link scale"
        ),
        "eta": PriorSpec("LKJ", {"eta": 2.0}, "LKJ(2): correlations near 0 slightly favoured"),
    }


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
    :func:`default_priors` (stated in the model's description), b_j = L z_j non-centred, and
    the likelihood is read from the rows' sufficient statistics (successes and trials, or
    counts and weights, per group and covariate pattern). The effects cannot be integrated out
    in closed form, so ``marginalize`` must be None or False.
    """
    check_pooling(pooling, one_way=False)
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
    f = _one_factor(fit)
    pri = default_priors(fit)
    eta_lkj = float(pri["eta"].params["eta"] if eta is None else eta)
    if not eta_lkj > 0:
        raise MethodError(f"`eta` must be positive; got {eta_lkj}.")
    codes, X, Z, offset, s, m = _patterns(fit)
    scale = pri["sd_re"].params["sigma"]
    q = len(f.terms)
    init: dict[str, np.ndarray] = {}
    model = ShrinkageModel(coords=_coords(fit))
    with model:
        pb = pri["beta"].params
        beta_z = pm.Normal("beta_z", 0.0, 1.0, dims=FIXED_DIM)
        beta = pm.Deterministic("beta", pb["mu"] + pb["sigma"] * beta_z, dims=FIXED_DIM)
        chol, init = block_cholesky(f.block_sizes, scale, np.sqrt(np.diag(f.T @ f.T.T)), eta_lkj)
        cov = pt.dot(chol, chol.T)
        sd_re = pm.Deterministic("sd_re", pt.sqrt(pt.diag(cov)), dims=TERM_DIM)
        if q > 1:
            pm.Deterministic(
                "corr_re",
                cov / (sd_re[:, None] * sd_re[None, :]),
                dims=(TERM_DIM, f"{TERM_DIM}_bis"),
            )
            pm.Deterministic("chol_re", chol, dims=(TERM_DIM, f"{TERM_DIM}_bis"))
        z = pm.Normal("z", 0.0, 1.0, dims=(GROUP_DIM, TERM_DIM))
        b = pm.Deterministic("b", pt.dot(z, chol.T), dims=(GROUP_DIM, TERM_DIM))
        E = _fixed_of_random(fit)
        pm.Deterministic("coef", b + pt.dot(E, beta)[None, :], dims=(GROUP_DIM, TERM_DIM))
        lin = offset + pt.dot(X, beta) + pt.sum(b[codes] * Z, axis=1)
        pm.Potential("loglik", _kernel(fit, lin, s, m))
    model.description = "\n".join(
        [
            f"Full hierarchical model for {fit.formula} ({fit.family}, {fit.link} link, "
            f"{len(f.labels)} groups, non-centred, b_j sampled)",
            f"  b_j ~ N(0, Sigma_b); SDs ~ {format_prior(pri['sd_re'])}"
            + (f", correlations ~ LKJ(eta={eta_lkj:g}) per block" if q > 1 else ""),
            f"  beta ~ {format_prior(pri['beta'])}",
            f"  {_family_text(fit)}, eta_i = offset_i + x_i' beta + z_i' b_j(i); from "
            f"{len(s)} distinct (group, covariate) patterns of {fit.n_obs} rows",
        ]
    )
    model.priors = {k: format_prior(v) for k, v in pri.items()}
    model.start = init
    return _finish(model, fit, "hierarchical")


# --------------------------------------------------------------------------- ArviZ groups
def _draws(ds, name, c):
    return np.asarray(ds[name].isel(chain=c).values, float)


def row_eta(fit: GlmmFit, ds, c) -> np.ndarray:
    """(draw, rows) linear predictor of every row in chain ``c`` of the draws ``ds``."""
    des, f = fit._design, _one_factor(fit)
    b = _draws(ds, "b", c)  # (draw, J, q)
    n_draw = b.shape[0]
    if "beta" in ds:
        fixed = _draws(ds, "beta", c) @ des.X.T
    else:
        fixed = np.broadcast_to(des.X @ fit.fixef.to_numpy(dtype=float), (n_draw, fit.n_obs))
    return des.offset + fixed + np.einsum("dnq,nq->dn", b[:, f.codes], f.Z)


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
        f = _one_factor(fit)
        labels = np.asarray([str(v) for v in f.labels])
        return {OBS_DIM: np.arange(fit.n_obs), f.name: (OBS_DIM, labels[f.codes])}

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
        des, f = fit._design, _one_factor(fit)
        coords = self.coords(fit)
        y, m = _counts(fit)
        obs = xr.Dataset({_response_name(fit): ((OBS_DIM,), y)}, coords=coords)
        const = {("trials" if fit.family == "binomial" else "weights"): ((OBS_DIM,), m)}
        for j, name in enumerate(fit.fixed_terms):
            const[name] = ((OBS_DIM,), des.X[:, j])
        for k, term in enumerate(f.terms):
            const.setdefault(term, ((OBS_DIM,), f.Z[:, k]))
        if np.any(des.offset != 0.0):
            const["offset"] = ((OBS_DIM,), des.offset)
        const[f.name] = coords[f.name]
        return obs, xr.Dataset(const, coords={OBS_DIM: coords[OBS_DIM]})


# --------------------------------------------------------------------------- comparison
def hyperparameters(fit: GlmmFit, full=None, prob: float = 0.94) -> pd.DataFrame:
    """beta_hat and the random-term SDs beside their full-Bayes posteriors (posterior_mean,
    _sd, _lo, _hi, _mcse)."""
    rows = [(f"beta[{t}]", "beta", FIXED_DIM, t, v) for t, v in fit.fixef.items()]
    rows += [(f"sd_re[{t}]", "sd_re", TERM_DIM, t, v) for t, v in fit.sd_re().items()]
    hyper = pd.DataFrame({"estimate": [r[4] for r in rows]}, index=[r[0] for r in rows])
    if full is not None:
        ds = full["posterior"].to_dataset()
        for label, var, dim, key, _ in rows:
            if var not in ds:
                continue
            sub = ds[[var]].sel({dim: key}, drop=True)
            row = posterior_table(xr.DataTree.from_dict({"posterior": sub}), var, prob).iloc[0]
            for col in ("mean", "sd", "lo", "hi", "mcse"):
                hyper.loc[label, f"posterior_{col}"] = row[col]
    return hyper


def compare(fit: GlmmFit, plugin=None, full=None, prob: float = 0.94) -> pd.DataFrame:
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
    f = _one_factor(fit)
    frames = []
    for term in f.terms:
        t = fit.table(term)
        frames.append(
            pd.DataFrame(
                {
                    "n": t["n"].to_numpy(),
                    "events": t["events"].to_numpy(),
                    "trials": t["trials"].to_numpy(),
                    "no_pooling": t["no_pooling"].to_numpy(),
                    "cond_mode": t["blup"].to_numpy(),
                    "cond_sd": t["cond_sd"].to_numpy(),
                },
                index=pd.MultiIndex.from_arrays(
                    [[str(g) for g in t.index], [term] * len(t)], names=[GROUP_DIM, TERM_DIM]
                ),
            )
        )
    out = pd.concat(frames)
    exact = len(f.terms) == 1
    if exact:
        post = plugin_posterior(fit)
        out["plugin_mode"] = post["mode"].to_numpy()
        out["plugin_mean"] = post["mean"].to_numpy()
        out["plugin_sd"] = post["sd"].to_numpy()
    divergences = {}
    for tag, idata in (("plugin", plugin), ("full", full)):
        if idata is None:
            continue
        tab = term_posterior_table(idata, "coef", prob)
        tab.index = pd.MultiIndex.from_arrays(
            [[str(g) for g in tab.index.get_level_values(0)], tab.index.get_level_values(1)],
            names=[GROUP_DIM, TERM_DIM],
        )
        missing = out.index.difference(tab.index)
        if len(missing):
            raise BayeshrinkError(
                f"`{tag}` must be sampled from a model of this fit; it lacks {list(missing)[:3]}."
            )
        tab = tab.loc[out.index]
        if tag == "full":
            add_posterior_columns(out, "full", tab)
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
