"""Figures of shrinkage: prior, likelihood and posterior per group, and the pooling pictures.

Every function here consumes results (a fit from :func:`bayeshrink.fit`, and DataTrees from
:func:`bayeshrink.sample`, read through :mod:`bayeshrink.posterior`) and never fits or samples
anything: this module does not import PyMC. Each returns its figure object: an ArviZ
``PlotCollection`` (:func:`plot_triplot`) or a matplotlib ``Figure``; both display inline in
Jupyter. Nothing is drawn at import time.

Colours are fixed across figures: prior blue, likelihood (the group's own data) orange,
posterior / BLUP green, full Bayes purple.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from arviz_plots import PlotCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .api import FitResult
from .errors import DataError, DataTypeError, MethodError
from .posterior import GROUP_DIM, TERM_DIM, term_posterior_table

__all__ = [
    "plot_forest",
    "plot_shrinkage",
    "plot_shrinkage_2d",
    "plot_shrinkage_curve",
    "plot_triplot",
]

PRIOR, LIKELIHOOD, POSTERIOR, FULL, SAMPLED = "#3b6fb6", "#e07b1f", "#2e9e5b", "#7b4fa6", "#222222"
MAX_PANELS = 16


def _check_fit(fit) -> FitResult:
    if not isinstance(fit, FitResult):
        raise DataTypeError(
            f"`fit` must be a fit from bs.fit or bs.fit_summary (ShrinkageFit or MixedFit); got "
            f"{type(fit).__name__}. Plot functions never fit: fit first, then plot."
        )
    return fit


def one_factor(fit, factor):
    """A fit with several grouping factors, reduced to one of them (``factor=``): its
    ``factor_fit(factor)`` answers the one result API as a one-factor fit would."""
    if hasattr(fit, "factor_fit"):
        return fit.factor_fit(factor)
    if factor is not None and factor != getattr(fit, "group", None):
        raise MethodError(
            f"`factor` names a grouping factor of a fit with several; this fit has one "
            f"({getattr(fit, 'group', None)!r}); got {factor!r}. Leave `factor` out."
        )
    return fit


def _no_draws_for_factors(fit, *idatas) -> None:
    if hasattr(fit, "factor_fit") and any(i is not None for i in idatas):
        raise MethodError(
            "posterior draws can be drawn for one grouping factor only so far; got a fit with "
            "several. Compare them with bs.compare(fit, plugin=...) instead."
        )


class _Term:
    """One random term of a fit, as the one-way figures read it, from ``fit.table(term)``.

    The prior is the term's marginal N(prior_mean, prior_sd^2), the likelihood the marginal of
    the group's own fit, the posterior the marginal of N(coef, ranef_sd^2). With correlated
    terms the joint posterior is the product of the joint prior and likelihood, so these
    marginals need not multiply to each other; the 2-D picture is :func:`plot_shrinkage_2d`.
    """

    def __init__(self, fit, term: str | None = None):
        self.fit = _check_fit(fit)
        self.term = fit._term(term)
        self.table = fit.table(self.term)
        #: a model beyond y ~ 1 + (1 | g): covariates or several random terms
        self.general = len(fit.fixed_terms) > 1 or len(fit.random_terms) > 1
        self.groups = fit.groups
        self.n_groups = fit.n_groups
        self.method = fit.method
        self.sigma = fit.sigma
        self.summary_data = fit.data_kind == "summary"
        self.mu = float(self.table["prior_mean"].iloc[0])
        self.tau = float(self.table["prior_sd"].iloc[0])
        self.shrinkage = self.table["shrinkage"].to_numpy()
        # the marginal prior is a point mass (a boundary fit of a single term)
        self.boundary = self.tau == 0.0 or (fit.boundary and len(fit.random_terms) == 1)
        self.several = len(fit.random_terms) > 1
        self.response = f"{fit.response}: {self.term}" if self.several else str(fit.response)

    @property
    def ratio_text(self) -> str:
        """The spread of the prior, unit-free where it can be: tau^2/sigma^2 for one random
        term on long data; the term's own SD (in its units) when there are several terms, since
        a slope's variance over the residual variance depends on the covariate's units."""
        if self.summary_data:
            return rf"$\hat\tau$ = {self.tau:.3g}"
        if self.several:
            return f"SD of {self.term} across groups = {self.tau:.3g}"
        return rf"$\hat\tau^2/\hat\sigma^2$ = {self.tau**2 / self.sigma**2:.3g}"

    @property
    def centre_label(self) -> str:
        """The population value the groups shrink toward: fixef with covariates, else mu_hat."""
        if self.general:
            return (
                f"population {self.term} (fixef)"
                if self.several
                else "population intercept (fixef)"
            )
        return r"$\hat\mu$"

    @property
    def axis_label(self) -> str:
        return (
            f"{self.response} (group coefficient)"
            if self.general
            else (f"{self.response} (group effect)")
        )

    def weights(self) -> np.ndarray:
        """Marker weights: n_j, or 1 / se_j^2 for summary data."""
        t = self.table
        w = 1.0 / t["se"] ** 2 if self.summary_data else t["n"]
        return np.asarray(w, dtype=float)


def _normal_pdf(x, mean, sd):
    return np.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def _group_list(groups) -> list:
    """``groups`` as a list of labels: one label (a string such as "g1", or a number) is a list
    of one, never split into characters; empty and repeated lists are refused."""
    if isinstance(groups, (str, bytes)) or not np.iterable(groups):
        return [groups]
    out = list(groups)
    if not out:
        raise DataError(
            "`groups` must name at least one group; got an empty list. Pass labels of the fit, "
            "or leave `groups` out to show them all."
        )
    seen, repeated = set(), []
    for g in out:
        if g in seen and g not in repeated:
            repeated.append(g)
        seen.add(g)
    if repeated:
        raise DataError(
            f"`groups` must name each group once; got {repeated[:5]} more than once. "
            "Drop the repeats."
        )
    return out


def _check_curve_values(values, name: str, what: str) -> list[float]:
    """``ratios``/``taus`` of plot_shrinkage_curve: finite, non-negative numbers."""
    vals = [values] if np.ndim(values) == 0 else list(values)
    try:
        arr = np.asarray(vals, dtype=float)
    except (TypeError, ValueError):
        raise DataTypeError(f"`{name}` must be numbers ({what}); got {values!r}.") from None
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        raise DataError(
            f"`{name}` must be finite and >= 0 ({what}); got {arr[bad].tolist()}. A variance "
            "cannot be negative; 0 means complete pooling."
        )
    return arr.tolist()


def _check_triplot_args(col_wrap, n_points, idata) -> None:
    if col_wrap is not None and (
        isinstance(col_wrap, bool) or not isinstance(col_wrap, (int, np.integer)) or col_wrap < 1
    ):
        raise DataError(
            f"`col_wrap` must be a whole number of panels per row, at least 1; got {col_wrap!r}."
        )
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 20:
        raise DataError(
            f"`n_points` must be a whole number of at least 20 (points per density curve); got "
            f"{n_points!r}. The default 400 draws smooth curves."
        )
    if idata is not None:
        try:
            idata["posterior"]
        except (TypeError, KeyError):
            raise DataTypeError(
                f"`idata` must be the draws returned by bs.sample (an xarray DataTree with a "
                f"posterior group); got {type(idata).__name__}"
                f"{' without a posterior' if isinstance(idata, Mapping) else ''}."
            ) from None


def _select_groups(fit: _Term, groups) -> tuple[list, str]:
    labels = list(fit.groups)
    if groups is not None:
        groups = _group_list(groups)
        missing = [g for g in groups if g not in labels]
        if missing:
            raise DataError(
                f"`groups` must be labels of the fit; got {missing[:5]}, not among "
                f"{labels[:8]}{' ...' if len(labels) > 8 else ''}."
            )
        return groups, ""
    if len(labels) <= MAX_PANELS:
        return labels, ""
    # many groups: show 12 spread over the range of shrinkage, and say so
    order = np.argsort(fit.shrinkage, kind="stable")
    picks = order[np.unique(np.linspace(0, len(order) - 1, 12).round().astype(int))]
    chosen = [labels[i] for i in sorted(picks)]
    return chosen, (
        f"{len(chosen)} of {len(labels)} groups, spread over the range of shrinkage "
        "(pass groups=[...] to choose)"
    )


def _panel_range(fit: _Term, row) -> tuple[float, float]:
    """An x-range that shows every curve of one group (a row of ``fit.table()``): 4 SDs around
    each proper density."""
    pieces = [(fit.mu, 0.0), (row["blup"], 0.0)]
    if np.isfinite(row["no_pooling"]) and np.isfinite(row["se"]):
        pieces.append((row["no_pooling"], row["se"]))
    if not fit.boundary:
        pieces += [(fit.mu, fit.tau), (row["blup"], row["cond_sd"])]
    lo = min(m - 4 * s for m, s in pieces)
    hi = max(m + 4 * s for m, s in pieces)
    pad = 0.04 * (hi - lo)
    return lo - pad, hi + pad


def _density_dataset(fit: _Term, groups: list, n_points: int) -> xr.Dataset:
    """Prior, likelihood and posterior densities per level, as (x, y) lines for PlotCollection."""
    t = fit.table
    index = {g: i for i, g in enumerate(fit.groups)}
    curves = {"prior": [], "likelihood": [], "posterior": []}
    for g in groups:
        j = index[g]
        row = t.iloc[j]
        lo, hi = _panel_range(fit, row)
        x = np.linspace(lo, hi, n_points)
        specs = {
            "likelihood": (row["no_pooling"], row["se"]),
            "prior": (fit.mu, fit.tau),
            "posterior": (row["blup"], row["cond_sd"]),
        }
        for name, (m, s) in specs.items():
            y = _normal_pdf(x, m, s) if s > 0 and np.isfinite(m) else np.full_like(x, np.nan)
            curves[name].append(np.stack([x, y], axis=-1))
    coords = {GROUP_DIM: [str(g) for g in groups], "plot_axis": ["x", "y"]}
    dims = (GROUP_DIM, "point", "plot_axis")
    return xr.Dataset({k: (dims, np.array(v)) for k, v in curves.items()}, coords=coords)


def _draw_line(da, target, *, gid, **kwargs):
    x, y = da.sel(plot_axis="x").values, da.sel(plot_axis="y").values
    if np.all(np.isnan(y)):  # a point mass has no density curve; drawn as a spike instead
        return None
    (line,) = target.plot(x, y, **kwargs)
    line.set_gid(gid)
    return line


def plot_triplot(
    fit: FitResult,
    idata=None,
    groups: Sequence | None = None,
    *,
    term: str | None = None,
    col_wrap: int | None = None,
    n_points: int = 400,
    factor: str | None = None,
) -> PlotCollection:
    """Prior, likelihood and posterior of every group: the Bayesian reading of the BLUP.

    One panel per group with the plug-in prior N(mu_hat, tau_hat^2), the group's likelihood as
    a density over theta, N(no_pooling, se_j^2), and the posterior N(blup, cond_sd^2); with
    ``idata`` (from the plug-in or full model) also the sampled posterior of ``theta`` as a
    histogram. Markers below the curves sit at no_pooling, mu_hat and the BLUP. On a boundary
    fit the prior (and so the posterior) is a point mass at mu_hat, drawn as a spike.

    Parameters
    ----------
    fit : ShrinkageFit or MixedFit
    idata : xarray.DataTree, optional
        Draws of ``coef`` over dimensions ``level`` and ``term`` (every bayeshrink model has
        them; :func:`bayeshrink.sample` returns them).
    groups : sequence, optional
        Labels to show. By default all groups (at most 16; beyond that 12 spread over the range
        of shrinkage, as the figure title says).
    term : str, optional
        Which random term (default the first, usually the intercept). With several terms its
        panels show the marginal prior N(fixef_k, cov_re_kk), the marginal likelihood of the
        group's own fit, and the marginal posterior N(coef, ranef_sd^2).
    factor : str, optional
        With several grouping factors, which one (lme4's name, e.g. ``"cask:batch"``); its
        levels' likelihoods hold the other factors at their BLUPs.

    Returns
    -------
    arviz_plots.PlotCollection
        ``pc.viz["figure"]`` is the matplotlib Figure; ``pc.viz["plot"]`` the panels by level.

    For a GLMM (:class:`~bayeshrink.glmm.GlmmFit`) the panels are on the link scale: the
    prior, the group's likelihood normalised, the exact non-normal posterior with its mode and
    mean marked, and the Laplace normal dashed (:func:`bayeshrink.plots_glmm.plot_triplot_glmm`).
    """
    from .glmm.results import GlmmFit

    if isinstance(fit, GlmmFit):
        if idata is not None or term is not None or factor is not None:
            raise MethodError(
                "`idata`, `term` and `factor` must be left out for a GLMM's triplot (one scalar "
                f"term, exact curves); got idata={type(idata).__name__}, term={term!r}, "
                f"factor={factor!r}."
            )
        from .plots_glmm import plot_triplot_glmm

        return plot_triplot_glmm(fit, groups, col_wrap=col_wrap, n_points=max(n_points, 801))
    _no_draws_for_factors(fit, idata)
    fit = _Term(one_factor(fit, factor), term)
    mixed = fit.general
    param = fit.term if mixed else r"$\theta_j$"
    _check_triplot_args(col_wrap, n_points, idata)
    chosen, note = _select_groups(fit, groups)
    data = _density_dataset(fit, chosen, n_points)
    k = len(chosen)
    cols = col_wrap or (k if k <= 5 else 4)
    rows = math.ceil(k / cols)
    pc = PlotCollection.wrap(
        data,
        cols=[GROUP_DIM],
        col_wrap=cols,
        backend="matplotlib",
        # at least wide enough for the title and the four-column legend, even with one panel
        figure_kwargs={"figsize": (max(3.3 * cols, 9.0), 2.9 * rows + 1.1)},
    )
    # the likelihood is dashed and on top: with much data it nearly coincides with the posterior
    pc.map(_draw_line, "prior", data=data["prior"], gid="prior", color=PRIOR, lw=1.8)
    pc.map(
        _draw_line, "posterior", data=data["posterior"], gid="posterior", color=POSTERIOR, lw=2.6
    )
    pc.map(
        _draw_line,
        "likelihood",
        data=data["likelihood"],
        gid="likelihood",
        color=LIKELIHOOD,
        lw=1.6,
        ls="--",
        zorder=3,
    )

    t = fit.table
    draws = None
    if idata is not None:
        post = idata["posterior"]
        if "coef" not in post or {GROUP_DIM, TERM_DIM} - set(post["coef"].dims):
            raise DataError(
                f"`idata` must hold `coef` over dimensions ({GROUP_DIM!r}, {TERM_DIM!r}) (from "
                f"bs.sample of a bayeshrink model); got variables {sorted(post.data_vars)}."
            )
        draws = post["coef"].sel({TERM_DIM: fit.term})
    for g in chosen:
        ax = pc.viz["plot"].sel({GROUP_DIM: str(g)}).item()
        row = t.loc[g]
        top = max((ln.get_ydata().max() for ln in ax.lines), default=1.0)
        if fit.boundary:  # prior and posterior are the same point mass at mu_hat
            for color, lw, gid in (
                (PRIOR, 5.0, "prior-point-mass"),
                (POSTERIOR, 1.8, "posterior-point-mass"),
            ):
                ax.annotate(
                    "",
                    xy=(fit.mu, top * 1.02),
                    xytext=(fit.mu, 0),
                    gid=gid,
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": lw},
                )
            top *= 1.05
        if draws is not None:
            values = draws.sel({GROUP_DIM: g}).values.ravel()
            if np.ptp(values) > 0:
                lo, hi = ax.get_xlim()
                dens, edges = np.histogram(values, bins=40, density=True)
                ax.stairs(dens, edges, color=SAMPLED, lw=1.0, ls="--", gid="sampled")
                ax.set_xlim(lo, hi)
                top = max(top, dens.max())
        ax.set_ylim(-0.09 * top, top * 1.12)
        ax.axhline(0, color="0.6", lw=0.6)
        mark_y = -0.05 * top
        ax.plot(
            [row["no_pooling"]] if np.isfinite(row["no_pooling"]) else [],
            [mark_y] if np.isfinite(row["no_pooling"]) else [],
            "^",
            color=LIKELIHOOD,
            ms=7,
            clip_on=False,
            gid="marker-no_pooling",
        )
        ax.plot([fit.mu], [mark_y], "|", color=PRIOR, ms=14, mew=2.2, gid="marker-mu")
        ax.plot([row["blup"]], [mark_y], "o", color=POSTERIOR, ms=6, gid="marker-blup")
        n_txt = f"n={int(row['n'])}, " if np.isfinite(row["n"]) else f"se={row['se']:.3g}, "
        # with several correlated terms B is the diagonal of the shrinkage matrix, not the
        # fraction moved (see FitResult.table)
        b_name = "diagonal B" if fit.several else "B"
        title = f"{g}:  {n_txt}{b_name}={row['shrinkage']:.3f}"
        if fit.boundary:
            title += "\n" + r"prior = point mass ($\hat\tau = 0$)"
        ax.set_title(title, fontsize=10)
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel(param, fontsize=9)
    fig = pc.viz["figure"].item()
    handles = [
        Line2D(
            [],
            [],
            color=PRIOR,
            lw=1.8,
            label=(
                r"prior $N(\hat\mu, \hat\tau^2)$ (marginal)"
                if mixed
                else r"prior $N(\hat\mu, \hat\tau^2)$"
            )
            if not fit.boundary
            else r"prior: point mass at $\hat\mu$ (wide arrow)",
        ),
        Line2D(
            [],
            [],
            color=LIKELIHOOD,
            lw=1.6,
            ls="--",
            label=r"likelihood: own fit, $N(\mathrm{no\ pooling}, se_j^2)$",
        ),
        Line2D(
            [],
            [],
            color=POSTERIOR,
            lw=2.6,
            label=r"posterior $N(\mathrm{BLUP}, \mathrm{cond\_sd}^2)$"
            if not fit.boundary
            else "posterior: the same point mass",
        ),
        Line2D([], [], color=LIKELIHOOD, marker="^", ls="", label="no pooling"),
        Line2D(
            [],
            [],
            color=PRIOR,
            marker="|",
            ms=12,
            mew=2,
            ls="",
            label=r"$\hat\mu$",
        ),
        Line2D([], [], color=POSTERIOR, marker="o", ls="", label="BLUP"),
    ]
    if draws is not None:
        handles.insert(3, Line2D([], [], color=SAMPLED, ls="--", label="sampled posterior"))
    fig.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8.5, frameon=False
    )
    ratio = fit.ratio_text
    head = (
        f"Prior × likelihood = posterior ({fit.method.upper()}: "
        rf"$\hat\mu$ = {fit.mu:.4g}, {ratio})"
    )
    if mixed:
        # one legend for every triplot: lme4's names are mapped onto mu, tau, BLUP, cond_sd here
        head = (
            f"{fit.fit.formula}: term {fit.term!r}, marginals ({fit.method.upper()})\n"
            rf"$\hat\mu$ = fixef = {fit.mu:.4g},  $\hat\tau$ = SD of the term = {fit.tau:.3g},  "
            "BLUP = coef (fixef + ranef),  cond_sd = its conditional SD"
        )
    if fit.boundary:
        head += " - boundary fit, complete pooling"
    if note:
        head += f"\n{note}"
    fig.suptitle(head, fontsize=11)
    legend_rows = math.ceil(len(handles) / 4)
    lines = head.count("\n") + 1
    fig.tight_layout(rect=(0, 0.06 * legend_rows / rows**0.5, 1, 1.0 - 0.035 * lines / rows**0.5))
    return pc


def _as_term_dict(fits, term=None) -> dict[str, _Term]:
    if isinstance(fits, FitResult):
        return {"": _Term(fits, term)}
    if isinstance(fits, Mapping) and fits:
        return {str(k): _Term(v, term) for k, v in fits.items()}
    raise DataTypeError(
        f"`fits` must be a fit (ShrinkageFit or MixedFit) or a non-empty dict of named fits; "
        f"got {type(fits).__name__}."
    )


def plot_shrinkage(
    fits,
    *,
    sharex: bool = True,
    term: str | None = None,
    factor: str | None = None,
    scale: str = "link",
) -> Figure:
    """The partial-pooling picture: an arrow per group from its own estimate to its BLUP.

    ``fits`` is one fit or a dict of named fits (e.g. the worked example's four scenarios),
    drawn one above the other on a shared axis. Marker area grows with n_j (or 1/se_j^2); the
    dashed line is mu_hat (fixef for a model with covariates). For a
    :class:`~bayeshrink.lmm.MixedFit` there is one panel per random term (each group's own fit
    -> its coef), each on its own axis and labelled with its term, or only ``term``.

    With several correlated terms a panel is a projection of a 2-D move: a group's coef for one
    term is pulled toward fixef *and* shifted by what its other terms borrow through the prior
    correlation, so an arrow can point away from fixef, and the panel's B (the diagonal of the
    shrinkage matrix, "other terms held fixed") is not the fraction moved.
    :func:`plot_shrinkage_2d` shows the two terms at once. With several grouping factors ``factor``
    picks one.

    For a GLMM (:class:`~bayeshrink.glmm.GlmmFit`) the arrows go from each group's own GLM
    estimate to its conditional mode, on the link scale or, with ``scale="response"``, as
    probabilities or rates (:func:`bayeshrink.plots_glmm.plot_shrinkage_glmm`).
    """
    from .plots_glmm import glmm_shrinkage

    if (fig := glmm_shrinkage(fits, term, factor, scale)) is not None:
        return fig
    if not isinstance(fits, dict):
        fits = one_factor(fits, factor)
    if isinstance(fits, FitResult) and term is None and len(fits.random_terms) > 1:
        # one panel per random term, each on its own axis
        fits = {t: _Term(fits, t) for t in fits.random_terms}
        sharex = False
    else:
        fits = _as_term_dict(fits, term)
    k = len(fits)
    fig, axes = plt.subplots(k, 1, figsize=(9, 1.9 * k + 0.6), sharex=sharex, squeeze=False)
    for ax, (name, fit) in zip(axes[:, 0], fits.items(), strict=True):
        t = fit.table
        weight = fit.weights()
        sizes = 25 + 175 * weight / weight.max()
        for (_, row), _size in zip(t.iterrows(), sizes, strict=True):
            if not np.isfinite(row["no_pooling"]):
                continue  # the group cannot estimate this term on its own
            ax.annotate(
                "",
                xy=(row["blup"], 0.0),
                xytext=(row["no_pooling"], 1.0),
                gid="shrinkage-arrow",
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": "0.45",
                    "lw": 1.0,
                    "shrinkA": 4,
                    "shrinkB": 4,
                },
            )
        ax.scatter(
            t["no_pooling"],
            np.ones(len(t)),
            s=sizes,
            color=LIKELIHOOD,
            zorder=3,
            edgecolor="white",
            label="no pooling (group's own estimate)",
        )
        ax.scatter(
            t["blup"],
            np.zeros(len(t)),
            s=sizes,
            color=POSTERIOR,
            zorder=3,
            edgecolor="white",
            label="partial pooling (BLUP)",
        )
        ax.axvline(fit.mu, color=PRIOR, ls="--", lw=1.2, label=fit.centre_label)
        ax.set_yticks([0, 1], ["BLUP", "own estimate"], fontsize=9)
        ax.set_ylim(-0.35, 1.35)
        ratio = fit.ratio_text
        if fit.boundary:
            state = "boundary fit: all pooled to " + (
                "the population value" if fit.general else r"$\hat\mu$"
            )
        elif fit.several:
            # with correlated terms the move of one term is not "the fraction B": it also
            # borrows from the group's other terms (see FitResult.table)
            state = f"diagonal shrinkage B = {fit.shrinkage.mean():.3f} (other terms held fixed)"
        else:
            state = f"mean shrinkage B = {fit.shrinkage.mean():.3f}"
        ax.set_title(f"{name + ':  ' if name else ''}{ratio};  {state}", fontsize=10, loc="left")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if not sharex:  # each panel on its own axis, in its own units
            ax.set_xlabel(fit.axis_label)
    if sharex:
        axes[-1, 0].set_xlabel(fits[next(iter(fits))].axis_label)
    handles, labels = [], []
    for ax in axes[:, 0]:  # the centre line is named per panel (mu_hat, or fixef per term)
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(len(labels), 4),
        fontsize=8.5,
        frameon=False,
        markerscale=0.6,
    )
    fig.suptitle("Shrinkage: from each group's own estimate to its BLUP", fontsize=11)
    fig.tight_layout(rect=(0, 0.06 if k > 1 else 0.1, 1, 0.97), h_pad=1.6)
    return fig


def plot_shrinkage_curve(
    fit: FitResult,
    ratios: Sequence[float] | None = None,
    taus: Sequence[float] | None = None,
    *,
    n_max: float | None = None,
) -> Figure:
    """Shrinkage factor B against group size (long data) or standard error (summary data).

    Long data: B(n) = 1 / (1 + n tau^2/sigma^2) for the fitted variance ratio, with the groups
    marked, and dashed curves for other variance ratios given in ``ratios``; ``n_max`` extends
    the n axis (default five times the largest group). Summary data: B(se) = se^2 / (se^2 +
    tau^2), with other between-group SDs in ``taus``. A GLMM: B against the information of a
    group's data at its conditional mode (:func:`bayeshrink.plots_glmm.plot_shrinkage_curve_glmm`;
    other SDs in ``taus``).
    """
    from .plots_glmm import glmm_shrinkage_curve

    if (fig := glmm_shrinkage_curve(fit, ratios, taus, n_max)) is not None:
        return fig
    if len(_check_fit(fit).random_terms) > 1:
        raise DataTypeError(
            f"`fit` must have one random term here (B_j = 1 / (1 + n_j tau^2 / sigma^2) holds "
            f"only then); got {fit.random_terms}. For one of its terms use the functions that "
            "take `term=` (plot_triplot, plot_shrinkage, plot_forest) or fit.table(term)."
        )
    fit = _Term(fit)
    n_max_arg = None if n_max is None else _check_curve_values(n_max, "n_max", "a group size")[0]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if not fit.summary_data:
        if taus is not None:
            raise DataError(
                "`taus` is for summary data; for long data give `ratios` (tau^2/sigma^2 values)."
            )
        n_max = max(float(fit.table["n"].max()), 1.0)
        upper = max(100.0, n_max * 5) if n_max_arg is None else max(float(n_max_arg), 2.0)
        x = np.geomspace(1, upper, 300)
        curve = lambda lam: 1.0 / (1.0 + x * lam)  # noqa: E731
        fitted = fit.tau**2 / fit.sigma**2
        ax.set_xscale("log")
        ax.set_xlabel(r"group size $n_j$ (log scale)")
        label = rf"fitted $\hat\tau^2/\hat\sigma^2$ = {fitted:.3g}"
        others = [] if ratios is None else _check_curve_values(ratios, "ratios", "tau^2/sigma^2")
        other_label = r"$\tau^2/\sigma^2$ = {:.3g}"
        xs = fit.table["n"].to_numpy()
    else:
        if ratios is not None:
            raise DataError(
                "`ratios` is for long data; for summary data give `taus` (between-group SDs)."
            )
        x = np.linspace(0, float(fit.table["se"].max()) * 1.5, 300)
        curve = lambda tau: x**2 / (x**2 + tau**2) if tau > 0 else np.ones_like(x)  # noqa: E731
        fitted = fit.tau
        ax.set_xlabel(r"standard error $se_j$")
        label = rf"fitted $\hat\tau$ = {fitted:.3g}"
        others = [] if taus is None else _check_curve_values(taus, "taus", "between-group SDs")
        other_label = r"$\tau$ = {:.3g}"
        xs = fit.table["se"].to_numpy()
    ax.plot(x, curve(fitted), color=POSTERIOR, lw=2.2, label=label, gid="curve-fitted")
    styles = ["--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]
    for i, value in enumerate(others):
        ax.plot(
            x,
            curve(value),
            color=f"C{i + 4}",
            lw=1.4,
            ls=styles[i % len(styles)],
            label=other_label.format(value),
            gid="curve-other",
        )
    ax.scatter(
        xs,
        fit.shrinkage,
        color=LIKELIHOOD,
        zorder=3,
        s=28,
        edgecolor="white",
        label="groups",
        gid="groups",
    )
    ax.set_ylim(-0.03, 1.05)
    ax.set_ylabel(r"shrinkage factor $B$ (1 = complete pooling)")
    title = "How shrinkage depends on the amount of data per group"
    if fit.boundary:
        title += "\n" + r"(boundary fit: $\hat\tau = 0$, so $B = 1$ for every group)"
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8.5, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


#: plot_forest's figure height is capped here (inches), however many groups there are
FOREST_MAX_HEIGHT = 11.0


def plot_forest(
    fit: FitResult,
    plugin=None,
    full=None,
    prob: float = 0.95,
    *,
    term: str | None = None,
    factor: str | None = None,
    max_labels: int = 40,
    scale: str = "link",
) -> Figure:
    """Per-group central ``prob`` intervals, one level for every row of the figure.

    No pooling: own estimate +- z se_j; partial pooling: BLUP +- z pred_sd (the prediction
    error counting the uncertainty of mu_hat, but not of tau_hat and sigma_hat); and, when
    given, the central ``prob`` intervals of the draws of ``coef`` for ``term`` (default the
    first random term) from the plug-in (``plugin``) and full (``full``) models. z is the
    normal quantile of ``prob`` (1.96 for the default 95%, the level used throughout). With several
    grouping factors ``factor`` picks one.

    Up to ``max_labels`` groups, each group has its own labelled row, in the order of
    ``fit.table()``. With more, the figure is a caterpillar plot: every group is still drawn,
    one thin row each, sorted by its BLUP (the lowest at the bottom), and ``max_labels`` of
    them, evenly spaced in that order (the lowest and the highest among them), carry their
    labels. The figure is at most
    ``FOREST_MAX_HEIGHT`` (11) inches tall and its legend sits inside it, under the axes, so a
    plain ``fig.savefig(path)`` keeps everything.

    A GLMM: own GLM estimate +- z se and conditional mode +- z pred_sd on the link scale, or
    with ``scale="response"`` their ends mapped to probabilities or rates; a group with no
    finite own estimate (all failures, all successes, all zero) gets an open triangle at the
    axis' edge on the link scale (:class:`bayeshrink.plots_glmm.GlmmPicture`).
    """
    from scipy.stats import norm

    from .glmm.results import GlmmFit

    glmm = isinstance(fit, GlmmFit)
    if glmm:
        from .plots_glmm import GlmmPicture

        fit = GlmmPicture(fit, term, factor, scale)
    else:
        if scale != "link":
            raise MethodError(
                f"`scale` must be 'link' (the default) except for a GLMM; got {scale!r}."
            )
        _no_draws_for_factors(fit, plugin, full)
        fit = _Term(one_factor(fit, factor), term)
    t = fit.table
    word = "conditional mode" if glmm else "BLUP"
    centre = t["cond_mode" if glmm else "blup"]
    tr = fit.to_scale if glmm else np.asarray
    if not 0 < prob < 1:
        raise DataError(f"`prob` must be between 0 and 1; got {prob!r}. For example 0.95.")
    if (
        isinstance(max_labels, bool)
        or not isinstance(max_labels, (int, np.integer))
        or (max_labels < 2)
    ):
        raise DataError(
            f"`max_labels` must be an integer >= 2; got {max_labels!r}. For example 40 (the "
            "default): more groups than that are drawn as a sorted caterpillar with 40 labels."
        )
    z = float(norm.ppf(0.5 + prob / 2))
    level = f"{prob:.0%}"
    own = (
        fit.own_rows(z)
        if glmm
        else (t["no_pooling"], t["no_pooling"] - z * t["se"], t["no_pooling"] + z * t["se"])
    )
    rows = [(f"no pooling: own estimate $\\pm$ {z:.2f} $se_j$ ({level})", *own, LIKELIHOOD)]
    rows.append(
        (
            f"partial pooling: {word} $\\pm$ {z:.2f} pred_sd ({level})",
            tr(centre),
            tr(centre - z * t["pred_sd"]),
            tr(centre + z * t["pred_sd"]),
            POSTERIOR,
        )
    )
    drawn = []
    for label, idata, color in (("plug-in posterior", plugin, SAMPLED), ("full Bayes", full, FULL)):
        if idata is not None:
            post = term_posterior_table(idata, "coef", prob, term=fit.term)
            drawn.append(label)
            rows.append(
                (
                    f"{label}: central {level}",
                    tr(post["mean"].to_numpy()),
                    tr(post["lo"].to_numpy()),
                    tr(post["hi"].to_numpy()),
                    color,
                )
            )
    k = fit.n_groups
    caterpillar = k > max_labels
    labels = np.asarray([str(g) for g in fit.groups], dtype=object)
    if caterpillar:
        order = np.argsort(centre.to_numpy(), kind="stable")
        height = FOREST_MAX_HEIGHT
        # side by side while a group's row is a few points tall; beyond, on top of each other
        spread = 0.25 if k <= 300 and len(rows) > 1 else 0.0
        offsets = np.linspace(spread, -spread, len(rows))
    else:
        order = np.arange(k)
        height = min(0.42 * k * (1 + 0.25 * len(rows)) + 2.2, FOREST_MAX_HEIGHT)
        offsets = np.linspace(0.25, -0.25, len(rows)) if len(rows) > 1 else [0.0]
    fig, ax = plt.subplots(figsize=(7.5, height), layout="constrained")
    # table order from the top; sorted, the lowest BLUP at the bottom (as lme4's dotplot)
    y = np.arange(k) if caterpillar else np.arange(k)[::-1]
    for i, ((label, mid, lo, hi, color), off) in enumerate(zip(rows, offsets, strict=True)):
        mid, lo, hi = (np.asarray(v, dtype=float)[order] for v in (mid, lo, hi))
        style = (
            {"ms": 1.2, "lw": max(0.25, min(1.0, 300 / k)), "alpha": 0.55 if i == 0 else 0.8}
            if caterpillar
            else {"ms": 4, "lw": 1.4}
        )
        ax.errorbar(
            mid,
            y + off,
            xerr=[mid - lo, hi - mid],
            fmt="o",
            color=color,
            capsize=0,
            label=label,
            gid="interval",
            **style,
        )
    ax.axvline(fit.mu, color=PRIOR, ls="--", lw=1.0, label=fit.centre_label)
    if glmm and fit.scale == "link" and (fit.infinite != 0).any():
        from .plots_glmm import mark_infinite

        mark_infinite(ax, fit, y, order, offsets[0])
    if caterpillar:
        shown = np.unique(np.linspace(0, k - 1, max_labels).round().astype(int))
        ax.set_yticks(y[shown], labels[order][shown], fontsize=7)
        ax.set_ylim(-1, k)
        ax.set_ylabel(f"{k:,} groups sorted by {word} ({len(shown)} labelled)")
    else:
        ax.set_yticks(y, labels, fontsize=9)
    ax.set_xlabel(fit.axis_label)
    fig.legend(
        fontsize=8,
        frameon=False,
        loc="outside lower center",
        ncol=2,
        markerscale=3.0 if caterpillar else 1.0,
    )
    what = f"No pooling and partial pooling ({word})"
    if len(drawn) == 1:
        what = f"No pooling, partial pooling ({word}) and {drawn[0]} draws"
    elif drawn:
        what = f"No pooling, partial pooling ({word}), {' and '.join(drawn)} draws"
    where = f"{k:,} groups sorted by {word}" if caterpillar else f"{k} groups"
    # one line while it fits the 7.5-inch width at 10 points (about 95 characters), else two:
    # a longer line is cut at both edges of a saved figure
    sep = ": " if len(what) + len(level) + len(where) < 80 else ":\n"
    ax.set_title(f"{what}{sep}{level} intervals, {where}", fontsize=10)
    return fig


def plot_shrinkage_2d(fit, terms: Sequence[str] | None = None, *, ax=None) -> Figure:
    """Two random terms at once: each group moves from its own least-squares fit to its BLUP.

    For a :class:`~bayeshrink.lmm.MixedFit` with correlated terms (e.g. intercept and slope):
    an arrow per group from ``own_fit()`` (orange) to ``coef()`` (green), the population value
    ``fixef`` (blue cross) and the plug-in prior N(fixef, cov_re) as the ellipses holding 50%
    and 95% of its probability (radius sqrt(chi2_2 quantile) = 1.18 and 2.45 SDs; the 1- and
    2-SD ellipses of a 2-D normal hold only 39% and 86%).
    Groups move toward the centre along the prior's shape and the shape of their own
    estimates' uncertainty, not straight at it: with a correlation (in the prior, or between a
    group's own intercept and slope when the covariate is not centred) pulling one term in moves
    the other, so a term's coordinate can move *away* from its population value (see
    :meth:`FitResult.table`). Groups whose data cannot fit
    both terms on their own have only the BLUP, and the title says how many.
    """
    if not isinstance(fit, FitResult) or len(fit.random_terms) < 2:
        raise DataTypeError(
            f"`fit` must be a MixedFit with at least two random terms (e.g. from "
            f"bs.fit(df, formula='y ~ x + (x | g)')); got {type(fit).__name__}."
        )
    if isinstance(terms, str):
        terms = [terms]
    terms = list(terms) if terms is not None else fit.random_terms[:2]
    if len(terms) != 2 or terms[0] == terms[1]:
        raise DataError(
            f"`terms` must name two of the random terms {fit.random_terms}; got {terms}."
        )
    for t in terms:
        fit._term(t)
    from .glmm.results import GlmmFit

    glmm = isinstance(fit, GlmmFit)  # own GLM fits, conditional modes, on the link scale
    mode, own_word = (
        ("conditional mode", "own GLM fit") if glmm else ("BLUP", "own least-squares fit")
    )
    own = fit.own_fit()[terms]
    coef = fit.coef()[terms]
    centre = np.array([fit.table(t)["prior_mean"].iloc[0] for t in terms])
    cov = fit.cov_re().loc[terms, terms].to_numpy()
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.2, 6.0))
    else:
        fig = ax.figure
    # prior ellipses: centre + L u for unit circles u, L from the eigen-decomposition (works
    # for a singular covariance: the ellipse degenerates to a segment)
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.clip(vals, 0, None))
    circle = np.stack(
        [np.cos(np.linspace(0, 2 * np.pi, 200)), np.sin(np.linspace(0, 2 * np.pi, 200))]
    )
    for prob, ls in ((0.5, "-"), (0.95, "--")):
        radius = math.sqrt(-2.0 * math.log(1.0 - prob))  # chi-square(2) quantile, square root
        pts = centre[:, None] + radius * root @ circle
        ax.plot(*pts, color=PRIOR, lw=1.2, ls=ls, gid=f"prior-ellipse-{prob:.0%}")
    ok = np.isfinite(own.to_numpy()).all(axis=1)
    for o, c in zip(own.to_numpy()[ok], coef.to_numpy()[ok], strict=True):
        ax.annotate(
            "",
            xy=tuple(c),
            xytext=tuple(o),
            gid="shrinkage-arrow",
            arrowprops={"arrowstyle": "-|>", "color": "0.5", "lw": 0.9, "shrinkA": 3, "shrinkB": 3},
        )
    weight = fit.table(terms[0])["trials"].to_numpy() if glmm else fit.n
    sizes = 25 + 125 * weight / weight.max()
    ax.scatter(
        *own.to_numpy()[ok].T,
        s=sizes[ok],
        color=LIKELIHOOD,
        edgecolor="white",
        zorder=3,
        label=own_word,
        gid="own-fit",
    )
    ax.scatter(
        *coef.to_numpy().T,
        s=sizes,
        color=POSTERIOR,
        edgecolor="white",
        zorder=4,
        label=f"{mode} (coef = fixef + ranef)",
        gid="blup",
    )
    ax.plot(
        *centre,
        "P",
        color=PRIOR,
        ms=12,
        mec="white",
        zorder=5,
        label=r"population $\hat\beta$ (fixef)",
        gid="population",
    )
    ax.plot([], [], color=PRIOR, lw=1.2, label=r"prior $N(\hat\beta, \hat\Sigma)$: 50% region")
    ax.plot(
        [], [], color=PRIOR, lw=1.2, ls="--", label=r"prior $N(\hat\beta, \hat\Sigma)$: 95% region"
    )
    scale = f" ({fit.link} scale)" if glmm else ""
    ax.set_xlabel(terms[0] + scale)
    ax.set_ylabel(terms[1] + scale)
    corr = fit.corr_re().loc[terms[0], terms[1]]
    title = f"{fit.formula}\n{fit.method.upper()}: corr = {corr:.3f}" + (
        "  (boundary fit: singular covariance)" if fit.boundary else ""
    )
    if (~ok).any():
        title += f"; {int((~ok).sum())} groups cannot fit both terms alone ({mode} only)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8.5, frameon=False, loc="best")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig
