"""Gelman & Hill's per-group lines for any fit: no, complete and partial pooling (matplotlib only).

The numbers come from :func:`bayeshrink.inference.pooling_predictions`; this module draws them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .errors import DataError
from .plots import LIKELIHOOD, POSTERIOR, PRIOR, one_factor

__all__ = ["plot_predictions"]


def plot_predictions(
    fit,
    data,
    *,
    x: str | None = None,
    groups: Sequence | None = None,
    n_groups: int = 8,
    at: Mapping | None = None,
    ncols: int = 4,
    factor: str | None = None,
) -> Figure:
    """Gelman & Hill's per-group lines: no pooling, complete pooling and partial pooling.

    One panel per chosen group with its data points and three fitted lines along the covariate
    ``x`` (Gelman & Hill 2007, figure 12.4): the group's own least-squares fit (no pooling,
    orange, the likelihood's centre), ordinary least squares ignoring the groups (complete
    pooling, blue, the population line) and the BLUP prediction (partial pooling, green, the
    posterior mean) in between, nearer the group's own line the more data it has. A one-way fit
    (no covariate) shows the three as horizontal levels. The numbers come from
    :func:`bayeshrink.inference.pooling_predictions`.

    Parameters
    ----------
    fit : ShrinkageFit or MixedFit
    data : DataFrame
        The data the model was fitted to (for the points; the fit keeps no rows).
    x : str, optional
        Covariate on the horizontal axis; by default the fit's only numeric covariate.
    groups : list, optional
        Group labels to show; by default ``n_groups`` spread over the range of group sizes.
    at : mapping, optional
        Values for the other covariates of the formula along each line.
    factor : str, optional
        With several grouping factors (crossed or nested), the one whose levels the panels
        show; the other factors' effects are at 0 (their population value) in all three lines,
        and the points are the level's rows, whatever their other levels.
    """
    from .inference import factor_columns, level_values, pooling_predictions, response_values

    view = one_factor(fit, factor)
    df = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    factor, columns = factor_columns(fit, factor)
    absent = [c for c in columns if c not in df.columns]
    if absent and factor not in df.columns:
        raise DataError(f"`data` must have the grouping column {absent[0]!r}; it does not.")
    labels = list(view.groups)
    if groups is None:
        sizes = np.asarray(view.n, dtype=float)
        order = np.argsort(sizes, kind="stable")
        k = min(n_groups, len(labels))
        picks = order[np.unique(np.linspace(0, len(order) - 1, k).round().astype(int))]
        groups = [labels[i] for i in sorted(picks)]
    else:
        groups = list(groups)
        bad = [g for g in groups if g not in labels]
        if bad:
            raise DataError(
                f"`groups` must be labels of the fit; got {bad[:5]}, not among "
                f"{labels[:8]}{' ...' if len(labels) > 8 else ''}."
            )
    encoder = getattr(getattr(fit, "design", None), "encoder", None)
    covariates = [] if encoder is None else list(encoder.variables)
    if x is None and covariates:
        numeric = [c for c in covariates if c in df and pd.api.types.is_numeric_dtype(df[c])]
        if len(numeric) != 1:
            raise DataError(
                f"`x` must name the covariate for the horizontal axis; the formula uses "
                f"{covariates}. Pass e.g. x={numeric[0] if numeric else covariates[0]!r}."
            )
        x = numeric[0]
    if x is not None and x not in df.columns:
        raise DataError(f"`x` must be a column of `data`; got {x!r}.")
    at = dict(at or {})
    others = [c for c in covariates if c != x and c not in at]
    if others:
        raise DataError(
            f"`at` must give values for the other covariates {others} (held fixed along each "
            f"line), e.g. at={{{others[0]!r}: ...}}."
        )
    y = response_values(fit, df)
    gcol = level_values(fit, df, factor).to_numpy()
    ncols = max(1, min(ncols, len(groups)))
    nrows = math.ceil(len(groups) / ncols)
    height = 2.6 * nrows + 0.6
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.0 * ncols, height), sharex=True, sharey=True, squeeze=False
    )
    if x is not None:
        grid = np.linspace(float(df[x].min()), float(df[x].max()), 50)
    else:
        grid = np.array([0.0, 1.0])
    text = pd.Index([str(g) for g in gcol])
    for ax, g in zip(axes.flat, groups, strict=False):
        here = (gcol == g) | (text == str(g))
        if factor in df.columns:
            rows = pd.DataFrame({factor: [g] * len(grid)})
        else:  # the level's columns, from one of its rows (an interaction a:b)
            rows = df.loc[here, list(columns)].iloc[[0] * len(grid)].reset_index(drop=True)
        for k, v in at.items():
            rows[k] = v
        if x is not None:
            rows[x] = grid
        lines = pooling_predictions(fit, rows, factor if len(fit.factors) > 1 else None)
        xs = df[x].to_numpy()[here] if x is not None else np.full(here.sum(), 0.5)
        ax.scatter(xs, y[here], s=12, color="0.35", zorder=3, gid="data")
        for col, colour, style, label in (
            ("complete_pooling", PRIOR, "--", "complete pooling"),
            ("no_pooling", LIKELIHOOD, ":", "no pooling (own fit)"),
            ("partial_pooling", POSTERIOR, "-", "partial pooling (BLUP)"),
        ):
            ax.plot(grid, lines[col], style, color=colour, lw=1.8, label=label, gid=col)
        ax.set_title(f"{factor} {g} (n = {int(here.sum())})", fontsize=9)
        if x is None:
            ax.set_xticks([])
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        if x is not None:
            ax.set_xlabel(x)
    for ax in axes[:, 0]:
        ax.set_ylabel(fit.response)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, frameon=False, fontsize=9)
    title = getattr(fit, "formula", None) or f"{fit.response} ~ 1 + (1 | {factor})"
    fig.suptitle(f"{title} ({fit.method.upper()})", fontsize=10)
    fig.tight_layout(rect=(0, 0.4 / height, 1, 1 - 0.3 / height))
    return fig
