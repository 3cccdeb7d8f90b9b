r"""lme4's row-level after-fit methods for every fit: ``fitted()``, ``resid()``, ``simulate()``.

Every fit is the model y = X beta + sum_f Z_f b_f + e, b_f ~ N(0, cov_re(f)) level by level,
e ~ N(0, sigma^2 I). What these methods need of a fit is its rows in that form
(:func:`model_rows`): X, and per grouping factor the level of every row and its Z columns.

* A fit with several grouping factors keeps its rows (its design), so ``data`` may be left out,
  as in lme4.
* The one-factor fits (one-way and formula) keep per-group cross-products, not rows: ``data`` (the
  frame that was fitted, or new rows) is evaluated with the fit's formula (its encoding,
  categorical levels and stateful transforms as in the fit).

``fitted()`` is lme4's ``fitted(m)``, X beta_hat + Z b_hat (the conditional modes); ``resid()``
is lme4's ``residuals(m)`` (response minus fitted); ``simulate(nsim, seed)`` is lme4's
``simulate(m, nsim, seed)`` with ``use.u = FALSE``: new responses from the fitted model with the
random effects redrawn, b*_f ~ N(0, cov_re(f)) for every level (the levels of ``data``'s rows,
so new levels are simply new draws) and e* ~ N(0, sigma^2 I), the fixed effects at beta_hat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import (
    DataError,
)
from .pieces import (
    check_long,
    factor_labels,
    fit_pieces,
    group_values,
    is_multi,
    match_groups,
    multi_pieces,
    response_values,
    split_z,
)


@dataclass(frozen=True, eq=False)
class ModelRows:
    """A fit's model on rows: ``X`` (N x p); per factor ``codes`` (N,) with the row's level among
    ``labels`` (-1 for a level the fit has not seen), ``Z`` (N x q); the response ``y`` when the
    rows hold it (None otherwise) and the rows' index."""

    index: pd.Index
    X: np.ndarray
    factors: tuple[str, ...]
    codes: tuple[np.ndarray, ...]
    row_labels: tuple[pd.Index, ...]  # each row's level label (for draws over new levels too)
    Z: tuple[np.ndarray, ...]
    y: np.ndarray | None


def model_rows(fit, data=None) -> ModelRows:
    """The rows of ``fit``'s model: its own design (several factors, ``data`` None) or ``data``
    evaluated with the fit's formula."""
    from ..frames import as_frame

    if is_multi(fit):
        if data is None:
            d = fit.design
            by_name = {f.name: f for f in d.factors}
            names = tuple(fit.factors)
            fs = [by_name[n] for n in names]
            return ModelRows(
                index=pd.RangeIndex(len(d.y)),
                X=d.X,
                factors=names,
                codes=tuple(np.asarray(f.codes) for f in fs),
                row_labels=tuple(pd.Index(f.labels[f.codes]) for f in fs),
                Z=tuple(f.Z for f in fs),
                y=d.y,
            )
        df = as_frame(data)
        p = multi_pieces(fit)
        comps = tuple(dict.fromkeys(c for f in p.multi for c in f.components))
        p.encoder.check_columns(df, extra=comps)
        X, Zall = p.encoder.evaluate(df)
        Zf = split_z(p, Zall)
        codes, labels = [], []
        for f in p.multi:
            vals = factor_labels(df, f.components)
            codes.append(match_groups(f.labels, vals))
            labels.append(pd.Index(vals))
        return ModelRows(
            index=df.index,
            X=X,
            factors=tuple(f.name for f in p.multi),
            codes=tuple(codes),
            row_labels=tuple(labels),
            Z=tuple(Zf[f.name] for f in p.multi),
            y=_response_or_none(fit, df, response_values),
        )
    if data is None:
        raise DataError(
            "`data` must be given for a one-factor fit: it keeps per-group cross-products, not "
            "its rows. Pass the data frame you fitted (or new rows with the formula's columns)."
        )
    df = as_frame(data)
    pieces = fit_pieces(fit)
    factor = pieces.factor
    columns = getattr(fit, "group_columns", None) or (factor,)
    design = getattr(fit, "design", None)
    if design is not None and design.encoder is not None:
        design.encoder.check_columns(df, extra=tuple(columns))
    elif not set(columns) <= set(df.columns) and factor not in df.columns:
        raise DataError(
            f"`data` must have the grouping column {factor!r}; got columns "
            f"{', '.join(map(repr, map(str, df.columns[:20])))}."
        )
    X, Z = pieces.encoder(df)
    vals = group_values(fit, df, factor)
    return ModelRows(
        index=df.index,
        X=np.asarray(X, float),
        factors=(factor,),
        codes=(match_groups(pieces.labels, vals),),
        row_labels=(pd.Index(vals),),
        Z=(np.asarray(Z, float),),
        y=_response_or_none(fit, df, response_values),
    )


def _response_or_none(fit, df, response_values):
    try:
        return np.asarray(response_values(fit, df), float)
    except Exception:  # rows without the response: fitted() and simulate() do not need it
        return None


def _per_factor(fit, accessor: str, name: str):
    """``fit.<accessor>(name)``; a one-factor fit's one factor need not be named."""
    method = getattr(fit, accessor)
    return method() if len(fit.factors) == 1 else method(name)


def _known_levels(fit, rows: ModelRows) -> None:
    for name, codes, labels in zip(rows.factors, rows.codes, rows.row_labels, strict=True):
        new = codes < 0
        if new.any():
            shown = ", ".join(repr(v) for v in pd.unique(labels[new])[:5])
            raise DataError(
                f"`data` must hold levels of {name!r} seen in the fit for fitted values and "
                f"residuals; got new level(s) {shown}. Use fit.predict(newdata, "
                "allow_new_levels=True) for new levels."
            )


def _engine(data) -> bool:
    from ..frames import is_engine_frame

    return data is not None and is_engine_frame(data)


def fitted(fit, data=None) -> pd.Series:
    """lme4's ``fitted(m)``: X beta_hat + Z b_hat for every row (see the module docstring)."""
    check_long(fit, "fitted values")
    if _engine(data):  # polars, DuckDB, Dask, Spark: an engine frame, computed in the engine
        from ..engines_predict import engine_fitted

        return engine_fitted(fit, data)
    rows = model_rows(fit, data)
    _known_levels(fit, rows)
    mean = rows.X @ fit.fixef.to_numpy(dtype=float)
    for name, codes, Z in zip(rows.factors, rows.codes, rows.Z, strict=True):
        b = _per_factor(fit, "ranef", name).to_numpy(dtype=float)
        mean = mean + np.einsum("iq,iq->i", Z, b[codes])
    return pd.Series(mean, index=rows.index, name="fitted")


def resid(fit, data=None) -> pd.Series:
    """lme4's ``residuals(m)`` (type "response"): the response minus :func:`fitted`."""
    check_long(fit, "residuals")
    if _engine(data):
        from ..engines_predict import engine_resid

        return engine_resid(fit, data)
    rows = model_rows(fit, data)
    if rows.y is None:
        raise DataError(
            f"`data` must hold the response {fit.response!r} for residuals; it does not."
        )
    return pd.Series(rows.y - fitted(fit, data).to_numpy(), index=rows.index, name="resid")


def _psd_root(cov: np.ndarray) -> np.ndarray:
    """R with R R' = cov for a positive semi-definite cov (a zero direction draws 0)."""
    lam, U = np.linalg.eigh(0.5 * (cov + cov.T))
    return U * np.sqrt(np.clip(lam, 0.0, None))[None, :]


def check_nsim(nsim, name: str = "nsim") -> int:
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise DataError(f"`{name}` must be an integer >= 1; got {nsim!r}. E.g. {name}=100.")
    return int(nsim)


def simulate(fit, nsim: int = 1, seed=None, data=None) -> pd.DataFrame:
    """lme4's ``simulate(m, nsim, seed)``: ``nsim`` new responses from the fitted model, random
    effects redrawn (see the module docstring). One column per simulation, ``sim_1`` ...,
    indexed as the rows (``data``'s index, or 0..N-1 for a fit's own rows)."""
    nsim = check_nsim(nsim)
    check_long(fit, "simulate")
    rows = model_rows(fit, data)
    rng = np.random.default_rng(seed)
    N = len(rows.index)
    mean = rows.X @ fit.fixef.to_numpy(dtype=float)
    out = np.repeat(mean[:, None], nsim, axis=1)
    for name, labels, Z in zip(rows.factors, rows.row_labels, rows.Z, strict=True):
        codes, uniques = pd.factorize(labels)
        root = _psd_root(_per_factor(fit, "cov_re", name).to_numpy(dtype=float))
        q = root.shape[0]
        b = rng.standard_normal((nsim, len(uniques), q)) @ root.T  # (nsim, levels, q)
        ok = codes >= 0
        contrib = np.zeros((N, nsim))
        contrib[ok] = np.einsum("iq,siq->is", Z[ok], b[:, codes[ok], :])
        out += contrib
    out += fit.sigma * rng.standard_normal((N, nsim))
    return pd.DataFrame(out, index=rows.index, columns=[f"sim_{k + 1}" for k in range(nsim)])
