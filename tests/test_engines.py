"""Dataframe engines: the GROUP BY runs in polars, pyarrow, DuckDB or Dask; results equal pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs
from bayeshrink.cli import _read_table, main
from bayeshrink.engines import require_engine

pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")
dd = pytest.importorskip("dask.dataframe")


@pytest.fixture(scope="module")
def data():
    df = bs.simulate(
        n_groups=40, n_per_group=np.arange(1, 41) % 7 + 2, sd_group=2.0, sd_resid=3.0, seed=4
    )
    return df.assign(y=df["y"] + 1e9)[["group", "y"]]  # a level of 1e9: centring must work


def _engines(df):
    con = duckdb.connect()
    con.register("df_view", df)
    return {
        "polars": pl.from_pandas(df),
        "polars-lazy": pl.from_pandas(df).lazy(),
        "pyarrow": pa.Table.from_pandas(df, preserve_index=False),
        "duckdb": con.sql("select * from df_view"),
        "dask": dd.from_pandas(df, npartitions=4),
    }


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_engines_equal_pandas(data, method):
    ref = bs.fit(data, y="y", group="group", method=method)
    for name, native in _engines(data).items():
        fit = bs.fit(native, y="y", group="group", method=method)
        assert list(fit.groups) == list(ref.groups), name
        np.testing.assert_allclose(
            [fit.mu, fit.tau, fit.sigma, fit.loglik],
            [ref.mu, ref.tau, ref.sigma, ref.loglik],
            rtol=1e-9,
            err_msg=name,
        )
        pd.testing.assert_frame_equal(
            fit.table(),
            ref.table(),
            rtol=1e-9,
            atol=1e-9 * ref.sigma,
            check_index_type=False,
            check_dtype=False,
        )


def test_engine_missing_values(data):
    df = data.copy()
    df.loc[[3, 10], "y"] = np.nan
    frame = pl.from_pandas(df, nan_to_null=False)
    with pytest.raises(
        bs.DataError,
        match=r"`y` \('y'\) must be present and finite; 2 of \d+ "
        r"rows hold NaN.*missing='drop'",
    ):
        bs.fit(frame, y="y", group="group")
    with pytest.warns(bs.RowsDroppedWarning, match="left out 2 of"):
        fit = bs.fit(frame, y="y", group="group", missing="drop")
    ref = bs.fit(df.dropna(), y="y", group="group")
    np.testing.assert_allclose(fit.tau, ref.tau, rtol=1e-9)


def test_engine_bad_columns(data):
    frame = pl.from_pandas(data)
    with pytest.raises(bs.ColumnError, match=r"`group` must name a column.*'county'"):
        bs.fit(frame, y="y", group="county")
    with pytest.raises(bs.DataTypeError, match=r"`y` column 'group' must be numeric"):
        bs.fit(frame, y="group", group="y")


def test_engine_summary_data():
    schools = bs.load_dataset("eight_schools")
    ref = bs.fit_summary(schools, "y", "sigma", "school")
    fit = bs.fit_summary(pl.from_pandas(schools), "y", "sigma", "school")
    assert fit.mu == ref.mu and fit.boundary


@pytest.mark.slow
def test_dask_on_a_local_cluster(data):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        fit = bs.fit(dd.from_pandas(data, npartitions=8), y="y", group="group")
    ref = bs.fit(data, y="y", group="group")
    np.testing.assert_allclose(
        [fit.mu, fit.tau, fit.sigma], [ref.mu, ref.tau, ref.sigma], rtol=1e-9
    )


def test_pyspark_when_installed(data):
    pyspark = pytest.importorskip("pyspark.sql")
    spark = pyspark.SparkSession.builder.master("local[1]").getOrCreate()
    fit = bs.fit(spark.createDataFrame(data), y="y", group="group")
    np.testing.assert_allclose(fit.tau, bs.fit(data, y="y", group="group").tau, rtol=1e-9)


def test_cli_reads_lazily(tmp_path, data, capsys):
    path = tmp_path / "d.parquet"
    data.to_parquet(path)
    assert isinstance(_read_table(path), pl.LazyFrame)
    assert type(_read_table(path, "duckdb")).__name__ == "DuckDBPyRelation"
    assert (
        main(["fit", str(path), "--y", "y", "--group", "group", "--engine", "duckdb", "--json"])
        == 0
    )
    assert '"boundary": false' in capsys.readouterr().out


def test_missing_engine_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "duckdb", None)  # makes `import duckdb` fail
    with pytest.raises(bs.DataError, match=r"pip install 'bayeshrink\[duckdb\]'"):
        require_engine("duckdb")
