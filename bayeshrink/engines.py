"""Per-group sufficient statistics computed inside a dataframe engine, through narwhals.

polars (eager and lazy), pyarrow tables, DuckDB relations, Dask DataFrames and PySpark
DataFrames all go through one narwhals code path: a GROUP BY that the engine runs itself (on one
machine or a cluster), returning one row per group. Only those rows reach Python.

Stability: y is first centred on the median of its first 1001 values and divided by a power of
two near its largest deviation (the pandas path's rule), so the engine's per-group mean and
variance are computed on numbers of the size of the data's spread, not its level: y around 1e9
loses nothing even in engines whose variance is a sum of squares, and squares never overflow.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .errors import DataError, DataTypeError, RowsDroppedWarning
from .frames import (
    check_column_names,
    check_int_range,
    factorize,
    lazy_frame,
    missing_error,
    nw_module,
    pow2_exponent,
)
from .response import check_response_profile, two_levels_error

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


_CAST_HINT = {
    "polars": "`df.with_columns(pl.col({y!r}).cast(pl.Float64))`",
    "duckdb": "`rel.select('* EXCLUDE ({y}), CAST({y} AS DOUBLE) AS {y}')`",
    "dask": "`ddf[{y!r}] = ddf[{y!r}].astype('float64')`",
    "pyspark": "`df.withColumn({y!r}, F.col({y!r}).cast('double'))`",
    "pyarrow": "`table.set_column(i, {y!r}, pyarrow.compute.cast(table[{y!r}], pa.float64()))`",
}


def _engine_name(frame) -> str:
    impl = getattr(frame, "implementation", None)
    return str(getattr(impl, "value", impl) or "the engine")


def _cast_hint(engine: str, y: str) -> str:
    hint = _CAST_HINT.get(engine.split("[")[0])
    return f"e.g. {hint.format(y=y)}" if hint else f"cast it to a floating-point type in {engine}"


def _check_columns(schema, y: str, group: str, engine: str = "polars") -> None:
    names = list(schema.names())
    check_column_names(names, [("y", y), ("group", group)])
    for role, name in (("y", y), ("group", group)):
        if names.count(name) > 1:
            raise DataError(
                f"`{role}` must name exactly one column; {name!r} appears {names.count(name)} "
                "times. Rename the duplicate columns."
            )
    dtype = schema[y]
    if not dtype.is_numeric() and str(dtype) != "Boolean":  # booleans are fitted as 0/1
        raise DataTypeError(
            f"`y` column {y!r} must be numeric; got dtype {dtype}. Cast it in {engine} first, "
            f"{_cast_hint(engine, y)}."
        )
    gtype = schema[group]
    if gtype.is_nested() or str(gtype).startswith("Object"):
        raise DataTypeError(
            f"`group` column {group!r} must hold one scalar label per row (text, numbers, "
            f"dates); got dtype {gtype}. Use one field of it, or join its parts into a string "
            "label, in the engine first."
        )


def engine_group_stats(data, y: str, group: str, *, missing: str = "raise"):
    """Validate long data held in an engine and reduce it to per-group sufficient statistics.

    Returns ``(labels, n, mean_s, ssw_s, varies, centre, e)``: the statistics of
    ``(y - centre) / 2**e`` per group, in the label order of the pandas path
    (:func:`bayeshrink.frames.factorize`), and whether each group's values vary;
    :func:`bayeshrink.data.group_stats` turns them into :class:`~bayeshrink.data.GroupStats`.
    The rules are the pandas path's (:func:`bayeshrink.data.group_stats`): NaN group labels
    count as missing, y is centred on the median of its first 1001 kept values and divided by a
    power of two near its largest deviation, groups vary when their minimum and maximum differ.
    """
    nw = nw_module()
    lazy = lazy_frame(data)
    engine = _engine_name(lazy)
    schema = lazy.collect_schema()
    try:
        _check_columns(schema, y, group, engine)
    except DataTypeError:
        # a header-only CSV reads as text columns: the problem is then no rows, not the type
        if int(lazy.select(nw.len().alias("rows")).collect().to_pandas()["rows"].iloc[0]) == 0:
            raise DataError(
                "the data must hold at least one row; got an empty table (column names only). "
                "Check the filter or the export that produced it."
            ) from None
        if y in schema and schema[y] in (nw.String, nw.Categorical, nw.Enum):
            levels = lazy.select(nw.col(y)).drop_nulls().unique().head(3).collect().to_pandas()[y]
            if len(levels) == 2:  # yes/no
                raise two_levels_error(y, levels.tolist()) from None
        raise
    yf = nw.col(y).cast(nw.Float64)
    finite = yf.is_finite().fill_null(False)
    gmiss = nw.col(group).is_null()
    if schema[group].is_float():  # NaN labels are missing, as pandas has them
        gmiss = gmiss | nw.col(group).is_nan().fill_null(True)
    keep = finite & ~gmiss
    aggs = [
        nw.len().alias("rows"),
        (~finite).cast(nw.Int64).sum().alias("bad_y"),
        gmiss.cast(nw.Int64).sum().alias("bad_g"),
        (finite & gmiss).cast(nw.Int64).sum().alias("bad_both"),
        nw.when(keep).then(yf).min().alias("lo"),
        nw.when(keep).then(yf).max().alias("hi"),
    ]
    if schema[y].is_integer():
        aggs += [nw.col(y).min().alias("int_lo"), nw.col(y).max().alias("int_hi")]
    elif schema[y].is_float():  # whole numbers (counts stored as floats)?
        aggs.append(nw.when(keep).then((yf != yf.round(0)).cast(nw.Int64)).sum().alias("not_whole"))
    counts = lazy.select(*aggs).collect().to_pandas().iloc[0]
    rows = int(counts["rows"])
    bad_y, bad_g = int(counts["bad_y"] or 0), int(counts["bad_g"] or 0)
    if rows == 0:
        raise DataError(
            "the data must hold at least one row; got an empty table. Check the filter that "
            "produced it."
        )
    if schema[y].is_integer() and rows > bad_y:
        check_int_range(counts["int_lo"], counts["int_hi"], "y", y)
    for bad, subject, problem, fix in (
        (
            bad_g,
            f"group label `{group}`",
            "a missing value (NaN/None)",
            "Give those rows a group label",
        ),
        (bad_y, f"`y` ({y!r})", "NaN, infinite or missing values", "Drop or impute them first"),
    ):
        if bad and missing != "drop":
            raise missing_error(subject, f"{bad} of {rows} rows", bad, problem, fix)
    if bad_y or bad_g:
        dropped = bad_y + int(counts["bad_both"] or 0)
        warnings.warn(
            f"left out {dropped} of {rows} rows where `{y}` was NaN, infinite or missing "
            f"({bad_y}) or `{group}` was missing ({bad_g}).",
            RowsDroppedWarning,
            stacklevel=3,
        )
        lazy = lazy.filter(keep)
    head = lazy.select(yf.alias("__bs_y")).head(1001).collect().to_pandas()["__bs_y"]
    if len(head) == 0:
        raise DataError("the data must hold at least one row; none are left after dropping.")
    centre = float(np.median(head.to_numpy(dtype=float)))
    lo, hi = float(counts["lo"]), float(counts["hi"])
    check_response_profile(
        y,
        lo=lo,
        hi=hi,
        whole=not schema[y].is_float() or int(counts["not_whole"] or 0) == 0,
        boolean=str(schema[y]) == "Boolean",
    )
    e = pow2_exponent(max(abs(hi - centre), abs(lo - centre)))
    per_group = (
        lazy.with_columns(
            ((yf - centre) * float(np.ldexp(1.0, -e))).alias("__bs_yc"), yf.alias("__bs_yf")
        )
        .group_by(group)
        .agg(
            nw.len().alias("__bs_n"),
            nw.col("__bs_yc").mean().alias("__bs_mean"),
            nw.col("__bs_yc").var(ddof=0).alias("__bs_var"),
            nw.col("__bs_yf").min().alias("__bs_lo"),
            nw.col("__bs_yf").max().alias("__bs_hi"),
        )
        .collect()
        .to_pandas()
    )
    codes, _ = factorize(per_group[group].rename(group))  # the pandas path's label order
    order = np.argsort(codes, kind="stable")
    per_group = per_group.iloc[order]
    n = per_group["__bs_n"].to_numpy(dtype=np.int64)
    var = np.nan_to_num(per_group["__bs_var"].to_numpy(dtype=float), nan=0.0)
    labels = pd.Index(per_group[group].to_numpy(), name=group)
    varies = per_group["__bs_hi"].to_numpy(dtype=float) > per_group["__bs_lo"].to_numpy(dtype=float)
    return labels, n, per_group["__bs_mean"].to_numpy(dtype=float), var * n, varies, centre, e
