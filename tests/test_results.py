from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs


@pytest.fixture(scope="module")
def fits():
    return bs.demo.demo_fits()


def test_table_columns_and_index(fits):
    t = fits["2"].table()
    for col in ["n", "no_pooling", "blup", "shrinkage", "cond_sd", "pred_sd"]:
        assert col in t.columns
    assert list(t.index) == ["g1", "g2", "g3", "g4", "g5"] and t.index.name == "group"
    # numbers stay numbers: the table is not rounded
    assert t["blup"].iloc[0] != round(t["blup"].iloc[0], 6)


def test_table_definitions(fits):
    fit = fits["3"]
    t = fit.table()
    np.testing.assert_allclose(t["se"], fit.sigma / np.sqrt(t["n"]), rtol=1e-14)
    b = t["se"] ** 2 / (t["se"] ** 2 + fit.tau**2)
    np.testing.assert_allclose(t["shrinkage"], b, rtol=1e-14)
    np.testing.assert_allclose(t["blup"], b * fit.mu + (1 - b) * t["no_pooling"], rtol=1e-13)
    np.testing.assert_allclose(
        t["cond_sd"], 1 / np.sqrt(1 / fit.tau**2 + 1 / t["se"] ** 2), rtol=1e-13
    )
    np.testing.assert_allclose(
        t["pred_sd"] ** 2, t["cond_sd"] ** 2 + b**2 * fit.mu_se**2, rtol=1e-13
    )
    # complete pooling: the grand mean of every row
    demo = bs.load_dataset("seed_demo")
    np.testing.assert_allclose(
        fit.complete_pooling, demo[demo["model"] == "3"]["y"].mean(), rtol=1e-13
    )


def test_results_are_frozen(fits):
    with pytest.raises(dataclasses.FrozenInstanceError):
        fits["2"].components = None


def test_summary_boundary_explained(fits):
    text = fits["1"].summary()
    assert "boundary" in text and "yes (tau = 0, singular fit)" in text
    assert "consistent with tau = 0" in text
    assert "pooled completely to mu" in text
    assert str(fits["1"]) == text


def test_summary_partial_pooling(fits):
    text = fits["2"].summary()
    assert "tau^2/sigma^2" in text and "1.724" in text
    assert "B_j = 0.104 for all" in text


def test_unbalanced_summary_names_extremes():
    fit = bs.fit(bs.load_dataset("radon"), y="log_radon", group="county")
    text = fit.summary()
    t = fit.table()
    assert f"({t['shrinkage'].idxmax()})" in text and f"({t['shrinkage'].idxmin()})" in text


def test_html_repr(fits):
    html = fits["1b"]._repr_html_()
    assert "<table" in html and "g5" in html and "tau^2/sigma^2" in html


def test_repr_is_one_line(fits):
    assert "\n" not in repr(fits["2"]) and "boundary=False" in repr(fits["2"])


def test_summary_fit_has_nan_sigma_and_no_n_column():
    fit = bs.fit_summary(bs.load_dataset("eight_schools"), "y", "sigma", "school")
    assert np.isnan(fit.sigma) and np.isnan(fit.var_ratio)
    assert fit.table()["n"].isna().all()
    assert "se_j range" in fit.summary()


def test_summary_sizes_shown_when_given():
    df = bs.load_dataset("eight_schools").assign(size=[30, 40, 50, 60, 70, 80, 90, 100])
    fit = bs.fit_summary(df, "y", "sigma", "school", n="size")
    assert fit.table()["n"].tolist() == [30, 40, 50, 60, 70, 80, 90, 100]


def test_group_stats_from_arrays_matches_long_fit(seed_demo):
    data = seed_demo[seed_demo["model"] == "2"]
    stats = bs.group_stats(data, "y", "group")
    again = bs.GroupStats.from_arrays(
        labels=stats.labels, mean=stats.mean, n=stats.n, ssw=stats.ssw
    )
    a, b = bs.fit(data, "y", "group"), bs.fit_stats(again)
    pd.testing.assert_frame_equal(a.table(), b.table(), rtol=1e-15)


def test_integer_labels_sorted_numerically():
    df = pd.DataFrame({"g": [10, 2, 10, 2, 1, 1], "y": [1.0, 2.0, 1.5, 2.5, 0.0, 0.3]})
    assert list(bs.fit(df, "y", "g").table().index) == [1, 2, 10]


def test_import_does_not_load_pymc_or_matplotlib():
    import subprocess

    code = (
        "import sys, bayeshrink; "
        "print(any(m.split('.')[0] in ('pymc', 'matplotlib', 'arviz') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_datasets_load_offline_with_descriptions():
    for name in bs.list_datasets():
        df = bs.load_dataset(name)
        assert len(df) > 0 and df.attrs["citation"] and name in bs.describe_dataset(name)
    demo = bs.load_dataset("seed_demo")
    assert sorted(demo["model"].unique()) == ["1", "1b", "2", "3"]
    assert demo.groupby("model").size().to_dict() == {"1": 25, "1b": 2500, "2": 25, "3": 25}
    assert bs.load_dataset("radon")["county"].nunique() == 85


def test_rat_tumors_match_bda3_table_5_1():
    rats = bs.load_dataset("rat_tumors")
    assert len(rats) == 71 and (rats["y"] <= rats["n"]).all()
    # totals of BDA3 Table 5.1 (Gelman's rats.asc): 267 tumours in 1,739 rats
    assert (rats["y"].sum(), rats["n"].sum()) == (267, 1739)
    # BDA3 section 5.1: the 70 historical y_j / n_j have mean 0.136 and SD 0.103; the 71st
    # (current) experiment is 4 of 14
    rates = (rats["y"] / rats["n"]).iloc[:70]
    assert round(rates.mean(), 3) == 0.136 and round(rates.std(), 3) == 0.103
    assert rats.iloc[70][["y", "n"]].tolist() == [4, 14]
