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
            f"interval); got {prob!r}. E.g. 0.95 (the default) or 0.9."
        )
    return float(prob)


# --------------------------------------------------------------------------- diagnostics
# Rank-normalized split R-hat and bulk/tail ESS (Vehtari et al. 2021), computed exactly as
# arviz-stats computes them (same ranks, FFT autocovariances, Geyer's initial positive and
# monotone sequences), but vectorized over the variable's elements: arviz-stats loops over
# elements in Python (~8 ms each), which for 10,000 group effects takes minutes.


def _split(x: np.ndarray) -> np.ndarray:
    """(V, chain, draw) -> (V, 2 chain, draw // 2): first and last halves of every chain."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half :]], axis=1)


def _average_ranks(flat: np.ndarray) -> np.ndarray:
    """1-based ranks along each row, ties given their average rank (scipy's ``rankdata``
    method "average", vectorized over rows: scipy's ``axis=`` loops)."""
    rows, size = flat.shape
    order = np.argsort(flat, axis=1)
    ordered = np.take_along_axis(flat, order, axis=1)
    new_run = np.ones((rows, size), dtype=bool)
    new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ranks = np.empty((rows, size))
    if new_run.all():  # no ties (continuous draws): the inverse permutation
        np.put_along_axis(ranks, order, np.broadcast_to(np.arange(1.0, size + 1), (rows, size)), 1)
        return ranks
    runs = new_run.ravel()
    dense = np.cumsum(runs)  # run number (1-based) of every position, over all rows
    count = np.r_[np.flatnonzero(runs), runs.size]  # where each run starts (and the end)
    offset = np.repeat(np.arange(rows) * size, size)
    average = 0.5 * (count[dense] + count[dense - 1] + 1) - offset
    np.put_along_axis(ranks, order, average.reshape(rows, size), axis=1)
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalize each variable over all its draws (Blom's offset 3/8, average ties)."""
    from scipy import special

    flat = x.reshape(x.shape[0], -1)
    ranks = _average_ranks(flat)
    c = 3.0 / 8.0
    return special.ndtri((ranks - c) / (flat.shape[1] - 2 * c + 1)).reshape(x.shape)


def _rhat_classic(x: np.ndarray) -> np.ndarray:
    n = x.shape[2]
    between = n * np.var(x.mean(axis=2), axis=1, ddof=1)
    within = np.var(x, axis=2, ddof=1).mean(axis=1)
    return np.sqrt((between / within + n - 1) / n)


def _ess_geyer(x: np.ndarray) -> np.ndarray:
    """ESS of each variable of (V, chain, draw), arviz-stats' ``_ess`` vectorized."""
    from scipy.fft import irfft, next_fast_len, rfft

    V, m, n = x.shape
    constant = (x.max(axis=(1, 2)) - x.min(axis=(1, 2))) < np.finfo(float).resolution
    centred = x - x.mean(axis=2, keepdims=True)
    size = next_fast_len(2 * n)
    f = rfft(centred, n=size, axis=2)
    acov = irfft(f * np.conjugate(f), n=size, axis=2)[:, :, :n] / n
    chain_mean = x.mean(axis=2)
    mean_var = acov[:, :, 0].mean(axis=1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + np.var(chain_mean, axis=1, ddof=1)
    acov_mean = acov.mean(axis=1)  # (V, n)
    rho = np.zeros((V, n))
    rho[:, 0] = 1.0
    even = np.ones(V)
    odd = 1.0 - (mean_var - acov_mean[:, 1]) / var_plus
    rho[:, 1] = odd
    # Geyer's initial positive sequence, all variables in step; t_stop is where each stopped
    active = np.ones(V, dtype=bool)
    t_stop = np.full(V, 1)
    t = 1
    while t < n - 3:
        active &= (even + odd) > 0.0
        if not active.any():
            break
        new_even = 1.0 - (mean_var - acov_mean[:, t + 1]) / var_plus
        new_odd = 1.0 - (mean_var - acov_mean[:, t + 2]) / var_plus
        even = np.where(active, new_even, even)
        odd = np.where(active, new_odd, odd)
        keep = active & ((even + odd) >= 0)
        rho[keep, t + 1] = even[keep]
        rho[keep, t + 2] = odd[keep]
        t += 2
        t_stop = np.where(active, t, t_stop)
    max_t = t_stop - 2
    rows = np.arange(V)
    improve = (even > 0) & (max_t + 1 < n)
    rho[rows[improve], (max_t + 1)[improve]] = even[improve]
    # Geyer's initial monotone sequence
    t = 1
    while t <= max_t.max() - 2:
        sel = (t <= max_t - 2) & (rho[:, t + 1] + rho[:, t + 2] > rho[:, t - 1] + rho[:, t])
        if sel.any():
            rho[sel, t + 1] = (rho[sel, t - 1] + rho[sel, t]) / 2.0
            rho[sel, t + 2] = rho[sel, t + 1]
        t += 2
    lags = np.arange(n)
    tau = (
        -1.0
        + 2.0 * np.where(lags <= max_t[:, None], rho, 0.0).sum(axis=1)
        + np.where(lags == (max_t + 1)[:, None], rho, 0.0).sum(axis=1)
    )
    total = m * n
    tau = np.maximum(tau, 1.0 / np.log10(total))
    ess = total / tau
    ess[np.isnan(rho).any(axis=1)] = np.nan
    ess[constant] = total
    return ess


def _tail_prob() -> float:
    """arviz-stats' default interval probability (``rcParams["stats.ci_prob"]``), which its
    tail ESS uses: the ESS of the indicators of the p and 1 - p quantiles."""
    try:
        from arviz_stats.validate import validate_ci_prob

        return float(validate_ci_prob(None))
    except Exception:  # pragma: no cover - arviz-stats' internals moved
        return 0.89


def _diagnostics(x: np.ndarray, tail_prob: float = 0.89) -> dict[str, np.ndarray]:
    """R-hat, bulk and tail ESS of draws shaped (chain, draw, *shape), each of ``shape``."""
    chains, draws = x.shape[:2]
    shape = x.shape[2:]
    v = np.moveaxis(x.reshape(chains, draws, -1), 2, 0).astype(float)  # (V, chain, draw)
    nan = np.full(v.shape[0], np.nan)
    bad = np.isnan(v).any(axis=(1, 2))
    out = {"rhat": nan.copy(), "ess_bulk": nan.copy(), "ess_tail": nan.copy()}
    if draws >= 4:
        split = _split(v)
        z = _z_scale(split)  # the bulk's rank-normalized draws: R-hat and bulk ESS share them
        if chains >= 2:
            med = np.median(split.reshape(split.shape[0], -1), axis=1)[:, None, None]
            out["rhat"] = np.maximum(_rhat_classic(z), _rhat_classic(_z_scale(np.abs(split - med))))
        out["ess_bulk"] = _ess_geyer(z)
        flat = v.reshape(v.shape[0], -1)
        tails = []
        for prob in sorted((tail_prob, 1 - tail_prob)):
            q = np.quantile(flat, prob, axis=1)[:, None, None]
            tails.append(_ess_geyer(_split((v <= q).astype(float))))
        out["ess_tail"] = np.minimum(*tails)
    for key in out:
        out[key][bad] = np.nan
        out[key] = out[key].reshape(shape)
    return out


def convergence_table(idata, var_names=None) -> dict:
    """R-hat (rank-normalized split), bulk and tail ESS (as ``arviz.ess(method="tail")``: the
    quantiles p and 1 - p, p = arviz-stats' ``rcParams["stats.ci_prob"]``) of ``var_names``:
    ``{"rhat": {var: DataArray}, "ess_bulk": ..., "ess_tail": ...}``, each DataArray over the
    variable's own dimensions."""
    post = idata["posterior"]
    names = list(var_names) if var_names is not None else list(post.data_vars)
    out: dict = {"rhat": {}, "ess_bulk": {}, "ess_tail": {}}
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant draws (a pinned theta)
        for name in names:
            da = post[name]
            da = da.transpose("chain", "draw", *[d for d in da.dims if d not in ("chain", "draw")])
            values = _diagnostics(np.asarray(da.values), _tail_prob())
            dims = da.dims[2:]
            coords = {d: da[d].values for d in dims if d in da.coords}
            for key, arr in values.items():
                out[key][name] = xr.DataArray(arr, dims=dims, coords=coords)
    return out


def diagnostics_frame(idata, var: str, index) -> pd.DataFrame:
    """R-hat, bulk and tail ESS of one variable as columns, aligned with ``index``."""
    diag = convergence_table(idata, [var])
    cols = {k: np.atleast_1d(np.asarray(diag[k][var].values, dtype=float)).ravel() for k in diag}
    return pd.DataFrame(cols, index=index)


def posterior_table(idata, var: str = "theta", prob: float = 0.95) -> pd.DataFrame:
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


def term_posterior_table(idata, var: str = "coef", prob: float = 0.95, term=None) -> pd.DataFrame:
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
            out["plugin_gap_mcse"] = np.where(
                post["mcse"] > 0, diff / post["mcse"], np.where(diff == 0, 0.0, np.inf)
            )
