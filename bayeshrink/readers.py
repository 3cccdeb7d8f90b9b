"""Reading a data file for the command line: CSV or Parquet through polars, DuckDB or pandas,
with R's exports (row names, NA) read as R reads them, and a clear error for what is not a
well-formed text table (binary files, other separators, other encodings)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from .errors import DataError

__all__ = [
    "binary_without_nul",
    "check_delimiter",
    "check_separator",
    "check_text",
    "column_names",
    "r_row_names_header",
    "read_table",
    "reading_errors",
    "reading_message",
    "unused_name",
]

_BINARY_KINDS = (
    (b"PAR1", "a Parquet file: rename it to end in .parquet"),
    (b"\x1f\x8b", "compressed with gzip: uncompress it first (gunzip)"),
    (b"PK\x03\x04", "a ZIP archive or a spreadsheet (.xlsx): export the sheet as CSV"),
)


_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")


_QUOTED_BY_SPACES = re.compile(r'^"[^"]*"( +"[^"]*")+$')


_CONTROL_BYTES = frozenset(range(32)) - {9, 10, 12, 13} | {127}


#: What pandas reads as missing in a CSV by default (R writes "NA"), given to polars and DuckDB
#: too, so that every engine reads a file's missing values alike.
_NA_STRINGS = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]


def read_table(path: Path, engine: str = "auto"):
    """Open a CSV or Parquet file lazily through polars or DuckDB (so a file larger than memory
    fits: only per-group statistics are collected), or eagerly with pandas when neither is
    installed (``engine="auto"``) or when asked."""
    from .engines import require_engine

    if not path.exists():
        raise DataError(f"`FILE` must exist; got {str(path)!r}, which does not. Check the path.")
    if path.is_dir():
        raise DataError(
            f"`FILE` must be a file; got {str(path)!r}, which is a folder. Name one CSV or "
            "Parquet file in it."
        )
    if path.stat().st_size == 0:
        raise DataError(
            f"`FILE` must hold a header row and data; got {str(path)!r}, which is empty. "
            "Check that the export that wrote it finished."
        )
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise DataError(
            f"`FILE` must be a .csv or .parquet file; got {path.name!r}. "
            "Convert it to one of those."
        )
    parquet = suffix in (".parquet", ".pq")
    if not parquet:
        check_text(path, "`FILE`")
        check_delimiter(path, "`FILE`")
    fallback = False
    if engine == "auto":
        import importlib.util

        found = [e for e in ("polars", "duckdb") if importlib.util.find_spec(e) is not None]
        engine, fallback = (found[0], False) if found else ("pandas", True)
    # R's write.table/write.csv(row.names = TRUE) without the blank header field: every row
    # has one field more than the header, the first being the row's name. R and pandas read
    # that field as the row names; polars and DuckDB would shift the column names by one.
    names = None if parquet else r_row_names_header(path)
    if engine == "polars":
        pl = require_engine("polars")
        if parquet:
            return pl.scan_parquet(path)
        if names is None:
            return pl.scan_csv(path, null_values=_NA_STRINGS)
        rn = unused_name(names)
        return pl.scan_csv(
            path, has_header=False, skip_rows=1, new_columns=[rn, *names], null_values=_NA_STRINGS
        ).drop(rn)
    if engine == "duckdb":
        duckdb = require_engine("duckdb")
        if parquet:
            return duckdb.read_parquet(str(path))
        if names is None:
            return duckdb.read_csv(str(path), na_values=_NA_STRINGS)
        rn = unused_name(names)
        rel = duckdb.read_csv(
            str(path), header=False, skiprows=1, names=[rn, *names], na_values=_NA_STRINGS
        )
        return rel.project(f'* EXCLUDE ("{rn}")')
    if fallback:
        print(
            "bayeshrink: note: reading the whole file with pandas; install bayeshrink[polars] or "
            "bayeshrink[duckdb] to read it lazily (files larger than memory then fit).",
            file=sys.stderr,
        )
    return pd.read_parquet(path) if parquet else pd.read_csv(path)


def check_text(path: Path, role: str) -> None:
    """A .csv that is binary (NUL bytes in its first 8 KiB) gets one clear line, not a guess
    at its separator."""
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if b"\x00" not in head and not binary_without_nul(head):
        return
    kind = next(
        (what for magic, what in _BINARY_KINDS if head.startswith(magic)),
        "binary data, not text: export the data as CSV (or Parquet) first",
    )
    raise DataError(
        f"{role} must be a text table (comma-separated values); got {str(path)!r}, which is {kind}."
    )


def check_delimiter(path: Path, role: str) -> None:
    """A CSV written with ';' (R's write.csv2, spreadsheets in locales with a decimal comma),
    tabs, '|' or spaces between quoted names (R's write.table) is refused alike by every engine,
    from the text of its first lines: DuckDB's sniffer would otherwise split write.csv2's
    decimal commas ("249,56") into columns. The advice converts decimal commas too, so that
    following it gives numeric columns."""
    import csv
    import itertools

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = list(itertools.islice(fh, 6))
    except UnicodeDecodeError:
        return  # the reader says the file is not UTF-8
    if not lines:
        return
    raw = lines[0].strip()
    if len(next(csv.reader([lines[0]]), [])) != 1:
        return
    candidates = [(";", "';'"), ("\t", "tabs"), ("|", "'|'")]
    if _QUOTED_BY_SPACES.match(raw):  # R's write.table: "a" "b" "c"
        candidates.append((" ", "spaces"))
    for sep, word in candidates:
        if sep not in raw:
            continue
        body = [f for line in lines[1:] for f in next(csv.reader([line], delimiter=sep), [])]
        decimal = any(_DECIMAL_COMMA.match(f) for f in body)
        extra = ", decimal=','" if decimal else ""
        note = " (its numbers have decimal commas)" if decimal else ""
        raise DataError(
            f"{role} must be comma-separated; its header {raw!r} looks separated by {word}"
            f"{note}. Convert it first, e.g. in Python: pd.read_csv({path.name!r}, "
            f"sep={sep!r}{extra}).to_csv('{path.stem}-comma.csv', index=False)."
        )


def binary_without_nul(head: bytes) -> bool:
    """Binary data with no NUL byte (a short random or compressed file): control bytes that no
    text table holds, in bytes that are not UTF-8 either. A Latin-1 or cp1252 text has no such
    control bytes, and keeps its own message (convert it to UTF-8)."""
    import codecs

    if not any(b in _CONTROL_BYTES for b in head):
        return False
    try:  # final=False: a character cut at the end of the 8 KiB read is not an error
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def r_row_names_header(path: Path, rows: int = 5) -> list[str] | None:
    """The header of a CSV whose rows each have one field more than it (R's row names), else
    None. The first few rows decide, as pandas' reader does."""
    import csv
    import itertools

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            head = list(itertools.islice(csv.reader(fh), rows + 1))
    except (UnicodeDecodeError, csv.Error):
        return None  # the reader itself says what is wrong with the file
    if len(head) < 2 or not head[0]:
        return None
    header, body = head[0], head[1:]
    if all(len(r) == len(header) + 1 for r in body):
        return header
    return None


def unused_name(names: list[str]) -> str:
    name = "__row_names"
    while name in names:
        name += "_"
    return name


def column_names(df) -> list[str]:
    if isinstance(df, pd.DataFrame):
        return [str(c) for c in df.columns]
    if hasattr(df, "collect_schema"):  # polars LazyFrame
        return list(df.collect_schema().names())
    return [str(c) for c in getattr(df, "columns", [])]  # DuckDB relation


def check_separator(df, path: Path) -> None:
    """A CSV written with ';' or tabs reads as one column named 'a;b;c': say so."""
    if path.suffix.lower() != ".csv":
        return
    names = column_names(df)
    if len(names) == 1:
        for sep, word in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
            if sep in names[0]:
                raise DataError(
                    f"`FILE` must be comma-separated; its header {names[0]!r} looks separated by "
                    f"{word}. Convert it first, e.g. in Python: "
                    f"pd.read_csv({path.name!r}, sep={sep!r}).to_csv('{path.stem}-comma.csv', "
                    "index=False)."
                )


def reading_errors() -> tuple[type[BaseException], ...]:
    """The exceptions the CSV/Parquet readers raise on a malformed or mis-encoded file."""
    errors: list[type[BaseException]] = [UnicodeDecodeError, pd.errors.ParserError]
    errors.append(pd.errors.EmptyDataError)
    import importlib

    for module, names in (
        ("narwhals.exceptions", ("NarwhalsError",)),
        ("polars.exceptions", ("PolarsError",)),
        ("duckdb", ("Error",)),
        ("pyarrow", ("ArrowException",)),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        errors += [getattr(mod, n) for n in names if hasattr(mod, n)]
    return tuple(errors)


def reading_message(path: Path, exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    first = text[:200] + ("..." if len(text) > 200 else "")
    if isinstance(exc, UnicodeDecodeError) or "utf-8" in text.lower() or "utf8" in text.lower():
        return (
            f"`FILE` must be UTF-8 text; {str(path)!r} is not ({first}). Convert it first, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}-utf8{path.suffix}`."
        )
    return (
        f"`FILE` must be a well-formed CSV or Parquet file; reading {str(path)!r} failed "
        f"({type(exc).__name__}: {first}). Check its format, or try another --engine."
    )
