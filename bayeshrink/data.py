"""Validation and per-group sufficient statistics.

Everything downstream of this module works from :class:`GroupStats`, one row per group:

* long data (one row per observation): ``n`` (group size), ``mean`` (the group mean, the
  no-pooling estimate) and ``ssw`` (the within-group sum of squares about that mean);
* summary data (one row per group): ``mean`` (the given estimate) and ``se`` (its known standard
  error).

The statistics are computed stably: the data are centred on a reference value before summing and
the within-group sum of squares is a sum of squared deviations from the group mean (two passes,
never ``sum(y^2) - n * mean^2``), so y around 1e9 or 1e-8 loses no accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from .engines import engine_group_stats
from .errors import DataError, DataTypeError, describe_rows
from .frames import (
    Missing,
    as_frame,
    check_missing,
    check_missing_option,
    column,
    factorize,
    is_engine_frame,
    numeric,
    pow2_exponent,
)
from .response import check_normal_response

__all__ = ["GroupStats", "Missing", "group_stats", "summary_stats"]


@dataclass(frozen=True, eq=False)
class GroupStats:
    """Per-group sufficient statistics, in the order of ``labels``.

    Attributes
    ----------
    labels : pandas.Index
        Group labels (sorted where the labels can be sorted), named after the group column.
    mean : ndarray
        Group mean (long data) or given estimate (summary data): the no-pooling estimate.
    n : ndarray
        Group sizes (int) for long data; NaN for summary data unless sizes were given.
    ssw : ndarray or None
        Within-group sum of squares about the group mean (long data only).
    se : ndarray or None
        Known standard errors of ``mean`` (summary data only).
    data_kind : {"long", "summary"}
    response : str
        Name of the response (``y``) or estimate column.
    mean_lo : ndarray or None
        What rounding ``mean`` to float64 left out (long data from the data paths): the exact
        group mean is ``mean + mean_lo``. The estimator uses it, so a spread far below the
        data's level (1e12 + N(0, 1e-3)) keeps its accuracy.
    """

    labels: pd.Index
    mean: np.ndarray
    n: np.ndarray
    ssw: np.ndarray | None
    se: np.ndarray | None
    data_kind: Literal["long", "summary"]
    response: str = "y"
    mean_lo: np.ndarray | None = None

    @property
    def n_groups(self) -> int:
        return len(self.labels)

    @property
    def n_obs(self) -> int:
        """Number of observations (long data) or of groups (summary data)."""
        return int(self.n.sum()) if self.data_kind == "long" else self.n_groups

    @classmethod
    def from_arrays(
        cls,
        *,
        labels,
        mean,
        n=None,
        ssw=None,
        se=None,
        response: str = "y",
    ) -> GroupStats:
        """Build statistics computed elsewhere (e.g. by a database's GROUP BY).

        Give ``n`` and ``ssw`` for long data, or ``se`` for summary data.
        """
        labels = pd.Index(labels)
        k = len(labels)
        mean = _float_array(mean, "mean", k)
        if se is not None:
            se = _float_array(se, "se", k)
            n_arr = np.full(k, np.nan) if n is None else _float_array(n, "n", k)
            stats = cls(labels, mean, n_arr, None, se, "summary", response)
        else:
            if n is None or ssw is None:
                raise DataError(
                    "long-data statistics need `n` and `ssw`; got "
                    f"n={'missing' if n is None else 'given'}, "
                    f"ssw={'missing' if ssw is None else 'given'}. "
                    "Pass both, or pass `se` for summary data."
                )
            n_float = _float_array(n, "n", k)
            bad = ~(np.isfinite(n_float) & (n_float >= 1) & (n_float == np.round(n_float)))
            if bad.any():
                raise DataError(
                    f"`n` must hold whole numbers of at least 1 (group sizes); got "
                    f"{_fmt_values(n_float[bad])} for groups {list(labels[bad][:5])}. "
                    "Pass the number of observations in each group; leave out empty groups."
                )
            ssw_arr = _float_array(ssw, "ssw", k)
            bad = ~(np.isfinite(ssw_arr) & (ssw_arr >= 0))
            if bad.any():
                raise DataError(
                    f"`ssw` must be finite and non-negative (a sum of squared deviations); got "
                    f"{_fmt_values(ssw_arr[bad])} for groups {list(labels[bad][:5])}. "
                    "Pass each group's sum of squares about its own mean."
                )
            bad = ~np.isfinite(mean)
            if bad.any():
                raise DataError(
                    f"`mean` must be finite; got {_fmt_values(mean[bad])} for groups "
                    f"{list(labels[bad][:5])}. Remove those groups or supply their means."
                )
            stats = cls(labels, mean, n_float.astype(np.int64), ssw_arr, None, "long", response)
        stats.validate()
        return stats

    def validate(self) -> None:
        """Check that these statistics can identify the one-way model; raise otherwise."""
        k = self.n_groups
        if k == 0:
            raise DataError("the data must hold at least one row; got an empty table.")
        if k < 2:
            raise DataError(
                f"the data must hold at least 2 groups to estimate the between-group variance; "
                f"got 1 group ({self.labels[0]!r}). With a single group there is nothing to pool: "
                "use its mean and standard error directly."
            )
        if self.labels.has_duplicates:
            dup = self.labels[self.labels.duplicated()].unique().tolist()
            raise DataError(
                f"group labels must be unique in summary data; got duplicates {dup[:5]}. "
                "Give one row per group (combine repeated estimates first)."
            )
        if self.data_kind == "long":
            if np.all(self.n == 1):
                raise DataError(
                    f"at least one group must have 2 or more observations; got {k} groups of "
                    "size 1. With one observation per group the between-group variance tau^2 "
                    "and the residual variance sigma^2 are not separately identifiable: "
                    "if each row is an estimate with a known standard error, use "
                    "`bs.fit_summary(df, estimate=..., se=..., group=...)`."
                )
            # The data paths set a group's ssw to exactly 0 when its values are identical, so
            # any positive ssw is variation in the data as given, however small against their
            # level (1e12 + N(0, 1e-3) varies).
            if not np.any(self.ssw > 0):
                raise DataError(
                    f"`{self.response}` must vary within at least one group; got no within-group "
                    "variation (every group's values are identical), so the residual variance "
                    "sigma^2 is 0 and the model is degenerate. Check that the group column is not "
                    "a unique row identifier, or use `bs.fit_summary` with known standard errors."
                )
        else:
            bad = ~np.isfinite(self.se) | (self.se <= 0)
            if bad.any():
                raise DataError(
                    "standard errors must be finite and positive; got "
                    f"{_fmt_values(self.se[bad])} for groups {list(self.labels[bad][:5])}. "
                    "Fix or remove those groups: a zero standard error claims a perfectly known "
                    "estimate, which no pooling model can use."
                )


def _fmt_values(values) -> str:
    vals = [str(v) for v in np.asarray(values)[:5]]
    return ", ".join(vals) + (" ..." if len(values) > 5 else "")


def _float_array(values, name: str, length: int) -> np.ndarray:
    """``values`` as a 1-D float array of ``length``, or a clear error (complex, text, shape)."""
    arr = np.asarray(values)
    if np.iscomplexobj(arr):
        raise DataTypeError(
            f"`{name}` must be real numbers; got complex values ({_fmt_values(arr.ravel())}). "
            "Pass the real part (or the modulus) explicitly."
        )
    try:
        arr = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise DataTypeError(
            f"`{name}` must be numeric; got {arr.dtype} values ({_fmt_values(arr.ravel())}). "
            "Convert them to numbers first."
        ) from exc
    if arr.shape != (length,):
        raise DataError(
            f"`{name}` must hold one value per group ({length}); got shape {arr.shape}. "
            "Pass arrays of the same length as `labels`."
        )
    return arr


#: Deviations of y from its centre must stay below 2**510 (~3.4e153) and the within-group SD
#: above 2**-510 (~3e-154): beyond, squares and sums of squares leave double precision.
_MAX_EXP = 510


def _check_scale(e: int, sd_exp: float, varies: bool, role: str) -> None:
    """Refuse data whose deviations (~2**e) or within-group SD (~2**sd_exp) cannot be squared."""
    if e > _MAX_EXP:
        raise DataError(
            f"`{role}` must have deviations from its centre whose squares double precision can "
            f"hold (below about 1e153); got deviations of about {2.0 ** (e - 1):.1e}. Rescale "
            f"it, e.g. divide `{role}` by 1e{int(np.ceil((e - 1) * np.log10(2)))}, and scale "
            "mu, tau, sigma and the BLUPs back by the same factor."
        )
    if varies and sd_exp < -_MAX_EXP:
        raise DataError(
            f"`{role}` must vary within groups on a scale whose squares double precision can "
            f"hold (a within-group SD above about 1e-153); got a within-group SD of about "
            f"{2.0**sd_exp:.1e}. Rescale it, e.g. multiply `{role}` by "
            f"1e{int(np.ceil(-sd_exp * np.log10(2)))}, and scale the results back by the same "
            "factor."
        )


def long_stats_from_centred(
    labels: pd.Index,
    n: np.ndarray,
    mean_s: np.ndarray,
    ssw_s: np.ndarray,
    varies: np.ndarray,
    centre: float,
    e: int,
    response: str,
) -> GroupStats:
    """Long-data statistics from those of ``(y - centre) / 2**e`` (both data paths end here).

    ``varies`` flags the groups whose values are not all identical (decided exactly, on the
    data): the others get ssw = 0 exactly, so rounding never passes for variation.
    """
    n = np.asarray(n, dtype=np.int64)
    ssw_s = np.where(varies, ssw_s, 0.0)
    resid_df = int(n.sum()) - len(n)
    pooled = float(ssw_s.sum()) / max(resid_df, 1)
    sd_exp = 0.5 * float(np.log2(pooled)) + e if pooled > 0 else -np.inf
    if np.any(varies):  # otherwise validate() says what is wrong: no variation at all
        _check_scale(e, sd_exp, True, response)
    offset = np.ldexp(mean_s, e)
    mean = centre + offset
    back = mean - centre  # TwoSum: mean + mean_lo == centre + offset exactly
    mean_lo = (centre - (mean - back)) + (offset - back)
    stats = GroupStats(
        labels, mean, n, np.ldexp(ssw_s, 2 * e), None, "long", response, mean_lo=mean_lo
    )
    stats.validate()
    return stats


def group_stats(data, y: str, group: str, *, missing: Missing = "raise") -> GroupStats:
    """Validate long data and reduce it to per-group sufficient statistics.

    Parameters
    ----------
    data : pandas.DataFrame or dict of columns
        One row per observation.
    y, group : str
        Names of the numeric response column and of the grouping column.
    missing : {"raise", "drop"}
        What to do with rows whose ``y`` is NaN/inf or whose group label is missing: raise a
        :class:`~bayeshrink.errors.DataError` (default), or leave them out with a warning.
    """
    check_missing_option(missing)
    if y is not None and y == group:
        raise DataError(
            f"`y` and `group` must be different columns; got {y!r} for both. Name the response "
            "and the grouping column."
        )
    if is_engine_frame(data):  # the GROUP BY runs inside the engine
        labels, n, mean_s, ssw_s, varies, centre, e = engine_group_stats(
            data, y, group, missing=missing
        )
        return long_stats_from_centred(labels, n, mean_s, ssw_s, varies, centre, e, str(y))
    df = as_frame(data)
    ycol = column(df, y, "y")
    gcol = column(df, group, "group")
    if len(df) == 0:
        raise DataError(
            "the data must hold at least one row; got an empty table. Check the filter that "
            "produced it."
        )
    check_normal_response(ycol, y)
    if pd.api.types.is_bool_dtype(ycol.dtype):  # fitted as 0/1, as the warning says
        ycol = ycol.astype("Float64")
    values = numeric(ycol, "y")
    gmissing = gcol.isna().to_numpy()
    keep = check_missing(
        df,
        gmissing,
        f"group label `{group}`",
        "a missing value (NaN/None)",
        missing,
        "Give those rows a group label",
    )
    if keep is not None:
        df, values, gcol = df[keep], values[keep], gcol[keep]
    keep = check_missing(
        df,
        ~np.isfinite(values),
        f"`y` ({y!r})",
        "NaN or infinite values",
        missing,
        "Drop or impute them first",
    )
    if keep is not None:
        df, values, gcol = df[keep], values[keep], gcol[keep]
    if len(values) == 0:
        raise DataError("the data must hold at least one row; none are left after dropping.")

    codes, labels = factorize(gcol)
    k = len(labels)
    n = np.bincount(codes, minlength=k).astype(np.int64)
    # A group varies when any value differs from one of its own values (exact, on the data).
    rep = np.empty(k)
    rep[codes] = values
    varies = np.bincount(codes, weights=values != rep[codes], minlength=k) > 0
    # Centred on a value of the data's own level (the median of the first 1001 values: the
    # engines use the same rule) and divided by a power of two near the largest deviation
    # (exact), so that sums of squares neither lose the spread to the level nor overflow.
    centre, e = _centre_and_scale(values)
    yc = np.ldexp(values - centre, -e)
    mean_s = np.bincount(codes, weights=yc, minlength=k) / n
    dev = yc - mean_s[codes]
    mean_s += np.bincount(codes, weights=dev, minlength=k) / n  # refinement pass (two-pass)
    dev = yc - mean_s[codes]
    ssw_s = np.bincount(codes, weights=dev * dev, minlength=k)
    return long_stats_from_centred(labels, n, mean_s, ssw_s, varies, centre, e, str(y))


def _centre_and_scale(values: np.ndarray) -> tuple[float, int]:
    """The centring value (median of the first 1001 values) and the exponent e of the power of
    two near the largest deviation from it."""
    centre = float(np.median(values[: min(len(values), 1001)]))
    spread = max(abs(float(values.max()) - centre), abs(float(values.min()) - centre))
    return centre, pow2_exponent(spread)


def summary_stats(data, estimate: str, se: str, group: str, *, n: str | None = None) -> GroupStats:
    """Validate summary data: one estimate and its known standard error per group."""
    df = as_frame(data)
    ecol = column(df, estimate, "estimate")
    scol = column(df, se, "se")
    gcol = column(df, group, "group")
    ncol = column(df, n, "n") if n is not None else None
    if len(df) == 0:
        raise DataError(
            "the data must hold at least one row; got an empty table. Check the filter that "
            "produced it."
        )
    est = numeric(ecol, "estimate")
    ses = numeric(scol, "se")
    bad = ~np.isfinite(est)
    if bad.any():
        raise DataError(
            f"`estimate` must be finite; {describe_rows(df.index[bad])} of {estimate!r} hold "
            f"{_fmt_values(est[bad])}. Remove those groups or supply their estimates."
        )
    bad = ~np.isfinite(ses) | (ses <= 0)
    if bad.any():
        raise DataError(
            f"`se` must be finite and positive; {describe_rows(df.index[bad])} of {se!r} hold "
            f"{_fmt_values(ses[bad])}. Fix or remove those groups: a missing standard error "
            "cannot be guessed, and a zero one claims a perfectly known estimate."
        )
    lo, hi = np.frexp(ses.min())[1], np.frexp(ses.max())[1]
    if lo < -_MAX_EXP or hi > _MAX_EXP:
        raise DataError(
            f"`se` must lie between about 1e-153 and 1e153, where its square fits double "
            f"precision; got values from {ses.min():.1e} to {ses.max():.1e}. Rescale `estimate` "
            "and `se` by the same factor and scale mu, tau and the BLUPs back."
        )
    _check_scale(pow2_exponent(float(np.ptp(est))), 0.0, False, "estimate")
    gbad = gcol.isna().to_numpy()
    if gbad.any():
        raise DataError(
            f"`group` labels must be present; {describe_rows(df.index[gbad])} of {group!r} "
            "are missing. Give every row a label."
        )
    labels = pd.Index(gcol.to_numpy(), name=gcol.name)
    if labels.has_duplicates:
        dup = labels[labels.duplicated()].unique().tolist()
        raise DataError(
            f"`group` labels must be unique in summary data; got duplicates {dup[:5]} in "
            f"{group!r}. Give one row per group (combine repeated estimates first)."
        )
    sizes = np.full(len(df), np.nan)
    if ncol is not None:
        sizes = numeric(ncol, "n")
        given = ~np.isnan(sizes)
        bad = given & ~(np.isfinite(sizes) & (sizes >= 1) & (sizes == np.round(sizes)))
        if bad.any():
            raise DataError(
                f"`n` must hold group sizes (whole numbers of at least 1, or missing); "
                f"{describe_rows(df.index[bad])} of {n!r} hold {_fmt_values(sizes[bad])}. "
                "Fix those sizes or leave `n` out (it is shown, not used by the estimator)."
            )
    stats = GroupStats(labels, est, sizes, None, ses, "summary", str(estimate))
    stats.validate()
    return stats
