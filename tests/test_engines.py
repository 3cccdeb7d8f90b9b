"""Dataframe engines: the GROUP BY runs in polars, pyarrow, DuckDB or Dask; results equal pandas."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs
from bayeshrink.cli import main
from bayeshrink.engines import require_engine
from bayeshrink.readers import read_table

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
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        fit = bs.fit(dd.from_pandas(data, npartitions=8), y="y", group="group")
    ref = bs.fit(data, y="y", group="group")
    np.testing.assert_allclose(
        [fit.mu, fit.tau, fit.sigma], [ref.mu, ref.tau, ref.sigma], rtol=1e-9
    )


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for every Spark test, stopped at the end (needs Java)."""
    sql = pytest.importorskip("pyspark.sql")
    import shutil
    import sys

    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        pytest.skip("Spark needs Java (CI installs a headless JRE: .ci/run)")
    patch = pytest.MonkeyPatch()
    patch.setenv("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter, not python3
    session = (
        sql.SparkSession.builder.master("local[1]")
        .appName("bayeshrink-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    patch.undo()


def _spark_frame(spark, df):
    return spark.createDataFrame(pa.Table.from_pandas(df, preserve_index=False))


def test_pyspark(spark, data):
    ref = bs.fit(data, y="y", group="group")
    fit = bs.fit(_spark_frame(spark, data), y="y", group="group")
    assert list(fit.groups) == list(ref.groups)
    np.testing.assert_allclose(
        [fit.mu, fit.tau, fit.sigma, fit.loglik],
        [ref.mu, ref.tau, ref.sigma, ref.loglik],
        rtol=1e-9,
    )
    bad = data.assign(group=data["group"].where(data.index != 3, None))
    with pytest.raises(bs.DataError, match=r"group label `group` must be present"):
        bs.fit(_spark_frame(spark, bad), y="y", group="group")
    with pytest.raises(bs.DataTypeError, match=r"Cast it in pyspark first.*withColumn"):
        bs.fit(_spark_frame(spark, data), y="group", group="y")


def test_cli_reads_lazily(tmp_path, data, capsys):
    path = tmp_path / "d.parquet"
    data.to_parquet(path)
    assert isinstance(read_table(path), pl.LazyFrame)
    assert type(read_table(path, "duckdb")).__name__ == "DuckDBPyRelation"
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


def test_engines_centre_as_pandas_does_so_an_outlier_first_row_changes_nothing(data):
    df = data.copy()
    df.loc[0, "y"] = 1e12  # the first row is an outlier: the centre must not be taken from it
    ref = bs.fit(df, y="y", group="group")
    for name, native in _engines(df).items():
        fit = bs.fit(native, y="y", group="group")
        np.testing.assert_allclose(
            [fit.mu, fit.tau, fit.sigma], [ref.mu, ref.tau, ref.sigma], rtol=1e-9, err_msg=name
        )
        np.testing.assert_allclose(
            fit.table()["no_pooling"], ref.table()["no_pooling"], rtol=1e-9, atol=1e-9 * ref.sigma
        )


def test_nan_group_labels_are_missing_in_every_engine_as_in_pandas(data):
    df = data.assign(code=data["group"].str[1:].astype(float))
    df.loc[[5, 17], "code"] = np.nan
    with pytest.raises(bs.DataError, match=r"group label `code` must be present"):
        bs.fit(df, y="y", group="code")
    with pytest.warns(bs.RowsDroppedWarning):
        ref = bs.fit(df, y="y", group="code", missing="drop")
    for name, native in _engines(df).items():
        frame = pl.from_pandas(df, nan_to_null=False) if name == "polars" else native
        with pytest.raises(bs.DataError, match=r"group label `code` must be present"):
            bs.fit(frame, y="y", group="code")
        with pytest.warns(bs.RowsDroppedWarning, match=r"left out 2 of 200 rows"):
            fit = bs.fit(frame, y="y", group="code", missing="drop")
        assert list(fit.groups) == list(ref.groups), name
        np.testing.assert_allclose(fit.tau, ref.tau, rtol=1e-9, err_msg=name)


def test_decimal_y_in_polars_and_duckdb(data):
    from decimal import Decimal

    df = data.assign(y=data["y"].round(2) - 1e9)
    ref = bs.fit(df, y="y", group="group")
    frame = pl.DataFrame(
        {"group": df["group"].tolist(), "y": [Decimal(f"{v:.2f}") for v in df["y"]]},
        schema={"group": pl.String, "y": pl.Decimal(12, 2)},
    )
    con = duckdb.connect()
    con.register("df_view", df)
    for native in (frame, con.sql('select "group", cast(y as decimal(12, 2)) as y from df_view')):
        fit = bs.fit(native, y="y", group="group")
        np.testing.assert_allclose([fit.tau, fit.sigma], [ref.tau, ref.sigma], rtol=1e-9)


@pytest.mark.parametrize("kind", ["struct", "list"])
def test_nested_group_columns_are_refused(data, kind):
    labels = [{"g": g} for g in data["group"]] if kind == "struct" else [[g] for g in data["group"]]
    frame = pl.DataFrame({"group": labels, "y": data["y"].to_numpy()})
    with pytest.raises(bs.DataTypeError, match=r"`group` column 'group' must hold one scalar"):
        bs.fit(frame, y="y", group="group")
    with pytest.raises(bs.DataTypeError, match=r"must hold one hashable label per row"):
        bs.fit(pd.DataFrame({"group": labels, "y": data["y"]}), y="y", group="group")


def test_type_errors_speak_each_engines_language(data):
    df = data.assign(y=data["y"].astype(str))
    hints = {
        "polars": r"Cast it in polars first, e\.g\. `df\.with_columns\(pl\.col",
        "duckdb": r"Cast it in duckdb first, e\.g\. `rel\.select\(.*CAST\(y AS DOUBLE\)",
        "dask": r"Cast it in dask first, e\.g\. `ddf\['y'\] = ddf\['y'\]\.astype",
        "pyarrow": r"Cast it in pyarrow first, e\.g\. `table\.set_column",
    }
    for name, native in _engines(df).items():
        pattern = hints[name.split("-")[0]]
        with pytest.raises(bs.DataTypeError, match=r"`y` column 'y' must be numeric.*" + pattern):
            bs.fit(native, y="y", group="group")


def test_engine_integers_beyond_float64_resolution_are_refused(data):
    frame = pl.DataFrame({"group": data["group"], "y": 2**62 + np.arange(len(data)) % 5})
    with pytest.raises(bs.DataError, match=r"integers that float64 represents exactly"):
        bs.fit(frame, y="y", group="group")
