"""From a GLMM formula and a data frame to the estimator's arrays.

The left side may be ``cbind(successes, failures)`` (each an expression of columns, e.g.
``cbind(incidence, size - incidence)``), a 0/1 or boolean column, a column with two levels
(strings or a Categorical: the first level, R's reference, is the failure), a proportion with
``weights=`` (the number of trials), or counts for Poisson. ``offset(expr)`` terms on the right
are taken out and summed into the offset. The fixed effects and the grouping factors are
evaluated by the linear mixed model's formula code (:class:`bayeshrink.lmm.multi.MultiDesign`).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import (
    ColumnError,
    DataError,
    DataTypeError,
    FormulaError,
    NonIntegerWarning,
    rows_verb,
)
from ..formula import FORMULA_FUNCTIONS
from ..formula.parse import cbind_arguments, split_offsets
from ..frames import Missing, as_frame, check_missing, check_missing_option, factorize
from .family import Family

__all__ = ["GlmmDesign", "evaluate_expression", "glmm_design"]

_RESPONSE = "bsglmm_response_"


def evaluate_expression(expr: str, df: pd.DataFrame, what: str) -> np.ndarray:
    """Evaluate an arithmetic expression of columns (with log, exp, sqrt, ...)."""
    names = set(re.findall(r"[A-Za-z_][A-Za-z_0-9.]*", expr)) - set(FORMULA_FUNCTIONS)
    absent = sorted(n for n in names if n not in df.columns)
    if absent:
        raise ColumnError(
            f"{what} names variables that are not columns of the data: "
            f"{', '.join(map(repr, absent))}. Columns are: "
            f"{', '.join(map(repr, [str(c) for c in df.columns][:20]))}."
        )
    env = {n: df[n].to_numpy() for n in names}
    try:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            value = eval(expr, {"__builtins__": {}}, {**FORMULA_FUNCTIONS, **env})
    except Exception as exc:
        raise FormulaError(f"{what} could not be evaluated: {exc}.") from exc
    value = np.asarray(value)
    if value.ndim == 0:
        value = np.full(len(df), value.item())
    return value


@dataclass(frozen=True, eq=False)
class GlmmDesign:
    """The evaluated GLMM: response on the family's scale, prior weights, offset, X, factors."""

    formula: str
    response: str
    y: np.ndarray  # binomial: proportion of successes; poisson: counts
    wt: np.ndarray  # binomial: trials; poisson: prior weights (1)
    offset: np.ndarray
    X: np.ndarray
    fixed_names: tuple[str, ...]
    factors: tuple  # lmm.pls.FactorData, lme4's order
    n_dropped: int
    offset_exprs: tuple[str, ...] = ()
    encoder: object = field(default=None, repr=False)
    block_factors: tuple[str, ...] = ()  # the factor of each block of the encoder, in order
    response_kind: str = "numeric"  # "cbind", "binary", "levels", "proportion", "counts"
    levels: tuple = ()  # two-level response: (failure, success)
    index: pd.Index | None = None  # the data's index of every fitted row (kept rows)


def _binary(values: pd.Series, response: str) -> tuple[np.ndarray, str, tuple]:
    """A 0/1, boolean or two-level response as 0.0/1.0 (NaN kept)."""
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float, na_value=np.nan), "binary", (False, True)
    if isinstance(values.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(values):
        if isinstance(values.dtype, pd.CategoricalDtype):
            levels = [c for c in values.cat.categories if (values == c).any()]
        else:
            levels = sorted(values.dropna().unique(), key=str)
        if len(levels) != 2:
            raise DataError(
                f"the response {response!r} must have two levels for family='binomial' (the "
                f"first is the failure, as in R); got {len(levels)} "
                f"({', '.join(map(repr, levels[:6]))}). Recode it to two levels or 0/1."
            )
        out = np.where(values.isna(), np.nan, (values == levels[1]).to_numpy(dtype=float))
        return out, "levels", tuple(levels)
    return values.to_numpy(dtype=float, na_value=np.nan), "binary", (0, 1)


def _design_class():
    from ..lmm.multi import MultiDesign

    class GlmmMultiDesign(MultiDesign):
        """The linear model's design with only the checks every mixed model shares
        (:meth:`~bayeshrink.lmm.multi.MultiDesign.check_terms`): a GLMM has no residual
        variance, so it may have one random effect per row (an observation-level effect, e.g.
        grouseticks' (1 | INDEX))."""

        def _check(self, df):
            self.check_terms()

    return GlmmMultiDesign


def glmm_design(
    data, formula: str, family: Family, weights=None, missing: Missing = "raise"
) -> GlmmDesign:
    check_missing_option(missing)
    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(
            "`formula` must be a string such as 'cbind(incidence, size - incidence) ~ period + "
            f"(1 | herd)'; got {formula!r}."
        )
    df = as_frame(data)
    data_index = df.index
    df = df.reset_index(drop=True)
    if len(df) == 0:
        raise DataError("`data` must have at least one row; got an empty frame.")
    lhs, rhs = (s.strip() for s in formula.split("~", 1))
    kept, offsets = split_offsets(rhs)
    offset = np.zeros(len(df))
    for expr in offsets:
        offset = offset + evaluate_expression(expr, df, f"`offset({expr})`").astype(float)

    kind, levels = "numeric", ()
    args = cbind_arguments(lhs)
    cb = args is not None
    if cb:
        if family.name != "binomial":
            raise FormulaError(
                f"`cbind(successes, failures)` is a binomial response; got family="
                f"{family.name!r}. Pass family='binomial'."
            )
        if weights is not None:
            raise DataError(
                "`weights` must not be given with a cbind(successes, failures) response; the "
                f"trials are its sum; got weights={weights!r}. Drop `weights`."
            )
        succ = evaluate_expression(args[0], df, f"`{args[0]}`").astype(float)
        fail = evaluate_expression(args[1], df, f"`{args[1]}`").astype(float)
        trials = succ + fail
        raw = np.column_stack([succ, fail])
        kind = "cbind"
    else:
        if lhs.isidentifier():
            if lhs not in df.columns:
                evaluate_expression(lhs, df, "`formula`")  # raises the ColumnError
            col = df[lhs]
        else:
            col = pd.Series(evaluate_expression(lhs, df, f"the response {lhs!r}"))
        if family.name == "binomial":
            y01, kind, levels = _binary(col, lhs)
        else:
            if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                raise DataTypeError(
                    f"the response {lhs!r} must hold counts for family='poisson'; got "
                    f"{col.dtype} values. Convert it to non-negative integers."
                )
            y01 = col.to_numpy(dtype=float, na_value=np.nan)
            kind = "counts"
        raw = y01[:, None]
    if weights is not None:
        wcol = weights if not isinstance(weights, str) else None
        if isinstance(weights, str):
            if weights not in df.columns:
                raise ColumnError(
                    f"`weights` must name a column of the data; got {weights!r}. Columns are: "
                    f"{', '.join(map(repr, [str(c) for c in df.columns][:20]))}."
                )
            wcol = df[weights]
        wser = pd.Series(np.asarray(wcol).reshape(-1))
        if isinstance(wcol, pd.Series):
            wser = wcol
        if not pd.api.types.is_numeric_dtype(wser) or pd.api.types.is_bool_dtype(wser):
            name = repr(weights) if isinstance(weights, str) else "the array given"
            raise DataTypeError(
                f"`weights` must be numbers (the trials for a binomial proportion, prior weights "
                f"for Poisson); the column {name} holds {wser.dtype} values (e.g. "
                f"{wser.iloc[0]!r}). Convert it first, e.g. with pd.to_numeric."
            )
        wt = wser.to_numpy(dtype=float, na_value=np.nan).reshape(-1)
        if len(wt) != len(df):
            raise DataError(
                f"`weights` must have one value per row ({len(df)}); got {len(wt)}. Pass a "
                "column name or an array of the data's length."
            )
        raw = np.column_stack([raw, wt])
    rhs_clean = " + ".join(kept) if kept else "1"
    inner = f"{_RESPONSE} ~ {rhs_clean}"
    # rows with missing values in anything the model uses
    from ..lmm.multi import parse_multi

    spec = parse_multi(inner)
    # formulae lists a literal (the 2 of I(x**2)) as the variable ''
    spec = replace(spec, variables=frozenset(v for v in spec.variables if v))
    used = [c for c in df.columns if c in spec.variables and c != _RESPONSE]
    bad = df[used].isna().any(axis=1).to_numpy().copy()
    for c in used:
        if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]):
            bad |= ~np.isfinite(df[c].to_numpy(dtype=float, na_value=np.nan))
    bad |= ~np.isfinite(raw).all(axis=1) | ~np.isfinite(offset)
    keep = check_missing(
        df.set_axis(data_index),  # the rows named by the data's own labels
        bad,
        "the variables of `formula` (response, offset and weights included)",
        "NaN, inf or a missing value",
        missing,
        "Drop or impute them first",
    )
    n_dropped = 0
    if keep is not None:
        n_dropped = int(bad.sum())
        df, raw, offset = df[keep].reset_index(drop=True), raw[keep], offset[keep]
        data_index = data_index[np.asarray(keep)]
        if cb:
            succ, fail, trials = succ[keep], fail[keep], trials[keep]
        if len(df) == 0:
            raise DataError("no rows are left after dropping the rows with missing values.")
    idx = data_index  # rows are named by the data's own labels

    # ------------------------------------------------------------------ the response
    if family.name == "binomial":
        if cb:
            neg = (succ < 0) | (fail < 0)
            if neg.any():
                raise DataError(
                    f"the response {lhs!r} must have successes and failures >= 0 (successes <= "
                    f"trials); {rows_verb(idx[neg], 'gives', 'give')} a negative count (e.g. "
                    "successes > trials in cbind(y, n - y)). Check the columns."
                )
            zero = trials == 0
            with np.errstate(invalid="ignore", divide="ignore"):
                y = np.where(zero, 0.0, succ / np.where(zero, 1.0, trials))
            wt = trials
            _warn_non_integer(
                np.concatenate([succ, fail]), "the counts of the cbind() response", "binomial"
            )
        elif weights is not None:
            y, wt = raw[:, 0], raw[:, 1]
            out = (y < 0) | (y > 1)
            if out.any():
                raise DataError(
                    f"the response {lhs!r} must be a proportion in [0, 1] when `weights` gives "
                    f"the trials; {rows_verb(idx[out], 'lies', 'lie')} outside. Pass "
                    "cbind(successes, failures) for counts."
                )
            if (wt < 0).any():
                raise DataError(
                    f"`weights` must be >= 0 (the numbers of trials); "
                    f"{rows_verb(idx[wt < 0], 'is', 'are')} negative."
                )
            kind = "proportion"
            _warn_non_integer(y * wt, "the successes (response x weights)", "binomial")
        else:
            y = raw[:, 0]
            out = (y != 0) & (y != 1)
            if out.any():
                raise DataError(
                    f"the response {lhs!r} must be 0/1, boolean or two-level for "
                    f"family='binomial'; {rows_verb(idx[out], 'holds', 'hold')} other values (e.g. "
                    f"{y[out][0]:g}). For counts out of n trials write cbind({lhs}, n - {lhs}); "
                    "for proportions pass weights= with the trials."
                )
            wt = np.ones(len(y))
    else:
        y = raw[:, 0]
        wt = raw[:, 1] if weights is not None else np.ones(len(y))
        neg = y < 0
        if neg.any():
            raise DataError(
                f"the response {lhs!r} must hold counts >= 0 for family='poisson'; "
                f"{rows_verb(idx[neg], 'is', 'are')} negative (e.g. {y[neg][0]:g})."
            )
        _warn_non_integer(y, f"the response {lhs!r}", "poisson")
        if (wt < 0).any():
            raise DataError(
                f"`weights` must be >= 0; {rows_verb(idx[wt < 0], 'is', 'are')} negative."
            )

    _check_information(wt, family.name, kind, weights)
    frame = df.copy()
    frame[_RESPONSE] = y
    md = _design_class().from_formula(frame, inner, "raise", spec=spec)
    _check_weighted_rank(md.X, wt, list(md.fixed_names), family.name)
    block_factors = tuple(b.factor for b in spec.blocks)
    factors = []
    for fd in md.factors:
        # a single integer (or Categorical) column keeps its own order, as R's factor(): 1, 2, 10
        if ":" not in fd.name and not pd.api.types.is_string_dtype(frame[fd.name]):
            codes, labels = factorize(frame[fd.name])
            fd = replace(fd, codes=np.asarray(codes, dtype=np.intp), labels=labels.rename(fd.name))
        factors.append(fd)
    return GlmmDesign(
        formula=formula,
        response=lhs,
        y=np.asarray(y, dtype=float),
        wt=np.asarray(wt, dtype=float),
        offset=np.asarray(offset, dtype=float),
        X=md.X,
        fixed_names=md.fixed_names,
        factors=tuple(factors),
        n_dropped=n_dropped,
        offset_exprs=tuple(offsets),
        encoder=md.encoder,
        block_factors=block_factors,
        response_kind=kind,
        levels=levels,
        index=data_index,
    )


def _check_information(wt, family: str, kind: str, weights) -> None:
    """Rows of weight 0 carry no information; with every row so there is nothing to fit."""
    if (wt > 0).any():
        return
    if family == "binomial":
        where = (
            "the cbind(successes, failures) counts sum to 0 on every row"
            if kind == "cbind"
            else f"`weights` (the trials) are 0 on every row ({weights!r})"
        )
        raise DataError(
            f"the data hold no trials: {where}, so there is no information to fit. Give the "
            "numbers of trials (e.g. weights='size' for a proportion, or cbind(successes, "
            "failures) for counts) or check the column."
        )
    raise DataError(
        f"the data carry no weight: `weights` ({weights!r}) is 0 on every row, so there is no "
        "information to fit. Pass positive prior weights, or leave `weights` out (1 per row)."
    )


def _check_weighted_rank(X, wt, names: list[str], family: str) -> None:
    """The fixed effects must be estimable from the rows that carry weight: a column that is 0
    on every such row (a level whose rows have no trials) is named, else the rank check."""
    w = wt > 0
    if w.all() or X.shape[1] == 0:
        return
    Xw = X[w]
    empty = [n for n, c in zip(names, Xw.T, strict=True) if not np.any(c != 0)]
    if empty:
        what = "trials" if family == "binomial" else "weight"
        one = len(empty) == 1
        raise DataError(
            f"the fixed effects are rank deficient on the rows that carry weight: "
            f"{', '.join(map(repr, empty))} {'has' if one else 'have'} no {what} ("
            f"{'its column is' if one else 'their columns are'} 0 on every row with {what} > 0), "
            f"so {'it is' if one else 'they are'} not estimable. Drop those rows or merge the "
            "level into another; lme4 would drop the column silently, bayeshrink does not."
        )
    from ..lmm.design import check_fixed_rank

    try:
        check_fixed_rank(Xw.T @ Xw, names)
    except DataError as exc:
        raise DataError(
            f"{exc} (on the rows that carry weight: rows of weight 0 give no information)"
        ) from None


_NON_INTEGER_NOTE = {
    "binomial": (
        "bayeshrink fits them as given: its log-likelihood is the binomial one extended to "
        "non-integer counts with gamma functions, lgamma(n + 1) - lgamma(s + 1) - "
        "lgamma(n - s + 1) + s log(p) + (n - s) log(1 - p) for s successes of n trials. lme4's "
        "glmer rounds instead (binomial()$aic uses dbinom(round(n*y), round(n), p)), so its "
        "estimates and logLik differ from these. Round the counts first to match lme4"
    ),
    "poisson": (
        "bayeshrink fits them as given: its log-likelihood is the Poisson one extended to "
        "non-integer counts, y log(mu) - mu - lgamma(y + 1). lme4's glmer evaluates dpois, "
        "which is 0 at a non-integer count (warnings, a logLik of -Inf), so it gives no "
        "comparable fit. Round the counts first to match lme4"
    ),
}


def _warn_non_integer(values, what: str, family: str) -> None:
    frac = np.abs(values - np.round(values)) > 1e-7 * np.maximum(1.0, np.abs(values))
    if frac.any():
        warnings.warn(
            f"{what} should be whole numbers; {int(frac.sum())} are not (e.g. "
            f"{values[frac][0]:g}). {_NON_INTEGER_NOTE[family]}.",
            NonIntegerWarning,
            stacklevel=4,
        )
