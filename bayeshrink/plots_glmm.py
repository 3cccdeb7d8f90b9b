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

__all__ = [
    "GlmmPicture",
    "glmm_curves",
    "glmm_shrinkage",
    "glmm_shrinkage_curve",
    "mark_infinite",
    "plot_shrinkage_curve_glmm",
    "plot_shrinkage_glmm",
    "plot_triplot_glmm",
]

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


# =============================================================================== shrinkage
SCALES = ("link", "response")


def _check_scale(scale) -> str:
    if scale not in SCALES:
        raise MethodError(
            f"`scale` must be 'link' or 'response'; got {scale!r}. 'response' draws a GLMM's "
            "intercepts as probabilities (binomial) or rates (Poisson)."
        )
    return scale


class GlmmPicture:
    """One random term of a GLMM as the shrinkage pictures draw it, on the link or the
    response scale, from ``fit.table(term, factor)``.

    The own estimate of a group whose data are all failures, all successes (binomial) or all
    zero (Poisson) is -inf or +inf on the link scale (table()'s ``own_status`` says which): the
    link-scale pictures draw it at the edge of the axis with an open triangle pointing off the
    axis; on the response scale it is the limit, a probability of 0 or 1 or a rate of 0.
    """

    def __init__(self, fit, term=None, factor=None, scale="link"):
        self.fit = fit
        self.scale = _check_scale(scale)
        f = fit._factor(factor)
        self.factor = f.name
        self.term = term if term is not None else f.terms[0]
        self.table = t = fit.table(self.term, f.name)
        if scale == "response" and self.term != "Intercept":
            raise MethodError(
                f"`scale='response'` draws intercepts as {self._unit()}; the term {self.term!r} "
                "is a slope, which has no such scale. Use scale='link' for it."
            )
        status = t["own_status"].to_numpy()
        self.infinite = np.zeros(len(t), dtype=int)  # -1: -inf, +1: +inf
        self.infinite[np.char.startswith(status.astype(str), "all failures")] = -1
        self.infinite[np.char.startswith(status.astype(str), "all zero")] = -1
        self.infinite[np.char.startswith(status.astype(str), "all successes")] = 1
        own = t["no_pooling"].to_numpy(dtype=float)
        self.own_link = own
        self.mode_link = t["cond_mode"].to_numpy(dtype=float)
        self.centre_link = float(t["prior_mean"].iloc[0])
        self.tau = float(t["prior_sd"].iloc[0])
        self.shrinkage = t["shrinkage"].to_numpy(dtype=float)
        self.weight = t["trials"].to_numpy(dtype=float)

    def _unit(self) -> str:
        if self.fit.family == "binomial":
            return "probabilities"
        return "rates"

    def to_scale(self, v):
        v = np.asarray(v, dtype=float)
        if self.scale == "link":
            return v
        out = self.fit._family.link.linkinv(np.where(np.isfinite(v), v, 0.0))
        out = np.where(np.isnan(v), np.nan, out)
        out = np.where(v == -np.inf, 0.0, out)
        return np.where(v == np.inf, 1.0 if self.fit.family == "binomial" else np.inf, out)

    def own_rows(self, z: float):
        """(estimate, lo, hi) of the own estimates +- z se on the scale: a group with no
        finite estimate is NaN on the link scale (the forest marks it at the edge) and its
        limit, with no width, on the response scale."""
        t = self.table
        own, se = self.own_link, t["se"].to_numpy(dtype=float)
        mid, lo, hi = (self.to_scale(v) for v in (own, own - z * se, own + z * se))
        if self.scale == "response":
            lim = self.own()[self.infinite != 0]
            for a in (mid, lo, hi):
                a[self.infinite != 0] = lim
        return mid, lo, hi

    def own(self) -> np.ndarray:
        """Own estimates on the scale, infinite ones as +-inf (link) or their limit."""
        own = self.own_link.copy()
        own[self.infinite == -1] = -np.inf
        own[self.infinite == 1] = np.inf
        return self.to_scale(own)

    @property
    def n_groups(self) -> int:
        return len(self.table)

    @property
    def groups(self):
        return self.table.index

    @property
    def mu(self) -> float:
        """The fixed effect on the picture's scale."""
        return float(self.to_scale(np.array([self.centre_link]))[0])

    @property
    def centre_label(self) -> str:
        return "fixed effect" if self.term == "Intercept" else f"fixef[{self.term!r}]"

    @property
    def axis_label(self) -> str:
        fam, link = self.fit.family, self.fit.link
        covariates = len(self.fit.fixed_terms) > 1
        at = " at the reference covariate values" if covariates else ""
        if self.scale == "response":
            what = "probability" if fam == "binomial" else "rate per unit of exposure"
            return f"{self.factor}: {what}{at} (response scale)"
        word = "intercept" if self.term == "Intercept" else f"coefficient of {self.term}"
        return f"{self.factor} {word}, {link} scale"


def _edge_positions(values: np.ndarray, infinite: np.ndarray, others) -> tuple[float, float]:
    finite = np.r_[values[np.isfinite(values)], np.asarray(others, dtype=float)]
    lo, hi = float(np.min(finite)), float(np.max(finite))
    pad = 0.08 * max(hi - lo, 1e-9)
    return lo - pad, hi + pad


def mark_infinite(ax, pic: GlmmPicture, y, order, offset: float) -> None:
    """The forest's rows of groups with no finite own estimate: an open triangle at the axis'
    edge, pointing off it (link scale)."""
    lo, hi = ax.get_xlim()
    inf = pic.infinite[order]
    inset = 0.012 * (hi - lo)
    for side, marker, x in ((-1, "<", lo + inset), (1, ">", hi - inset)):
        sel = inf == side
        if sel.any():
            label = f"own estimate {'-' if side < 0 else '+'}inf (no finite MLE)"
            ax.plot(np.full(sel.sum(), x), y[sel] + offset, marker, ls="", ms=7, mfc="white",
                    mec=LIKELIHOOD, mew=1.4, clip_on=False, gid="own-infinite",
                    label=label)  # fmt: skip
    ax.set_xlim(lo, hi)


def plot_shrinkage_glmm(fit, *, term=None, factor=None, scale: str = "link"):
    """``bs.plot_shrinkage`` for a GLMM: an arrow per group from its own GLM estimate
    (``table()["no_pooling"]``) to its conditional mode (``coef()``), on the link scale or,
    with ``scale="response"``, as probabilities or rates. Marker area grows with the group's
    trials (binomial) or weight (Poisson); the dashed line is the fixed effect."""
    import matplotlib.pyplot as plt

    pic = GlmmPicture(fit, term, factor, scale)
    own = pic.own()
    mode = pic.to_scale(pic.mode_link)
    centre = pic.mu
    fig, ax = plt.subplots(figsize=(9, 2.9))
    sizes = 25 + 175 * pic.weight / max(pic.weight.max(), 1e-300)
    left, right = _edge_positions(own, pic.infinite, np.r_[mode, centre])
    drawn = np.where(own == -np.inf, left, np.where(own == np.inf, right, own))
    off_axis = ~np.isfinite(own)
    for x0, x1, off in zip(drawn, mode, off_axis, strict=True):
        ax.annotate(
            "",
            xy=(x1, 0.0),
            xytext=(x0, 1.0),
            gid="shrinkage-arrow",
            arrowprops={
                "arrowstyle": "-|>",
                "color": "0.45",
                "lw": 1.0,
                "ls": "--" if off else "-",
                "shrinkA": 4,
                "shrinkB": 4,
            },
        )
    ok = ~off_axis
    ax.scatter(drawn[ok], np.ones(ok.sum()), s=sizes[ok], color=LIKELIHOOD, zorder=3,
               edgecolor="white", label="own estimate (the group's own GLM)",
               gid="own")  # fmt: skip
    if off_axis.any():
        for side, marker in ((-1, "<"), (1, ">")):
            sel = off_axis & (own == side * np.inf)
            if sel.any():
                ax.scatter(drawn[sel], np.ones(sel.sum()), s=90, marker=marker,
                           facecolor="white", edgecolor=LIKELIHOOD, lw=1.6, zorder=3,
                           label=f"own estimate {'-' if side < 0 else '+'}inf (drawn at the edge)",
                           gid="own-infinite", clip_on=False)  # fmt: skip
    ax.scatter(mode, np.zeros(len(mode)), s=sizes, color=POSTERIOR, zorder=3, edgecolor="white",
               label="conditional mode (coef)", gid="mode")  # fmt: skip
    ax.axvline(centre, color=PRIOR, ls="--", lw=1.2, label=pic.centre_label, gid="centre")
    ax.set_yticks([0, 1], ["conditional\nmode", "own\nestimate"], fontsize=9)
    ax.set_ylim(-0.35, 1.35)
    if pic.scale == "response" and fit.family == "binomial":
        ax.set_xlim(min(-0.02, ax.get_xlim()[0]), max(ax.get_xlim()[1], 0.0))
    ax.set_xlabel(pic.axis_label)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    lines = [
        f"SD of the {pic.factor} effects = {pic.tau:.3g} ({fit.link} scale);  mean shrinkage "
        f"B = {pic.shrinkage.mean():.3f} (on the {fit.link} scale)"
    ]
    n_inf = int((pic.infinite != 0).sum())
    if n_inf:
        what = {
            ("binomial", -1): "all failures",
            ("binomial", 1): "all successes",
            ("poisson", -1): "all zero",
        }
        kinds = sorted({what[(fit.family, int(s))] for s in pic.infinite[pic.infinite != 0]})
        lines.append(
            f"{n_inf} group{'s' if n_inf > 1 else ''} with {' or '.join(kinds)}: no finite own "
            "estimate; "
            + ("drawn at the edge" if pic.scale == "link" else "drawn at its limit, 0 or 1")
        )
    ax.set_title("\n".join(lines), fontsize=9.5, loc="left")
    fig.legend(loc="lower center", ncol=3, fontsize=8.5, frameon=False, markerscale=0.6)
    scale_word = "link" if pic.scale == "link" else "response"
    fig.suptitle(
        f"{fit.formula}\nShrinkage on the {scale_word} scale: from each group's own estimate "
        "to its conditional mode",
        fontsize=10.5,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def glmm_shrinkage(fits, term, factor, scale):
    """``plot_shrinkage``'s GLMM branch: the figure for a GLMM, None for other fits (after
    refusing a response scale for them, and a dict holding a GLMM)."""
    from collections.abc import Mapping

    from .errors import DataTypeError
    from .glmm.results import GlmmFit

    if isinstance(fits, GlmmFit):
        return plot_shrinkage_glmm(fits, term=term, factor=factor, scale=scale)
    if scale != "link":
        raise MethodError(
            f"`scale` must be 'link' (the default) except for a GLMM; got scale={scale!r} for "
            "a normal model, whose estimates have one scale."
        )
    if isinstance(fits, Mapping) and any(isinstance(v, GlmmFit) for v in fits.values()):
        raise DataTypeError(
            "`fits` must be one GLMM fit, or a dict of normal fits; got a dict holding a GLMM. "
            "Draw each GLMM with its own bs.plot_shrinkage(fit)."
        )
    return None


def glmm_shrinkage_curve(fit, ratios, taus, n_max):
    """``plot_shrinkage_curve``'s GLMM branch: the figure for a GLMM, None for other fits."""
    from .glmm.results import GlmmFit

    if not isinstance(fit, GlmmFit):
        return None
    if ratios is not None or n_max is not None:
        raise DataError(
            "`ratios` and `n_max` are for normal models; for a GLMM give `taus` (SDs on the "
            "link scale)."
        )
    return plot_shrinkage_curve_glmm(fit, taus)


def plot_shrinkage_curve_glmm(fit, taus=None, *, factor=None):
    """``bs.plot_shrinkage_curve`` for a GLMM with one scalar term: B against the
    information of a group's data at its conditional mode, I_j = Z_j'WZ_j (link scale), where
    B(I) = 1 / (1 + I tau^2) holds exactly (``table()["shrinkage"]``); dashed curves for other
    SDs ``taus``. For binary data I_j is about the group's trials x p (1 - p)."""
    import matplotlib.pyplot as plt

    f = fit._factor(factor)
    if len(f.terms) != 1:
        raise MethodError(
            f"`fit` must have one scalar random term here (B = 1 / (1 + I tau^2) holds only "
            f"then); got the terms {list(f.terms)} of {f.name!r}. Use plot_shrinkage(term=...)."
        )
    t = fit.table(f.terms[0], f.name)
    info = fit._information(f)[:, 0, 0]
    tau = float(t["prior_sd"].iloc[0])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    upper = max(float(info.max()) * 5, 10.0)
    x = np.geomspace(max(float(info.min()) / 5, 1e-3), upper, 300)
    ax.plot(x, 1 / (1 + x * tau**2), color=POSTERIOR, lw=2.2, gid="curve-fitted",
            label=rf"fitted SD $\hat\tau$ = {tau:.3g} ({fit.link} scale)")  # fmt: skip
    styles = ["--", ":", "-."]
    for i, other in enumerate([] if taus is None else list(taus)):
        ax.plot(x, 1 / (1 + x * float(other) ** 2), color=f"C{i + 4}", lw=1.4,
                ls=styles[i % 3], label=rf"$\tau$ = {float(other):.3g}",
                gid="curve-other")  # fmt: skip
    ax.scatter(info, t["shrinkage"], color=LIKELIHOOD, zorder=3, s=28, edgecolor="white",
               label="groups", gid="groups")  # fmt: skip
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel(r"information of the group's data at its conditional mode, $Z_j'WZ_j$")
    ax.set_ylabel(r"shrinkage factor $B$ (1 = complete pooling)")
    ax.set_title(
        f"How shrinkage depends on the information per {f.name} ({fit.family}, {fit.link} link)",
        fontsize=10.5,
    )
    ax.legend(fontsize=8.5, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
