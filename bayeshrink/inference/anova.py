"""Information criteria (lme4's ``logLik``, ``AIC``, ``BIC``, ``deviance``) and ``anova``
between nested fits."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..api import FitResult
from ..errors import (
    DataError,
    DataTypeError,
    MethodError,
    RefitWarning,
)
from .model import ModelPieces, is_multi, model_of, refit_by_method

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
    if not isinstance(fit, FitResult) and not is_multi(fit):
        raise DataTypeError(
            f"`fit` must be a fitted model (ShrinkageFit or MixedFit from bs.fit); got "
            f"{type(fit).__name__}."
        )
    ll = float(fit.loglik)
    if fit.data_kind == "summary":
        k = 2
        nobs = fit.n_groups - (1 if fit.method == "reml" else 0)
    else:
        k = model_of(fit).n_params
        nobs = fit.n_obs
    return {
        "loglik": ll,
        "n_params": k,
        "aic": -2.0 * ll + 2.0 * k,
        "bic": -2.0 * ll + k * math.log(nobs),
        "deviance": _deviance(fit),
    }


# =============================================================================== anova


def _response_moments(fit):
    """The response of a fit as far as the fit keeps it: its rows (several factors), or per
    group of its one factor n, sum of y (None without an intercept column) and sum of y^2."""
    if is_multi(fit):
        off = getattr(fit.design, "offset", None)
        return fit.design.y if off is None else fit.design.y + off  # the response itself
    if hasattr(fit, "design"):
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


def _totals(m) -> tuple[int, float | None, float]:
    if isinstance(m, np.ndarray):
        return len(m), float(m.sum()), float(m @ m)
    n, s, q = m
    return int(n.sum()), None if s is None else float(s.sum()), float(q.sum())


def _same_data(fits, names) -> None:
    """The same number of rows, response and response values: row by row between fits that
    keep their rows, group by group between one-factor fits of one factor, by sum and sum of
    squares otherwise."""
    p0, m0 = model_of(fits[0]), _response_moments(fits[0])
    for f, name in zip(fits[1:], names[1:], strict=True):
        p, m = model_of(f), _response_moments(f)
        (n0, s0, q0), (n, s, q) = _totals(m0), _totals(m)
        rows = isinstance(m, np.ndarray) and isinstance(m0, np.ndarray)
        groups = not isinstance(m, np.ndarray) and not isinstance(m0, np.ndarray)
        why = None
        if n != n0:
            why = f"{n0} and {n} observations"
        elif p.response != p0.response:
            why = f"responses {p0.response!r} and {p.response!r}"
        elif groups and (
            p.terms[0].name != p0.terms[0].name
            or not p.terms[0].labels.equals(p0.terms[0].labels)
            or not np.array_equal(m[0], m0[0])
        ):
            why = "different groups or group sizes"
        elif (
            (rows and not np.allclose(m, m0, rtol=1e-12, atol=0))
            or (groups and not np.allclose(m[2], m0[2], rtol=1e-9, atol=0))
            or (
                groups
                and m[1] is not None
                and m0[1] is not None
                and not np.allclose(m[1], m0[1], rtol=1e-9, atol=1e-9)
            )
            or not math.isclose(q, q0, rel_tol=1e-9)
            or (s is not None and s0 is not None and not math.isclose(s, s0, rel_tol=1e-9))
        ):
            why = "different response values"
        if why is not None:
            raise DataError(
                f"the models compared by `anova` must be fitted to the same rows and response; "
                f"{names[0]} and {name} have {why}. Fit every model to the same data frame "
                "(with the same missing-value handling)."
            )


def _blocks(p: ModelPieces) -> list[tuple[str, frozenset]]:
    """(factor, terms) of every random block: nesting is judged factor by factor."""
    return [(t.name, frozenset(block)) for t in p.terms for block in t.blocks()]


def _nested(small: ModelPieces, big: ModelPieces) -> str | None:
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
    *fits : ShrinkageFit, MixedFit or MultiFit
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
    pieces = [model_of(f) for f in fits]
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
        fits = [refit_by_method(f, "ml") if f.method == "reml" else f for f in fits]
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


def _oneway_formula(p: ModelPieces) -> str:
    return f"{p.response} ~ 1 + (1 | {p.terms[0].name})"
