"""Plots of the Bayesian workflow's tables (no PyMC here: they read what bayes returns).

:func:`plot_prior_sensitivity` draws the posterior of tau under each prior from the tidy
draws of :func:`bayeshrink.prior_sensitivity`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .errors import DataError, DataTypeError

__all__ = ["plot_prior_sensitivity"]


def _density(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of draws of a positive quantity, reflected at 0 so that the
    density does not leak below it (Scott's bandwidth)."""
    x = x[np.isfinite(x)]
    sd = float(np.std(x))
    if x.size < 2 or sd == 0:
        return np.zeros_like(grid)
    h = 1.06 * sd * x.size ** (-0.2)
    u = (grid[:, None] - x[None, :]) / h
    v = (grid[:, None] + x[None, :]) / h  # the reflection of every draw at 0
    k = np.exp(-0.5 * u**2) + np.exp(-0.5 * v**2)
    return k.sum(axis=1) / (x.size * h * np.sqrt(2 * np.pi))


def plot_prior_sensitivity(result, *, ax=None, upper_quantile: float = 0.99) -> Figure:
    """The posterior density of tau under each prior, one line each, with the fit's tau_hat.

    ``result`` is what :func:`bayeshrink.prior_sensitivity` returns (or its ``draws``: a
    DataFrame with columns ``prior`` and ``tau``). The x-axis runs from 0 to the
    ``upper_quantile`` of all draws; each line's label carries the posterior median and
    central interval from ``result.table``.
    """
    table = getattr(result, "table", None)
    draws = getattr(result, "draws", result)
    if not isinstance(draws, pd.DataFrame) or not {"prior", "tau"} <= set(draws.columns):
        raise DataTypeError(
            "`result` must be what bs.prior_sensitivity returns, or a DataFrame with columns "
            f"'prior' and 'tau'; got {type(result).__name__}."
        )
    if len(draws) == 0:
        raise DataError("`result` must hold draws of tau; got an empty table.")
    if not 0 < upper_quantile <= 1:
        raise DataError(f"`upper_quantile` must lie in (0, 1]; got {upper_quantile!r}. E.g. 0.99.")
    fig = ax.figure if ax is not None else plt.figure(figsize=(7, 4))
    ax = ax if ax is not None else fig.add_subplot()
    top = float(np.quantile(draws["tau"], upper_quantile))
    grid = np.linspace(0, top, 400)
    labels = (
        list(draws["prior"].cat.categories)
        if isinstance(draws["prior"].dtype, pd.CategoricalDtype)
        else list(dict.fromkeys(draws["prior"]))
    )
    styles = ["-", "--", "-.", ":"]
    for i, label in enumerate(labels):
        x = draws.loc[draws["prior"] == label, "tau"].to_numpy(float)
        text = str(label)
        if table is not None and label in table.index:
            row = table.loc[label]
            text += f": median {row['median']:.3g} [{row['lo']:.3g}, {row['hi']:.3g}]"
        ax.plot(grid, _density(x, grid), linestyle=styles[i % len(styles)], label=text, gid=label)
    if table is not None and "tau_hat" in table.attrs:
        ax.axvline(table.attrs["tau_hat"], color="0.5", lw=1, gid="tau_hat")
        ax.annotate(" tau_hat", (table.attrs["tau_hat"], 0), xycoords=("data", "axes fraction"),
                    va="bottom", color="0.4")  # fmt: skip
    ax.set_xlim(0, top)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("tau (between-group SD)")
    ax.set_ylabel("posterior density")
    ax.set_title("Posterior of tau under each prior")
    ax.legend(frameon=False, fontsize="small")
    return fig
