"""Number formatting and the HTML / JSON building blocks shared by every result class.

Numbers stay numbers everywhere else: rounding happens only here, for ``summary()``,
``__str__`` and ``_repr_html_``.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

__all__ = ["fmt", "html_report", "plain", "records"]


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


def html_report(title: str, lines: list[tuple[str, str]], text: str, table: pd.DataFrame) -> str:
    """A fit for Jupyter: a title, a two-column table of components, a paragraph, a table."""
    comps = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in lines
    )
    body = table.to_html(float_format=lambda v: fmt(v, 6))
    return (
        f"<div><strong>{html.escape(title)}</strong><table>{comps}</table>"
        f"<p>{html.escape(text)}</p>{body}</div>"
    )
