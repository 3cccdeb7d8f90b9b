"""Figures render on Agg; assertions are on what was drawn, and every figure is saved as PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import panels_of, synthetic_posterior
from matplotlib.text import Annotation

import bayeshrink as bs


@pytest.fixture(scope="module")
def fits():
    return bs.demo_fits()


# The sampling runs here are short (hundreds of draws, 2 chains) to keep the suite fast, and
# their assertions are in Monte Carlo SEs; PyMC's convergence rules (R-hat <= 1.01, ESS >= 100
# per chain), which sample() applies, are meant for 4 x 1000 draws and flag such runs at random.
# The convergence checks themselves are tested in test_hostile.py.
pytestmark = [
    pytest.mark.usefixtures("close_figures"),
    pytest.mark.filterwarnings("ignore::bayeshrink.errors.SamplerConvergenceWarning"),
]


def _gids(ax, kind=None):
    items = (
        ax.get_children() if kind is None else [c for c in ax.get_children() if isinstance(c, kind)]
    )
    return [c.get_gid() for c in items if c.get_gid()]


@pytest.mark.parametrize("model", ["2", "3", "1b"])
def test_triplot_draws_three_densities_per_group(fits, model, tmp_path):
    fit = fits[model]
    pc = bs.plot_triplot(fit)
    panels = panels_of(pc)
    assert list(panels) == ["g1", "g2", "g3", "g4", "g5"]
    t = fit.table()
    for label, ax in panels.items():
        curves = sorted(
            ln.get_gid() for ln in ax.lines if ln.get_gid() in {"prior", "likelihood", "posterior"}
        )
        assert curves == ["likelihood", "posterior", "prior"]
        post = next(ln for ln in ax.lines if ln.get_gid() == "posterior")
        x, y = post.get_xdata(), post.get_ydata()
        # the posterior curve peaks at the BLUP (to the resolution of the grid)
        assert abs(x[np.argmax(y)] - t.loc[label, "blup"]) <= (x[1] - x[0])
        lik = next(ln for ln in ax.lines if ln.get_gid() == "likelihood")
        assert abs(lik.get_xdata()[np.argmax(lik.get_ydata())] - t.loc[label, "no_pooling"]) <= (
            x[1] - x[0]
        )
        # the whole of every curve is inside the axis (sensible ranges)
        lo, hi = ax.get_xlim()
        for ln in (post, lik):
            peak = ln.get_xdata()[np.argmax(ln.get_ydata())]
            assert lo < peak < hi
        for gid in ("marker-no_pooling", "marker-mu", "marker-blup"):
            assert gid in _gids(ax)
        assert label in ax.get_title() and "n=" in ax.get_title() and "B=" in ax.get_title()
    fig = pc.viz["figure"].item()
    assert fig.legends, "the figure has a legend"
    fig.savefig(tmp_path / f"triplot_{model}.png", dpi=60)
    assert (tmp_path / f"triplot_{model}.png").stat().st_size > 10_000


def test_triplot_boundary_draws_the_prior_as_a_spike(fits, tmp_path):
    pc = bs.plot_triplot(fits["1"])
    for ax in panels_of(pc).values():
        drawn = [ln.get_gid() for ln in ax.lines if ln.get_gid()]
        assert "likelihood" in drawn and "prior" not in drawn and "posterior" not in drawn
        spikes = _gids(ax, Annotation)
        assert spikes == ["prior-point-mass", "posterior-point-mass"]
        assert "point mass" in ax.get_title()
        y = next(ln for ln in ax.lines if ln.get_gid() == "likelihood").get_ydata()
        assert np.isfinite(y).all()
    pc.viz["figure"].item().savefig(tmp_path / "triplot_boundary.png", dpi=60)


def test_triplot_with_sampled_posterior(fits):
    fit = fits["2"]
    idata = synthetic_posterior(fit, draws=2000, seed=1)
    pc = bs.plot_triplot(fit, idata=idata, groups=["g3", "g1"])
    panels = panels_of(pc)
    assert list(panels) == ["g3", "g1"]
    t = fit.table()
    for label, ax in panels.items():
        assert "sampled" in _gids(ax)
        # the histogram of the draws is centred where the exact posterior is
        (hist,) = [p for p in ax.patches if p.get_gid() == "sampled"]
        heights, edges = hist.get_data()[:2]
        centre = np.sum(heights * np.diff(edges) * (edges[:-1] + edges[1:]) / 2)
        # 4000 draws: the histogram's mean is within 4 Monte Carlo SEs (+ half a bin)
        tol = 4 * t.loc[label, "cond_sd"] / np.sqrt(4000) + np.diff(edges)[0] / 2
        assert abs(centre - t.loc[label, "blup"]) < tol
    with pytest.raises(bs.DataError, match="`idata` must hold `coef`"):
        bs.plot_triplot(fit, idata=xr.DataTree.from_dict({"posterior": xr.Dataset()}))


def test_triplot_many_groups_says_which_are_shown():
    fit = bs.fit(bs.load_dataset("radon"), y="log_radon", group="county")
    pc = bs.plot_triplot(fit)
    assert len(panels_of(pc)) == 12
    assert "12 of 85 groups" in pc.viz["figure"].item().get_suptitle()
    with pytest.raises(bs.DataError, match="`groups` must be labels of the fit"):
        bs.plot_triplot(fit, groups=["ATLANTIS"])


def test_shrinkage_plot_one_arrow_per_group(fits, tmp_path):
    fig = bs.plot_shrinkage(fits)
    axes = fig.axes
    assert len(axes) == 4
    for ax, fit in zip(axes, fits.values(), strict=True):
        arrows = [
            c
            for c in ax.get_children()
            if isinstance(c, Annotation) and c.get_gid() == "shrinkage-arrow"
        ]
        assert len(arrows) == fit.n_groups
        starts = sorted(a.xyann[0] for a in arrows)
        ends = sorted(a.xy[0] for a in arrows)
        np.testing.assert_allclose(starts, sorted(fit.table()["no_pooling"]))
        np.testing.assert_allclose(ends, sorted(fit.table()["blup"]))
    # a shared axis: the four scenarios are comparable
    assert len({ax.get_xlim() for ax in axes}) == 1
    fig.savefig(tmp_path / "shrinkage.png", dpi=60)


def test_shrinkage_plot_single_fit_and_summary_data(tmp_path):
    fit = bs.fit_summary(bs.load_dataset("eight_schools"), "y", "sigma", "school")
    fig = bs.plot_shrinkage(fit)
    assert len(fig.axes) == 1
    fig.savefig(tmp_path / "schools.png", dpi=60)
    with pytest.raises(TypeError, match=r"`fits` must be a fit .* or a non-empty dict"):
        bs.plot_shrinkage([fit])


def test_shrinkage_curve(fits, tmp_path):
    fit = bs.fit(bs.load_dataset("radon"), y="log_radon", group="county")
    fig = bs.plot_shrinkage_curve(fit, ratios=[0.05, 1.0])
    ax = fig.axes[0]
    fitted = next(ln for ln in ax.lines if ln.get_gid() == "curve-fitted")
    n, b = fitted.get_xdata(), fitted.get_ydata()
    np.testing.assert_allclose(b, 1 / (1 + n * fit.var_ratio))
    assert sum(ln.get_gid() == "curve-other" for ln in ax.lines) == 2
    groups = next(c for c in ax.collections if c.get_gid() == "groups")
    np.testing.assert_allclose(groups.get_offsets()[:, 1], fit.shrinkage()["Intercept"])
    assert ax.get_xscale() == "log" and ax.get_xlabel() == r"group size $n_j$ (log scale)"
    fig.savefig(tmp_path / "curve.png", dpi=60)
    summary = bs.fit_summary(bs.load_dataset("eight_schools"), "y", "sigma", "school")
    bs.plot_shrinkage_curve(summary, taus=[5, 10]).savefig(tmp_path / "curve2.png", dpi=60)
    with pytest.raises(bs.DataError, match="`ratios` is for long data"):
        bs.plot_shrinkage_curve(summary, ratios=[1.0])


def test_shrinkage_curve_reaches_n_max(fits):
    # the worked example's model 1b has 500 per group: its curve must reach past n = 500
    fig = bs.plot_shrinkage_curve(fits["2"], ratios=[0.04], n_max=2000)
    ax = fig.axes[0]
    for ln in ax.lines:
        assert ln.get_xdata().max() == pytest.approx(2000)
    lam = fits["2"].var_ratio
    fitted = next(ln for ln in ax.lines if ln.get_gid() == "curve-fitted")
    assert fitted.get_ydata()[-1] == pytest.approx(1 / (1 + 2000 * lam))
    # one line style per extra curve, so they stay apart in greyscale
    others = [
        ln
        for ln in bs.plot_shrinkage_curve(fits["2"], ratios=[0.04, 1, 25]).axes[0].lines
        if ln.get_gid() == "curve-other"
    ]
    assert len({str(ln.get_linestyle()) for ln in others}) == 3
    with pytest.raises(bs.DataError, match="`n_max` must be finite and >= 0"):
        bs.plot_shrinkage_curve(fits["2"], n_max=-1)


def test_forest(fits, tmp_path):
    from scipy.stats import norm

    fit = fits["2"]
    fig = bs.plot_forest(fit)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["g1", "g2", "g3", "g4", "g5"]
    # one interval level for every row: z = 1.96 for the default 95%
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {
        r"no pooling: own estimate $\pm$ 1.96 $se_j$ (95%)",
        r"partial pooling: BLUP $\pm$ 1.96 pred_sd (95%)",
        r"$\hat\mu$",
    }
    lo, hi = ax.containers[0].lines[2][0].get_segments()[0][:, 0]
    t = fit.table()
    np.testing.assert_allclose(
        [lo, hi], t["no_pooling"].iloc[0] + np.array([-1, 1]) * norm.ppf(0.975) * t["se"].iloc[0]
    )
    bars = [c for c in ax.containers]
    np.testing.assert_allclose(bars[1].lines[0].get_xdata(), fit.table()["blup"])
    fig.savefig(tmp_path / "forest.png", dpi=60)
    full = synthetic_posterior(fit, draws=2000, seed=2, mu="flat")
    fig = bs.plot_forest(fit, full=full)
    ax = fig.axes[0]
    assert any("full Bayes: central 95%" in t.get_text() for t in fig.legends[0].get_texts())
    assert ax.get_title() == (
        "No pooling, partial pooling (BLUP) and full Bayes draws: 95% intervals, 5 groups"
    )
    # the full-Bayes interval is the draws' central 95%: about blup +- 1.96 pred_sd here
    lo, hi = ax.containers[2].lines[2][0].get_segments()[0][:, 0]
    t = fit.table()
    z = 1.9600  # the normal's 97.5th percentile
    np.testing.assert_allclose(lo, t["blup"].iloc[0] - z * t["pred_sd"].iloc[0], rtol=0.05)
    np.testing.assert_allclose(hi, t["blup"].iloc[0] + z * t["pred_sd"].iloc[0], rtol=0.05)


def _many_groups(k: int, seed: int = 0) -> pd.DataFrame:
    """k groups of 2 to 29 observations (tau 2, sigma 4), labelled p0, p1, ..."""
    rng = np.random.default_rng(seed)
    n = rng.integers(2, 30, size=k)
    g = np.repeat(np.arange(k), n)
    y = 10 + 2 * rng.normal(size=k)[g] + 4 * rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "pig": [f"p{v}" for v in g]})


def _inside_figure(fig, artist) -> bool:
    fig.canvas.draw()
    box = artist.get_window_extent(fig.canvas.get_renderer())
    f = fig.bbox
    return (
        box.x0 >= f.x0 - 0.5
        and box.y0 >= f.y0 - 0.5
        and box.x1 <= f.x1 + 0.5
        and (box.y1 <= f.y1 + 0.5)
    )


@pytest.mark.parametrize("k", [72, 3000])
def test_forest_of_many_groups_is_a_bounded_sorted_caterpillar(k, tmp_path):
    import matplotlib.image as mpimg

    fit = bs.fit(_many_groups(k, seed=k), y="y", group="pig")
    fig = bs.plot_forest(fit)
    ax = fig.axes[0]
    assert fig.get_size_inches()[1] <= bs.plots.FOREST_MAX_HEIGHT <= 12
    # no draws given: the title does not speak of posteriors
    assert ax.get_title() == (
        f"No pooling and partial pooling (BLUP): 95% intervals, {k:,} groups sorted by BLUP"
    )
    assert "posterior" not in ax.get_title().lower()
    # every group drawn, sorted by BLUP from the bottom; 40 of them labelled, in that order
    blup = ax.containers[1].lines[0]
    x, y = blup.get_xdata(), blup.get_ydata()
    assert len(x) == k
    np.testing.assert_array_equal(np.sort(x), x[np.argsort(y)])
    np.testing.assert_array_equal(np.sort(x), np.sort(fit.table()["blup"].to_numpy()))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 40
    ranked = fit.table()["blup"].sort_values(kind="stable").index
    assert labels[0] == ranked[0] and labels[-1] == ranked[-1]  # bottom row: the lowest BLUP
    assert ax.get_ylabel() == f"{k:,} groups sorted by BLUP (40 labelled)"
    # the legend is inside the figure under a plain savefig, which stays a bounded PNG
    assert _inside_figure(fig, fig.legends[0])
    path = tmp_path / f"forest_{k}.png"
    fig.savefig(path, dpi=100)
    assert mpimg.imread(path).shape[:2] == (1100, 750)


def test_forest_max_labels(fits, tmp_path):
    fit = fits["2"]  # 5 groups
    fig = bs.plot_forest(fit, max_labels=3)
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 3 and "sorted by BLUP" in ax.get_title()
    fig = bs.plot_forest(fit)  # within max_labels: one labelled row per group, table order
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(fit.groups)
    assert fig.get_size_inches()[1] < 8 and _inside_figure(fig, fig.legends[0])
    fig.savefig(tmp_path / "forest_small.png")
    for bad in (1, 2.5, True):
        with pytest.raises(bs.DataError, match="`max_labels` must be an integer >= 2; got"):
            bs.plot_forest(fit, max_labels=bad)


def test_plots_never_fit():
    with pytest.raises(TypeError, match="Plot functions never fit"):
        bs.plot_triplot(bs.load_dataset("seed_demo"))
