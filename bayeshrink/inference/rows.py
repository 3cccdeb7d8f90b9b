r"""lme4's row-level after-fit methods for every fit: ``fitted()``, ``resid()``, ``simulate()``,
over the model's rows (:meth:`~.model.ModelPieces.rows`: X, the offset, and per grouping
factor the level of every row and its Z columns).

* A fit with several grouping factors keeps its rows (its design), so ``data`` may be left out,
  as in lme4.
* The one-factor fits (one-way and formula) keep per-group cross-products, not rows: ``data`` (the
  frame that was fitted, or new rows) is evaluated with the fit's formula (its encoding,
  categorical levels and stateful transforms as in the fit).

``fitted()`` is lme4's ``fitted(m)``, X beta_hat + offset + Z b_hat (the conditional modes);
``resid()`` is lme4's ``residuals(m)`` (response minus fitted); ``simulate(nsim, seed)`` is
lme4's ``simulate(m, nsim, seed)`` with ``use.u = FALSE``: new responses from the fitted model
with the random effects redrawn, b*_f ~ N(0, cov_re(f)) for every level (the levels of
``data``'s rows, so new levels are simply new draws) and e* ~ N(0, sigma^2 I), the fixed effects
at beta_hat (:meth:`~.model.ModelPieces.simulate`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..api import check_count
from ..errors import DataError
from .model import ModelRows, check_long, model_of


def model_rows(fit, data=None, *, response: bool = False) -> ModelRows:
    """The rows of ``fit``'s model: its own design (several factors, ``data`` None) or ``data``
    evaluated with the fit's formula."""
    from ..frames import as_frame

    p = model_of(fit)
    if data is None:
        rows = p.own_rows()
        if rows is None:
            raise DataError(
                "`data` must be given for a one-factor fit: it keeps per-group cross-products, "
                "not its rows. Pass the data frame you fitted (or new rows with the formula's "
                "columns)."
            )
        return rows
    return p.rows(as_frame(data), response=response)


def _engine(data) -> bool:
    from ..frames import is_engine_frame

    return data is not None and is_engine_frame(data)


def fitted(fit, data=None) -> pd.Series:
    """lme4's ``fitted(m)``: X beta_hat + offset + Z b_hat for every row (see the module
    docstring)."""
    check_long(fit, "fitted values")
    if _engine(data):  # polars, DuckDB, Dask, Spark: an engine frame, computed in the engine
        from ..engines_predict import engine_fitted

        return engine_fitted(fit, data)
    p = model_of(fit)
    rows = model_rows(fit, data)
    return pd.Series(_fitted(p, rows), index=rows.index, name="fitted")


def _fitted(p, rows: ModelRows) -> np.ndarray:
    mean = rows.X @ p.beta + rows.offset
    for t, codes, labels, Z in zip(p.terms, rows.codes, rows.labels, rows.Z, strict=True):
        new = codes < 0
        if new.any():
            shown = ", ".join(repr(v) for v in pd.unique(labels[new])[:5])
            raise DataError(
                f"`data` must hold levels of {t.name!r} seen in the fit for fitted values and "
                f"residuals; got new level(s) {shown}. Use fit.predict(newdata, "
                "allow_new_levels=True) for new levels."
            )
        mean = mean + np.einsum("iq,iq->i", Z, t.b[codes])
    return mean


def resid(fit, data=None) -> pd.Series:
    """lme4's ``residuals(m)`` (type "response"): the response minus :func:`fitted`."""
    check_long(fit, "residuals")
    if _engine(data):
        from ..engines_predict import engine_resid

        return engine_resid(fit, data)
    p = model_of(fit)
    rows = model_rows(fit, data, response=True)
    if rows.y is None:
        raise DataError(
            f"`data` must hold the response {fit.response!r} for residuals; it does not."
        )
    return pd.Series(rows.y - _fitted(p, rows), index=rows.index, name="resid")


def check_nsim(nsim, name: str = "nsim") -> int:
    return check_count(nsim, name, 1)


def simulate(fit, nsim: int = 1, seed=None, data=None) -> pd.DataFrame:
    """lme4's ``simulate(m, nsim, seed)``: ``nsim`` new responses from the fitted model, random
    effects redrawn (see the module docstring). One column per simulation, ``sim_1`` ...,
    indexed as the rows (``data``'s index, or 0..N-1 for a fit's own rows)."""
    from ..glmm.results import GlmmFit

    if isinstance(fit, GlmmFit):
        from ..glmm.inference import simulate as glmm_simulate

        return glmm_simulate(fit, nsim, seed)
    nsim = check_nsim(nsim)
    check_long(fit, "simulate")
    rows = model_rows(fit, data)
    out = model_of(fit).simulate(np.random.default_rng(seed), nsim, rows)
    return pd.DataFrame(out, index=rows.index, columns=[f"sim_{k + 1}" for k in range(nsim)])
