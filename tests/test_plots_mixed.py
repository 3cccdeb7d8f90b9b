"""Figures of mixed fits (several random terms): per-term triplots and shrinkage, 2-D shrinkage."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import panels_of
from matplotlib.text import Annotation

import bayeshrink as bs


@pytest.fixture(scope="module")
def sleep_fit():
    return bs.fit(bs.load_dataset("sleepstudy"), formula="Reaction ~ Days + (Days | Subject)")


@pytest.fixture(scope="module")
def radon_fit():
    return bs.fit(bs.load_dataset("radon"), formula="log_radon ~ floor + (1 + floor | county)")


# The sampling runs here are short (hundreds of draws, 2 chains) to keep the suite fast, and
# their assertions are in Monte Carlo SEs; PyMC's convergence rules (R-hat <= 1.01, ESS >= 100
# per chain), which sample() applies, are meant for 4 x 1000 draws and flag such runs at random.
# The convergence checks themselves are tested in test_hostile.py.
pytestmark = [
    pytest.mark.usefixtures("close_figures"),
    pytest.mark.filterwarnings("ignore::bayeshrink.errors.SamplerConvergenceWarning"),
]


@pytest.mark.parametrize("term", ["Intercept", "Days"])
def test_triplot_per_term_draws_the_marginals(sleep_fit, term, tmp_path):
    groups = list(sleep_fit.groups[:4])
    pc = bs.plot_triplot(sleep_fit, groups=groups, term=term)
    panels = panels_of(pc)
    assert list(panels) == [str(g) for g in groups]
    t = sleep_fit.table(term)
    for g, ax in zip(groups, panels.values(), strict=True):
        lines = {ln.get_gid(): ln for ln in ax.lines if ln.get_gid()}
        assert {"prior", "likelihood", "posterior"} <= set(lines)
        # each curve peaks at its mean: prior at fixef, likelihood at the own fit, posterior
        # at coef()
        for gid, mean in (
            ("prior", sleep_fit.fixef[term]),
            ("likelihood", t.loc[g, "no_pooling"]),
            ("posterior", sleep_fit.coef().loc[g, term]),
        ):
            x, y = lines[gid].get_xdata(), lines[gid].get_ydata()
            assert abs(x[np.argmax(y)] - mean) <= (x[1] - x[0])
        assert ax.get_xlabel() == term
    fig = pc.viz["figure"].item()
    assert f"term {term!r}" in fig._suptitle.get_text()
    # one legend for every triplot, the one-way one: lme4's names are mapped in the title
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    one_way = bs.plot_triplot(bs.demo_fits()["2"], groups=["g1"]).viz["figure"].item()
    assert legend[2] == r"posterior $N(\mathrm{BLUP}, \mathrm{cond\_sd}^2)$"
    assert legend[2] == one_way.legends[0].get_texts()[2].get_text()
    assert r"$\hat\mu$ = fixef" in fig._suptitle.get_text()
    fig.savefig(tmp_path / f"triplot_{term}.png")


def test_triplot_of_groups_that_cannot_fit_a_slope_alone(radon_fit, tmp_path):
    # counties with one house (or no basement/first-floor contrast) have no own slope: no
    # likelihood curve and no no-pooling marker, but prior and posterior are drawn
    t = radon_fit.table("floor")
    lonely = list(t.index[t["no_pooling"].isna()][:2])
    assert lonely
    pc = bs.plot_triplot(radon_fit, groups=lonely, term="floor")
    for ax in panels_of(pc).values():
        gids = {ln.get_gid() for ln in ax.lines}
        assert "likelihood" not in gids and {"prior", "posterior"} <= gids
    pc.viz["figure"].item().savefig(tmp_path / "triplot_radon_floor.png")


def test_shrinkage_plot_has_a_panel_per_term(sleep_fit, tmp_path):
    fig = bs.plot_shrinkage(sleep_fit)
    axes = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert [ax.get_title(loc="left").split(":")[0] for ax in axes] == ["Intercept", "Days"]
    for ax in axes:
        arrows = [c for c in ax.get_children() if isinstance(c, Annotation)]
        assert len(arrows) == sleep_fit.n_groups
    fig.savefig(tmp_path / "shrinkage_terms.png")
    one = bs.plot_shrinkage(sleep_fit, term="Days")
    assert len([ax for ax in one.axes if ax.get_title(loc="left")]) == 1


def test_shrinkage_plot_labels_each_term_in_its_own_units(sleep_fit):
    # each panel's axis names its own term; the slope's spread is its SD (a slope variance over
    # the residual variance would change with the units of Days); the centre line is fixef
    fig = bs.plot_shrinkage(sleep_fit)
    axes = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert [ax.get_xlabel() for ax in axes] == [
        "Reaction: Intercept (group coefficient)",
        "Reaction: Days (group coefficient)",
    ]
    titles = [ax.get_title(loc="left") for ax in axes]
    assert not any("sigma" in t for t in titles), titles
    sd_days = sleep_fit.sd_re()["Days"]
    assert titles[1].startswith(f"Days:  SD of Days across groups = {sd_days:.3g}")
    assert "other terms held fixed" in titles[1]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    # no code in legends: the population value is named in words
    assert "population Intercept (fixef)" in legend and "population Days (fixef)" in legend
    assert not any("mu" in t for t in legend), legend
    for ax, term in zip(axes, ["Intercept", "Days"], strict=True):
        (line,) = [ln for ln in ax.lines if ln.get_label() == f"population {term} (fixef)"]
        assert line.get_xdata()[0] == pytest.approx(sleep_fit.fixef[term])


def test_one_way_shrinkage_plot_keeps_mu_hat_and_the_ratio(tmp_path):
    fit = bs.demo_fits()["2"]
    fig = bs.plot_shrinkage(fit)
    (ax,) = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert ax.get_xlabel() == "y (group effect)"
    assert r"$\hat\tau^2/\hat\sigma^2$" in ax.get_title(loc="left")
    assert r"$\hat\mu$" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_shrinkage_2d_arrows_go_from_own_fit_to_coef(radon_fit, tmp_path):
    fig = bs.plot_shrinkage_2d(radon_fit)
    ax = fig.axes[0]
    own = radon_fit.own_fit()
    coef = radon_fit.coef()[["Intercept", "floor"]]
    ok = own.notna().all(axis=1)
    arrows = [c for c in ax.get_children() if isinstance(c, Annotation)]
    assert len(arrows) == ok.sum()
    starts = np.array([a.xyann for a in arrows])
    ends = np.array([a.xy for a in arrows])
    np.testing.assert_allclose(starts, own[ok].to_numpy())
    np.testing.assert_allclose(ends, coef[ok].to_numpy())
    gids = {ln.get_gid() for ln in ax.lines}
    assert {"prior-ellipse-50%", "prior-ellipse-95%", "population"} <= gids
    assert f"{int((~ok).sum())} groups cannot fit both terms alone" in ax.get_title()
    # the ellipses hold 50% and 95% of the prior: Mahalanobis radius^2 = chi2_2 quantile
    # = -2 log(1 - p) (1.386 and 5.991), not the 1- and 2-SD ellipses (39% and 86%)
    cov_inv = np.linalg.inv(radon_fit.cov_re().loc[["Intercept", "floor"], ["Intercept", "floor"]])
    centre = radon_fit.fixef[["Intercept", "floor"]].to_numpy()
    for prob in (0.5, 0.95):
        (ln,) = [ln for ln in ax.lines if ln.get_gid() == f"prior-ellipse-{prob:.0%}"]
        d = np.column_stack([ln.get_xdata(), ln.get_ydata()]) - centre
        r2 = np.einsum("ij,jk,ik->i", d, cov_inv, d)
        np.testing.assert_allclose(r2, -2 * np.log(1 - prob), rtol=1e-9)
    fig.savefig(tmp_path / "shrinkage_2d_radon.png")


def test_shrinkage_2d_on_a_singular_covariance_draws_a_segment(tmp_path):
    import pandas as pd
    from conftest import REFERENCE

    fit = bs.fit(pd.read_csv(REFERENCE / "lmm_sim_corr_one.csv"), formula="y ~ x + (x | g)")
    fig = bs.plot_shrinkage_2d(fit)
    ax = fig.axes[0]
    (ellipse,) = [ln for ln in ax.lines if ln.get_gid() == "prior-ellipse-50%"]
    pts = np.column_stack([ellipse.get_xdata(), ellipse.get_ydata()])
    # all points on one line through fixef: rank-1 prior
    centred = pts - fit.fixef[["Intercept", "x"]].to_numpy()
    assert np.linalg.matrix_rank(centred, tol=1e-9 * np.abs(centred).max()) == 1
    assert "boundary fit" in ax.get_title()
    fig.savefig(tmp_path / "shrinkage_2d_singular.png")


def test_forest_of_one_term(sleep_fit, tmp_path):
    fig = bs.plot_forest(sleep_fit, term="Days")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(g) for g in sleep_fit.groups]
    assert ax.get_xlabel().startswith("Reaction: Days")
    fig.savefig(tmp_path / "forest_days.png")
    with pytest.raises(bs.DataTypeError, match="must have one random term here"):
        bs.plot_shrinkage_curve(sleep_fit)


def test_plot_arguments_are_checked(sleep_fit):
    one_way = bs.fit(bs.load_dataset("sleepstudy"), y="Reaction", group="Subject")
    with pytest.raises(bs.DataTypeError, match="MixedFit with at least two random terms"):
        bs.plot_shrinkage_2d(one_way)
    with pytest.raises(bs.ColumnError, match="must be one of the random terms"):
        bs.plot_triplot(sleep_fit, term="Nights")
    with pytest.raises(bs.DataError, match="must name two of the random terms"):
        bs.plot_shrinkage_2d(sleep_fit, terms=["Days"])
    with pytest.raises(bs.ColumnError, match=r"must be one of the random terms \['Intercept'\]"):
        bs.plot_triplot(one_way, term="Days")
