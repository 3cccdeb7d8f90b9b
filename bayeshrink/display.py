"""Number formatting and the HTML / JSON building blocks shared by every result class.

Numbers stay numbers everywhere else: rounding happens only here, for ``summary()``,
``__str__`` and ``_repr_html_``.

Per-group tables are bounded here, once, for every fit, as pandas bounds a DataFrame's repr:
a table longer than ``pandas.get_option("display.max_rows")`` (60) shows its first and last
``display.min_rows // 2`` rows (5 and 5) and a line counting the rest
(``... 99,990 more groups ...``). ``display.max_rows = None`` shows every row. ``fit.table()``
itself is never cut.
"""

from __future__ import annotations

import html
import math
import re

import numpy as np
import pandas as pd

__all__ = ["bounded_rows", "fmt", "html_report", "plain", "records", "table_html", "table_text"]


def fmt(x, digits: int = 6) -> str:
    """Round for display only: integers as they are, NaN/inf as ``nan``, floats to ``digits``
    significant digits."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    x = float(x)
    return "nan" if not math.isfinite(x) else f"{x:.{digits}g}"


def plain(value):
    """A JSON-ready Python value: numpy scalars unwrapped, NaN as None."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) else value
    if hasattr(value, "item") and np.ndim(value) == 0:
        return value.item()
    return value


def records(frame: pd.DataFrame) -> dict[str, list]:
    """A DataFrame as {column: [plain values]} (NaN as None)."""
    return {str(k): [plain(v) for v in col] for k, col in frame.items()}


def bounded_rows(n_rows: int) -> tuple[int, int]:
    """How many rows to show from the top and from the bottom of an ``n_rows`` table: all of
    them (``(n_rows, 0)``) up to pandas' ``display.max_rows``, else ``display.min_rows``
    split between head and tail."""
    max_rows = pd.get_option("display.max_rows")
    if max_rows is None or max_rows <= 0 or n_rows <= max_rows:
        return n_rows, 0
    shown = min(pd.get_option("display.min_rows") or max_rows, max_rows)
    shown = max(shown, 2)
    return (shown + 1) // 2, shown // 2


def _more(hidden: int, noun: str, where: str) -> str:
    tail = f"; {where} has every row" if where else ""
    return f"... {hidden:,} more {noun}{tail} ..."


def table_text(table: pd.DataFrame, noun: str = "groups", where: str = "", digits: int = 6) -> str:
    """A per-group table as text, rounded to ``digits`` significant digits and bounded (see the
    module docstring); ``where`` names the call that gives every row (e.g. ``"fit.table()"``)."""
    head, tail = bounded_rows(len(table))
    if not tail:
        return table.to_string(float_format=lambda v: fmt(v, digits))
    shown = pd.concat([table.iloc[:head], table.iloc[-tail:]])
    lines = shown.to_string(float_format=lambda v: fmt(v, digits)).split("\n")
    hidden = len(table) - head - tail
    lines.insert(len(lines) - tail, _more(hidden, noun, where))
    return "\n".join(lines)


def table_html(table: pd.DataFrame, noun: str = "groups", where: str = "", digits: int = 6) -> str:
    """A per-group table as HTML, bounded as :func:`table_text`: the hidden rows are one row
    saying how many there are."""
    head, tail = bounded_rows(len(table))
    float_format = lambda v: fmt(v, digits)  # noqa: E731
    if not tail:
        return table.to_html(float_format=float_format)
    shown = pd.concat([table.iloc[:head], table.iloc[-tail:]])
    out = shown.to_html(float_format=float_format)
    body = out.index("<tbody>")
    rows = [m.start() for m in re.finditer(r"<tr[ >]", out[body:])]
    at = body + rows[head]
    width = table.shape[1] + table.index.nlevels
    hidden = len(table) - head - tail
    more = html.escape(_more(hidden, noun, where))
    row = f"<tr><td colspan='{width}' style='text-align:center'>{more}</td></tr>\n    "
    return out[:at] + row + out[at:]


def html_report(
    title: str,
    lines: list[tuple[str, str]],
    text: str,
    tables: pd.DataFrame | list[tuple[str, pd.DataFrame, str]],
    noun: str = "groups",
) -> str:
    """A fit for Jupyter: a title, a two-column table of components, a paragraph, and the
    per-group table(s), bounded as :func:`table_html`. ``tables`` is one DataFrame or a list
    of (caption, DataFrame, where) triples, ``where`` naming the call that gives every row."""
    comps = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in lines
    )
    if isinstance(tables, pd.DataFrame):
        tables = [("", tables, "fit.table()")]
    body = "".join(
        (f"<p>{html.escape(caption)}</p>" if caption else "") + table_html(t, noun, where)
        for caption, t, where in tables
    )
    return (
        f"<div><strong>{html.escape(title)}</strong><table>{comps}</table>"
        f"<p>{html.escape(text)}</p>{body}</div>"
    )


def group_tables(fit, factor: str | None = None) -> list[tuple[str, pd.DataFrame, str]]:
    """Every random term's per-group table of ``fit`` (``fit.table(term)`` without the prior
    columns, which are constant) as (caption, table, where) triples for :func:`html_report` and
    :func:`group_tables_text`; ``factor`` names the grouping factor of a several-factor fit."""
    terms = list(fit.random_terms)
    out = []
    for term in terms:
        args = [repr(term)] if len(terms) > 1 else []
        if factor is not None:
            args.append(f"factor={factor!r}")
        caption = f"Per {fit.group} ({fit.n_groups:,} levels), {term}:"
        table = fit.table(term).drop(columns=["prior_mean", "prior_sd"])
        out.append((caption, table, f"fit.table({', '.join(args)})"))
    return out


def group_tables_text(tables: list[tuple[str, pd.DataFrame, str]], noun: str = "groups") -> str:
    """The triples of :func:`group_tables` as text, each table bounded as :func:`table_text`."""
    return "\n".join(f"{caption}\n{table_text(t, noun, where)}" for caption, t, where in tables)
