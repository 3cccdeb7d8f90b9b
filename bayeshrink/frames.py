"""Dataframe helpers shared by every entry point: one implementation of each check.

:mod:`bayeshrink.data` (one-way statistics), :mod:`bayeshrink.engines` (polars, DuckDB, ...)
and :mod:`bayeshrink.lmm.design` (formulas) all validate their input here, so a missing column,
a non-numeric response or a NaN row gets the same message whichever path the data take.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from .errors import (
    ColumnError,
    DataError,
    DataTypeError,
    RowsDroppedWarning,
    describe_rows,
    warn,
)

__all__ = [
    "Missing",
    "as_frame",
    "check_column_names",
    "check_int_range",
    "check_missing",
    "check_missing_option",
    "column",
    "engine_to_pandas",
    "factorize",
    "is_engine_frame",
    "lazy_frame",
    "missing_error",
    "numeric",
    "nw_module",
    "pow2_exponent",
]

Missing = Literal["raise", "drop"]


def nw_module():
    import narwhals as nw  # a declared dependency; imported on first use

    return nw


def _from_native(data):
    nw = nw_module()
    with warnings.catch_warnings():
        # narwhals announces that its Dask support will move to a separate package
        warnings.filterwarnings(
            "ignore", message=".*Dask support is moving.*", category=FutureWarning
        )
        return nw.from_native(data, allow_series=False)


_ENGINE_MODULES = (
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
)


def is_engine_frame(data) -> bool:
    """True for a dataframe narwhals understands that is not a pandas DataFrame."""
    if isinstance(data, pd.DataFrame):
        return False
    if type(data).__module__.split(".")[0] not in _ENGINE_MODULES:
        return False
    try:
        _from_native(data)
    except TypeError:
        return False
    return True


def lazy_frame(data):
    """An engine frame as a narwhals LazyFrame (the engine still does the work)."""
    frame = _from_native(data)
    nw = nw_module()
    return frame.lazy() if isinstance(frame, nw.DataFrame) else frame


def engine_to_pandas(data) -> pd.DataFrame:
    """Collect an engine frame to pandas (summary data; the columns of a formula).

    Decimal columns become float64: pandas would hold them as Python objects, which no
    numerical step accepts."""
    nw = nw_module()
    lazy = lazy_frame(data)
    schema = lazy.collect_schema()
    decimals = [name for name, dtype in schema.items() if str(dtype).startswith("Decimal")]
    if decimals:
        lazy = lazy.with_columns(*[nw.col(c).cast(nw.Float64) for c in decimals])
    return lazy.collect().to_pandas()


def as_frame(data) -> pd.DataFrame:
    """A pandas DataFrame from a DataFrame, a dict of columns or an engine frame (collected)."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        try:
            return pd.DataFrame(dict(data))
        except ValueError as exc:
            lengths = {str(k): len(v) if hasattr(v, "__len__") else 1 for k, v in data.items()}
            raise DataError(
                f"`data` as a dict must hold columns of equal length; got lengths {lengths}. "
                "Give every column one value per row."
            ) from exc
    if is_engine_frame(data):
        return engine_to_pandas(data)
    raise DataTypeError(
        f"`data` must be a pandas DataFrame, a dict of columns, or a polars, pyarrow, DuckDB, "
        f"Dask or PySpark frame; got {type(data).__name__}. Convert it first, e.g. "
        "`pd.DataFrame(data)`."
    )


def check_column_names(names: Sequence, wanted: Sequence[tuple[str, object]]) -> None:
    """Raise :class:`ColumnError` for the first ``(role, name)`` whose name is not in ``names``."""
    names = list(names)
    for role, name in wanted:
        if name not in names:
            cols = ", ".join(repr(c) for c in names[:20])
            raise ColumnError(
                f"`{role}` must name a column of the data; got {name!r}, which is not one of "
                f"[{cols}]. Check the spelling or rename the column."
            )


def column(df: pd.DataFrame, name, role: str) -> pd.Series:
    """The column ``name`` of ``df``, checked to exist exactly once."""
    if name is None:
        raise DataTypeError(f'`{role}` must name a column; got None. Pass `{role}="<column>"`.')
    try:
        hash(name)
    except TypeError:
        raise DataTypeError(
            f"`{role}` must name one column; got {type(name).__name__} {name!r}. Pass the "
            f'column\'s name, e.g. `{role}="<column>"`.'
        ) from None
    check_column_names(df.columns, [(role, name)])
    col = df[name]
    if isinstance(col, pd.DataFrame):
        raise DataError(
            f"`{role}` must name exactly one column; {name!r} appears {col.shape[1]} times. "
            "Rename the duplicate columns."
        )
    return col


def pow2_exponent(x: float) -> int:
    """e with 2**(e-1) <= x < 2**e (0 for x = 0): dividing by 2**e is exact."""
    return int(np.frexp(x)[1]) if x > 0 and np.isfinite(x) else 0


#: Integers beyond 2**53 are not all exactly representable in float64.
MAX_EXACT_INT = 2**53


def check_int_range(lo, hi, role: str, name) -> None:
    """Integer data must convert to float64 exactly, or their variation can vanish."""
    if max(abs(int(lo)), abs(int(hi))) > MAX_EXACT_INT:
        raise DataError(
            f"`{role}` column {name!r} must hold integers that float64 represents exactly "
            f"(|y| <= 2**53); got values from {int(lo)} to {int(hi)}, where rounding to float64 "
            "would change them and can erase their variation. Subtract a baseline (e.g. the "
            "column's minimum) from it first, and add it back to mu and the BLUPs."
        )


def numeric(col: pd.Series, role: str) -> np.ndarray:
    """A numeric (not boolean, not complex) column as float, NaN where missing."""
    if pd.api.types.is_complex_dtype(col.dtype):
        raise DataTypeError(
            f"`{role}` column {col.name!r} must hold real numbers; got dtype {col.dtype}. "
            f"Take the part you mean to model first, e.g. `df[{col.name!r}].to_numpy().real`."
        )
    if pd.api.types.is_integer_dtype(col.dtype) and len(col):
        check_int_range(col.min(), col.max(), role, col.name)
    if pd.api.types.is_bool_dtype(col.dtype) or not pd.api.types.is_numeric_dtype(col.dtype):
        raise DataTypeError(
            f"`{role}` column {col.name!r} must be numeric; got dtype {col.dtype}. "
            f"Convert it, e.g. `df[{col.name!r}] = pd.to_numeric(df[{col.name!r}])`."
        )
    return col.to_numpy(dtype=float, na_value=np.nan)


def factorize(groups: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and labels of a grouping column: labels sorted where they can be sorted
    (a Categorical's in its categories' order), in order of first appearance otherwise."""
    try:
        codes, uniques = pd.factorize(groups, sort=True)
    except TypeError:  # labels of mixed, unorderable types: keep first-appearance order
        try:
            codes, uniques = pd.factorize(groups, sort=False)
        except TypeError as exc:  # unhashable labels: lists, dicts, arrays
            kinds = sorted({type(v).__name__ for v in groups.head(1000)})
            raise DataTypeError(
                f"`group` column {groups.name!r} must hold one hashable label per row (text, "
                f"numbers, dates, tuples); got values of type {', '.join(kinds)}. Turn each into "
                f"a label first, e.g. `df[{groups.name!r}].map(tuple)` or `.astype(str)`."
            ) from exc
    if isinstance(
        uniques, (pd.Categorical, pd.CategoricalIndex)
    ):  # in category order, as plain labels
        uniques = np.asarray(uniques)
    labels = pd.Index(uniques, name=groups.name)
    if labels.dtype == object and pd.api.types.infer_dtype(labels, skipna=True) not in (
        "string",
        "bytes",
    ):
        _check_label_types(labels, groups.name)
    return np.asarray(codes, dtype=np.intp), labels


def _type_name(v) -> str:
    return type(v).__name__


def _check_label_types(labels: pd.Index, name) -> None:
    """Labels of different types that print alike (308 and "308") would be two groups that no
    table can tell apart: refuse them."""
    text = pd.Index([str(v) for v in labels])
    if text.is_unique:
        return
    dup = text[text.duplicated(keep=False)]
    first = dup[0]
    clash = sorted((v for v, t in zip(labels, text, strict=True) if t == first), key=_type_name)
    shown = " and ".join(f"{v!r} ({type(v).__name__})" for v in clash)
    n = int(text.duplicated().sum())
    raise DataTypeError(
        f"the grouping column {name!r} must hold one label per group; it holds labels of "
        f"different types that print alike: {shown}"
        + (f", and {n - 1} more such label(s)" if n > 1 else "")
        + f". They would be separate groups. Make the column one type first, e.g. "
        f"`df[{name!r}] = df[{name!r}].astype(str)`."
    )


def missing_error(subject: str, rows: str, count: int, problem: str, fix: str) -> DataError:
    """The error for rows holding missing values (``rows`` names them, ``count`` how many)."""
    return DataError(
        f"{subject} must be present and finite; {rows} {'hold' if count > 1 else 'holds'} "
        f"{problem}. {fix}, or pass `missing='drop'` to leave them out (a warning will say how "
        "many)."
    )


def check_missing(
    df: pd.DataFrame, bad: np.ndarray, subject: str, problem: str, missing: Missing, fix: str
) -> np.ndarray | None:
    """Raise for (or, with ``missing='drop'``, warn about) the rows flagged in ``bad``.

    Returns the mask of rows to keep, or None when nothing is flagged.
    """
    if not bad.any():
        return None
    rows = describe_rows(df.index[bad])
    if missing == "drop":
        warn(
            f"left out {int(bad.sum())} of {len(bad)} rows where {subject} held {problem} "
            f"({rows}).",
            RowsDroppedWarning,
        )
        return ~bad
    raise missing_error(subject, rows, int(bad.sum()), problem, fix)


def check_missing_option(missing) -> None:
    """``missing`` must be 'raise' or 'drop'."""
    if missing not in ("raise", "drop"):
        raise DataError(
            f"`missing` must be 'raise' or 'drop'; got {missing!r}. The default 'raise' refuses "
            "rows with NaN; 'drop' leaves them out with a warning."
        )


def interaction_labels(df: pd.DataFrame, columns) -> pd.Series:
    """lme4's level labels of an interaction of columns: the values joined by ':' (``c1:S01``)."""
    columns = list(columns)
    out = df[columns[0]].astype(str)
    for c in columns[1:]:
        out = out + ":" + df[c].astype(str)
    return out
