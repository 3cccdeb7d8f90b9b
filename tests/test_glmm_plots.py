"""The shrinkage pictures of a GLMM (plot_shrinkage, plot_forest, plot_shrinkage_curve) on the
link and the response scale, with the stated rule for groups with no finite own estimate."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE
from scipy import special

import bayeshrink as bs
from bayeshrink.errors import DataError, DataTypeError, MethodError

F = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def edged():
    """cbpp with herds 3 and 9 all failures and herd 14 all successes."""
    df = pd.read_csv(REFERENCE / "cbpp.csv")
    df["period"] = df["period"].astype(str)
    df.loc[df.herd.isin([3, 9]), "incidence"] = 0
    df.loc[df.herd == 14, "incidence"] = df.loc[df.herd == 14, "size"]
    return bs.fit(df, formula=F, family="binomial")


def _points(ax, gid):
    return np.concatenate(
        [c.get_offsets()[:, 0] for c in ax.collections if c.get_gid() == gid] or [np.empty(0)]
    )


def test_shrinkage_link_scale(edged, tmp_path):
    fig = bs.plot_shrinkage(edged)
    fig.savefig(tmp_path / "shrinkage_link.png")
    ax = fig.axes[0]
    t = edged.table()
    ok = t["own_status"] == "ok"
    # own estimates where finite, conditional modes for every herd, on the logit scale
    np.testing.assert_allclose(np.sort(_points(ax, "own")), np.sort(t["no_pooling"][ok]))
    np.testing.assert_allclose(np.sort(_points(ax, "mode")), np.sort(t["cond_mode"]))
    # the three herds with no finite estimate sit at the edges, outside every finite value
    edge = _points(ax, "own-infinite")
    assert len(edge) == 3
    finite = np.r_[t["no_pooling"][ok], t["cond_mode"]]
    assert (edge < finite.min()).sum() == 2 and (edge > finite.max()).sum() == 1
    arrows = [
        c for c in ax.get_children() if getattr(c, "get_gid", lambda: None)() == "shrinkage-arrow"
    ]
    assert len(arrows) == len(t)
    assert "3 groups with all failures or all successes" in ax.get_title(loc="left")
    assert "logit scale" in ax.get_xlabel()
    [centre] = [ln for ln in ax.lines if ln.get_gid() == "centre"]
    assert centre.get_xdata()[0] == pytest.approx(edged.fixef["Intercept"])
    plt.close(fig)


def test_shrinkage_response_scale(edged, tmp_path):
    fig = bs.plot_shrinkage(edged, scale="response")
    fig.savefig(tmp_path / "shrinkage_response.png")
    ax = fig.axes[0]
    t = edged.table()
    # probabilities at the reference period: expit of the link-scale values; all-failure herds
    # at their limit 0 and the all-success herd at 1
    own = special.expit(t["no_pooling"].to_numpy())
    own[t["own_status"].str.startswith("all failures").to_numpy()] = 0.0
    own[t["own_status"].str.startswith("all successes").to_numpy()] = 1.0
    np.testing.assert_allclose(np.sort(_points(ax, "own")), np.sort(own))
    np.testing.assert_allclose(np.sort(_points(ax, "mode")), np.sort(special.expit(t["cond_mode"])))
    assert len(_points(ax, "own-infinite")) == 0
    assert "probability" in ax.get_xlabel()
    assert "drawn at its limit" in ax.get_title(loc="left")
    plt.close(fig)


def test_forest_marks_groups_without_an_estimate(edged, tmp_path):
    fig = bs.plot_forest(edged)
    fig.savefig(tmp_path / "forest.png")
    ax = fig.axes[0]
    marks = [ln for ln in ax.lines if ln.get_gid() == "own-infinite"]
    assert sum(len(m.get_xdata()) for m in marks) == 3
    assert "conditional mode" in ax.get_title()
    assert "BLUP" not in ax.get_title()
    plt.close(fig)
    fig = bs.plot_forest(edged, scale="response")
    ax = fig.axes[0]
    assert not [ln for ln in ax.lines if ln.get_gid() == "own-infinite"]
    lo, hi = ax.get_xlim()
    assert lo < 0.05 and hi <= 1.1
    plt.close(fig)


def test_shrinkage_curve_on_the_information_axis(edged, tmp_path):
    fig = bs.plot_shrinkage_curve(edged, taus=[0.3])
    fig.savefig(tmp_path / "curve.png")
    ax = fig.axes[0]
    [groups] = [c for c in ax.collections if c.get_gid() == "groups"]
    x, b = groups.get_offsets().T
    tau = edged.table()["prior_sd"].iloc[0]
    # B_j = 1 / (1 + I_j tau^2) exactly: the groups lie on the fitted curve
    np.testing.assert_allclose(b, 1 / (1 + x * tau**2), rtol=1e-10)
    assert len([ln for ln in ax.lines if ln.get_gid() == "curve-other"]) == 1
    plt.close(fig)


def test_bad_scale_and_arguments(edged):
    with pytest.raises(MethodError, match="`scale` must be 'link' or 'response'"):
        bs.plot_shrinkage(edged, scale="probability")
    sleep = bs.load_dataset("sleepstudy")
    lmm = bs.fit(sleep, formula="Reaction ~ Days + (1 | Subject)")
    with pytest.raises(MethodError, match="except for a GLMM"):
        bs.plot_shrinkage(lmm, scale="response")
    with pytest.raises(DataTypeError, match="dict holding a GLMM"):
        bs.plot_shrinkage({"a": edged})
    with pytest.raises(DataError, match="for a GLMM give `taus`"):
        bs.plot_shrinkage_curve(edged, ratios=[1.0])
    sl = pd.read_csv(REFERENCE / "glmm_slopes.csv")
    slopes = bs.fit(sl, formula="y ~ x + (x | g)", family="binomial")
    with pytest.raises(MethodError, match="is a slope"):
        bs.plot_shrinkage(slopes, term="x", scale="response")
    with pytest.raises(MethodError, match="one scalar random term"):
        bs.plot_shrinkage_curve(slopes)
    plt.close("all")


def test_shrinkage_2d_speaks_of_glms_and_modes(tmp_path):
    sl = pd.read_csv(REFERENCE / "glmm_slopes.csv")
    fit = bs.fit(sl, formula="y ~ x + (x | g)", family="binomial")
    fig = bs.plot_shrinkage_2d(fit)
    fig.savefig(tmp_path / "shrinkage_2d.png")
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "own GLM fit" in labels and "conditional mode (coef = fixef + ranef)" in labels
    assert not any("least-squares" in lab or "BLUP" in lab for lab in labels)
    assert ax.get_xlabel() == "Intercept (logit scale)" and ax.get_ylabel() == "x (logit scale)"
    [modes] = [c for c in ax.collections if c.get_gid() == "blup"]
    np.testing.assert_allclose(modes.get_offsets(), fit.coef()[["Intercept", "x"]].to_numpy())
    plt.close(fig)
