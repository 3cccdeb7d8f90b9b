"""Per-group sufficient statistics computed inside a dataframe engine, through narwhals.

polars (eager and lazy), pyarrow tables, DuckDB relations, Dask DataFrames and PySpark
DataFrames all go through one narwhals code path: a GROUP BY that the engine runs itself (on one
machine or a cluster), returning one row per group. Only those rows reach Python.

Stability: y is first centred on one of its own values (a constant taken from the data), so the
engine's per-group mean and variance are computed on numbers of the size of the data's spread,
not its level: y around 1e9 loses nothing even in engines whose variance is a sum of squares.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .errors import DataError, DataTypeError, RowsDroppedWarning
from .frames import check_column_names, factorize, lazy_frame, missing_error, nw_module

__all__ = ["engine_group_stats", "require_engine"]

EXTRAS = {
    "polars": "polars",
    "duckdb": "duckdb",
    "dask": "dask",
    "pyspark": "spark",
}


def require_engine(name: str):
    """Import an optional engine, or say which bayeshrink extra installs it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        extra = EXTRAS.get(name, name)
        raise DataError(
            f"the {name} engine must be installed to use it; it is not. Install it with "
            f"`pip install 'bayeshrink[{extra}]'`."
        ) from None


def _check_columns(schema, y: str, group: str) -> None:
    check_column_names(schema.names(), [("y", y), ("group", group)])
    dtype = schema[y]
    if not dtype.is_numeric() or str(dtype) == "Boolean":
        raise DataTypeError(
            f"`y` column {y!r} must be numeric; got dtype {dtype}. Cast it in the engine first, "
            f"e.g. `df.with_columns(pl.col({y!r}).cast(pl.Float64))` in polars."
        )


def engine_group_stats(data, y: str, group: str, *, missing: str = "raise"):
    """Validate long data held in an engine and reduce it to per-group sufficient statistics.

    Returns ``(labels, n, mean, ssw)`` in the label order of the pandas path
    (:func:`bayeshrink.frames.factorize`); :func:`bayeshrink.data.group_stats` wraps them.
    """
    nw = nw_module()
    lazy = lazy_frame(data)
    _check_columns(lazy.collect_schema(), y, group)
    finite = nw.col(y).is_finite().fill_null(False)
    counts = (
        lazy.select(
            nw.len().alias("rows"),
            (~finite).cast(nw.Int64).sum().alias("bad_y"),
            nw.col(group).is_null().cast(nw.Int64).sum().alias("bad_g"),
        )
        .collect()
        .to_pandas()
        .iloc[0]
    )
    rows, bad_y, bad_g = int(counts["rows"]), int(counts["bad_y"] or 0), int(counts["bad_g"] or 0)
    if rows == 0:
        raise DataError(
            "the data must hold at least one row; got an empty table. Check the filter that "
            "produced it."
        )
    for bad, subject, problem, fix in (
        (bad_g, f"group label `{group}`", "a missing value", "Give those rows a group label"),
        (bad_y, f"`y` ({y!r})", "NaN, infinite or missing values", "Drop or impute them first"),
    ):
        if bad and missing != "drop":
            raise missing_error(subject, f"{bad} of {rows} rows", bad, problem, fix)
    if bad_y or bad_g:
        warnings.warn(
            f"left out {bad_y + bad_g} of {rows} rows (at most) where `{y}` was NaN, infinite "
            f"or missing ({bad_y}) or `{group}` was missing ({bad_g}).",
            RowsDroppedWarning,
            stacklevel=3,
        )
        lazy = lazy.filter(finite & ~nw.col(group).is_null())
    first = lazy.select(nw.col(y)).head(1).collect().to_pandas()
    if len(first) == 0:
        raise DataError("the data must hold at least one row; none are left after dropping.")
    centre = float(first.iloc[0, 0])
    per_group = (
        lazy.with_columns((nw.col(y).cast(nw.Float64) - centre).alias("__bs_yc"))
        .group_by(group)
        .agg(
            nw.len().alias("__bs_n"),
            nw.col("__bs_yc").mean().alias("__bs_mean"),
            nw.col("__bs_yc").var(ddof=0).alias("__bs_var"),
        )
        .collect()
        .to_pandas()
    )
    codes, _ = factorize(per_group[group].rename(group))  # the pandas path's label order
    order = np.argsort(codes, kind="stable")
    per_group = per_group.iloc[order]
    n = per_group["__bs_n"].to_numpy(dtype=np.int64)
    mean = per_group["__bs_mean"].to_numpy(dtype=float)
    var = np.nan_to_num(per_group["__bs_var"].to_numpy(dtype=float), nan=0.0)
    return pd.Index(per_group[group].to_numpy(), name=group), n, centre + mean, var * n
