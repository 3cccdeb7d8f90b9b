r"""lme4's everyday API after a fit: predict, confint, information criteria and anova.

Every function here takes a fitted model, a one-way :class:`~bayeshrink.ShrinkageFit` or a
formula :class:`~bayeshrink.MixedFit`, and works from one small bundle of what the fit must
supply (:func:`fit_pieces`): its estimates (fixed effects and their covariance, the random
effects' covariance, sigma, each group's BLUPs and conditional covariance), Z_j'X_j per group
(for the fixed effects' share of a group's prediction error), its per-group cross-products and
random-effects layout (for profiles and the parametric bootstrap), and an encoder that evaluates
new rows with the fit's formula. The one-way fit is the formula ``y ~ 1 + (1 | g)``: its
cross-products are built from its group sizes, means and within-group sums of squares.

The estimator's criterion is reached only through :func:`ml_deviance_function`,
:func:`profiled_ml_criterion` and :func:`refit_from_stats`, on the estimator's standardized
cross-products (``MixedStats.std``, mapped back by :class:`_Scale`).

The Bayesian reading, term by term:

* ``predict(interval="prediction")`` for a row of an observed group j draws from the group's
  posterior N(BLUP_j, Var(b_j | y)) plus the residual sigma^2; for a group never observed, from
  the plug-in *prior* N(fixef, cov_re) plus sigma^2. The plug-in prior of the fit becomes the
  predictive distribution of a new group.
* With ``fixef_uncertainty=True`` the fixed effects get a flat prior instead of being plugged in
  (Henderson's prediction error variance; the one-way ``pred_sd``), so a row's variance gains
  k' vcov(beta) k, with k = x - X_j'Z_j S_j z for an observed group (the BLUP moves with beta)
  and k = x for a new one.
* ``confint(method="profile")`` inverts the likelihood-ratio test, as lme4's ``profile``.

Random-effects parameters are named as lme4's ``confint(m, oldNames = FALSE)``:
``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sigma``; fixed effects by the
fit's own term names, with the intercept written ``(Intercept)`` as lme4 does.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from .api import FitResult
from .errors import (
    ColumnError,
    DataError,
    DataTypeError,
    MethodError,
    RefitWarning,
)

__all__ = [
    "FitPieces",
    "RefitWarning",
    "anova",
    "confint",
    "fit_pieces",
    "information",
    "predict",
]

_LOG2PI = math.log(2.0 * math.pi)


# =============================================================================== the hook


@dataclass(frozen=True, eq=False)
class FitPieces:
    """What every fit supplies to predict / confint / anova (see the module docstring).

    Built by :func:`fit_pieces` from the fit's public accessors (``fixef``, ``vcov``,
    ``cov_re``, ``sigma``, ``ranef()``, ``ranef_cov()`` / ``ranef_sd()``, ``n``, ``loglik``)
    plus three things only the fit knows: Z_j'X_j per group (``ZtX``, for the fixed effects'
    share of a group's prediction error), its cross-products and random-effects layout
    (``stats``, ``block_sizes``, for profiles and the bootstrap) and ``encoder`` (new rows to
    X and Z with the fit's formula).

    Per grouping factor the random effects are listed in ``factors``: ``{factor: (labels,
    terms)}``; the arrays below are for the single factor of a one-factor fit (``factor``). A
    fit with several grouping factors (``MultiFit``) gives a :class:`MultiPieces` instead: a
    row's prediction adds z_f'b_f over the factors, its variance uses the joint conditional
    covariance of those b_f from the fit's sparse mixed-model equations (:class:`_MultiSystem`;
    crossed factors are correlated a posteriori) and, for a level not in the fit, that factor's
    ``cov_re``; the parameter names carry a ``|factor`` suffix per factor; nesting in ``anova``
    compares blocks factor by factor (``_blocks``).
    """

    fit: object
    method: str
    response: str
    factor: str
    labels: pd.Index
    fixed_names: tuple[str, ...]
    random_names: tuple[str, ...]
    block_sizes: tuple[int, ...]
    beta: np.ndarray  # (p,)
    vcov: np.ndarray  # (p, p)
    sigma: float
    cov_re: np.ndarray  # (q, q)
    b: np.ndarray  # (J, q) BLUPs of the deviations
    S: np.ndarray  # (J, q, q) Var(b_j | y) / sigma^2
    ZtX: np.ndarray  # (J, q, p)
    loglik: float
    n_obs: int
    n_theta: int
    stats: object  # lmm.design.MixedStats (None for summary data)
    encoder: object  # callable(DataFrame) -> (X, Z)

    @property
    def factors(self) -> dict[str, tuple[pd.Index, tuple[str, ...]]]:
        return {self.factor: (self.labels, self.random_names)}

    @property
    def n_params(self) -> int:
        return len(self.beta) + self.n_theta + 1


def _oneway_stats(gs):
    """Cross-products of W = [1 | y] per group from a one-way fit's n, mean and ssw."""
    from .lmm.design import MixedStats

    n = gs.n.astype(float)
    shift = float(np.dot(n, gs.mean) / n.sum())
    d = gs.mean - shift
    cross = np.empty((len(n), 2, 2))
    cross[:, 0, 0] = n
    cross[:, 0, 1] = cross[:, 1, 0] = n * d
    cross[:, 1, 1] = gs.ssw + n * d * d
    return MixedStats(
        cross=cross,
        n=n,
        x_idx=np.array([0]),
        z_idx=np.array([0]),
        y_shift=shift,
        intercept_col=0,
    )


def _is_mixed(fit) -> bool:
    """A formula fit (MixedFit): it carries its design."""
    return isinstance(fit, FitResult) and hasattr(fit, "design")


def _check_long(fit, what: str) -> None:
    if getattr(fit, "data_kind", "long") == "summary":
        raise DataTypeError(
            f"`fit` must be fitted to long data (one row per observation) for {what}; got a fit "
            "to group estimates with known standard errors (bs.fit_summary). Those have no "
            "residual variance to predict with or resample."
        )


def fit_pieces(fit) -> FitPieces:
    """The bundle a fit supplies to the functions of this module (the one hook per fit class).

    A fit with several grouping factors (``MultiFit``) gives a :class:`MultiPieces`."""
    if _is_multi(fit):
        return _multi_pieces(fit)
    if _is_mixed(fit):
        c = fit.components
        d = fit.design
        enc = d.encoder
        return FitPieces(
            fit=fit,
            method=fit.method,
            response=fit.response,
            factor=fit.group,
            labels=fit.groups,
            fixed_names=tuple(fit.fixed_terms),
            random_names=tuple(fit.random_terms),
            block_sizes=tuple(fit.block_sizes),
            beta=fit.fixef.to_numpy(dtype=float),
            vcov=fit.vcov.to_numpy(dtype=float),
            sigma=float(fit.sigma),
            cov_re=fit.cov_re.to_numpy(dtype=float),
            b=fit.ranef().to_numpy(dtype=float),
            S=fit.ranef_cov() / fit.sigma**2,
            ZtX=np.asarray(d.stats.B, float),
            loglik=float(fit.loglik),
            n_obs=int(fit.n_obs),
            n_theta=len(c.theta),
            stats=d.stats,
            encoder=None if enc is None else enc.evaluate,
        )
    if isinstance(fit, FitResult):  # the one-way fit
        long = fit.data_kind == "long"
        labels = fit.groups

        def encoder(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            one = np.ones((len(df), 1))
            return one, one

        return FitPieces(
            fit=fit,
            method=fit.method,
            response=fit.response,
            factor=str(labels.name) if labels.name is not None else "group",
            labels=labels,
            fixed_names=tuple(fit.fixed_terms),
            random_names=tuple(fit.random_terms),
            block_sizes=(1,),
            beta=fit.fixef.to_numpy(dtype=float),
            vcov=fit.vcov.to_numpy(dtype=float),
            sigma=float(fit.sigma) if long else math.nan,
            cov_re=fit.cov_re.to_numpy(dtype=float),
            b=fit.ranef().to_numpy(dtype=float),
            S=(fit.ranef_sd().to_numpy(dtype=float) ** 2 / fit.sigma**2)[:, :, None]
            if long
            else None,
            ZtX=np.asarray(fit.n, dtype=float)[:, None, None],
            loglik=float(fit.loglik),
            n_obs=int(fit.n_obs),
            n_theta=1,
            stats=_oneway_stats(fit.stats) if long else None,
            encoder=encoder,
        )
    raise DataTypeError(
        f"`fit` must be a fitted model (ShrinkageFit or MixedFit from bs.fit); got "
        f"{type(fit).__name__}. Fit it first, e.g. bs.fit(df, formula='y ~ x + (1 | g)')."
    )


def _refit(fit, method: str):
    """The same model on the same data by another method ('ml' or 'reml')."""
    from .estimate import estimate
    from .lmm.estimate import estimate_lmm

    if _is_multi(fit):
        from .lmm.pls import fit_pls

        d = fit.design
        return type(fit)(d, fit_pls(d.y, d.X, list(d.factors), method))
    if _is_mixed(fit):
        d = fit.design
        return type(fit)(d, estimate_lmm(d.stats, d.block_sizes, method))
    return type(fit)(fit.stats, estimate(fit.stats, method))


# =============================================================================== predict


def _check_level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise DataError(
            f"`level` must be a probability strictly between 0 and 1; got {level!r}. "
            "E.g. level=0.95 for 95% intervals."
        )
    return float(level)


def _offset(fit, df: pd.DataFrame) -> np.ndarray | float:
    """The formula's offset() terms on new rows (0 for a fit without them)."""
    enc = getattr(getattr(fit, "design", None), "encoder", None)
    return 0.0 if enc is None else enc.offset(df)


def _match_groups(labels: pd.Index, values: pd.Series) -> np.ndarray:
    """Position of each row's group among the fit's labels, -1 for a level not in the fit.

    Labels match by value; where the fit's labels and the new column differ only in type (the
    fit read ``308`` as an integer, the new rows hold ``"308"``), by their text."""
    pos = labels.get_indexer(pd.Index(values))
    miss = (pos < 0) & values.notna().to_numpy()
    if miss.any():
        text = pd.Index([str(x) for x in labels])
        if text.is_unique:
            alt = text.get_indexer(pd.Index([str(x) for x in values[miss]]))
            pos[np.flatnonzero(miss)] = alt
    return pos


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
    from .frames import as_frame

    pieces = fit_pieces(fit)
    _check_long(fit, "predict")
    if interval not in (None, "prediction", "confidence"):
        raise MethodError(
            f"`interval` must be None, 'prediction' or 'confidence'; got {interval!r}."
        )
    level = _check_level(level)
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
        if pieces.encoder is None or _is_mixed(fit):
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
    if _is_mixed(fit):
        fit.design.encoder.check_columns(df, extra=(factor,) if random else ())
    elif random and factor not in df.columns:
        raise ColumnError(
            f"`newdata` must have the grouping column {factor!r}; got columns "
            f"{', '.join(map(repr, map(str, df.columns[:20])))}. Add it, or pass random=False for "
            "the population-level prediction."
        )
    X, Z = pieces.encoder(df)
    n = len(df)
    mean = X @ pieces.beta + _offset(fit, df)
    if random:
        pos = _match_groups(pieces.labels, df[factor])
        unknown = pos < 0
        if unknown.any() and not allow_new_levels:
            vals = pd.unique(df[factor][unknown])
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


# =============================================================================== criteria


def _deviance(fit) -> float:
    """lme4 1.1-31's ``deviance()``: -2 log L for an ML fit; for a REML fit the REML criterion
    (lme4 returns ``REMLcrit(m)`` there, with a warning that deviance() of a REML fit is
    deprecated)."""
    return -2.0 * float(fit.loglik)


def information(fit) -> dict[str, float]:
    """lme4's ``logLik`` (with its df), ``AIC``, ``BIC`` and ``deviance`` of a fit.

    ``n_params`` counts the fixed effects, the random-effects covariance parameters (lme4's
    theta) and sigma (lme4's ``attr(logLik(m), "df")``). A REML fit's AIC and BIC use the
    restricted log-likelihood, as lme4's; they compare only fits with the same fixed effects.
    BIC uses log(number of observations), as lme4. For a fit to group estimates with known
    standard errors (``bs.fit_summary``), the parameters are the fixed effect and tau^2, and
    the BIC uses log(k) for ML, log(k - 1) for REML, as metafor's ``fitstats``; their
    ``deviance`` is -2 logLik too (metafor's deviance is measured from a saturated model).
    """
    if not isinstance(fit, FitResult) and not _is_multi(fit):
        raise DataTypeError(
            f"`fit` must be a fitted model (ShrinkageFit or MixedFit from bs.fit); got "
            f"{type(fit).__name__}."
        )
    ll = float(fit.loglik)
    if fit.data_kind == "summary":
        k = 2
        nobs = fit.n_groups - (1 if fit.method == "reml" else 0)
    else:
        k = fit_pieces(fit).n_params
        nobs = fit.n_obs
    return {
        "loglik": ll,
        "n_params": k,
        "aic": -2.0 * ll + 2.0 * k,
        "bic": -2.0 * ll + k * math.log(nobs),
        "deviance": _deviance(fit),
    }


# =============================================================================== anova


def _response_moments(fit) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Per group: n, sum of y (None when the design has no intercept column), sum of y^2."""

    if _is_mixed(fit):
        if getattr(fit.design, "response_moments", None) is not None:  # fitted with an offset
            return fit.design.response_moments
        s = fit.design.stats
        yy = s.cross[:, s.y_idx, s.y_idx]
        if s.intercept_col is None:
            return s.n, None, yy
        sy = s.cross[:, s.x_idx[s.intercept_col], s.y_idx]
        sh = s.y_shift
        return s.n, sy + s.n * sh, yy + 2 * sh * sy + s.n * sh * sh
    gs = fit.stats
    return gs.n.astype(float), gs.n * gs.mean, gs.ssw + gs.n * gs.mean**2


def _same_data_multi(fits, names) -> None:
    """As _same_data when some fit has several factors: the same number of rows, response and
    response values (row by row between two several-factor fits, by sum and sum of squares
    against a one-factor fit, which keeps per-group sums only)."""

    def moments(f):
        if _is_multi(f):
            off = getattr(f.design, "offset", None)
            y = f.design.y if off is None else f.design.y + off  # the response, not y - offset
            return len(y), float(y.sum()), float(y @ y), y
        n, s, q = _response_moments(f)
        return int(n.sum()), None if s is None else float(s.sum()), float(q.sum()), None

    n0, s0, q0, y0 = moments(fits[0])
    r0 = fits[0].response
    for f, name in zip(fits[1:], names[1:], strict=True):
        n, s, q, y = moments(f)
        why = None
        if n != n0:
            why = f"{n0} and {n} observations"
        elif f.response != r0:
            why = f"responses {r0!r} and {f.response!r}"
        elif (y is not None and y0 is not None and not np.allclose(y, y0, rtol=1e-12, atol=0)) or (
            not math.isclose(q, q0, rel_tol=1e-9)
            or (s is not None and s0 is not None and not math.isclose(s, s0, rel_tol=1e-9))
        ):
            why = "different response values"
        if why is not None:
            raise DataError(
                f"the models compared by `anova` must be fitted to the same rows and response; "
                f"{names[0]} and {name} have {why}. Fit every model to the same data frame "
                "(with the same missing-value handling)."
            )


def _same_data(fits, names) -> None:
    if any(_is_multi(f) for f in fits):
        return _same_data_multi(fits, names)
    p0 = fit_pieces(fits[0])
    n0, s0, q0 = _response_moments(fits[0])
    for f, name in zip(fits[1:], names[1:], strict=True):
        p = fit_pieces(f)
        n, s, q = _response_moments(f)
        why = None
        if p.n_obs != p0.n_obs:
            why = f"{p0.n_obs} and {p.n_obs} observations"
        elif p.response != p0.response:
            why = f"responses {p0.response!r} and {p.response!r}"
        elif p.factor != p0.factor or not p.labels.equals(p0.labels) or not np.array_equal(n, n0):
            why = "different groups or group sizes"
        elif not np.allclose(q, q0, rtol=1e-9, atol=0) or (
            s is not None and s0 is not None and not np.allclose(s, s0, rtol=1e-9, atol=1e-9)
        ):
            why = "different response values"
        if why is not None:
            raise DataError(
                f"the models compared by `anova` must be fitted to the same rows and response; "
                f"{names[0]} and {name} have {why}. Fit every model to the same data frame "
                "(with the same missing-value handling)."
            )


def _blocks(p) -> list[tuple[str, frozenset]]:
    """(factor, terms) of every random block: nesting is judged factor by factor."""
    if isinstance(p, MultiPieces):
        out = []
        for f in p.multi:
            start = 0
            for size in f.block_sizes:
                out.append((f.name, frozenset(f.terms[start : start + size])))
                start += size
        return out
    out, start = [], 0
    for size in p.block_sizes:
        out.append((p.factor, frozenset(p.random_names[start : start + size])))
        start += size
    return out


def _nested(small: FitPieces, big: FitPieces) -> str | None:
    """None when ``small`` is nested in ``big``; otherwise why not."""
    extra = set(small.fixed_names) - set(big.fixed_names)
    if extra:
        return f"fixed terms {sorted(extra)} are not in the larger model"
    big_blocks = _blocks(big)
    for factor, terms in _blocks(small):
        if not any(f == factor and terms <= t for f, t in big_blocks):
            return (
                f"the random block ({' + '.join(sorted(terms))} | {factor}) is not part of a "
                "block of the larger model"
            )
    return None


def anova(
    *fits,
    refit: bool = True,
    boundary_correction: bool = False,
    names: list[str] | None = None,
) -> pd.DataFrame:
    """Likelihood-ratio tests between nested mixed models, as lme4's ``anova(m0, m1, ...)``.

    The models are sorted by their number of parameters; each row after the first tests the
    model against the one above it: chisq = 2 (logLik_i - logLik_{i-1}), df = the difference
    in parameters, p from the chi-square distribution.

    Parameters
    ----------
    *fits : ShrinkageFit or MixedFit
        Two or more fits to the same rows and response, each nested in the next (fixed terms a
        subset, each random block contained in a block of the larger model).
    refit : bool
        ``True`` (default, as lme4): REML fits are refitted by ML before comparing, with a
        :class:`RefitWarning` saying so (REML likelihoods of models with different fixed
        effects are not comparable). ``False`` keeps the REML criteria; only valid when the fixed
        effects are the same.
    boundary_correction : bool
        The LRT for a variance whose null value is 0 is conservative: the null lies on the
        boundary of the parameter space, and the statistic's null distribution is a 50:50
        mixture of chi-square distributions with df - 1 and df degrees of freedom (Self & Liang
        1987; Stram & Lee 1994), not chi-square(df). With ``True`` the p-value uses that
        mixture; it applies when the larger model adds exactly one random term (with its
        covariances) and the same fixed effects, and raises otherwise. lme4 has no such option.
    names : list of str, optional
        Row labels; by default the models' formulas.

    Returns
    -------
    pandas.DataFrame
        One row per model: ``npar``, ``aic``, ``bic``, ``loglik``, ``deviance`` (-2 logLik),
        ``chisq``, ``df``, ``p_value`` (NaN in the first row); ``attrs["refitted"]`` lists the
        models refitted by ML.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> sleep = bs.load_dataset("sleepstudy")
    >>> m0 = bs.fit(sleep, formula="Reaction ~ Days + (1 | Subject)", method="ml")
    >>> m1 = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)", method="ml")
    >>> bs.anova(m0, m1)[["npar", "chisq", "df"]].round(4)
                                        npar    chisq   df
    model
    Reaction ~ Days + (1 | Subject)        4      NaN  NaN
    Reaction ~ Days + (Days | Subject)     6  42.1393  2.0
    """
    from scipy import stats

    if len(fits) == 1 and isinstance(fits[0], (list, tuple)):
        fits = tuple(fits[0])
    if len(fits) < 2:
        raise DataError(
            f"`anova` must be given at least two fitted models; got {len(fits)}. "
            "E.g. bs.anova(m0, m1) with m0 nested in m1."
        )
    pieces = [fit_pieces(f) for f in fits]
    for f in fits:
        if getattr(f, "data_kind", "long") == "summary":
            raise DataTypeError(
                "`anova` compares fits to long data; got a fit to group estimates with known "
                "standard errors (bs.fit_summary)."
            )
    if names is None:
        names = [
            getattr(f, "formula", None) or _oneway_formula(p)
            for f, p in zip(fits, pieces, strict=True)
        ]
        if len(set(names)) < len(names):
            names = [f"model {i + 1}" for i in range(len(fits))]
    elif len(names) != len(fits):
        raise DataError(
            f"`names` must have one label per model; got {len(names)} for {len(fits)} models."
        )
    _same_data(list(fits), list(names))
    order = sorted(range(len(fits)), key=lambda i: pieces[i].n_params)
    fits = [fits[i] for i in order]
    names = [names[i] for i in order]
    pieces = [pieces[i] for i in order]
    for a in range(len(fits) - 1):
        why = _nested(pieces[a], pieces[a + 1])
        if why is not None:
            raise DataError(
                f"the models given to `anova` must be nested; {names[a]} is not nested in "
                f"{names[a + 1]}: {why}. A likelihood-ratio test needs the smaller model to be "
                "a special case of the larger (compare non-nested models by AIC/BIC)."
            )
    # the same fixed-effects columns, whatever the order the formulas wrote them in
    same_fixed = len({frozenset(p.fixed_names) for p in pieces}) == 1
    refitted = []
    if refit and any(f.method == "reml" for f in fits):
        refitted = [nm for f, nm in zip(fits, names, strict=True) if f.method == "reml"]
        why = (
            "; these models have the same fixed effects, so their REML criteria are comparable "
            "as they are: pass refit=False to compare them without refitting."
            if same_fixed
            else " (REML likelihoods of models with different fixed effects are not comparable)."
        )
        warnings.warn(
            f"refitting {len(refitted)} REML fit(s) by ML for the likelihood-ratio test, as "
            f"lme4's anova does{why}",
            RefitWarning,
            stacklevel=2,
        )
        fits = [_refit(f, "ml") if f.method == "reml" else f for f in fits]
    elif not refit:
        if len({f.method for f in fits}) > 1:
            raise MethodError(
                "`refit=False` needs every model fitted by the same method; got both REML and "
                "ML fits. Leave refit=True, or refit them by one method."
            )
        if fits[0].method == "reml" and not same_fixed:
            raise MethodError(
                "`refit=False` compares REML criteria, which is only valid for models with the "
                "same fixed effects; these differ. Leave refit=True (ML refits)."
            )
    info = [information(f) for f in fits]
    ll = np.array([i["loglik"] for i in info])
    npar = np.array([i["n_params"] for i in info])
    chisq = np.r_[np.nan, 2.0 * np.maximum(np.diff(ll), 0.0)]
    df = np.r_[np.nan, np.diff(npar).astype(float)]
    p = np.r_[np.nan, stats.chi2.sf(chisq[1:], df[1:])]
    if boundary_correction:
        for a in range(1, len(fits)):
            small, big = pieces[a - 1], pieces[a]
            added = _random_set(big) - _random_set(small)
            same_pair = set(small.fixed_names) == set(big.fixed_names)
            if not same_pair or len(added) != 1:
                change = "" if same_pair else " and changes the fixed effects"
                raise MethodError(
                    "`boundary_correction=True` applies when the larger model adds exactly one "
                    f"random term and keeps the fixed effects; {names[a]} against {names[a - 1]} "
                    f"adds {len(added)} random term(s){change}. Compare such models with "
                    "boundary_correction=False (conservative)."
                )
            lo = stats.chi2.sf(chisq[a], df[a] - 1) if df[a] > 1 else 0.0
            p[a] = 0.5 * lo + 0.5 * stats.chi2.sf(chisq[a], df[a])
    out = pd.DataFrame(
        {
            "npar": npar,
            "aic": [i["aic"] for i in info],
            "bic": [i["bic"] for i in info],
            "loglik": ll,
            "deviance": -2.0 * ll,
            "chisq": chisq,
            "df": df,
            "p_value": p,
        },
        index=pd.Index(names, name="model"),
    )
    out.attrs["refitted"] = refitted
    out.attrs["boundary_correction"] = boundary_correction
    return out


def _random_set(p) -> set[tuple[str, str]]:
    return {(factor, t) for factor, terms in _blocks(p) for t in terms}


def _oneway_formula(p: FitPieces) -> str:
    return f"{p.response} ~ 1 + (1 | {p.factor})"


# =============================================================================== confint


def _lme4_term(t: str) -> str:
    return "(Intercept)" if t == "Intercept" else t


def variance_parameter_names(p: FitPieces) -> list[str]:
    """lme4's ``confint(oldNames = FALSE)`` names of the random-effects parameters, in theta's
    order (per block: each column's SD, then its correlations with the terms below), then
    ``sigma``."""
    names, start = [], 0
    for size in p.block_sizes:
        terms = [_lme4_term(t) for t in p.random_names[start : start + size]]
        for c in range(size):
            names.append(f"sd_{terms[c]}|{p.factor}")
            for r in range(c + 1, size):
                names.append(f"cor_{terms[r]}.{terms[c]}|{p.factor}")
        start += size
    return [*names, "sigma"]


def _layout(p: FitPieces):
    from .lmm.estimate import theta_layout

    return theta_layout(p.block_sizes)


def _phi_from(p: FitPieces, cov_re: np.ndarray, sigma: float) -> np.ndarray:
    """(sd, cor, ..., sigma) in lme4's order from a covariance matrix and sigma."""
    rows, cols, diag = _layout(p)
    sd = np.sqrt(np.clip(np.diag(cov_re), 0, None))
    phi = np.empty(len(rows) + 1)
    for i, (r, c, d) in enumerate(zip(rows, cols, diag, strict=True)):
        if d:
            phi[i] = sd[r]
        else:
            den = sd[r] * sd[c]
            phi[i] = cov_re[r, c] / den if den > 0 else 0.0
    phi[-1] = sigma
    return phi


def _chol_psd(T: np.ndarray) -> np.ndarray | None:
    """Lower-triangular L with L L' = T for a positive semi-definite T (zero columns where T is
    singular); None when T is not positive semi-definite."""
    q = T.shape[0]
    L = np.zeros_like(T)
    scale = max(float(np.max(np.abs(np.diag(T)))), 1e-300)
    for j in range(q):
        d = T[j, j] - L[j, :j] @ L[j, :j]
        if d < -1e-10 * scale:
            return None
        if d <= 1e-14 * scale:
            # a zero pivot: the rest of the column must vanish too
            rest = T[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]
            if np.any(np.abs(rest) > 1e-7 * scale):
                return None
            continue
        L[j, j] = math.sqrt(d)
        L[j + 1 :, j] = (T[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def _theta_from_phi(p: FitPieces, phi: np.ndarray, Gz: np.ndarray | None = None):
    """theta (of the columns Z Gz^-1, when Gz is given) from (SDs, correlations, sigma)."""
    rows, cols, diag = _layout(p)
    q = len(p.random_names)
    sigma = phi[-1]
    sd = np.zeros(q)
    C = np.eye(q)
    for i, (r, c, d) in enumerate(zip(rows, cols, diag, strict=True)):
        if d:
            sd[r] = phi[i]
        else:
            C[r, c] = C[c, r] = phi[i]
    T = C * np.outer(sd, sd) / sigma**2
    if Gz is not None:
        T = Gz @ T @ Gz.T
    L = _chol_psd(T)
    if L is None:
        return None
    return L[rows, cols]


def ml_deviance_function(stats, block_sizes):
    """theta -> (log|M|, r2): the pieces of the ML deviance at theta, with beta profiled out.

    The profile and the bootstrap reach the estimator's criterion only through this function:
    with sigma given, the ML deviance is log|M| + r2 / sigma^2 + N log(2 pi sigma^2) (lme4's
    ``devfun2``); with sigma profiled it is log|M| + N (1 + log(2 pi r2 / N))."""
    from .lmm.estimate import ProfiledCriterion

    crit = ProfiledCriterion(stats, block_sizes, "ml")
    N = crit.N

    def f(theta: np.ndarray) -> tuple[float, float]:
        try:
            *_, r2, value = crit.parts(np.asarray(theta, float))
        except np.linalg.LinAlgError:  # far out, X'V^-1 X can be singular: not a candidate
            return math.inf, 1.0
        return value - N * (1.0 + math.log(2.0 * math.pi * r2 / N)), r2

    return f


def profiled_ml_criterion(stats, block_sizes):
    """theta -> (ML criterion with beta and sigma profiled out, its gradient in theta)."""
    from .lmm.estimate import ProfiledCriterion

    vg = ProfiledCriterion(stats, block_sizes, "ml").value_and_grad

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            return vg(theta)
        except np.linalg.LinAlgError:
            return 1e300, np.zeros(len(theta))

    return f


def _score(res) -> float:
    """An optimisation result's value, infinite when it ended infeasible."""
    ok = (res.success or res.status in (0, 8, 9)) and float(res.fun) < 1e299
    return float(res.fun) if ok else math.inf


def _minimize(fun, x0, bounds, jac=None, constraints=()):
    """A small bounded minimisation (SLSQP: scipy's L-BFGS-B costs milliseconds per call on
    problems of a few variables, and the profile solves hundreds of them)."""
    from scipy import optimize

    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds], float)
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds], float)
    x0 = np.clip(np.asarray(x0, float), lo, hi)
    return optimize.minimize(
        fun,
        x0,
        jac=jac,
        method="SLSQP",
        bounds=bounds,
        constraints=constraints,
        options={"ftol": 1e-14, "maxiter": 300},
    )


@dataclass(frozen=True, eq=False)
class _Scale:
    """The estimator's centred and scaled cross-products and the map to the data's scale
    (``MixedStats.std`` / ``.transform``): W = W_s G with X = X_s Gx, Z = Z_s Gz and
    y = sy y_s + X_s beta0. Profiles and bootstrap refits work on the standardized
    cross-products, so they are right at any scale of the covariates, as the estimator is."""

    std: object  # MixedStats of the standardized columns
    Gx: np.ndarray
    Gz: np.ndarray
    beta0: np.ndarray
    sy: float

    @classmethod
    def of(cls, stats) -> _Scale:
        tr = getattr(stats, "transform", None)
        if getattr(stats, "std", None) is not None and tr is not None:
            return cls(stats.std, tr.Gx, tr.Gz, np.asarray(tr.beta0, float), float(tr.y_scale))
        beta0 = np.zeros(stats.p)
        if stats.intercept_col is not None:
            beta0[stats.intercept_col] = stats.y_shift  # the y column holds y - shift
        return cls(stats, np.eye(stats.p), np.eye(stats.q), beta0, 1.0)

    def to_std(self, beta, cov_re, sigma):
        beta_s = (self.Gx @ beta - self.beta0) / self.sy
        return beta_s, self.Gz @ cov_re @ self.Gz.T / self.sy**2, sigma / self.sy

    def from_std(self, beta_s, cov_s, sigma_s):
        Gz_inv = np.linalg.inv(self.Gz)
        beta = np.linalg.solve(self.Gx, self.beta0 + self.sy * beta_s)
        return beta, self.sy**2 * Gz_inv @ cov_s @ Gz_inv.T, self.sy * sigma_s


class _Profile:
    """The likelihood profile of one fit (ML, as lme4's ``profile``: REML fits are refitted)."""

    def __init__(self, fit):
        self.fit = fit if fit.method == "ml" else _refit(fit, "ml")
        p = fit_pieces(self.fit)
        self.p = p
        self.N = float(p.n_obs)
        self.sc = _Scale.of(p.stats)
        self.dev = ml_deviance_function(self.sc.std, p.block_sizes)
        self.phi_hat = _phi_from(p, p.cov_re, p.sigma)
        diag = _layout(p)[2]
        self.kind = np.array([*np.where(diag, "sd", "cor"), "sigma"])
        scale = np.where(self.kind == "cor", 1.0, np.abs(self.phi_hat))
        scale[(self.kind != "cor") & (scale == 0)] = p.sigma
        self.scale = scale
        self.rows, self.cols, self.diag = _layout(p)
        self.q = len(p.random_names)
        self.Gz_inv = np.linalg.inv(self.sc.Gz)
        self.theta_hat = _theta_from_phi(self.p, self.phi_hat, self.sc.Gz)
        # every deviance here is on the standardized scale (a constant apart from the data's),
        # so the base is too: the ML criterion at the optimum, sigma profiled out
        self.base = float(profiled_ml_criterion(self.sc.std, p.block_sizes)(self.theta_hat)[0])

    def deviance_phi(self, phi: np.ndarray) -> float:
        """lme4's devfun2: the ML deviance at (SDs, correlations, sigma), beta profiled out (on
        the standardized scale, a constant apart from the data's)."""
        theta = _theta_from_phi(self.p, phi, self.sc.Gz)
        sigma = phi[-1] / self.sc.sy
        if theta is None or sigma <= 0:
            return np.inf
        return self._dev(theta, sigma)

    def zeta_cor(self, i: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """A correlation held at ``value``, the other SDs, correlations and sigma re-optimised
        in lme4's own coordinates (bounded, no equality constraint: robust where the fit is
        singular). ``start`` and the returned state are theta, as for the other parameters."""
        free = [k for k in range(len(self.phi_hat)) if k != i]
        sc = self.scale[free]
        phi_start = self._phi_of_theta(start)

        def obj(u):
            phi = np.empty(len(self.phi_hat))
            phi[i] = value
            phi[free] = u * sc
            d = self.deviance_phi(phi)
            return d if np.isfinite(d) else 1e300

        bnds = []
        for k, s_ in zip(free, sc, strict=True):
            lo, hi = self.bounds(k)
            bnds.append((lo / s_, hi / s_))
        best = None
        for x0 in (phi_start[free] / sc, self.phi_hat[free] / sc):
            res = _minimize(obj, x0, bnds)
            if best is None or _score(res) < _score(best):
                best = res
            if np.isfinite(_score(res)):
                break
        zero = (self.kind[free] == "sd") & (best.x <= 1e-6)
        if zero.any():
            for v0 in (0.02, 0.1, 0.5):
                x0 = best.x.copy()
                x0[zero] = v0 * self.p.sigma / sc[zero]
                res = _minimize(obj, x0, bnds)
                if _score(res) < _score(best) - 1e-12 * abs(best.fun):
                    best = res
        phi = np.empty(len(self.phi_hat))
        phi[i] = value
        phi[free] = np.clip(best.x, [b[0] for b in bnds], [b[1] for b in bnds]) * sc
        d = max(self.deviance_phi(phi) - self.base, 0.0)
        theta = _theta_from_phi(self.p, phi, self.sc.Gz)
        return math.copysign(math.sqrt(d), value - self.phi_hat[i]), (
            theta if theta is not None else self.theta_hat
        )

    def _phi_of_theta(self, theta_s: np.ndarray) -> np.ndarray:
        """(SDs, correlations, sigma) from standardized theta, sigma at its profiled value."""
        T = self._T(theta_s)
        _, r2 = self.dev(theta_s)
        sigma = self.sc.sy * math.sqrt(r2 / self.N)
        return _phi_from(self.p, sigma**2 * T, sigma)

    def bounds(self, i: int) -> tuple[float, float]:
        k = self.kind[i]
        if k == "cor":
            return (-1.0, 1.0)
        if k == "sigma":
            return (1e-12 * self.scale[i], np.inf)
        return (0.0, np.inf)

    # ---------------------------------------------------------------- variance parameters
    def _T(self, theta_s: np.ndarray) -> np.ndarray:
        """The relative covariance Sigma / sigma^2 on the data's scale from standardized theta."""
        L = np.zeros((self.q, self.q))
        L[self.rows, self.cols] = theta_s
        with np.errstate(over="ignore", invalid="ignore"):
            M = self.Gz_inv @ L
            return M @ M.T

    def _dev(self, theta_s: np.ndarray, sigma_s: float) -> float:
        logdet, r2 = self.dev(theta_s)
        if not np.isfinite(logdet) or sigma_s <= 0:
            return 1e300
        return logdet + r2 / sigma_s**2 + self.N * math.log(2.0 * math.pi * sigma_s**2)

    def zeta_var(self, i: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """Signed root of the deviance rise with an SD or sigma (``i``) held at ``value``; the
        other parameters are re-optimised in the estimator's standardized theta (well
        conditioned whatever the covariates' units), with sigma fixed or, for an SD, free in
        log scale with the SD held by an equality constraint. Correlations: :meth:`zeta_cor`."""
        kind = self.kind[i]
        if kind == "cor":
            return self.zeta_cor(i, value, start)
        sy = self.sc.sy
        bnds = [(0.0, None) if d else (None, None) for d in self.diag]
        cons = ()
        jac = None
        if kind == "sigma":
            sig_s = value / sy

            def f(theta):
                return self._dev(theta, sig_s)

        elif kind == "sd":
            # variables (theta, log sigma_s), the SD held by an equality constraint
            r = self.rows[i]
            nt = len(self.diag)

            def f(x):
                return self._dev(x[:nt], math.exp(min(x[nt], 700.0)))

            def gap(x):
                t = self._T(x[:nt])[r, r]
                g = sy * math.exp(min(x[nt], 700.0)) * math.sqrt(max(t, 0.0)) - value
                return g / self.scale[i] if np.isfinite(g) else 1e10

            cons = ({"type": "eq", "fun": gap},)
            log_sig = math.log(self.phi_hat[-1] / sy)
            bnds = [*bnds, (log_sig - 30.0, log_sig + 30.0)]
            start = np.r_[np.asarray(start, float)[:nt], log_sig]

        theta_hat = self.theta_hat
        if kind == "sd":
            theta_hat = np.r_[theta_hat, math.log(self.phi_hat[-1] / sy)]
        starts = [np.asarray(start, float), theta_hat]
        best = None
        for x0 in starts:
            res = _minimize(f, x0, bnds, jac=jac, constraints=cons)
            if best is None or _score(res) < _score(best):
                best = res
            if np.isfinite(_score(res)):
                break
        diag = np.r_[self.diag, False] if kind == "sd" else self.diag
        zero = diag & (best.x <= 1e-6)  # restart diagonal entries left at 0 (even there)
        if zero.any() or not np.isfinite(_score(best)):
            zero = zero | (diag & ~np.isfinite(_score(best)))
            for v0 in (0.02, 0.1, 0.5):
                x0 = best.x.copy()
                x0[zero] = v0
                res = _minimize(f, x0, bnds, jac=jac, constraints=cons)
                if _score(res) < _score(best) - 1e-12 * abs(best.fun):
                    best = res
        fun = float(best.fun)
        d = max(fun - self.base, 0.0)
        x = np.asarray(best.x)
        return math.copysign(math.sqrt(d), value - self.phi_hat[i]), x[: len(self.diag)]

    # ---------------------------------------------------------------- fixed effects
    def _fixed_stats(self, j: int, value: float):
        """Standardized cross-products of the model with beta_j fixed at ``value``: response
        y - value x_j, fixed columns all but x_j. With x_j = X_s g_j and y = sy y_s + X_s beta0:
        W' = [W_s (non-y) | X_s Gx[:, -j] | y_s + X_s (beta0 - value g_j) / sy]."""
        from .lmm.design import MixedStats

        st, sc = self.sc.std, self.sc
        k = st.cross.shape[1] - 1
        p = len(st.x_idx)
        keep = np.array([x for x in range(p) if x != j], dtype=int)
        G = sc.Gx[:, keep]
        if len(keep):
            G = G / np.linalg.norm(G, axis=0)  # unit columns: only their span matters
        # the offset's part in the span of the kept columns is absorbed by their coefficients:
        # leave it out, so that y'y holds no large cancelling terms (e.g. Days + 1e6)
        w = (sc.beta0 - value * sc.Gx[:, j]) / sc.sy
        if len(keep):
            w = w - G @ np.linalg.lstsq(G, w, rcond=None)[0]
        T = np.zeros((k + 1, k + len(keep) + 1))
        T[:k, :k] = np.eye(k)
        T[st.x_idx, k : k + len(keep)] = G
        T[k, -1] = 1.0
        T[st.x_idx, -1] = w
        cross = np.einsum("ab,jac,cd->jbd", T, st.cross, T)
        return MixedStats(
            cross=cross,
            n=st.n,
            x_idx=np.arange(k, k + len(keep)),
            z_idx=st.z_idx,
            y_shift=0.0,
            intercept_col=None,
        )

    def zeta_fixed(self, j: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        from .lmm.estimate import theta_layout

        st = self._fixed_stats(j, value)
        f = profiled_ml_criterion(st, self.p.block_sizes)
        diag = theta_layout(self.p.block_sizes)[2]
        bnds = [(0.0, None) if d else (None, None) for d in diag]
        best = None
        for x0 in (start, self.theta_hat):
            res = _minimize(f, x0, bnds, jac=True)
            if best is None or res.fun < best.fun:
                best = res
            if res.success and np.isfinite(res.fun):
                break
        zero = diag & (best.x <= 1e-6)  # restart diagonal entries left at 0 (see zeta_var)
        if zero.any():
            for v in (0.02, 0.1, 0.5):
                x0 = best.x.copy()
                x0[zero] = v
                res = _minimize(f, x0, bnds, jac=True)
                if res.fun < best.fun - 1e-12 * abs(best.fun):
                    best = res
        d = max(float(best.fun) - self.base, 0.0)
        return math.copysign(math.sqrt(d), value - self.p.beta[j]), np.asarray(best.x)

    # ---------------------------------------------------------------- intervals
    def interval(self, name_index: int, kind: str, z: float) -> tuple[float, float]:
        if kind == "fixed":
            j = name_index
            est = float(self.p.beta[j])
            step0 = float(math.sqrt(self.p.vcov[j, j]))
            zeta = self.zeta_fixed
            start = self.theta_hat
            lo_bound, hi_bound = -np.inf, np.inf
        else:
            j = name_index
            est = float(self.phi_hat[j])
            step0 = 0.1 * self.scale[j] if self.kind[j] != "cor" else 0.1
            zeta = self.zeta_var
            start = self.theta_hat
            lo_bound, hi_bound = self.bounds(j)
            if self.kind[j] == "sigma":
                lo_bound = 0.0
        return (
            self._side(zeta, j, est, -1, step0, lo_bound, z, start),
            self._side(zeta, j, est, +1, step0, hi_bound, z, start),
        )

    def _side(self, zeta, j, est, sign, step, bound, z, start) -> float:
        """The value on one side of est where |zeta| = z (bound if it is not reached)."""
        from scipy import optimize

        if sign < 0 and est <= bound:
            return float(bound)  # e.g. an SD estimated at 0: a one-sided interval
        prev_v, prev_z, prev_start = est, 0.0, start
        v = est + sign * step
        cache = {}
        for _ in range(200):
            if (sign > 0 and v >= bound) or (sign < 0 and v <= bound):
                v = float(bound)
                if not np.isfinite(v):
                    break
                zb, sb = zeta(j, v, prev_start)
                if abs(zb) < z:
                    return v
                cache[v] = (zb, sb)
                break
            zv, sv = zeta(j, v, prev_start)
            cache[v] = (zv, sv)
            if abs(zv) >= z:
                break
            # extrapolate linearly in zeta to the target, at most 4x the last step
            slope = (abs(zv) - abs(prev_z)) / abs(v - prev_v)
            nxt = abs(v - est) + (z - abs(zv)) / slope * 1.1 if slope > 0 else 4 * abs(v - est)
            nxt = min(nxt, abs(v - est) + 4 * abs(v - prev_v))
            prev_v, prev_z, prev_start = v, zv, sv
            v = est + sign * max(nxt, abs(v - est) * 1.01)
        a, b = prev_v, v
        sa = prev_start

        def g(x):
            if x == est:  # zeta is 0 at the estimate by definition
                return -z
            return abs(zeta(j, x, sa)[0]) - z

        if a == b:
            return float(a)
        return float(optimize.brentq(g, a, b, xtol=1e-12 * max(1.0, abs(b)), rtol=1e-12))


def _check_method(method) -> str:
    m = str(method).lower() if isinstance(method, str) else method
    if m not in ("wald", "profile", "bootstrap", "boot"):
        raise MethodError(
            f"`method` must be 'wald', 'profile' or 'bootstrap'; got {method!r}. 'wald' is "
            "quick (fixed effects only), 'profile' inverts the likelihood-ratio test, "
            "'bootstrap' resamples from the fitted model."
        )
    return "bootstrap" if m == "boot" else m


def _estimates(p) -> pd.Series:
    if isinstance(p, MultiPieces):
        vn = _multi_variance_names(p)
        fn = [_lme4_term(t) for t in p.fixed_names]
        phi = _multi_phi(p, [f.cov_re for f in p.multi], p.sigma)
        return pd.Series(np.r_[phi, p.beta], index=vn + fn)
    vn = variance_parameter_names(p)
    fn = [_lme4_term(t) for t in p.fixed_names]
    return pd.Series(np.r_[_phi_from(p, p.cov_re, p.sigma), p.beta], index=vn + fn)


def confint(
    fit,
    parm: str | list[str] | None = None,
    level: float = 0.95,
    method: Literal["wald", "profile", "bootstrap"] = "wald",
    *,
    n_boot: int = 500,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """Confidence intervals for the fixed effects and the variance parameters, as lme4's
    ``confint(m, oldNames = FALSE)``.

    Parameters
    ----------
    fit : ShrinkageFit or MixedFit
    parm : str or list of str, optional
        Parameters to report (default all): lme4's names, ``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sigma``, ``(Intercept)``, ``Days``; the fit's own
        names of the fixed effects (``Intercept``) are accepted too.
    level : float
        Coverage, in (0, 1).
    method : {"wald", "profile", "bootstrap"}
        ``"wald"``: estimate +- z se for the fixed effects; NaN for the variance parameters, as
        lme4 (a normal approximation is poor for an SD). ``"profile"``: the likelihood-ratio
        interval, lme4's ``profile``: for each parameter the signed square root of the rise in
        the ML deviance when it is fixed and all the others are re-optimised, solved for +-z by
        root finding (lme4 interpolates the profile with splines, so the two agree to ~1e-4).
        The deviance is evaluated on the estimator's centred and scaled columns, so the units
        of a covariate do not change the intervals.
        With several grouping factors the deviance is that of the sparse mixed-model equations
        on the data's scale (:class:`_MultiProfile`), optimised over the free parameters by
        BFGS (log SDs, atanh correlations).
        As in lme4, the profile is of the likelihood, so a REML fit is refitted by ML for it. An
        SD estimated at 0 gets the lower bound 0 (the interval is one-sided); a correlation
        whose profile stays below z up to +-1 gets the bound +-1. ``"bootstrap"``: the
        parametric bootstrap (lme4's ``bootMer``), percentile intervals from ``n_boot`` fits to
        responses simulated from the fitted model, reproducible with ``random_seed``. The
        simulation draws each group's cross-products exactly from their distribution, so it
        costs O(groups) per draw, not O(rows). Not available yet with several grouping
        factors (a :class:`~bayeshrink.errors.MethodError` says so).
    n_boot : int
        Bootstrap replications (method="bootstrap").
    random_seed : int, optional
        Seed of the bootstrap's generator (``numpy.random.default_rng``).

    Returns
    -------
    pandas.DataFrame
        One row per parameter, columns ``estimate``, ``lo``, ``hi`` (the bounds at
        (1 - level) / 2 and (1 + level) / 2); ``attrs`` hold ``level`` and ``method``.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> sleep = bs.load_dataset("sleepstudy")
    >>> m = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    >>> m.confint()[["lo", "hi"]].round(3)
                                       lo       hi
    sd_(Intercept)|Subject            NaN      NaN
    cor_Days.(Intercept)|Subject      NaN      NaN
    sd_Days|Subject                   NaN      NaN
    sigma                             NaN      NaN
    (Intercept)                   238.029  264.781
    Days                            7.438   13.497
    """
    from scipy import stats

    method = _check_method(method)
    level = _check_level(level)
    p = fit_pieces(fit)
    est = _estimates(p)
    names = list(est.index)
    if parm is None:
        chosen = names
    else:
        wanted = [parm] if isinstance(parm, str) else list(parm)
        chosen = []
        for w in wanted:
            w2 = _lme4_term(w) if w not in names else w
            if w2 not in names:
                raise ColumnError(
                    f"`parm` must name parameters of the fit; got {w!r}. Parameters are: "
                    f"{', '.join(map(repr, names))}."
                )
            chosen.append(w2)
    n_var = len(names) - len(p.fixed_names)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    lo = pd.Series(np.nan, index=names)
    hi = pd.Series(np.nan, index=names)
    if method == "wald":
        se = np.sqrt(np.diag(p.vcov))
        lo.iloc[n_var:] = p.beta - z * se
        hi.iloc[n_var:] = p.beta + z * se
    elif method == "profile":
        _check_long(fit, "profile intervals")
        prof = _MultiProfile(fit) if isinstance(p, MultiPieces) else _Profile(fit)
        for name in chosen:
            k = names.index(name)
            if k < n_var:
                a, b = prof.interval(k, "var", z)
            else:
                a, b = prof.interval(k - n_var, "fixed", z)
            lo[name], hi[name] = a, b
    else:
        _check_long(fit, "bootstrap intervals")
        if isinstance(p, MultiPieces):
            raise MethodError(
                "`method='bootstrap'` is available for one grouping factor only; got a model "
                f"with the factors {[f.name for f in p.multi]}. Use method='profile' or 'wald'."
            )
        draws = bootstrap(fit, n_boot=n_boot, random_seed=random_seed)
        q = draws.quantile([0.5 - level / 2.0, 0.5 + level / 2.0])
        lo[:] = q.iloc[0].to_numpy()
        hi[:] = q.iloc[1].to_numpy()
    out = pd.DataFrame({"estimate": est, "lo": lo, "hi": hi}).loc[chosen]
    out.attrs.update(level=level, method=method)
    return out


def refit_from_stats(stats, block_sizes, method: str, theta0: np.ndarray):
    """Fit the model to cross-products by REML or ML, started at ``theta0`` (the bootstrap's
    refits: started at the fitted theta they converge in a few steps). Returns beta, sigma and
    the random-effects covariance in the units of ``stats`` (its y column as it is: a shift of y
    is left in the intercept; see :class:`_Scale` for the map to the data's scale).

    The estimator's criterion is reached only here and in :func:`ml_deviance_function` /
    :func:`profiled_ml_criterion`."""
    from .lmm.estimate import ProfiledCriterion, theta_layout

    crit = ProfiledCriterion(stats, block_sizes, method)
    diag = theta_layout(block_sizes)[2]

    def f(theta):
        try:
            return crit.value_and_grad(theta)
        except np.linalg.LinAlgError:
            return 1e300, np.zeros(len(theta))

    bnds = [(0.0, None) if d else (None, None) for d in diag]
    best = _minimize(f, theta0, bnds, jac=True)
    for _ in range(2):  # SDs left at 0: restart from inside (the criterion is even there)
        zero = diag & (best.x <= 1e-6)
        if not zero.any():
            break
        improved = False
        for v in (0.02, 0.1, 0.5, 1.0):
            x0 = best.x.copy()
            x0[zero] = v
            res = _minimize(f, x0, bnds, jac=True)
            if res.fun < best.fun - 1e-12 * abs(best.fun):
                best, improved = res, True
        if not improved:
            break
    L, _, _, _, beta, r2, _ = crit.parts(best.x)
    sigma = math.sqrt(r2 / crit.dof)
    return beta, sigma, sigma**2 * L @ L.T


def bootstrap(fit, n_boot: int = 500, random_seed: int | None = None) -> pd.DataFrame:
    """Parametric bootstrap of a fit (lme4's ``bootMer``): ``n_boot`` refits to responses drawn
    from the fitted model; one row per replicate, the parameters of :func:`confint` as columns.

    Each group's cross-products with the simulated response are drawn exactly from their joint
    distribution (normal for D_j'y, a chi-square for the residual part of y'y), which is what a
    refit to simulated rows would see.
    """
    from .lmm.design import MixedStats

    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise DataError(f"`n_boot` must be an integer >= 2; got {n_boot!r}. E.g. n_boot=500.")
    p = fit_pieces(fit)
    _check_long(fit, "the bootstrap")
    sc = _Scale.of(p.stats)
    s: MixedStats = sc.std  # simulate and refit on the estimator's standardized columns
    beta_s, cov_s, sigma_s = sc.to_std(p.beta, p.cov_re, p.sigma)
    rng = np.random.default_rng(random_seed)
    k = s.cross.shape[1] - 1  # columns of D = [X | Z-only]
    DtD = s.cross[:, :k, :k]
    lam, U = np.linalg.eigh(DtD)
    tol = 1e-10 * np.maximum(lam.max(axis=1, keepdims=True), 1e-300)
    lam = np.where(lam > tol, lam, 0.0)
    rank = (lam > 0).sum(axis=1)
    root = U * np.sqrt(lam)[:, None, :]  # D'D = root root'
    J = len(s.n)
    q = len(p.random_names)
    chol_re = _chol_psd(cov_s)
    theta0 = _theta_from_phi(p, _phi_from(p, p.cov_re, p.sigma), sc.Gz)
    if chol_re is None or theta0 is None:  # pragma: no cover - cov_re is PSD by construction
        raise DataError("the fitted random-effects covariance is not positive semi-definite.")
    est0 = _estimates(p)
    rows = []
    for _ in range(n_boot):
        b = rng.standard_normal((J, q)) @ chol_re.T if q else np.zeros((J, 0))
        gamma = np.zeros((J, k))
        gamma[:, s.x_idx] += beta_s
        np.add.at(gamma, (slice(None), s.z_idx), b)
        u = rng.standard_normal((J, k))
        De = sigma_s * np.einsum("jab,jb->ja", root, u)  # D'e, e ~ N(0, sigma^2 I)
        resid = sigma_s**2 * (
            np.einsum("ja,ja->j", u, u * (lam > 0))
            + rng.chisquare(np.maximum(s.n - rank, 1e-300)) * (s.n > rank)
        )
        Dg = np.einsum("jab,jb->ja", DtD, gamma)
        cross = s.cross.copy()
        cross[:, :k, k] = cross[:, k, :k] = Dg + De
        cross[:, k, k] = (
            np.einsum("ja,ja->j", gamma, Dg) + 2 * np.einsum("ja,ja->j", gamma, De) + resid
        )
        st = MixedStats(
            cross=cross,
            n=s.n,
            x_idx=s.x_idx,
            z_idx=s.z_idx,
            y_shift=0.0,
            intercept_col=s.intercept_col,
        )
        b_s, sig_s, c_s = refit_from_stats(st, p.block_sizes, p.method, theta0)
        beta, cov_re, sigma = sc.from_std(b_s, c_s, sig_s)
        rows.append(np.r_[_phi_from(p, cov_re, sigma), beta])
    out = pd.DataFrame(rows, columns=est0.index)
    out.attrs.update(n_boot=n_boot, random_seed=random_seed)
    return out


# =============================================================================== fit methods


class InferenceMixin:
    """lme4's after-fit API as methods of every fit (ShrinkageFit and MixedFit)."""

    def predict(
        self,
        newdata=None,
        *,
        random: bool = True,
        allow_new_levels: bool = False,
        interval: Literal["prediction", "confidence"] | None = None,
        level: float = 0.95,
        fixef_uncertainty: bool = True,
    ) -> pd.Series | pd.DataFrame:
        """Predictions for new rows, as lme4's ``predict``; see :func:`bayeshrink.predict`."""
        return predict(
            self,
            newdata,
            random=random,
            allow_new_levels=allow_new_levels,
            interval=interval,
            level=level,
            fixef_uncertainty=fixef_uncertainty,
        )

    def confint(
        self,
        parm: str | list[str] | None = None,
        level: float = 0.95,
        method: Literal["wald", "profile", "bootstrap"] = "wald",
        *,
        n_boot: int = 500,
        random_seed: int | None = None,
    ) -> pd.DataFrame:
        """Confidence intervals as lme4's ``confint(oldNames = FALSE)``; see
        :func:`bayeshrink.confint`."""
        return confint(self, parm, level, method, n_boot=n_boot, random_seed=random_seed)

    @property
    def n_params(self) -> int:
        """Number of parameters: lme4's ``attr(logLik(m), "df")``."""
        return information(self)["n_params"]

    @property
    def aic(self) -> float:
        """lme4's ``AIC(m)``: -2 logLik + 2 n_params (the REML logLik for a REML fit)."""
        return information(self)["aic"]

    @property
    def bic(self) -> float:
        """lme4's ``BIC(m)``: -2 logLik + n_params log(n_obs)."""
        return information(self)["bic"]

    @property
    def deviance(self) -> float:
        """lme4 1.1-31's ``deviance(m)``: -2 logLik for an ML fit, and for a REML fit the REML
        criterion (lme4's ``REMLcrit(m)``, which lme4's deviance() returns there with a warning
        that the use is deprecated). Compare models by ``bs.anova``, which refits by ML."""
        return information(self)["deviance"]


# =============================================================================== pooling


def pooling_predictions(fit, newdata) -> pd.DataFrame:
    """Gelman & Hill's three fits for rows of known groups: ``no_pooling`` (each group's own
    least-squares fit of its random terms, the other fixed effects at their estimates:
    ``own_fit()``; the group mean for a one-way fit), ``complete_pooling`` (ordinary least
    squares ignoring the groups, from the fit's X'X and X'y) and ``partial_pooling`` (the BLUP
    prediction, :func:`predict`). NaN no-pooling where a group's data cannot fit its terms."""
    from .frames import as_frame

    pieces = fit_pieces(fit)
    _check_long(fit, "pooling predictions")
    df = as_frame(newdata)
    partial = predict(fit, df).to_numpy()
    X, Z = pieces.encoder(df)
    pos = _match_groups(pieces.labels, df[pieces.factor])
    if (pos < 0).any():
        raise DataError(
            f"`newdata` must hold levels of {pieces.factor!r} seen in the fit for pooling "
            "predictions; a new group has no own fit."
        )
    if _is_mixed(fit):
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


def response_values(fit, data) -> np.ndarray:
    """The response of ``fit`` evaluated on ``data`` (a transformation such as ``log(y)`` as in
    the formula)."""
    from .frames import as_frame

    df = as_frame(data)
    name = fit.response
    if name in df.columns:
        return df[name].to_numpy(dtype=float)
    if not _is_mixed(fit):
        raise ColumnError(f"`data` must have the response column {name!r}.")
    from formulae.matrices import DesignMatrices

    if fit.design.encoder is not None:
        df = fit.design.encoder.prepare(df)  # datetime covariates as the fit converted them
    dm = DesignMatrices(fit.design.spec.fixed, df, fit.design.spec.env())
    return np.asarray(dm.response.design_matrix, dtype=float).reshape(-1)


# =============================================================================== several factors


def _is_multi(fit) -> bool:
    """A fit with one or more grouping factors from the blocked estimator (``MultiFit``): the
    fit that gives one-factor views (``factor_fit``). Judged by that method, not by importing
    the class, which imports this module."""
    return callable(getattr(fit, "factor_fit", None)) and not isinstance(fit, FitResult)


@dataclass(frozen=True, eq=False)
class FactorPieces:
    """One grouping factor of a several-factor fit: what predict and confint need of it."""

    name: str
    components: tuple[str, ...]  # the data columns whose interaction is the factor
    labels: pd.Index
    terms: tuple[str, ...]
    block_sizes: tuple[int, ...]
    cov_re: np.ndarray  # (q, q)
    b: np.ndarray  # (n_levels, q) conditional modes
    cond_cov: np.ndarray  # (n_levels, q, q) lme4's postVar (diagonal blocks of Var(b | y))
    widths: tuple[int, ...]  # columns of each of the factor's blocks in the encoder's Z


@dataclass(frozen=True, eq=False)
class MultiPieces:
    """:class:`FitPieces` for a fit with several grouping factors (``MultiFit``).

    The factors are in lme4's order (most levels first); the random effects are stacked factor by
    factor, level by level, term by term (lme4's ``getME(m, "b")`` order), and ``T`` holds each
    factor's relative covariance factor (T T' = cov_re / sigma^2), so Lambda = blockdiag(I (x) T).
    """

    fit: object
    method: str
    response: str
    fixed_names: tuple[str, ...]
    multi: tuple[FactorPieces, ...]
    block_order: tuple[tuple[str, int], ...]  # the encoder's blocks: (factor, width), in order
    beta: np.ndarray
    vcov: np.ndarray
    sigma: float
    loglik: float
    n_obs: int
    n_theta: int
    encoder: object

    @property
    def factors(self) -> dict[str, tuple[pd.Index, tuple[str, ...]]]:
        return {f.name: (f.labels, f.terms) for f in self.multi}

    @property
    def n_params(self) -> int:
        return len(self.beta) + self.n_theta + 1

    @property
    def random_names(self) -> tuple[str, ...]:
        return tuple(f"{t}|{f.name}" for f in self.multi for t in f.terms)


def _multi_pieces(fit) -> MultiPieces:
    from .lmm.estimate import theta_layout

    d = fit.design
    comps = {}
    for blk in d.spec.blocks:
        comps.setdefault(blk.factor, blk.components)
    block_order = []
    seen: dict[str, int] = {}
    data = {f.name: f for f in d.factors}
    for blk in d.spec.blocks:
        k = seen.get(blk.factor, 0)
        block_order.append((blk.factor, data[blk.factor].block_sizes[k]))
        seen[blk.factor] = k + 1
    multi = tuple(
        FactorPieces(
            name=e.name,
            components=tuple(comps[e.name]),
            labels=e.labels,
            terms=tuple(e.terms),
            block_sizes=tuple(e.block_sizes),
            cov_re=np.asarray(e.cov, float),
            b=np.asarray(e.b, float),
            cond_cov=np.asarray(e.cond_cov, float),
            widths=tuple(e.block_sizes),
        )
        for e in fit.components.factors
    )
    n_theta = sum(len(theta_layout(f.block_sizes)[0]) for f in multi)
    return MultiPieces(
        fit=fit,
        method=fit.method,
        response=fit.response,
        fixed_names=tuple(fit.fixed_terms),
        multi=multi,
        block_order=tuple(block_order),
        beta=fit.fixef.to_numpy(dtype=float),
        vcov=fit.vcov.to_numpy(dtype=float),
        sigma=float(fit.sigma),
        loglik=float(fit.loglik),
        n_obs=int(fit.n_obs),
        n_theta=n_theta,
        encoder=d.encoder,
    )


def _rel_factor(cov: np.ndarray, sigma: float) -> np.ndarray:
    """T with T T' = cov / sigma^2 (lower triangular, zero columns where cov is singular)."""
    from .lmm.pls import psd_cholesky

    rel = cov / sigma**2
    return psd_cholesky(0.5 * (rel + rel.T))


class _MultiSystem:
    """lme4's penalised least squares for a several-factor fit, on the data's scale.

    With A = Z Lambda (N x q, sparse) and M = A'A + I, for a given Lambda the conditional
    modes u and beta solve the mixed model equations; Var(u | y, beta) = sigma^2 M^-1 and,
    counting the fixed effects' uncertainty (Henderson), the prediction error covariance of
    (beta, u) is sigma^2 [[X'X, X'A], [A'X, M]]^-1. Used for the exact joint (cross-factor)
    posterior covariance of a row's random effects and for the profiled ML deviance.
    """

    def __init__(self, fit, y=None, X=None):
        import scipy.sparse as sp

        d = fit.design
        self.factors = list(d.factors)
        self.y = np.asarray(d.y if y is None else y, float)
        self.X = np.asarray(d.X if X is None else X, float).reshape(len(self.y), -1)
        self.N = len(self.y)
        self.off, q = [], 0
        for f in self.factors:
            self.off.append(q)
            q += f.n_levels * f.q
        self.q = q
        rows, cols, vals = [], [], []
        for f, o in zip(self.factors, self.off, strict=True):
            for t in range(f.q):
                rows.append(np.arange(self.N))
                cols.append(o + f.codes * f.q + t)
                vals.append(f.Z[:, t])
        self.Z = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.N, q),
        )
        self.sp = sp

    def lam(self, Ts) -> object:
        """Lambda = blockdiag over factors of I_{n_f} (x) T_f (sparse)."""
        sp = self.sp
        return sp.block_diag(
            [
                sp.kron(sp.identity(f.n_levels), sp.csr_matrix(T))
                for f, T in zip(self.factors, Ts, strict=True)
            ],
            format="csc",
        )

    def z_new(self, Zf: dict[str, np.ndarray], pos: dict[str, np.ndarray]):
        """Rows' Z in the fit's random-effects order; a row with an unknown level (pos -1) of a
        factor gets no column for it."""
        sp = self.sp
        rows, cols, vals = [], [], []
        for f, o in zip(self.factors, self.off, strict=True):
            z, ps = Zf[f.name], pos[f.name]
            ok = np.flatnonzero(ps >= 0)
            for t in range(f.q):
                rows.append(ok)
                cols.append(o + ps[ok] * f.q + t)
                vals.append(z[ok, t])
        n = len(next(iter(pos.values())))
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n, self.q),
        )

    def solve(self, Ts):
        """Factor M = Lambda'Z'Z Lambda + I at the T_f's and solve the PLS problem."""
        from scipy.sparse.linalg import splu

        sp = self.sp
        L = self.lam(Ts)
        A = (self.Z @ L).tocsc()
        M = (A.T @ A + sp.identity(self.q, format="csc")).tocsc()
        lu = splu(M, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
        logdet = float(np.sum(np.log(np.abs(lu.U.diagonal()))))
        X, y = self.X, self.y
        AtX = np.asarray(A.T @ X) if X.shape[1] else np.zeros((self.q, 0))
        Aty = np.asarray(A.T @ y).reshape(-1)
        RZX = lu.solve(AtX) if X.shape[1] else np.zeros((self.q, 0))
        cu = lu.solve(Aty)
        H = X.T @ X - AtX.T @ RZX
        beta = np.linalg.solve(H, X.T @ y - AtX.T @ cu) if X.shape[1] else np.zeros(0)
        u = cu - RZX @ beta
        r = y - X @ beta - A @ u
        r2 = float(r @ r + u @ u)
        return {
            "L": L,
            "A": A,
            "lu": lu,
            "logdet": logdet,
            "H": H,
            "RZX": RZX,
            "beta": beta,
            "u": u,
            "r2": r2,
        }

    def ml_deviance(self, Ts, sigma: float | None = None) -> float:
        """-2 log L (ML) at the relative factors ``Ts``: beta profiled out, sigma given or
        profiled (sigma^2 = r2 / N)."""
        st = self.solve(Ts)
        if sigma is None:
            return st["logdet"] + self.N * (1.0 + math.log(2.0 * math.pi * st["r2"] / self.N))
        s2 = sigma * sigma
        return st["logdet"] + st["r2"] / s2 + self.N * math.log(2.0 * math.pi * s2)


def _split_z(p: MultiPieces, Z: np.ndarray) -> dict[str, np.ndarray]:
    """The encoder's Z (every block in the formula's order) as one matrix per factor, with its
    columns in the factor's term order."""
    parts: dict[str, list[np.ndarray]] = {}
    start = 0
    for name, width in p.block_order:
        parts.setdefault(name, []).append(Z[:, start : start + width])
        start += width
    return {k: np.hstack(v) for k, v in parts.items()}


def _factor_labels(df: pd.DataFrame, comps: tuple[str, ...]) -> pd.Series:
    """A factor's level of each new row, labelled as the fit labels it (``c1:S01``)."""
    from .frames import interaction_labels

    return interaction_labels(df, comps)


def _predict_multi(fit, df, p: MultiPieces, random, allow_new_levels, interval, level, fixef_unc):
    comps = [c for f in p.multi for c in f.components] if random else []
    p.encoder.check_columns(df, extra=tuple(dict.fromkeys(comps)))
    X, Zall = p.encoder.evaluate(df)
    Zf = _split_z(p, Zall)
    n = len(df)
    mean = X @ p.beta + p.encoder.offset(df)
    pos: dict[str, np.ndarray] = {}
    for f in p.multi:
        if not random:
            pos[f.name] = np.full(n, -1)
            continue
        vals = _factor_labels(df, f.components)
        ps = _match_groups(f.labels, vals)
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
        system = _MultiSystem(fit)
        st = system.solve([_rel_factor(f.cov_re, p.sigma) for f in p.multi])
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


def _multi_variance_names(p: MultiPieces) -> list[str]:
    names = []
    for f in p.multi:
        start = 0
        for size in f.block_sizes:
            terms = [_lme4_term(t) for t in f.terms[start : start + size]]
            for c in range(size):
                names.append(f"sd_{terms[c]}|{f.name}")
                for r in range(c + 1, size):
                    names.append(f"cor_{terms[r]}.{terms[c]}|{f.name}")
            start += size
    return [*names, "sigma"]


def _multi_phi(p: MultiPieces, covs, sigma: float) -> np.ndarray:
    """(sd, cor, ..., sigma) in lme4's order from each factor's covariance and sigma."""
    out = []
    for f, cov in zip(p.multi, covs, strict=True):
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        start = 0
        for size in f.block_sizes:
            for c in range(start, start + size):
                out.append(sd[c])
                for r in range(c + 1, start + size):
                    den = sd[r] * sd[c]
                    out.append(cov[r, c] / den if den > 0 else math.nan)
            start += size
    return np.array([*out, sigma])


def _multi_covs(p: MultiPieces, phi: np.ndarray) -> list[np.ndarray]:
    """Each factor's covariance from (sd, cor, ...) in lme4's order (inverse of _multi_phi)."""
    covs, i = [], 0
    for f in p.multi:
        q = len(f.terms)
        sd = np.zeros(q)
        cor = np.eye(q)
        start = 0
        for size in f.block_sizes:
            for c in range(start, start + size):
                sd[c] = phi[i]
                i += 1
                for r in range(c + 1, start + size):
                    cor[r, c] = cor[c, r] = phi[i]
                    i += 1
            start += size
        covs.append(cor * np.outer(sd, sd))
    return covs


class _MultiProfile:
    """lme4's ``profile`` of a several-factor fit: the signed root of the rise in the ML deviance
    when one parameter is held fixed and every other one re-optimised, solved for +-z.

    The deviance is evaluated by :class:`_MultiSystem` on the data's scale. The free parameters
    are optimised on an unbounded scale (log for SDs and sigma, atanh for correlations); for a
    fixed effect, sigma is profiled out in closed form and the others are the relative SDs and
    correlations. An SD estimated at 0 gets the lower bound 0 (one-sided, as lme4).
    """

    def __init__(self, fit):
        if fit.method != "ml":
            fit = _refit(fit, "ml")
        self.fit = fit
        self.p = _multi_pieces(fit)
        self.system = _MultiSystem(fit)
        p = self.p
        self.phi = _multi_phi(p, [f.cov_re for f in p.multi], p.sigma)
        self.n_var = len(self.phi)
        self.is_cor = np.array([n.startswith("cor_") for n in _multi_variance_names(p)], dtype=bool)
        self.d_min = self._dev_phi(self.phi)

    def _to_x(self, phi, idx):
        cor = self.is_cor[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(cor, np.arctanh(np.clip(phi, -1 + 1e-12, 1 - 1e-12)), np.log(phi))

    def _to_phi(self, x, idx):
        return np.where(self.is_cor[idx], np.tanh(x), np.exp(x))

    def _dev_phi(self, phi) -> float:
        covs = _multi_covs(self.p, phi)
        sigma = float(phi[-1])
        try:
            return self.system.ml_deviance([_rel_factor(c, sigma) for c in covs], sigma)
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            return 1e300

    @staticmethod
    def _min(f, x0):
        from scipy import optimize

        if len(x0) == 0:
            return f(x0), x0
        best = optimize.minimize(f, x0, method="BFGS", options={"gtol": 1e-7, "maxiter": 500})
        return float(best.fun), best.x

    def zeta_var(self, i: int, value: float, start):
        free = [k for k in range(self.n_var) if k != i and np.isfinite(self.phi[k])]
        free = [k for k in free if self.is_cor[k] or self.phi[k] > 0]

        def f(x):
            phi = self.phi.copy()
            phi[i] = value
            phi[free] = self._to_phi(x, free)
            return self._dev_phi(phi)

        x0 = self._to_x(self.phi[free], free) if start is None else start
        d, x = self._min(f, x0)
        return d, x

    def zeta_fixed(self, j: int, value: float, start):
        X = self.system.X
        keep = [c for c in range(X.shape[1]) if c != j]
        sysj = _MultiSystem(self.fit, y=self.system.y - X[:, j] * value, X=X[:, keep])
        p = self.p
        sig = self.phi[-1]
        rel = self.phi[:-1].copy()
        rel[~self.is_cor[:-1]] /= sig
        free = [k for k in range(len(rel)) if self.is_cor[k] or rel[k] > 0]

        def f(x):
            r = rel.copy()
            r[free] = np.where(self.is_cor[free], np.tanh(x), np.exp(x))
            covs = _multi_covs(p, np.r_[r, 1.0])
            try:
                return sysj.ml_deviance([_rel_factor(c, 1.0) for c in covs])
            except (np.linalg.LinAlgError, RuntimeError, ValueError):
                return 1e300

        if start is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                start = np.where(self.is_cor[free], np.arctanh(rel[free]), np.log(rel[free]))
        return self._min(f, start)

    def interval(self, k: int, kind: str, z: float) -> tuple[float, float]:
        if kind == "var":
            est = float(self.phi[k])
            if self.is_cor[k]:
                lo_b, hi_b = -1.0, 1.0
            else:
                lo_b, hi_b = 0.0, math.inf
            zeta = self.zeta_var
        else:
            est = float(self.p.beta[k])
            lo_b, hi_b = -math.inf, math.inf
            zeta = self.zeta_fixed
        out = []
        for sign in (-1.0, 1.0):
            bound = lo_b if sign < 0 else hi_b
            if kind == "var" and not self.is_cor[k] and est == 0.0 and sign < 0:
                out.append(0.0)
                continue
            out.append(self._side(zeta, k, est, sign, bound, z, kind))
        return out[0], out[1]

    def _side(self, zeta, k, est, sign, bound, z, kind) -> float:
        """The value on one side of ``est`` where |zeta| = z (``bound`` if it is not reached);
        each profile optimisation starts where the previous one ended."""
        from scipy import optimize

        state = {"x": None}

        def zf(v):
            d, x = zeta(k, v, state["x"])
            state["x"] = x
            return math.sqrt(max(d - self.d_min, 0.0))

        if kind == "var" and not self.is_cor[k]:
            # multiplicative steps on an SD
            def at(t):
                return est * math.exp(sign * t)
        else:
            scale = math.sqrt(self.p.vcov[k, k]) if kind == "fixed" else 0.1 * (1 - est * est)

            def at(t):
                return est + sign * t * scale

        t_prev, t = 0.0, 0.25 if kind == "var" else 0.5 * z
        for _ in range(60):
            v = at(t)
            if math.isfinite(bound) and sign * (v - bound) >= 0:
                v_b = bound - sign * 1e-9
                if zf(v_b) < z:
                    return bound
                v = v_b
                t = None
            val = zf(v)
            if val >= z:
                a = at(t_prev)
                b = v
                g = lambda u: zf(u) - z  # noqa: E731
                return float(optimize.brentq(g, a, b, xtol=1e-12 * max(abs(est), 1.0), rtol=1e-12))
            if t is None:
                return bound
            t_prev, t = t, t * 1.6
        return bound
