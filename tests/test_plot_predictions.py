"""bs.plot_predictions: Gelman & Hill's no / complete / partial pooling lines per group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs

pytestmark = pytest.mark.usefixtures("close_figures")


def _lines(ax) -> dict:
    return {ln.get_gid(): ln for ln in ax.get_lines()}


def test_radon_panels_show_three_lines_and_the_data(tmp_path):
    radon = bs.load_dataset("radon")
    m = bs.fit(radon, formula="log_radon ~ floor + (1 | county)")
    groups = ["LAC QUI PARLE", "AITKIN", "STEARNS", "ST LOUIS"]
    fig = bs.plot_predictions(m, radon, groups=groups)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 4
    table = m.table()
    for ax, g in zip(axes, groups, strict=True):
        lines = _lines(ax)
        assert set(lines) == {"complete_pooling", "no_pooling", "partial_pooling"}
        pts = next(c for c in ax.collections if c.get_gid() == "data")
        assert len(pts.get_offsets()) == int((radon["county"] == g).sum())
        # a random intercept: at floor = 0 the lines sit at the table's values, and the BLUP
        # lies between the county's own fit and the population line
        at0 = {k: ln.get_ydata()[0] for k, ln in lines.items()}
        assert np.isclose(at0["partial_pooling"], table.loc[g, "blup"], rtol=1e-10)
        assert np.isclose(at0["no_pooling"], table.loc[g, "no_pooling"], rtol=1e-10)
        lo, hi = sorted([at0["no_pooling"], at0["complete_pooling"]])
        assert lo <= at0["partial_pooling"] <= hi
    fig.savefig(tmp_path / "radon_predictions.png")


def test_default_groups_and_one_way_fit():
    sleep = bs.load_dataset("sleepstudy")
    o = bs.fit(sleep, y="Reaction", group="Subject")
    fig = bs.plot_predictions(o, sleep, n_groups=3)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3
    lines = _lines(axes[0])
    assert np.allclose(lines["complete_pooling"].get_ydata(), o.complete_pooling)


def test_bad_input():
    sleep = bs.load_dataset("sleepstudy")
    m = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    with pytest.raises(bs.DataError, match="`groups` must be labels of the fit"):
        bs.plot_predictions(m, sleep, groups=["nobody"])
    sleep["w"] = np.random.default_rng(1).normal(size=len(sleep))
    m2 = bs.fit(sleep, formula="Reaction ~ Days + w + (1 | Subject)")
    with pytest.raises(bs.DataError, match="`x` must name the covariate"):
        bs.plot_predictions(m2, sleep)
    with pytest.raises(bs.DataError, match="`at` must give values for the other covariates"):
        bs.plot_predictions(m2, sleep, x="Days")


def test_crossed_fit_panels_are_one_factor_s_levels(tmp_path):
    pen = bs.load_dataset("penicillin")
    m = bs.fit(pen, formula="diameter ~ 1 + (1 | plate) + (1 | sample)")
    with pytest.raises(bs.errors.ColumnError, match=r"`factor` must name one of the grouping"):
        bs.plot_predictions(m, pen)
    fig = bs.plot_predictions(m, pen, factor="plate", groups=["a", "b", "c"])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3
    table = m.table(factor="plate")
    for ax, g in zip(axes, ["a", "b", "c"], strict=True):
        lines = _lines(ax)
        assert set(lines) == {"complete_pooling", "no_pooling", "partial_pooling"}
        pts = next(c for c in ax.collections if c.get_gid() == "data")
        assert len(pts.get_offsets()) == int((pen["plate"] == g).sum()) == 6
        # no covariate: three levels, the plate's BLUP, its own estimate and the grand mean
        np.testing.assert_allclose(lines["partial_pooling"].get_ydata(), table.loc[g, "blup"])
        np.testing.assert_allclose(lines["no_pooling"].get_ydata(), table.loc[g, "no_pooling"])
        np.testing.assert_allclose(lines["complete_pooling"].get_ydata(), pen["diameter"].mean())
        assert ax.get_title().startswith(f"plate {g} (n = 6)")
    fig.savefig(tmp_path / "penicillin_predictions.png")


def test_nested_fit_panels_of_the_inner_factor():
    pastes = bs.load_dataset("pastes")
    m = bs.fit(pastes, formula="strength ~ 1 + (1 | batch/cask)")
    fig = bs.plot_predictions(m, pastes, factor="cask:batch", groups=["a:A", "b:C"])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    table = m.table(factor="cask:batch")
    for ax, g in zip(axes, ["a:A", "b:C"], strict=True):
        lines = _lines(ax)
        np.testing.assert_allclose(lines["partial_pooling"].get_ydata(), table.loc[g, "blup"])
        pts = next(c for c in ax.collections if c.get_gid() == "data")
        assert len(pts.get_offsets()) == 2  # two samples per cask


def test_crossed_fit_with_a_covariate_draws_pooling_lines():
    # y ~ x + (1 + x | subj) + (1 | item): subj's lines have its own slope (partial pooling =
    # fixef + ranef of subj, item at 0); the pooling lines come from the one implementation
    from pathlib import Path

    d = pd.read_csv(
        Path(__file__).parent / "reference" / "multi_sim_crossed.csv",
        dtype={"subj": str, "item": str},
    )
    m = bs.fit(d, formula="y ~ x + (1 + x | subj) + (1 | item)")
    g = m.table(factor="subj").index[0]
    fig = bs.plot_predictions(m, d, factor="subj", groups=[g])
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    line = _lines(ax)["partial_pooling"]
    x, y = line.get_xdata(), line.get_ydata()
    coef = m.coef("subj").loc[g]
    np.testing.assert_allclose(y, coef["Intercept"] + coef["x"] * np.asarray(x), rtol=1e-9)
    with pytest.raises(bs.errors.ColumnError, match=r"`factor` must be one of the grouping"):
        bs.plot_predictions(m, d, factor="class")
