"""The simulation-study harness: reproducible streams, engines, Monte Carlo SEs, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs
from bayeshrink.errors import DataError, MethodError

SMALL = dict(groups=5, size=5, ratio=0.04)
FAST_INTERVALS = ["cond", "pred", "morris", "kass-steffey", "robust"]


def _numbers(table: pd.DataFrame) -> pd.DataFrame:
    return table.select_dtypes("number")


def test_results_do_not_depend_on_chunks_or_workers():
    kw = dict(intervals=FAST_INTERVALS, replications=60, random_seed=4, progress=False)
    one = bs.simulation_study([SMALL, dict(groups=8, size=3, ratio=1.0)], workers=1, **kw)
    chunked = bs.simulation_study(
        [SMALL, dict(groups=8, size=3, ratio=1.0)], workers=1, chunk_size=7, **kw
    )
    pd.testing.assert_frame_equal(_numbers(one), _numbers(chunked))
    again = bs.simulation_study([SMALL, dict(groups=8, size=3, ratio=1.0)], workers=1, **kw)
    pd.testing.assert_frame_equal(_numbers(one), _numbers(again))
    other = bs.simulation_study(SMALL, workers=1, **{**kw, "random_seed": 5})
    assert not np.allclose(one["mse"].iloc[:4], other["mse"].iloc[:4])


def test_local_processes_and_dask_give_the_same_table():
    distributed = pytest.importorskip("distributed")
    kw = dict(
        intervals=["cond", "kass-steffey"],
        replications=40,
        random_seed=9,
        progress=False,
        chunk_size=10,
    )
    serial = bs.simulation_study(SMALL, workers=1, **kw)
    pooled = bs.simulation_study(SMALL, workers=2, **kw)
    pd.testing.assert_frame_equal(_numbers(serial), _numbers(pooled))
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
    ) as client:
        dask = bs.simulation_study(SMALL, client=client, **kw)
    pd.testing.assert_frame_equal(_numbers(serial), _numbers(dask))
    assert dask.attrs["engine"] == "dask"


def test_the_table_is_tidy_with_monte_carlo_ses():
    res = bs.simulation_study(
        SMALL, intervals=FAST_INTERVALS, replications=50, random_seed=1, progress=False, workers=1
    )
    assert set(res["kind"]) == {"estimator", "interval"}
    assert res.loc[res.kind == "estimator", "name"].tolist() == [
        "no-pooling",
        "blup-reml",
        "blup-ml",
        "james-stein",
    ]
    assert res.loc[res.kind == "interval", "name"].tolist() == FAST_INTERVALS
    for col in (
        "groups",
        "size",
        "ratio",
        "effects",
        "balanced",
        "design",
        "mse",
        "mse_se",
        "coverage",
        "coverage_se",
        "width",
        "width_se",
        "boundary_share",
        "coverage_boundary",
        "coverage_interior",
        "replications",
    ):
        assert col in res.columns
    iv = res[res.kind == "interval"]
    assert (iv["coverage_se"] > 0).all() and (iv["width_se"] > 0).all()
    # the boundary split is a partition of the replications
    share = iv["boundary_share"]
    np.testing.assert_allclose(
        share * iv["coverage_boundary"] + (1 - share) * iv["coverage_interior"],
        iv["coverage"],
        rtol=1e-12,
    )
    assert res.attrs["cpu_seconds_per_replication"]


def test_sufficient_statistics_match_simulated_rows():
    """Drawing group means and SSW directly, or rows through bs.simulate, gives the same
    distribution: coverage agrees within Monte Carlo error (4 combined SEs)."""
    kw = dict(
        estimators=["blup-reml"],
        intervals=["cond", "pred"],
        replications=300,
        progress=False,
        workers=1,
    )
    design = dict(groups=6, size=4, ratio=0.3, effects="two-point", balanced=False)
    fast = bs.simulation_study(design, random_seed=1, **kw).set_index(["kind", "name"])
    rows = bs.simulation_study(design, random_seed=2, rows=True, **kw).set_index(["kind", "name"])
    for col in ("coverage", "width", "mse"):
        diff = fast[col] - rows[col]
        se = np.hypot(fast[f"{col}_se"], rows[f"{col}_se"])
        assert (diff.dropna().abs() < 4 * se.dropna()).all(), col


def test_corrections_lift_the_five_group_coverage():
    """5 groups of 5 at ratio 0.04: cond_sd covers ~45%; the corrections reach ~95%."""
    res = bs.simulation_study(
        SMALL,
        estimators=["blup-reml"],
        intervals=["cond", "morris", "kass-steffey", "bootstrap"],
        replications=200,
        random_seed=3,
        n_boot=100,
        progress=False,
        workers=1,
    ).set_index("name")
    cond = res.loc["cond"]
    assert cond.coverage + 4 * cond.coverage_se < 0.7
    for name in ("morris", "kass-steffey", "bootstrap"):
        assert res.loc[name, "coverage"] - 4 * res.loc[name, "coverage_se"] > 0.85, name


def test_progress_bar_without_tqdm(capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    bs.simulation_study(SMALL, intervals=["cond"], replications=20, random_seed=1, workers=1)
    err = capsys.readouterr().err
    assert "20/20" in err


def test_effects_distributions_have_the_stated_moments():
    from bayeshrink.simulate import draw_effects

    rng = np.random.default_rng(0)
    for effects, kurt in (("normal", 3.0), ("two-point", 1.0), ("sparse", 8.1111)):
        x = draw_effects(rng, 400_000, 2.0, 0.5, effects)
        z = (x - 2.0) / 0.5
        assert z.mean() == pytest.approx(0.0, abs=0.02)
        assert z.var() == pytest.approx(1.0, abs=0.02)
        assert (z**4).mean() == pytest.approx(kurt, rel=0.05)
    df = bs.simulate(n_groups=30, n_per_group=2, sd_group=1.0, seed=1, effects="two-point")
    assert set(np.round(df["theta"] - 16.0, 12)) == {-1.0, 1.0}


def test_bad_input():
    kw = dict(replications=10, progress=False, workers=1)
    with pytest.raises(MethodError, match=r"`estimators` must be among"):
        bs.simulation_study(SMALL, estimators=["blup"], **kw)
    with pytest.raises(MethodError, match=r"interval methods must be among .* got 'nope'"):
        bs.simulation_study(SMALL, intervals=["nope"], **kw)
    with pytest.raises(MethodError, match=r"\"full\" comes with the 'full-bayes' estimator"):
        bs.simulation_study(SMALL, intervals=["full"], **kw)
    with pytest.raises(DataError, match=r"`replications` must be an integer >= 2"):
        bs.simulation_study(SMALL, replications=2.5, progress=False)
    with pytest.raises(MethodError, match=r"`engine` must be 'local' or 'dask'"):
        bs.simulation_study(SMALL, engine="ray", **kw)
    with pytest.raises(DataError, match=r"`effects` must be one of 'normal'"):
        bs.simulation_study(dict(groups=5, effects="t"), **kw)
    with pytest.raises(DataError, match=r"`groups` must be an integer >= 3"):
        bs.Design(groups=2)
    with pytest.raises(DataError, match=r"`designs` must be Design objects or dicts"):
        bs.simulation_study([(5, 5, 0.04)], **kw)
    with pytest.raises(MethodError, match=r"`level` must be a number strictly between"):
        bs.simulation_study(SMALL, level=95, **kw)


def test_full_bayes_replications_use_four_chains_and_count_their_problems(monkeypatch):
    # every replication's sampler runs on 4 chains; divergence and R-hat/ESS warnings are
    # counted per replication (diverged_share, unconverged_share), any other warning is shown
    import warnings

    import xarray as xr

    from bayeshrink import bayes
    from bayeshrink.intervals import THETA_DIM, THETA_VAR

    calls = []

    def fake_sample(model, **kwargs):
        calls.append(kwargs)
        k = len(calls)
        if k == 1:
            warnings.warn("2 divergences", bs.DivergenceWarning, stacklevel=2)
        if k in (1, 2):
            warnings.warn("R-hat 1.05", bs.SamplerConvergenceWarning, stacklevel=2)
        warnings.warn("something else", UserWarning, stacklevel=2)
        rng = np.random.default_rng(k)
        theta = rng.normal(size=(kwargs["chains"], kwargs["draws"], 5))
        post = xr.Dataset(
            {THETA_VAR: (("chain", "draw", THETA_DIM), theta)},
            coords={THETA_DIM: [f"g{j + 1}" for j in range(5)]},
        )
        return xr.DataTree.from_dict({"posterior": post})

    monkeypatch.setattr(bayes, "sample", fake_sample)
    with pytest.warns(UserWarning, match="something else") as record:
        out = bs.simulation_study(
            SMALL, estimators=["full-bayes"], intervals=[], replications=4, random_seed=1
        )
    assert not any(
        issubclass(w.category, (bs.DivergenceWarning, bs.SamplerConvergenceWarning)) for w in record
    )
    assert [c["chains"] for c in calls] == [4] * 4
    row = out.set_index("name").loc["full-bayes"]
    assert row["diverged_share"] == 0.25 and row["unconverged_share"] == 0.5
    assert np.isfinite(row["unconverged_share_se"])
