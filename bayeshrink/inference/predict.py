"""lme4's ``predict`` with intervals, and Gelman & Hill's pooling lines, for every fit through
its model (:class:`~.model.ModelPieces`: rows of new data, the conditional covariance)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..api import check_level
from ..errors import DataError, MethodError, rows_verb
from .model import ModelPieces, ModelRows, check_long, model_of


def new_level_error(term, values: pd.Series, what: str, several: bool) -> DataError:
    """A level not in the fit; with several factors the message says which factor's."""
    new = pd.unique(values)
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in new[:5]) + (
        " ..." if len(new) > 5 else ""
    )
    name = f"the grouping factor {term.name!r}" if several else repr(term.name)
    of = f" of {term.name!r}" if several else ""
    return DataError(
        f"`newdata` must hold levels of {name} seen in the fit {what}; got {len(new)} new "
        f"level(s){of}: {shown}."
    )


def model_rows_of(p: ModelPieces, df: pd.DataFrame, random: bool, allow_new: bool) -> ModelRows:
    """``df`` evaluated with the fit's formula; a level not in the fit raises unless
    ``allow_new``."""
    rows = p.rows(df, random=random)
    several = len(p.terms) > 1
    if random:
        for t in p.terms:
            cols = [c for c in t.components if c in df.columns]
            miss = df[cols].isna().any(axis=1).to_numpy()
            if miss.any():
                raise DataError(
                    f"`newdata` must give every row a level of {t.name!r}; "
                    f"{rows_verb(df.index[miss], 'holds', 'hold')} a missing value. Fill them "
                    "in, drop them, or pass random=False for population predictions (a missing "
                    "group is not a new level)."
                )
    if random and not allow_new:
        for t, codes, labels in zip(p.terms, rows.codes, rows.labels, strict=True):
            if (codes < 0).any():
                err = new_level_error(
                    t, pd.Series(labels[codes < 0]), "unless allow_new_levels=True", several
                )
                raise DataError(
                    f"{err} Pass allow_new_levels=True to give those rows 0 for {t.name!r}'s "
                    "effects (lme4's allow.new.levels = TRUE: the population prediction) and, "
                    "with an interval, its prior variance (the new-group predictive "
                    "distribution)."
                )
    return rows


def predict(
    fit,
    newdata=None,
    *,
    random: bool = True,
    allow_new_levels: bool = False,
    interval: Literal["prediction", "confidence"] | None = None,
    level: float = 0.95,
    fixef_uncertainty: bool = True,
) -> pd.Series | pd.DataFrame:
    """Predictions for new rows, as lme4's ``predict``, with optional intervals.

    Parameters
    ----------
    fit : ShrinkageFit, MixedFit or MultiFit
    newdata : DataFrame or dict of columns, optional
        Rows to predict for: the covariates of the formula and the grouping column (the response
        is not needed). The formula is evaluated with the fit's encoding: categorical levels,
        their reference level and stateful transforms such as ``center(x)`` mean what they meant
        in the fit. Without ``newdata``: for a one-way fit one row per group (every row of a group
        has the same prediction); a formula fit keeps no rows, so ``newdata`` is required.
    random : bool
        ``True`` (default): x'beta + z'b_j with group j's BLUPs. ``False``: the population-level
        prediction x'beta (lme4's ``re.form = NA``).
    allow_new_levels : bool
        A row whose group is not in the fit raises :class:`~bayeshrink.errors.DataError` (naming
        the grouping factor) unless this is ``True``; such rows then get the population
        prediction x'beta, as lme4's ``allow.new.levels = TRUE`` (with several factors, 0 for
        the effects of each factor whose level is new).
    interval : {None, "prediction", "confidence"}
        ``"prediction"``: an interval for a new observation of the row. For an observed group
        from its posterior N(BLUP_j, Var(b_j | y)) plus sigma^2; for a new group (or with
        ``random=False``) from the plug-in prior N(fixef, cov_re) plus sigma^2.
        ``"confidence"``: the same without sigma^2, an interval for the row's mean (for
        ``random=False``, for x'beta alone). lme4's ``predict`` gives no intervals.
        With several grouping factors (crossed or nested) each factor is treated so: an
        observed level adds its conditional mode z_f'b_f, a new level (with
        ``allow_new_levels=True``) adds 0 and, to the variance, its prior z_f' cov_re_f z_f.
        The observed levels' effects are taken from their *joint* posterior, the covariance
        between the levels of different factors included (computed exactly from the sparse
        factor of the fit's mixed-model equations at the estimates; nothing is approximated
        beyond plugging in the variance components, as for one factor).
    level : float
        Coverage of the intervals, in (0, 1).
    fixef_uncertainty : bool
        ``True`` (default): the fixed effects' uncertainty (``vcov``) is counted (a flat prior
        on beta, Henderson's prediction error variance; for a one-way fit the ``pred_sd`` of
        ``table()``). ``False``: beta is plugged in as known (the ``cond_sd`` reading).

    Returns
    -------
    pandas.Series or pandas.DataFrame
        Without ``interval``: the predictions, indexed as ``newdata``. With it: columns ``fit``,
        ``sd`` (the SD of the predictive normal), ``lo`` and ``hi``.

    Examples
    --------
    >>> import pandas as pd
    >>> import bayeshrink as bs
    >>> sleep = bs.load_dataset("sleepstudy")
    >>> m = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    >>> new = pd.DataFrame({"Subject": [308, 999], "Days": [4.5, 4.5]})
    >>> m.predict(new, allow_new_levels=True).round(3).tolist()
    [342.162, 298.508]
    >>> m.predict(new, allow_new_levels=True, interval="prediction")[["lo", "hi"]].round(1)
          lo     hi
    0  289.7  394.6
    1  207.7  389.3
    """
    from ..frames import as_frame, is_engine_frame

    if is_engine_frame(newdata):  # polars, DuckDB, Dask, Spark: computed in the engine
        from ..engines_predict import engine_predict

        return engine_predict(
            fit, newdata, random=random, allow_new_levels=allow_new_levels, interval=interval
        )
    p = model_of(fit)
    check_long(fit, "predict")
    if interval not in (None, "prediction", "confidence"):
        raise MethodError(
            f"`interval` must be None, 'prediction' or 'confidence'; got {interval!r}."
        )
    level = check_level(level)
    if newdata is None:
        if not p.oneway:
            raise DataError(
                "`newdata` must be given for a formula fit: it keeps its cross-products or its "
                "design matrices, not its data frame. Pass the data frame you fitted to get "
                "lme4's fitted values, or new rows."
            )
        (term,) = p.terms
        df = pd.DataFrame({term.name: term.labels}, index=term.labels)
    else:
        df = as_frame(newdata)
    rows = model_rows_of(p, df, random, allow_new_levels)
    mean = rows.X @ p.beta + rows.offset
    for t, codes, Z in zip(p.terms, rows.codes, rows.Z, strict=True):
        k = codes >= 0
        mean[k] += np.einsum("iq,iq->i", Z[k], t.b[codes[k]])
    if interval is None:
        return pd.Series(mean, index=df.index, name="fit")
    var = np.zeros(len(df))
    if random or interval == "prediction":
        # a new level (every level when random=False): that term's plug-in prior
        for t, codes, Z in zip(p.terms, rows.codes, rows.Z, strict=True):
            z = Z[codes < 0]
            var[codes < 0] += np.einsum("iq,qr,ir->i", z, t.cov_re, z)
    k = rows.X.copy()  # the coefficient of (beta_hat - beta) in the prediction error
    if random and any((c >= 0).any() for c in rows.codes):
        v, K = p.cond_var(rows)
        var += v
        k -= K
    return _interval_frame(
        mean,
        var,
        k,
        p.vcov,
        p.sigma**2,
        df.index,
        random=random,
        interval=interval,
        level=level,
        fixef_uncertainty=fixef_uncertainty,
    )


def _interval_frame(
    mean, var, k, vcov, sigma2, index, *, random, interval, level, fixef_uncertainty
) -> pd.DataFrame:
    """Predictions with their SDs and intervals, from the random part's variance ``var``.

    Adds the fixed effects' uncertainty (``k`` the rows' loadings on beta) when asked, and
    sigma^2 for a prediction interval; a population confidence interval has no random part."""
    from scipy import stats

    if not random and interval == "confidence":
        var[:] = 0.0
    if fixef_uncertainty:
        var += np.einsum("ip,pr,ir->i", k, vcov, k)
    if interval == "prediction":
        var += sigma2
    sd = np.sqrt(var)
    zq = stats.norm.ppf(0.5 + level / 2.0)
    res = pd.DataFrame(
        {"fit": mean, "sd": sd, "lo": mean - zq * sd, "hi": mean + zq * sd}, index=index
    )
    res.attrs.update(interval=interval, level=level, fixef_uncertainty=fixef_uncertainty)
    return res


def pooling_predictions(fit, newdata, factor: str | None = None) -> pd.DataFrame:
    """Gelman & Hill's three fits for rows of known groups: ``no_pooling`` (each group's own
    least-squares fit of its random terms, the other fixed effects at their estimates:
    ``own_fit()``; the group mean for a one-way fit), ``complete_pooling`` (ordinary least
    squares ignoring the groups, from the fit's X'X and X'y) and ``partial_pooling`` (the BLUP
    prediction, :func:`predict`). NaN no-pooling where a group's data cannot fit its terms.
    With several grouping factors ``factor`` names the one whose levels the rows are of; the
    other factors' effects are 0 in all three (their population value)."""
    from ..frames import as_frame

    check_long(fit, "pooling predictions")
    df = as_frame(newdata)
    p = model_of(fit)
    term = p.term(factor)
    rows = p.rows(df, only=term)
    i = p.terms.index(term)
    pos, Z = rows.codes[i], rows.Z[i]
    if (pos < 0).any():
        raise new_level_error(
            term, pd.Series(rows.labels[i][pos < 0]), "for pooling predictions", len(p.terms) > 1
        )
    if p.oneway:
        t = fit.table()
        none = t["no_pooling"].to_numpy()[pos]
        complete = np.full(len(df), fit.complete_pooling)
    else:
        own_dev = fit.own_fit(term.name).to_numpy() - p.fixed_of_random(term) @ p.beta
        base = rows.X @ p.beta + rows.offset
        none = base + np.einsum("iq,iq->i", Z, own_dev[pos])
        complete = rows.X @ p.backend.ols() + rows.offset
    partial = rows.X @ p.beta + rows.offset + np.einsum("iq,iq->i", Z, term.b[pos])
    return pd.DataFrame(
        {"no_pooling": none, "complete_pooling": complete, "partial_pooling": partial},
        index=df.index,
    )
