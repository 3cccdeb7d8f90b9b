"""Posterior summaries from a DataTree of draws: no PyMC here, so plots can use them freely.

The dimension names every bayeshrink model uses (see :mod:`bayeshrink.bayes`): ``level`` (the
levels of the grouping factor; not "group", which ArviZ's ``plot_prior_posterior`` uses
internally), ``term`` (random terms, the columns of ``coef()``) and ``fixed_term``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "FIXED_DIM",
    "GROUP_DIM",
    "TERM_DIM",
    "add_posterior_columns",
    "count_divergences",
    "posterior_table",
    "term_posterior_table",
]

GROUP_DIM = "level"
TERM_DIM = "term"
FIXED_DIM = "fixed_term"


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
