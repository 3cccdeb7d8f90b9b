"""predict / fitted / resid on an engine frame: a frame of the same kind, computed in the engine,
equal to the pandas path row by row (1e-9: two of our own paths)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import HEAVY

import bayeshrink as bs

pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")

SLEEP = "Reaction ~ Days + (Days | Subject)"
RADON_MORE = "log_radon ~ basement * log_uranium + I(log_uranium**2) + (floor | county)"
PENICILLIN = ("penicillin.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)")
PASTES = ("pastes.csv", "strength ~ 1 + (1 | batch/cask)")


def _duckdb(df):
    con = duckdb.connect()
    con.register("frame", df)
    return con.sql("select * from frame")


NATIVE = {"polars-lazy": lambda d: pl.from_pandas(d).lazy(), "duckdb": _duckdb}


def to_pandas(out) -> pd.DataFrame:
    """An engine result, collected for the comparison, in the rows' original order."""
    from bayeshrink.frames import lazy_frame

    df = lazy_frame(out).collect().to_pandas()
    return df.sort_values("row").reset_index(drop=True)


def data(name):
    if name == "sleep":
        df = bs.load_dataset("sleepstudy")
        formula = SLEEP
    elif name == "radon":
        r = bs.load_dataset("radon")[["county", "floor", "log_radon", "log_uranium"]]
        df = r.assign(basement=np.where(r["floor"] == 0, "yes", "no"))
        formula = RADON_MORE
    else:
        from test_multi import read

        csv, formula = {"pen": PENICILLIN, "pastes": PASTES}[name]
        df = read(csv)
    return df.assign(row=np.arange(len(df))), formula


def _no_collect(monkeypatch):
    import bayeshrink.frames as frames

    def refuse(data):
        raise AssertionError("the rows were collected")

    monkeypatch.setattr(frames, "engine_to_pandas", refuse)


def assert_rows_equal(fit, ref, df, native, random=True):
    """predict, fitted and resid of ``fit`` on ``native`` equal ``ref``'s on ``df``."""
    kind = type(native)
    for method, column, want in (
        ("predict", "fit", ref.predict(df, random=random)),
        ("fitted", "fitted", ref.fitted(df)),
        ("resid", "resid", ref.resid(df)),
    ):
        if method == "predict":
            out = fit.predict(native, random=random)
        else:
            out = getattr(fit, method)(native)
        assert type(out) is kind, method
        got = to_pandas(out)
        assert list(got.columns) == [*df.columns, column]
        scale = np.abs(want.to_numpy()).max()
        np.testing.assert_allclose(got[column], want.to_numpy(), rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("name", ["sleep", "radon", "pen", "pastes"])
@pytest.mark.parametrize("engine", list(NATIVE))
def test_engine_fit_predicts_in_the_engine(monkeypatch, name, engine):
    df, formula = data(name)
    ref = bs.fit(df, formula=formula)
    fit = bs.fit(NATIVE[engine](df), formula=formula)
    _no_collect(monkeypatch)
    assert_rows_equal(fit, ref, df, NATIVE[engine](df))
    got = to_pandas(fit.predict(NATIVE[engine](df), random=False))
    np.testing.assert_allclose(got["fit"], ref.predict(df, random=False), rtol=1e-9)


def test_pandas_fit_predicts_on_an_engine_frame_and_the_one_way_fit():
    df, formula = data("radon")
    ref = bs.fit(df, formula=formula)
    assert_rows_equal(ref, ref, df, pl.from_pandas(df).lazy())
    # an eager polars frame gives an eager polars frame
    out = ref.predict(pl.from_pandas(df))
    assert isinstance(out, pl.DataFrame)
    np.testing.assert_allclose(to_pandas(out)["fit"], ref.predict(df), rtol=1e-9)
    one = bs.fit(df, y="log_radon", group="county")
    got = to_pandas(one.predict(_duckdb(df)))
    np.testing.assert_allclose(got["fit"], one.predict(df), rtol=1e-9)


@pytest.mark.parametrize("engine", list(NATIVE))
def test_unseen_levels_raise_as_pandas_or_get_zero(engine):
    df, formula = data("pen")
    fit = bs.fit(NATIVE[engine](df), formula=formula)
    new = df.head(6).assign(plate=["a", "a", "zz", "zz", "yy", "b"])
    match = (
        r"must hold levels of the grouping factor 'plate' seen in the fit unless "
        r"allow_new_levels=True; got 2 new level\(s\) of 'plate': '(yy|zz)', '(yy|zz)'\. Pass "
        r"allow_new_levels=True"
    )
    with pytest.raises(bs.DataError, match=match):
        fit.predict(NATIVE[engine](new))
    with pytest.raises(bs.DataError, match=match):
        fit.predict(new)  # the pandas path says the same
    got = to_pandas(fit.predict(NATIVE[engine](new), allow_new_levels=True))
    np.testing.assert_allclose(got["fit"], fit.predict(new, allow_new_levels=True), rtol=1e-9)


def test_bad_requests_say_what_to_do():
    df, formula = data("radon")
    fit = bs.fit(df, formula=formula)
    lazy = pl.from_pandas(df).lazy()
    with pytest.raises(bs.MethodError, match=r"`interval` is computed on pandas rows only"):
        fit.predict(lazy, interval="prediction")
    odd = pl.from_pandas(df.assign(basement=np.where(df["floor"] == 0, "yes", "maybe"))).lazy()
    with pytest.raises(
        bs.DataError, match=r"`newdata` column 'basement' must hold levels the fit saw .* 'maybe'"
    ):
        fit.predict(odd)
    with pytest.raises(bs.ColumnError, match=r"missing 'log_uranium'"):
        fit.predict(lazy.drop("log_uranium"))
    with pytest.raises(bs.ColumnError, match=r"must not already have a column 'fit'"):
        fit.predict(lazy.with_columns(fit=pl.lit(1.0)))


def test_write_parquet(tmp_path):
    from bayeshrink.engines_predict import write_parquet

    df, formula = data("pen")
    fit = bs.fit(df, formula=formula)
    for name, native in (("p.parquet", pl.from_pandas(df).lazy()), ("d.parquet", _duckdb(df))):
        write_parquet(fit.predict(native), tmp_path / name)
        got = pd.read_parquet(tmp_path / name).sort_values("row")
        np.testing.assert_allclose(got["fit"], fit.predict(df), rtol=1e-12)


@pytest.mark.parametrize("name", ["pen", pytest.param("sleep", marks=HEAVY)])
def test_dask_predicts_in_the_cluster(dask_client, name):
    import dask.dataframe as dd

    df, formula = data(name)
    ref = bs.fit(df, formula=formula)
    assert_rows_equal(ref, ref, df, dd.from_pandas(df, npartitions=3))


@pytest.mark.parametrize("name", ["sleep", pytest.param("pastes", marks=HEAVY)])
def test_spark_predicts_in_the_session(spark, name):
    df, formula = data(name)
    ref = bs.fit(df, formula=formula)
    native = spark.createDataFrame(pa.Table.from_pandas(df, preserve_index=False))
    assert_rows_equal(ref, ref, df, native)
