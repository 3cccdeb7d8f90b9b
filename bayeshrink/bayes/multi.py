r"""The plug-in (empirical-Bayes) model of a fit with several grouping factors, in PyMC.

Every factor f gets its estimated prior on the random effects of each of its levels,

    b_fl ~ N(0, cov_re_f hat),  as  b_fl = L_f z_fl,  z_fl ~ N(0, I),  L_f = sigma_hat T_f hat

and the rows are normal given beta_hat and sigma_hat:
``y_i ~ N(x_i' beta_hat + sum_f z_fi' b_f,l(i), sigma_hat^2)``. The posterior of all random
effects is then exactly normal, with mean the conditional modes (``fit.ranef(f)``) and
covariance sigma^2 Lambda M^-1 Lambda' (its diagonal blocks give ``fit.ranef_sd(f)``):
:func:`plugin_posterior_multi` returns it without sampling, and a sampled plug-in model must
agree with it within Monte Carlo error, which :func:`compare_multi` measures.

Crossed factors cannot be integrated out group by group (a row belongs to a level of every
factor), so the effects are sampled non-centred and the likelihood is evaluated on the rows:
each gradient costs O(rows x terms).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from ..errors import BayeshrinkError, DataError, MethodError
from ..lmm.blocks import psd_cholesky
from ..lmm.multi import MultiFit
from ..posterior import FIXED_DIM, GROUP_DIM, TERM_DIM
from .covariance import block_cholesky
from .effects import coef, effects, fixed_of_random, linear_part
from .model import PriorSpec, ShrinkageModel, check_pooling, column_sd, format_prior
from .workflow import EffectLayout, effect_layout, rows_of

__all__ = [
    "compare",
    "compare_multi",
    "default_priors",
    "default_priors_multi",
    "hierarchical_model",
    "hierarchical_model_multi",
    "hyperparameters",
    "plugin_model",
    "plugin_model_multi",
    "plugin_posterior",
    "plugin_posterior_multi",
]


#: the dimension of ``sd_re`` with several factors: "factor:term", as lme4's VarCorr rows
SD_DIM = "re_term"

#: Crossed factors leave a ridge in the posterior (every plate up, every sample down leaves each
#: row's mean unchanged): with a diagonal mass matrix NUTS mixes slowly along it (Penicillin's
#: plug-in model: bulk ESS 71 of 800 draws); nutpie's low-rank correction of the mass matrix
#: finds it (ESS 1,600 of 800 draws, the same run).
_LOW_RANK = {"adaptation": "low_rank"}


def _coords(fit: MultiFit, lay: EffectLayout) -> dict:
    sd_terms = [f"{e.name}:{t}" for e in fit.components.factors for t in e.terms]
    return {**lay.coords(), SD_DIM: sd_terms, FIXED_DIM: list(fit.fixed_terms)}


def _effects(fit: MultiFit, lay: EffectLayout, chols: dict) -> tuple:
    return effects(fit.components.factors, lay, chols, several=True)


def _coef(fit: MultiFit, lay: EffectLayout, b, beta) -> None:
    coef(b, fixed_of_random(lay.terms, fit.fixed_terms), beta)


def _linear(fit: MultiFit, blocks: dict, eta):
    return eta + linear_part(blocks, [(f.name, f.codes, f.Z) for f in fit.design.factors])


def plugin_model_multi(fit: MultiFit) -> ShrinkageModel:
    """The empirical-Bayes plug-in model: each factor's effects ~ N(0, its cov_re_hat).

    Variables, as in every bayeshrink model: ``z`` (standard normal) and the deterministics
    ``b`` (the random effects, lme4's ``ranef``) and ``coef`` (``b`` plus the fixed effect of
    each term, lme4's ``coef``), over (``level``, ``term``). With several factors ``level``
    holds "factor:label" (e.g. "plate:a"), with the coordinates ``factor`` and ``label`` on it,
    and ``term`` every factor's terms; a factor without a term has 0 there. beta and sigma are
    fixed at their estimates.
    """
    d = fit.design
    lay = effect_layout(fit)
    model = ShrinkageModel(coords=_coords(fit, lay))
    with model:
        beta = fit.fixef.to_numpy(dtype=float)
        mu = d.X @ beta if d.X.shape[1] else np.zeros(len(d.y))
        # L_f with L_f L_f' = cov_re_f (lme4's sigma T_f; zero columns where singular)
        chols = {e.name: pt.as_tensor(_chol_psd(e.cov)) for e in fit.components.factors}
        b, blocks = _effects(fit, lay, chols)
        if len(beta):
            _coef(fit, lay, b, pt.as_tensor(beta))
        pm.Normal("y", mu=_linear(fit, blocks, pt.as_tensor(mu)), sigma=fit.sigma, observed=d.y)
    levels = ", ".join(f"{e.name} ({len(e.labels)} levels)" for e in fit.components.factors)
    model.description = (
        f"Empirical-Bayes plug-in model for {fit.formula} ({fit.method.upper()} fit)\n"
        f"  prior: the effects of every level of {levels} ~ N(0, cov_re_hat of its factor)\n"
        f"  likelihood: the rows given beta_hat and sigma_hat = {fit.sigma:.6g}\n"
        "  posterior means = fit.ranef(factor), posterior SDs = fit.ranef_sd(factor)"
    )
    model.kind, model.fit, model.priors = "plugin", fit, {"beta": "fixed"}
    model.layout = lay
    model.nutpie_kwargs = _LOW_RANK
    model.rows = rows_of(fit)
    return model


def _chol_psd(S: np.ndarray) -> np.ndarray:
    return psd_cholesky(0.5 * (S + S.T))


def plugin_posterior_multi(fit: MultiFit) -> pd.DataFrame:
    """The exact plug-in posterior: one row per (factor, level, term), mean = ranef, SD =
    ranef_sd. No sampling."""
    frames = []
    for f in fit.factors:
        mean, sd = fit.ranef(f), fit.ranef_sd(f)
        for term in mean.columns:
            frames.append(
                pd.DataFrame(
                    {"mean": mean[term].to_numpy(), "sd": sd[term].to_numpy()},
                    index=pd.MultiIndex.from_arrays(
                        [[f] * len(mean), [str(v) for v in mean.index], [term] * len(mean)],
                        names=["factor", "level", "term"],
                    ),
                )
            )
    return pd.concat(frames)


def compare_multi(fit: MultiFit, plugin) -> pd.DataFrame:
    """The exact plug-in posterior beside a sampled one, per (factor, level, term).

    Columns: mean, sd (exact); plugin_mean, plugin_sd, plugin_mcse and plugin_gap_mcse, the gap of
    the sampled mean from the exact one in Monte Carlo SEs.
    """
    import arviz as az

    out = plugin_posterior_multi(fit)
    cols = {c: np.full(len(out), np.nan) for c in ("plugin_mean", "plugin_sd", "plugin_mcse")}
    pos = {key: i for i, key in enumerate(out.index)}
    post = plugin["posterior"]
    lay = effect_layout(fit)
    if "b" not in post or list(post["b"][GROUP_DIM].values) != lay.levels:
        raise BayeshrinkError(
            "`plugin` must be sampled from a model of this fit (bs.plugin_model(fit)); its "
            "posterior has no `b` over this fit's levels."
        )
    da = post["b"]
    mean = da.mean(("chain", "draw")).values
    sd = da.std(("chain", "draw"), ddof=1).values
    mcse = az.mcse(plugin, var_names=["b"])["b"].values
    for f in fit.factors:
        for li, label in enumerate(lay.label_of):
            if lay.factor_of[li] != f:
                continue
            for ti in lay.term_pos[f]:
                i = pos[(f, label, lay.terms[ti])]
                cols["plugin_mean"][i] = float(mean[li, ti])
                cols["plugin_sd"][i] = float(sd[li, ti])
                cols["plugin_mcse"][i] = float(mcse[li, ti])
    for c, v in cols.items():
        out[c] = v
    with np.errstate(divide="ignore", invalid="ignore"):
        out["plugin_gap_mcse"] = (out["plugin_mean"] - out["mean"]) / out["plugin_mcse"]
    return out


# --------------------------------------------------------------------------- full Bayes
_col_sd = column_sd


def default_priors_multi(fit: MultiFit) -> dict[str, PriorSpec]:
    """Data-scaled default priors for :func:`hierarchical_model_multi` (the one-factor mixed
    model's, per factor): with s_y the SD of y and s_k the SD of column k (1 for an intercept),
    beta_k ~ Normal(0 or mean y, 2.5 s_y / s_k); every random term's SD ~ HalfNormal(2.5 s_y /
    s_k); sigma ~ HalfNormal(2.5 s_y); the correlations of a block ~ LKJ(2)."""
    d = fit.design
    sd_y = _col_sd(d.y)
    x_sd = np.array([_col_sd(d.X[:, j]) for j in range(d.X.shape[1])])
    mu = np.where(np.all(d.X == 1.0, axis=0), float(np.mean(d.y)), 0.0)
    sd_re = {f.name: 2.5 * sd_y / np.array([_col_sd(f.Z[:, k]) for k in range(f.q)])
             for f in d.factors}  # fmt: skip
    return {
        "beta": PriorSpec(
            "Normal",
            {"mu": mu, "sigma": 2.5 * sd_y / x_sd},
            "weakly informative: 2.5 SDs of y per SD of the covariate",
        ),
        "sd_re": PriorSpec("HalfNormal", {"sigma": sd_re}, "random-term SDs, per factor"),
        "sigma": PriorSpec("HalfNormal", {"sigma": 2.5 * sd_y}, "residual SD on the data's scale"),
        "eta": PriorSpec("LKJ", {"eta": 2.0}, "LKJ(2): correlations near 0 slightly favoured"),
    }


def hierarchical_model_multi(
    fit: MultiFit, eta: float = 2.0, pooling: str = "partial"
) -> ShrinkageModel:
    """Full Bayes with several grouping factors: priors on beta, sigma and every factor's
    random-effects covariance (HalfNormal SDs; LKJ(eta) correlations within a block), the
    effects sampled non-centred (b_fl = L_f z_fl) and the likelihood on the rows.

    Variables, named as in every bayeshrink model: ``beta`` (``fixed_term``), ``sigma``,
    ``sd_re`` over ``re_term`` ("factor:term", as lme4's VarCorr rows), ``z``, ``b`` and
    ``coef`` over (``level``, ``term``) with ``level`` = "factor:label" (see
    :func:`plugin_model_multi`); the free SDs and LKJ factors of each block are
    ``sd_block:<factor>`` and ``chol_block:<factor>`` (``<factor>.<k>`` for a factor with
    several blocks). The start of each LKJ factor is diagonal at the REML SDs (nutpie cannot
    build its default initial point).

    ``pooling="complete"``: no random effects (``b`` = 0, the linear model with beta's and
    sigma's priors); ``"none"``: every level's effects ~ N(0, S^2) independently with S fixed
    at the scale of the SDs' prior, so nothing is learnt about their spread.
    """
    check_pooling(pooling)
    if not eta > 0:
        raise MethodError(f"`eta` must be positive; got {eta}.")
    d = fit.design
    pri = default_priors_multi(fit)
    lay = effect_layout(fit)
    by_name = {f.name: f for f in d.factors}
    init: dict[str, np.ndarray] = {}
    model = ShrinkageModel(coords=_coords(fit, lay))
    with model:
        pb = pri["beta"].params
        if d.X.shape[1]:
            beta_z = pm.Normal("beta_z", 0.0, 1.0, dims=FIXED_DIM)
            beta = pm.Deterministic("beta", pb["mu"] + pb["sigma"] * beta_z, dims=FIXED_DIM)
            eta_lin = pt.dot(d.X, beta)
        else:
            beta = pt.zeros(0)
            eta_lin = pt.zeros(len(d.y))
        sigma = pm.HalfNormal("sigma", sigma=pri["sigma"].params["sigma"])
        chols, sds = {}, []
        for e in fit.components.factors:
            f = by_name[e.name]
            scale = pri["sd_re"].params["sigma"][e.name]
            if pooling != "partial":
                chols[e.name] = pt.as_tensor(np.diag(scale))
                continue
            names = [f"{e.name}.{k}" if len(f.block_sizes) > 1 else e.name
                     for k in range(len(f.block_sizes))]  # fmt: skip
            chol, start = block_cholesky(
                f.block_sizes, scale, np.sqrt(np.diag(e.cov)), eta, [f":{n}" for n in names]
            )
            init.update(start)
            chols[e.name] = chol
            sds.append(pt.sqrt(pt.diag(pt.dot(chol, chol.T))))
        if pooling == "partial":
            pm.Deterministic("sd_re", pt.concatenate(sds), dims=SD_DIM)
        if pooling == "complete":
            shape = (len(lay.levels), len(lay.terms))
            b = pm.Deterministic("b", pt.zeros(shape), dims=(GROUP_DIM, TERM_DIM))
            mean = eta_lin
        else:
            b, blocks = _effects(fit, lay, chols)
            mean = _linear(fit, blocks, eta_lin)
        if d.X.shape[1]:
            _coef(fit, lay, b, beta)
        pm.Normal("y", mu=mean, sigma=sigma, observed=d.y)
    levels = ", ".join(f"{e.name} ({len(e.labels)} levels)" for e in fit.components.factors)
    scales = "; ".join(
        f"{k}: {np.array2string(np.asarray(v), precision=4)}"
        for k, v in pri["sd_re"].params["sigma"].items()
    )
    effects = {
        "partial": f"  the effects of {levels} ~ N(0, Sigma_f); SDs ~ HalfNormal(sigma = "
        f"{scales}), correlations ~ LKJ(eta={eta:g}) per block",
        "none": f"  no pooling: the effects of {levels} ~ N(0, S^2) independently, S fixed at "
        f"{scales} (the SDs' prior scale); nothing is learnt about their spread",
        "complete": "  no random effects (complete pooling): b = 0, coef = the fixed effects",
    }[pooling]
    head = {"partial": "Full hierarchical model", "none": "No-pooling model",
            "complete": "Complete-pooling model"}[pooling]  # fmt: skip
    model.description = (
        f"{head} for {fit.formula}"
        + (" (non-centred, every effect sampled)" if pooling == "partial" else "")
        + f"\n{effects}\n"
        f"  beta ~ {format_prior(pri['beta'])};  "
        f"sigma ~ HalfNormal({pri['sigma'].params['sigma']:.4g})\n"
        "  y_i ~ N(x_i' beta"
        + ("" if pooling == "complete" else " + sum_f z_fi' b_f,l(i)")
        + ", sigma^2), on the rows"
    )
    model.pooling = pooling
    model.kind, model.fit, model.priors = "hierarchical", fit, {"eta": eta}
    model.layout = lay
    model.start = init
    model.nutpie_kwargs = _LOW_RANK
    model.rows = rows_of(fit)
    return model


# --------------------------------------------------------------------------- bs.* dispatch
def _fixed_only(mu) -> None:
    if mu != "fixed":
        raise MethodError(
            f"`mu` must be 'fixed' for a fit with several grouping factors (the fixed effects "
            f"plugged in); got {mu!r}. A flat prior on them is written for one factor only."
        )


def plugin_model(fit: MultiFit, mu: str = "fixed", *, data=None) -> ShrinkageModel:
    """``bs.plugin_model`` for several grouping factors: :func:`plugin_model_multi` (the fit
    keeps its rows, so ``data`` is not needed; given, it is checked against them)."""
    _check_rows(fit, data)
    _fixed_only(mu)
    return plugin_model_multi(fit)


def plugin_posterior(fit: MultiFit, mu: str = "fixed") -> pd.DataFrame:
    """``bs.plugin_posterior``: one row per (factor, level, term), mean = ranef, SD = ranef_sd;
    ``mu="flat"`` gives the SD counting the fixed effects' uncertainty (``pred_sd``) and the
    mean of ``coef()``."""
    if mu == "fixed":
        return plugin_posterior_multi(fit)
    if mu != "flat":
        raise MethodError(f"`mu` must be 'fixed' or 'flat'; got {mu!r}.")
    out = plugin_posterior_multi(fit)
    for f in fit.factors:
        coef, sd = fit.coef(f), fit.pred_sd(f)
        for term in sd.columns:
            for level in sd.index:
                key = (f, str(level), term)
                out.loc[key, "mean"] = coef.loc[level, term]
                out.loc[key, "sd"] = sd.loc[level, term]
    return out


def default_priors(fit: MultiFit) -> dict[str, PriorSpec]:
    """``bs.default_priors``: :func:`default_priors_multi`."""
    return default_priors_multi(fit)


def hierarchical_model(
    fit: MultiFit,
    priors=None,
    parametrization: str = "noncentered",
    marginalize=None,
    *,
    eta=None,
    data=None,
    pooling: str = "partial",
) -> ShrinkageModel:
    """``bs.hierarchical_model`` for several grouping factors: :func:`hierarchical_model_multi`
    (non-centred, effects sampled; crossed effects cannot be integrated out level by level).
    The fit keeps its rows, so ``data`` is not needed (given, it is checked against them)."""
    check_pooling(pooling)
    _check_rows(fit, data)
    if priors:
        raise MethodError(
            "`priors` must be None for a fit with several grouping factors (the data-scaled "
            f"defaults of default_priors_multi are used); got {sorted(priors)}."
        )
    if parametrization != "noncentered" or marginalize:
        raise MethodError(
            "a fit with several grouping factors is sampled non-centred with every effect "
            f"sampled; got parametrization={parametrization!r}, marginalize={marginalize!r}."
        )
    return hierarchical_model_multi(fit, 2.0 if eta is None else float(eta), pooling)


def _check_rows(fit: MultiFit, data) -> None:
    """``data`` given with a several-factor fit must hold as many usable rows as the fit."""
    if data is None:
        return
    n = len(data)
    if n - fit.design.n_dropped != len(fit.design.y):
        raise DataError(
            f"`data` must be the rows the fit was made from ({len(fit.design.y)} rows used); "
            f"got {n} rows. Leave `data` out: a fit with several factors keeps its rows."
        )


def hyperparameters(fit: MultiFit, full=None, prob: float = 0.95) -> pd.DataFrame:
    """Every SD of ``varcorr()`` (and sigma), with the full-Bayes posterior of the SDs when
    ``full`` (from :func:`hierarchical_model_multi`) is given: mean, lo, hi."""
    vc = fit.varcorr()
    rows = vc[vc["var2"].isna()]
    keys = [f"{g}:{v}" if v else None for g, v in zip(rows["grp"], rows["var1"], strict=True)]
    names = [f"sd_re[{k}]" if k else "sigma" for k in keys]
    out = pd.DataFrame({"estimate": rows["sdcor"].to_numpy()}, index=names)
    if full is not None:
        post = full["posterior"]
        lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
        means, los, his = [], [], []
        for key in keys:
            if key is None:
                v = post["sigma"].values.ravel() if "sigma" in post else None
            elif "sd_re" in post and key in post["sd_re"][SD_DIM].values:
                v = post["sd_re"].sel({SD_DIM: key}).values.ravel()
            else:
                v = None
            means.append(np.nan if v is None else v.mean())
            los.append(np.nan if v is None else np.quantile(v, lo_q))
            his.append(np.nan if v is None else np.quantile(v, hi_q))
        out["full_mean"], out["full_lo"], out["full_hi"] = means, los, his
    return out


def compare(fit: MultiFit, plugin=None, full=None, prob: float = 0.95) -> pd.DataFrame:
    """``bs.compare`` for several grouping factors: one row per (factor, level, term), with
    the columns of every fit's: n, no_pooling (the level's own fit given the other factors),
    blup (``coef(factor)``: the conditional mode plus the fixed effect), cond_sd
    (``ranef_sd(factor)``); with ``plugin`` the sampled plug-in posterior of coef
    (plugin_mean, plugin_sd, plugin_mcse, plugin_rhat, plugin_ess_bulk, plugin_ess_tail and
    plugin_gap_mcse = (plugin_mean - blup) / plugin_mcse); with ``full`` the full-Bayes one
    (full_mean, full_sd, full_lo, full_hi: the central ``prob`` interval, full_mcse, R-hat and
    ESS). ``attrs``: "hyperparameters", "divergences", "prob"."""
    from ..posterior import check_prob, count_divergences
    from .checks import check_draws, merge_posterior

    prob = check_prob(prob)
    for tag, idata in (("plugin", plugin), ("full", full)):
        if idata is not None:
            check_draws(idata, tag, fit)
    frames, keys = [], []
    for e in fit.components.factors:
        f = e.name
        for term in e.terms:
            t = fit.table(term, factor=f)
            labels = [str(v) for v in t.index]
            frames.append(
                pd.DataFrame(
                    {c: t[c].to_numpy() for c in ("n", "no_pooling", "blup", "cond_sd")},
                    index=pd.MultiIndex.from_arrays(
                        [[f] * len(t), labels, [term] * len(t)], names=["factor", "level", "term"]
                    ),
                )
            )
            keys += [(f"{f}:{v}", term) for v in labels]
    out = pd.concat(frames)
    divergences = {}
    for tag, idata in (("plugin", plugin), ("full", full)):
        if idata is None:
            continue
        var = "coef" if "coef" in idata["posterior"] else "b"
        merge_posterior(out, tag, idata, keys, prob, var)
        divergences[tag] = count_divergences(idata)
    out.attrs["hyperparameters"] = hyperparameters(fit, full, prob).to_dict(orient="index")
    out.attrs["divergences"] = divergences
    out.attrs["prob"] = prob
    return out
