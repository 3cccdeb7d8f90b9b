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
from .errors import DataError, describe_rows
from .frames import (
    Missing,
    as_frame,
    check_missing,
    check_missing_option,
    column,
    factorize,
    is_engine_frame,
    numeric,
)

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
    """

    labels: pd.Index
    mean: np.ndarray
    n: np.ndarray
    ssw: np.ndarray | None
    se: np.ndarray | None
    data_kind: Literal["long", "summary"]
    response: str = "y"

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
        mean = np.asarray(mean, dtype=float)
        if se is not None:
            se = np.asarray(se, dtype=float)
            n_arr = np.full(len(labels), np.nan) if n is None else np.asarray(n, dtype=float)
            stats = cls(labels, mean, n_arr, None, se, "summary", response)
        else:
            if n is None or ssw is None:
                raise DataError(
                    "long-data statistics need `n` and `ssw`; got "
                    f"n={'missing' if n is None else 'given'}, "
                    f"ssw={'missing' if ssw is None else 'given'}. "
                    "Pass both, or pass `se` for summary data."
                )
            stats = cls(
                labels,
                mean,
                np.asarray(n, dtype=np.int64),
                np.asarray(ssw, dtype=float),
                None,
                "long",
                response,
            )
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
            # Rounding leaves at most a few ulps (~1e-16 * |y|) of spread in constant groups;
            # anything below 1e-14 of the data's magnitude is no variation at all.
            magnitude = float(np.max(np.abs(self.mean)))
            spread = np.sqrt(self.ssw.sum() / max(self.n_obs - self.n_groups, 1))
            if not spread > 1e-14 * magnitude:
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
    if is_engine_frame(data):  # the GROUP BY runs inside the engine
        labels, n, mean, ssw = engine_group_stats(data, y, group, missing=missing)
        return GroupStats.from_arrays(labels=labels, mean=mean, n=n, ssw=ssw, response=str(y))
    df = as_frame(data)
    ycol = column(df, y, "y")
    gcol = column(df, group, "group")
    if len(df) == 0:
        raise DataError(
            "the data must hold at least one row; got an empty table. Check the filter that "
            "produced it."
        )
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
    # Two-pass, centred: the reference value removes any large common offset before summing.
    ref = float(np.median(values[: min(len(values), 1001)]))
    yc = values - ref
    mean_c = np.bincount(codes, weights=yc, minlength=k) / n
    dev = yc - mean_c[codes]
    mean_c += np.bincount(codes, weights=dev, minlength=k) / n  # refinement pass
    dev = yc - mean_c[codes]
    ssw = np.bincount(codes, weights=dev * dev, minlength=k)
    stats = GroupStats(labels, mean_c + ref, n, ssw, None, "long", str(y))
    stats.validate()
    return stats


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
    stats = GroupStats(labels, est, sizes, None, ses, "summary", str(estimate))
    stats.validate()
    return stats
