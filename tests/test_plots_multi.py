"""Pictures of fits with several grouping factors: what is drawn, and a PNG to look at."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import bayeshrink as bs
from bayeshrink.errors import ColumnError
from bayeshrink.plots_multi import plot_nested, plot_ranef


@pytest.fixture(scope="module")
def pastes():
    return bs.fit(bs.load_dataset("pastes"), formula="strength ~ 1 + (1 | batch/cask)")


def test_plot_ranef_draws_every_level_sorted(pastes, tmp_path, close_figures):
    ax = plot_ranef(pastes, "cask:batch")
    points = ax.lines[0].get_xdata()
    assert len(points) == 30
    assert np.all(np.diff(points) >= 0)
    np.testing.assert_allclose(np.sort(points), np.sort(pastes.ranef("cask:batch")["Intercept"]))
    ax.figure.savefig(tmp_path / "ranef.png", dpi=80)
    with pytest.raises(ColumnError, match="`term` must be one of"):
        plot_ranef(pastes, "batch", term="x")


def test_plot_nested_ends_at_the_population_value(pastes, tmp_path, close_figures):
    ax = plot_nested(pastes, inner="cask:batch", outer="batch")
    mu = float(pastes.fixef["Intercept"])
    # the population marker is at fixef, every outer segment ends there
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(mu)
    ends = [
        ln.get_ydata()[-1]
        for ln in ax.lines
        if len(ln.get_xdata()) == 2 and ln.get_xdata()[-1] == 3.0
    ]
    assert len(ends) == 10 and np.allclose(ends, mu)
    ax.figure.savefig(tmp_path / "nested.png", dpi=80)


@pytest.mark.parametrize("factor", ["cask:batch", "batch"])
def test_the_one_factor_plots_take_factor(pastes, factor, tmp_path, close_figures):
    from bayeshrink.api import FitResult

    view = pastes.factor_fit(factor)
    assert isinstance(view, FitResult)
    assert list(view.groups) == list(pastes.ranef(factor).index)
    # varcorr() of the view: the factor's row and the residual, as lme4's VarCorr rows
    vc = view.varcorr()
    assert list(vc.grp) == [factor, "Residual"]
    np.testing.assert_allclose(
        vc.vcov, pastes.varcorr().set_index("grp").loc[[factor, "Residual"], "vcov"]
    )
    fig = bs.plot_forest(pastes, factor=factor)
    n_levels = len(pastes.ranef(factor))
    assert len(fig.axes[0].get_yticks()) == n_levels
    fig.savefig(tmp_path / "forest.png", dpi=60)
    fig = bs.plot_shrinkage(pastes, factor=factor)
    fig.savefig(tmp_path / "shrinkage.png", dpi=60)
    pc = bs.plot_triplot(pastes, factor=factor)
    assert pc.viz["figure"] is not None


def test_factor_is_required_with_several_and_refused_with_one(pastes, close_figures):
    from bayeshrink.errors import MethodError

    with pytest.raises(ColumnError, match="`factor` must name one of the grouping factors"):
        bs.plot_forest(pastes)
    sleep = bs.fit(bs.load_dataset("sleepstudy"), formula="Reaction ~ Days + (Days | Subject)")
    with pytest.raises(MethodError, match="this fit has one \\('Subject'\\)"):
        bs.plot_forest(sleep, factor="Days")
    with pytest.raises(MethodError, match="posterior draws can be drawn for one grouping"):
        bs.plot_forest(pastes, plugin=object(), factor="batch")
