"""lme4's ``predict`` with intervals, and Gelman & Hill's pooling lines."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..errors import (
    ColumnError,
    DataError,
    MethodError,
)
from .pieces import (
    MultiPieces,
    MultiSystem,
    check_level,
    check_long,
    factor_columns,
    factor_labels,
    fit_pieces,
    group_values,
    is_mixed,
    is_multi,
    level_values,
    match_groups,
    multi_pieces,
    rel_factor,
    split_z,
)


def _offset(fit, df: pd.DataFrame) -> np.ndarray | float:
    """The formula's offset() terms on new rows (0 for a fit without them)."""
    enc = getattr(getattr(fit, "design", None), "encoder", None)
    return 0.0 if enc is None else enc.offset(df)


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
    pieces = fit_pieces(fit)
    check_long(fit, "predict")
    if interval not in (None, "prediction", "confidence"):
        raise MethodError(
            f"`interval` must be None, 'prediction' or 'confidence'; got {interval!r}."
        )
    level = check_level(level)
    if isinstance(pieces, MultiPieces):
        if newdata is None:
            raise DataError(
                "`newdata` must be given for a formula fit: the fit keeps its design matrices, "
                "not its data frame. Pass the data frame you fitted to get lme4's fitted values, "
                "or new rows."
            )
        return _predict_multi(
            fit,
            as_frame(newdata),
            pieces,
            random,
            allow_new_levels,
            interval,
            level,
            fixef_uncertainty,
        )
    factor = pieces.factor
    if newdata is None:
        if pieces.encoder is None or is_mixed(fit):
            raise DataError(
                "`newdata` must be given for a formula fit: the fit keeps per-group "
                "cross-products, not its rows. Pass the data frame you fitted to get lme4's "
                "fitted values, or new rows."
            )
        df = pd.DataFrame({factor: pieces.labels}, index=pieces.labels)
    else:
        df = as_frame(newdata)
    if pieces.encoder is None:
        raise DataError(
            "`fit` must carry its formula's encoding to predict for new rows; this fit was "
            "built without it. Refit it with bs.fit(data, formula=...)."
        )
    columns = getattr(fit, "group_columns", None) or (factor,)
    if is_mixed(fit):
        fit.design.encoder.check_columns(df, extra=tuple(columns) if random else ())
    elif random and not set(columns) <= set(df.columns) and factor not in df.columns:
        raise ColumnError(
            f"`newdata` must have the grouping column {factor!r}; got columns "
            f"{', '.join(map(repr, map(str, df.columns[:20])))}. Add it, or pass random=False for "
            "the population-level prediction."
        )
    X, Z = pieces.encoder(df)
    n = len(df)
    mean = X @ pieces.beta + _offset(fit, df)
    if random:
        gvals = group_values(fit, df, factor)
        pos = match_groups(pieces.labels, gvals)
        unknown = pos < 0
        if unknown.any() and not allow_new_levels:
            vals = pd.unique(gvals[unknown])
            shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in vals[:5]) + (
                " ..." if len(vals) > 5 else ""
            )
            raise DataError(
                f"`newdata` must hold levels of {factor!r} seen in the fit unless "
                f"allow_new_levels=True; got {len(vals)} new level(s): {shown}. Pass "
                "allow_new_levels=True to give those rows the population prediction (and, with "
                "an interval, the new-group predictive distribution)."
            )
        known = ~unknown
        bj = pieces.b[pos[known]]
        mean[known] += np.einsum("iq,iq->i", Z[known], bj)
    else:
        known = np.zeros(n, dtype=bool)
        pos = np.full(n, -1)
    out = pd.Series(mean, index=df.index, name="fit")
    if interval is None:
        return out
    sigma2 = pieces.sigma**2
    var = np.zeros(n)
    k = X.copy()  # the coefficient of (beta_hat - beta) in the prediction error
    if known.any():
        S = pieces.S[pos[known]]  # relative to sigma^2
        zk = Z[known]
        var[known] = sigma2 * np.einsum("iq,iqr,ir->i", zk, S, zk)
        Sz = np.einsum("iqr,ir->iq", S, zk)
        k[known] -= np.einsum("iqp,iq->ip", pieces.ZtX[pos[known]], Sz)
    new = ~known
    if random or interval == "prediction":
        # a new group (or the population prediction of a new observation): the plug-in prior
        zn = Z[new]
        var[new] = np.einsum("iq,qr,ir->i", zn, pieces.cov_re, zn)
    return _interval_frame(
        mean,
        var,
        k,
        pieces.vcov,
        sigma2,
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


def _predict_multi(fit, df, p: MultiPieces, random, allow_new_levels, interval, level, fixef_unc):
    comps = [c for f in p.multi for c in f.components] if random else []
    p.encoder.check_columns(df, extra=tuple(dict.fromkeys(comps)))
    X, Zall = p.encoder.evaluate(df)
    Zf = split_z(p, Zall)
    n = len(df)
    mean = X @ p.beta + p.encoder.offset(df)
    pos: dict[str, np.ndarray] = {}
    for f in p.multi:
        if not random:
            pos[f.name] = np.full(n, -1)
            continue
        vals = factor_labels(df, f.components)
        ps = match_groups(f.labels, vals)
        unknown = ps < 0
        if unknown.any() and not allow_new_levels:
            new = pd.unique(vals[unknown])
            shown = ", ".join(repr(v) for v in new[:5]) + (" ..." if len(new) > 5 else "")
            raise DataError(
                f"`newdata` must hold levels of the grouping factor {f.name!r} seen in the fit "
                f"unless allow_new_levels=True; got {len(new)} new level(s) of {f.name!r}: "
                f"{shown}. Pass allow_new_levels=True to give those rows 0 for {f.name!r}'s "
                "effects (lme4's allow.new.levels = TRUE) and, with an interval, its prior "
                "variance."
            )
        pos[f.name] = ps
        k = ~unknown
        mean[k] += np.einsum("iq,iq->i", Zf[f.name][k], f.b[ps[k]])
    out = pd.Series(mean, index=df.index, name="fit")
    if interval is None:
        return out
    sigma2 = p.sigma**2
    var = np.zeros(n)
    # unknown levels (every factor when random=False): the plug-in prior of that factor
    for f in p.multi:
        new = pos[f.name] < 0
        if random or interval == "prediction":
            z = Zf[f.name][new]
            var[new] += np.einsum("iq,qr,ir->i", z, f.cov_re, z)
    k = X.copy()
    if random and any((pos[f.name] >= 0).any() for f in p.multi):
        # the observed levels' joint posterior, cross-factor covariances included (exact)
        system = MultiSystem(fit)
        st = system.solve([rel_factor(f.cov_re, p.sigma) for f in p.multi])
        w = (system.z_new(Zf, pos) @ st["L"]).toarray()  # rows' (Lambda'z)'
        Mw = st["lu"].solve(w.T)  # q x n
        var += sigma2 * np.einsum("iq,qi->i", w, Mw)
        if X.shape[1]:
            k -= (st["RZX"].T @ w.T).T
    return _interval_frame(
        mean,
        var,
        k,
        p.vcov,
        sigma2,
        df.index,
        random=random,
        interval=interval,
        level=level,
        fixef_uncertainty=fixef_unc,
    )


def _pooling_multi(fit, df: pd.DataFrame, factor: str | None) -> pd.DataFrame:
    """:func:`pooling_predictions` for one factor of a several-factor fit: the other factors'
    effects are left at 0 (their population value) in all three lines."""
    p = multi_pieces(fit)
    name, _ = factor_columns(fit, factor)
    f = next(f for f in p.multi if f.name == name)
    X, Zall = p.encoder.evaluate(df)
    Z = split_z(p, Zall)[name]
    pos = match_groups(f.labels, level_values(fit, df, name))
    if (pos < 0).any():
        raise DataError(
            f"`newdata` must hold levels of {name!r} seen in the fit for pooling predictions; a "
            "new level has no own fit."
        )
    d = fit.design
    ols = np.linalg.lstsq(d.X, d.y, rcond=None)[0] if d.X.shape[1] else np.zeros(0)
    E = fit._E(fit._factor(name))
    own_dev = fit.own_fit(name).to_numpy() - E @ p.beta
    base = X @ p.beta
    return pd.DataFrame(
        {
            "no_pooling": base + np.einsum("iq,iq->i", Z, own_dev[pos]),
            "complete_pooling": X @ ols,
            "partial_pooling": base + np.einsum("iq,iq->i", Z, f.b[pos]),
        },
        index=df.index,
    )


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
    if is_multi(fit):
        return _pooling_multi(fit, df, factor)
    fit._check_factor(factor)
    pieces = fit_pieces(fit)
    partial = predict(fit, df).to_numpy()
    X, Z = pieces.encoder(df)
    pos = match_groups(pieces.labels, group_values(fit, df, pieces.factor))
    if (pos < 0).any():
        raise DataError(
            f"`newdata` must hold levels of {pieces.factor!r} seen in the fit for pooling "
            "predictions; a new group has no own fit."
        )
    if is_mixed(fit):
        s = fit.design.stats
        ols = np.linalg.solve(s.XtX, s.Xty)
        if s.intercept_col is not None:
            ols[s.intercept_col] += s.y_shift
        own_dev = fit.own_fit().to_numpy() - fit.fixed_of_random @ pieces.beta
        off = _offset(fit, df)
        none = X @ pieces.beta + np.einsum("iq,iq->i", Z, own_dev[pos]) + off
        complete = X @ ols + off
    else:
        t = fit.table()
        none = t["no_pooling"].to_numpy()[pos]
        complete = np.full(len(df), fit.complete_pooling)
    return pd.DataFrame(
        {"no_pooling": none, "complete_pooling": complete, "partial_pooling": partial},
        index=df.index,
    )
