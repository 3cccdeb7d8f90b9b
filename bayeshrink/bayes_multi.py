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

from .bayes import ShrinkageModel
from .errors import BayeshrinkError
from .lmm.multi import MultiFit

__all__ = ["compare_multi", "plugin_model_multi", "plugin_posterior_multi"]


def _dims(factor: str) -> tuple[str, str]:
    return f"level:{factor}", f"term:{factor}"


def _var(factor: str) -> str:
    return f"b:{factor}"


def plugin_model_multi(fit: MultiFit) -> ShrinkageModel:
    """The empirical-Bayes plug-in model: each factor's effects ~ N(0, its cov_re_hat).

    Variables: ``z:<factor>`` (standard normal, level x term) and the deterministic
    ``b:<factor>`` (the random effects, lme4's ``ranef``), with dimensions
    ``level:<factor>`` and ``term:<factor>``. beta and sigma are fixed at their estimates.
    """
    d = fit.design
    coords = {}
    for e in fit.components.factors:
        lev, term = _dims(e.name)
        coords[lev] = [str(v) for v in e.labels]
        coords[term] = list(e.terms)
    model = ShrinkageModel(coords=coords)
    by_name = {f.name: f for f in d.factors}
    with model:
        mu = d.X @ fit.fixef.to_numpy() if d.X.shape[1] else np.zeros(len(d.y))
        eta = pt.as_tensor(mu)
        for e in fit.components.factors:
            lev, term = _dims(e.name)
            # L_f with L_f L_f' = cov_re_f (lme4's sigma T_f; zero columns where singular)
            L = _chol_psd(e.cov)
            z = pm.Normal(f"z:{e.name}", 0.0, 1.0, dims=(lev, term))
            b = pm.Deterministic(_var(e.name), pt.dot(z, L.T), dims=(lev, term))
            f = by_name[e.name]
            eta = eta + (b[f.codes] * f.Z).sum(axis=1)
        pm.Normal("y", mu=eta, sigma=fit.sigma, observed=d.y)
    levels = ", ".join(f"{e.name} ({len(e.labels)} levels)" for e in fit.components.factors)
    model.description = (
        f"Empirical-Bayes plug-in model for {fit.formula} ({fit.method.upper()} fit)\n"
        f"  prior: the effects of every level of {levels} ~ N(0, cov_re_hat of its factor)\n"
        f"  likelihood: the rows given beta_hat and sigma_hat = {fit.sigma:.6g}\n"
        "  posterior means = fit.ranef(factor), posterior SDs = fit.ranef_sd(factor)"
    )
    model.kind, model.fit, model.priors = "plugin", fit, {"beta": "fixed"}
    return model


def _chol_psd(S: np.ndarray) -> np.ndarray:
    from .lmm.pls import _psd_chol

    return _psd_chol(0.5 * (S + S.T))


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

    Columns: mean, sd (exact); plugin_mean, plugin_sd, plugin_mcse and plugin_gap, the gap of
    the sampled mean from the exact one in Monte Carlo SEs.
    """
    import arviz as az

    out = plugin_posterior_multi(fit)
    cols = {c: np.full(len(out), np.nan) for c in ("plugin_mean", "plugin_sd", "plugin_mcse")}
    pos = {key: i for i, key in enumerate(out.index)}
    post = plugin["posterior"]
    for f in fit.factors:
        var = _var(f)
        if var not in post:
            raise BayeshrinkError(
                f"`plugin` must be sampled from plugin_model_multi(fit); it has no {var!r}."
            )
        da = post[var]
        lev, term = _dims(f)
        mean = da.mean(("chain", "draw"))
        sd = da.std(("chain", "draw"), ddof=1)
        mcse = az.mcse(plugin, var_names=[var])[var]
        for li, level in enumerate(da[lev].values):
            for ti, t in enumerate(da[term].values):
                i = pos[(f, str(level), str(t))]
                cols["plugin_mean"][i] = float(mean.values[li, ti])
                cols["plugin_sd"][i] = float(sd.values[li, ti])
                cols["plugin_mcse"][i] = float(mcse.values[li, ti])
    for c, v in cols.items():
        out[c] = v
    with np.errstate(divide="ignore", invalid="ignore"):
        out["plugin_gap"] = (out["plugin_mean"] - out["mean"]) / out["plugin_mcse"]
    return out
