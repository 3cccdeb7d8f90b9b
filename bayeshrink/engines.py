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

from .errors import ColumnError, DataError, DataTypeError, RowsDroppedWarning

__all__ = ["engine_group_stats", "engine_to_pandas", "is_engine_frame", "require_engine"]

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


def _nw():
    import narwhals as nw  # a declared dependency; imported on first use

    return nw


def _from_native(data):
    nw = _nw()
    with warnings.catch_warnings():
        # narwhals announces that its Dask support will move to a separate package
        warnings.filterwarnings(
            "ignore", message=".*Dask support is moving.*", category=FutureWarning
        )
        return nw.from_native(data, allow_series=False)


def is_engine_frame(data) -> bool:
    """True for a dataframe narwhals understands that is not a pandas DataFrame."""
    if isinstance(data, pd.DataFrame):
        return False
    module = type(data).__module__.split(".")[0]
    if module not in (
        "polars",
        "pyarrow",
        "duckdb",
        "dask",
        "pyspark",
        "dask_expr",
        "modin",
        "cudf",
        "ibis",
        "sqlframe",
    ):
        return False
    try:
        _from_native(data)
    except TypeError:
        return False
    return True


def _lazy(data):
    frame = _from_native(data)
    nw = _nw()
    return frame.lazy() if isinstance(frame, nw.DataFrame) else frame


def engine_to_pandas(data) -> pd.DataFrame:
    """Collect a (small) engine frame to pandas: for summary data, one row per group."""
    return _lazy(data).collect().to_pandas()


def _check_columns(schema, y: str, group: str) -> None:
    names = list(schema.names())
    for role, name in (("y", y), ("group", group)):
        if name not in names:
            cols = ", ".join(repr(c) for c in names[:20])
            raise ColumnError(
                f"`{role}` must name a column of the data; got {name!r}, which is not one of "
                f"[{cols}]. Check the spelling or rename the column."
            )
    dtype = schema[y]
    if not dtype.is_numeric() or str(dtype) == "Boolean":
        raise DataTypeError(
            f"`y` column {y!r} must be numeric; got dtype {dtype}. Cast it in the engine first, "
            f"e.g. `df.with_columns(pl.col({y!r}).cast(pl.Float64))` in polars."
        )


def engine_group_stats(data, y: str, group: str, *, missing: str = "raise"):
    """Validate and reduce long data held in an engine to per-group sufficient statistics."""
    from .data import GroupStats, _factorize

    nw = _nw()
    lazy = _lazy(data)
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
            raise DataError(
                f"{subject} must be present and finite; {bad} of {rows} rows hold {problem}. "
                f"{fix}, or pass `missing='drop'` to leave them out (a warning will say how many)."
            )
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
    codes, _ = _factorize(per_group[group].rename(group))  # the pandas path's label order
    order = np.argsort(codes, kind="stable")
    per_group = per_group.iloc[order]
    n = per_group["__bs_n"].to_numpy(dtype=np.int64)
    mean = per_group["__bs_mean"].to_numpy(dtype=float)
    var = np.nan_to_num(per_group["__bs_var"].to_numpy(dtype=float), nan=0.0)
    return GroupStats.from_arrays(
        labels=pd.Index(per_group[group].to_numpy(), name=group),
        mean=centre + mean,
        n=n,
        ssw=var * n,
        response=str(y),
    )
