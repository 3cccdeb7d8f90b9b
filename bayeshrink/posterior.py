"""Posterior summaries from a DataTree of draws: no PyMC here, so plots can use them freely.

The dimension names every bayeshrink model uses (see :mod:`bayeshrink.bayes`): ``level`` (the
levels of the grouping factor; not "group", which ArviZ's ``plot_prior_posterior`` uses
internally), ``term`` (random terms, the columns of ``coef()``) and ``fixed_term``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from .errors import DataError

__all__ = [
    "FIXED_DIM",
    "GROUP_DIM",
    "TERM_DIM",
    "add_posterior_columns",
    "check_prob",
    "convergence_table",
    "count_divergences",
    "diagnostics_frame",
    "posterior_table",
    "term_posterior_table",
]

GROUP_DIM = "level"
TERM_DIM = "term"
FIXED_DIM = "fixed_term"


def check_prob(prob) -> float:
    if not (
        isinstance(prob, (int, float, np.integer, np.floating))
        and not isinstance(prob, bool)
        and 0.0 < float(prob) < 1.0
    ):
        raise DataError(
            f"`prob` must lie strictly between 0 and 1 (the probability of the central "
            f"interval); got {prob!r}. E.g. 0.94 (the default) or 0.9."
        )
    return float(prob)


def convergence_table(idata, var_names=None) -> dict:
    """R-hat (rank-normalized split), bulk and tail ESS of ``var_names``, as arviz-stats gives
    them: a dict of DataTrees keyed "rhat", "ess_bulk", "ess_tail"."""
    import arviz as az

    names = list(var_names) if var_names is not None else list(idata["posterior"].data_vars)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant draws (a pinned theta)
        return {
            "rhat": az.rhat(idata, var_names=names),
            "ess_bulk": az.ess(idata, var_names=names, method="bulk"),
            "ess_tail": az.ess(idata, var_names=names, method="tail"),
        }


def diagnostics_frame(idata, var: str, index) -> pd.DataFrame:
    """R-hat, bulk and tail ESS of one variable as columns, aligned with ``index``."""
    diag = convergence_table(idata, [var])
    cols = {k: np.atleast_1d(np.asarray(diag[k][var].values, dtype=float)).ravel() for k in diag}
    return pd.DataFrame(cols, index=index)


def posterior_table(idata, var: str = "theta", prob: float = 0.94) -> pd.DataFrame:
    """Posterior mean, SD, central ``prob`` interval, Monte Carlo SE, R-hat and bulk and tail
    ESS of ``var`` per level."""
    import arviz as az

    prob = check_prob(prob)
    da = idata["posterior"][var]
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    dims = ("chain", "draw")
    mean = da.mean(dims)
    sd = da.std(dims, ddof=1)
    q = da.quantile([lo_q, hi_q], dim=dims)
    mcse = az.mcse(idata, var_names=[var])[var]
    index = pd.Index(mean[GROUP_DIM].values, name=GROUP_DIM) if GROUP_DIM in da.dims else [var]
    table = pd.DataFrame(
        {
            "mean": np.atleast_1d(mean.values),
            "sd": np.atleast_1d(sd.values),
            "lo": np.atleast_1d(q.isel(quantile=0).values),
            "hi": np.atleast_1d(q.isel(quantile=1).values),
            "mcse": np.atleast_1d(mcse.values),
        },
        index=index,
    )
    table = table.join(diagnostics_frame(idata, var, index))
    # A point mass (theta pinned on a boundary fit): report it exactly, without rounding noise.
    lo_v, hi_v = np.atleast_1d(da.min(dims).values), np.atleast_1d(da.max(dims).values)
    pinned = lo_v == hi_v
    for col in ("mean", "lo", "hi"):
        table.loc[pinned, col] = lo_v[pinned]
    table.loc[pinned, ["sd", "mcse"]] = 0.0
    table.loc[pinned, ["rhat", "ess_bulk", "ess_tail"]] = np.nan
    return table


def term_posterior_table(idata, var: str = "coef", prob: float = 0.94, term=None) -> pd.DataFrame:
    """:func:`posterior_table` of a (level x term) variable: one row per (level, term), or per
    level for one ``term``."""
    ds = idata["posterior"].to_dataset()[[var]]
    terms = ds[TERM_DIM].values if term is None else [term]
    frames = []
    for t in terms:
        sub = xr.DataTree.from_dict({"posterior": ds.sel({TERM_DIM: t}, drop=True)})
        tab = posterior_table(sub, var, prob)
        if term is None:
            tab.index = pd.MultiIndex.from_arrays(
                [tab.index, [t] * len(tab)], names=[GROUP_DIM, TERM_DIM]
            )
        frames.append(tab)
    return pd.concat(frames)


def count_divergences(idata) -> int:
    """Number of divergent transitions recorded in a DataTree's sample_stats."""
    try:
        return int(idata["sample_stats"]["diverging"].sum())
    except KeyError:
        return 0


def add_posterior_columns(out: pd.DataFrame, tag: str, post: pd.DataFrame) -> None:
    """Columns {tag}_mean, _sd, (_lo, _hi for "full"), _mcse, _rhat, _ess_bulk, _ess_tail, and
    for "plugin" the gap between
    the posterior mean and ``out["blup"]`` in Monte Carlo SEs; ``post`` is aligned with ``out``."""
    out[f"{tag}_mean"] = post["mean"]
    out[f"{tag}_sd"] = post["sd"]
    if tag == "full":
        out["full_lo"] = post["lo"]
        out["full_hi"] = post["hi"]
    out[f"{tag}_mcse"] = post["mcse"]
    for col in ("rhat", "ess_bulk", "ess_tail"):  # beside the MCSE: can it be trusted?
        out[f"{tag}_{col}"] = post[col]
    if tag == "plugin":
        diff = post["mean"] - out["blup"]
        with np.errstate(divide="ignore", invalid="ignore"):
            # a pinned theta has no Monte Carlo error: its gap is 0 or infinite
            out["plugin_gap"] = np.where(
                post["mcse"] > 0, diff / post["mcse"], np.where(diff == 0, 0.0, np.inf)
            )
