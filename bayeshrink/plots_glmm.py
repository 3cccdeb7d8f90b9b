"""The triplot of a GLMM group, on the link scale: prior, likelihood, the exact posterior.

For one scalar random term, group j's plug-in posterior of its coefficient c_j (the fixed
effect plus b_j) is

    p(c_j | y_j) ∝ prod_i p(y_ij | eta_ij(c_j)) N(c_j; fixef, tau_hat^2)

which is not normal. Each panel draws the prior N(fixef, tau_hat^2), the group's binomial or
Poisson likelihood normalised to unit area over the panel's range (a group of all failures, all
successes or all zeros has a likelihood that never falls to 0 on one side: its normalised curve
depends on the range shown), the exact posterior on a fine grid with its mode (lme4's
conditional mode) and mean marked, and the Laplace approximation N(mode, condVar) dashed. The
mode, mean and SDs are :func:`bayeshrink.glmm.posterior.plugin_posterior`'s. No PyMC here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import xarray as xr
from arviz_plots import PlotCollection
from matplotlib.lines import Line2D

from .errors import DataError, MethodError
from .glmm.posterior import plugin_posterior
from .posterior import GROUP_DIM

__all__ = ["glmm_curves", "plot_triplot_glmm"]

PRIOR, LIKELIHOOD, POSTERIOR, LAPLACE = "#3b6fb6", "#e07b1f", "#2e9e5b", "#222222"


def _log_lik(fit, f, j: int, grid: np.ndarray) -> np.ndarray:
    """Group j's log-likelihood (kernel) at each coefficient value of ``grid``."""
    des, fam = fit._design, fit._family
    rows = f.codes == j
    z = f.Z[rows, 0]
    fixed = float(fit.fixef.get(f.terms[0], 0.0))
    base = fit._eta[rows] - z * f.b[j, 0]  # eta without the group's effect
    eta = base[None, :] + z[None, :] * (grid[:, None] - fixed)
    mu = fam.link.linkinv(eta)
    return fam.loglik_kernel(des.y[rows][None, :], mu, des.wt[rows][None, :]).sum(axis=1)


def _normalise(logd: np.ndarray, grid: np.ndarray) -> np.ndarray:
    d = np.exp(logd - logd.max())
    return d / np.trapezoid(d, grid)


def glmm_curves(fit, groups: Sequence | None = None, n_points: int = 801) -> xr.Dataset:
    """The curves of :func:`plot_triplot_glmm` for ``groups`` (default all): ``prior``,
    ``likelihood``, ``posterior`` and ``laplace`` over (``level``, ``point``, ``plot_axis``),
    with the posterior's ``mode``, ``mean`` and ``sd`` (from ``plugin_posterior``) per level."""
    post = plugin_posterior(fit)  # raises for anything but one scalar term
    f = fit._factors[0]
    labels = [str(g) for g in f.labels]
    chosen = labels if groups is None else [str(g) for g in groups]
    absent = [g for g in chosen if g not in labels]
    if absent or not chosen:
        raise DataError(
            f"`groups` must be levels of {f.name!r}; got {absent or list(groups)}. Levels are "
            f"{labels[:8]}{' ...' if len(labels) > 8 else ''}."
        )
    if not (isinstance(n_points, int) and n_points >= 50):
        raise MethodError(f"`n_points` must be an integer of at least 50; got {n_points!r}.")
    fixed = float(fit.fixef.get(f.terms[0], 0.0))
    tau = float(abs(f.T[0, 0]))
    out = {k: [] for k in ("prior", "likelihood", "posterior", "laplace")}
    for g in chosen:
        j = labels.index(g)
        row = post.iloc[j]
        half = max(4.0 * tau, 6.0 * row["laplace_sd"])
        grid = np.linspace(row["mode"] - half, row["mode"] + half, n_points)
        ll = _log_lik(fit, f, j, grid)
        prior_log = -0.5 * ((grid - fixed) / tau) ** 2 if tau > 0 else np.zeros_like(grid)
        curves = {
            "prior": np.exp(prior_log) / (tau * math.sqrt(2 * math.pi)),
            "likelihood": _normalise(ll, grid),
            "posterior": _normalise(ll + prior_log, grid),
            "laplace": np.exp(-0.5 * ((grid - row["mode"]) / row["laplace_sd"]) ** 2)
            / (row["laplace_sd"] * math.sqrt(2 * math.pi)),
        }
        for k, y in curves.items():
            out[k].append(np.stack([grid, y], axis=-1))
    dims = (GROUP_DIM, "point", "plot_axis")
    sub = post.iloc[[labels.index(g) for g in chosen]]
    return xr.Dataset(
        {
            **{k: (dims, np.array(v)) for k, v in out.items()},
            "mode": ((GROUP_DIM,), sub["mode"].to_numpy()),
            "mean": ((GROUP_DIM,), sub["mean"].to_numpy()),
            "sd": ((GROUP_DIM,), sub["sd"].to_numpy()),
        },
        coords={GROUP_DIM: chosen, "plot_axis": ["x", "y"]},
    )


def _line(da, target, *, gid, **kwargs):
    (line,) = target.plot(da.sel(plot_axis="x").values, da.sel(plot_axis="y").values, **kwargs)
    line.set_gid(gid)
    return line


def plot_triplot_glmm(
    fit, groups: Sequence | None = None, *, col_wrap: int | None = None, n_points: int = 801
) -> PlotCollection:
    """One panel per group on the link scale: prior, normalised likelihood, the exact
    (non-normal) posterior with its mode and mean marked, and the Laplace normal dashed.
    ``bs.plot_triplot(glmm_fit)`` calls this. Returns an ``arviz_plots.PlotCollection``."""
    if groups is None and fit.n_groups > 16:
        groups = [str(g) for g in fit.groups[:12]]
    data = glmm_curves(fit, groups, n_points)
    chosen = [str(g) for g in data[GROUP_DIM].values]
    k = len(chosen)
    cols = col_wrap or (k if k <= 5 else 4)
    rows = math.ceil(k / cols)
    curves = data[["prior", "likelihood", "posterior", "laplace"]]
    pc = PlotCollection.wrap(
        curves,
        cols=[GROUP_DIM],
        col_wrap=cols,
        backend="matplotlib",
        figure_kwargs={"figsize": (max(3.3 * cols, 9.0), 2.9 * rows + 1.1)},
    )
    pc.map(_line, "prior", data=curves["prior"], gid="prior", color=PRIOR, lw=1.8)
    pc.map(_line, "likelihood", data=curves["likelihood"], gid="likelihood", color=LIKELIHOOD,
           lw=1.6)  # fmt: skip
    pc.map(_line, "posterior", data=curves["posterior"], gid="posterior", color=POSTERIOR, lw=2.6)
    pc.map(_line, "laplace", data=curves["laplace"], gid="laplace", color=LAPLACE, lw=1.2,
           ls="--", zorder=3)  # fmt: skip
    term = fit._factors[0].terms[0]
    for g in chosen:
        ax = pc.viz["plot"].sel({GROUP_DIM: g}).item()
        top = max(ln.get_ydata().max() for ln in ax.lines)
        for what, marker, gid in (("mean", "D", "marker-mean"), ("mode", "o", "marker-mode")):
            v = float(data[what].sel({GROUP_DIM: g}))
            ax.plot([v], [-0.05 * top], marker, color=POSTERIOR, ms=6, gid=gid, clip_on=False,
                    mfc="white" if what == "mean" else POSTERIOR)  # fmt: skip
        ax.set_ylim(-0.09 * top, top * 1.12)
        ax.axhline(0, color="0.6", lw=0.6)
        gap = float(data["mean"].sel({GROUP_DIM: g}) - data["mode"].sel({GROUP_DIM: g}))
        ax.set_title(f"{g}:  mean - mode = {gap:+.3g}", fontsize=10)
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel(f"{term} (link scale: {fit.link})", fontsize=9)
    handles = [
        Line2D([], [], color=PRIOR, lw=1.8, label=r"prior $N(\mathrm{fixef}, \hat\tau^2)$"),
        Line2D([], [], color=LIKELIHOOD, lw=1.6, label=f"{fit.family} likelihood (normalised)"),
        Line2D([], [], color=POSTERIOR, lw=2.6, label="exact posterior"),
        Line2D([], [], color=LAPLACE, lw=1.2, ls="--", label="Laplace N(mode, condVar)"),
        Line2D([], [], color=POSTERIOR, marker="o", ls="", label="mode (conditional mode)"),
        Line2D([], [], color=POSTERIOR, marker="D", mfc="white", ls="", label="posterior mean"),
    ]
    fig = pc.viz["figure"].item()
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8.5, frameon=False)
    head = f"{fit.formula}: plug-in posterior per {fit._factors[0].name} on the link scale"
    if k < fit.n_groups:
        head += f"\n{k} of {fit.n_groups} groups shown"
    fig.suptitle(head, fontsize=11)
    fig.subplots_adjust(bottom=0.1 + 0.25 / rows, top=0.86 if rows > 1 else 0.8)
    return pc
