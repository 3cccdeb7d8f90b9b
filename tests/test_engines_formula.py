"""Formula fits computed inside an engine (polars, DuckDB, Dask, Spark) equal the pandas fit.

The pandas fit is itself checked against lme4 (tests/test_lmm.py); two of our own paths must
agree to 1e-9 relative: fixed effects, logLik, sigma, every variance and covariance of the
random effects, every conditional mode.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import HEAVY

import bayeshrink as bs

pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")

SLEEP = "Reaction ~ Days + (Days | Subject)"
RADON = "log_radon ~ C(floor) + log_uranium + (1 | county)"
RADON_MORE = "log_radon ~ basement * log_uranium + I(log_uranium**2) + (floor | county)"


@pytest.fixture(scope="module")
def sleep():
    return bs.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def radon():
    r = bs.load_dataset("radon")[["county", "floor", "log_radon", "log_uranium"]]
    return r.assign(basement=np.where(r["floor"] == 0, "yes", "no"))


def assert_same_fit(fit, ref, rtol=1e-9):
    """Fixed effects, logLik, sigma, random-effects covariance and modes to ``rtol``."""
    assert type(fit) is type(ref)
    assert list(fit.groups) == list(ref.groups)
    assert list(fit.fixed_terms) == list(ref.fixed_terms)
    np.testing.assert_allclose(fit.fixef, ref.fixef, rtol=rtol, atol=0)
    np.testing.assert_allclose(fit.loglik, ref.loglik, rtol=rtol)
    np.testing.assert_allclose(fit.sigma, ref.sigma, rtol=rtol)
    cov, ref_cov = np.asarray(fit.cov_re(), dtype=float), np.asarray(ref.cov_re(), dtype=float)
    np.testing.assert_allclose(cov, ref_cov, rtol=rtol, atol=rtol * np.abs(ref_cov).max())
    modes, ref_modes = fit.ranef().to_numpy(), ref.ranef().to_numpy()
    np.testing.assert_allclose(modes, ref_modes, rtol=0, atol=rtol * np.abs(ref_modes).max())
    np.testing.assert_allclose(np.asarray(fit.vcov), np.asarray(ref.vcov), rtol=rtol, atol=0)


def _duckdb(df):
    con = duckdb.connect()
    con.register("frame", df)
    return con.sql("select * from frame")


CASES = [("sleep", SLEEP), ("radon", RADON), ("radon", RADON_MORE)]


@pytest.mark.parametrize(("data", "formula"), CASES)
@pytest.mark.parametrize("engine", ["polars-lazy", "polars", "duckdb"])
def test_local_engines_equal_pandas(request, data, formula, engine):
    df = request.getfixturevalue(data)
    native = {
        "polars-lazy": lambda: pl.from_pandas(df).lazy(),
        "polars": lambda: pl.from_pandas(df),
        "duckdb": lambda: _duckdb(df),
    }[engine]()
    assert_same_fit(bs.fit(native, formula=formula), bs.fit(df, formula=formula))


def test_ml_offset_and_a_level_of_1e9(sleep):
    # y around 1e9: each column is centred before its products, so nothing is lost
    df = sleep.assign(
        Reaction=sleep["Reaction"] + 1e9, R0=sleep["Reaction"], base=np.log(sleep["Reaction"]) / 2
    )
    assert_same_fit(
        bs.fit(pl.from_pandas(df).lazy(), formula=SLEEP, method="ml"),
        bs.fit(df, formula=SLEEP, method="ml"),
    )
    f = "np.log(R0) ~ Days + offset(base) + offset(Days) + (1 | Subject)"
    assert_same_fit(bs.fit(_duckdb(df), formula=f), bs.fit(df, formula=f))


@pytest.mark.parametrize(
    "formula",
    [
        "log_radon ~ C(basement, Sum) * log_uranium + (1 | county)",
        "log_radon ~ C(basement, levels=['yes', 'no']) + np.sqrt(log_uranium + 1) + (1 | county)",
        "log_radon ~ 0 + basement + (1 | county) + (0 + floor | county)",
        "log_radon ~ C(floor, Treatment(1)) + exp(log_uranium) + (1 | county)",
    ],
)
def test_codings_and_functions(radon, formula):
    assert_same_fit(
        bs.fit(pl.from_pandas(radon).lazy(), formula=formula), bs.fit(radon, formula=formula)
    )


def test_predict_on_new_rows_uses_the_engine_encoding(radon):
    fit = bs.fit(pl.from_pandas(radon).lazy(), formula=RADON_MORE)
    ref = bs.fit(radon, formula=RADON_MORE)
    new = radon.head(7)
    np.testing.assert_allclose(fit.predict(new), ref.predict(new), rtol=1e-9)


def test_missing_rows_raise_or_drop_with_the_count(sleep):
    df = sleep.assign(Subject=sleep["Subject"].astype(float))
    df.loc[[2, 5], "Subject"] = np.nan  # NaN labels are missing labels
    df["Days"] = df["Days"].astype(float)
    df.loc[7, "Days"] = np.inf
    lazy = pl.from_pandas(df, nan_to_null=False).lazy()
    with pytest.raises(
        bs.DataError,
        match=r"the variables of `formula` must be present and finite; 3 of 180 rows hold NaN, "
        r"inf or a missing value\. .*missing='drop'",
    ):
        bs.fit(lazy, formula=SLEEP)
    with pytest.warns(bs.RowsDroppedWarning, match=r"left out 3 of 180 rows where the variables"):
        fit = bs.fit(_duckdb(df), formula=SLEEP, missing="drop")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.RowsDroppedWarning)
        ref = bs.fit(df, formula=SLEEP, missing="drop")
    assert fit.n_obs == 177
    assert_same_fit(fit, ref)


def test_bad_input_gets_the_pandas_errors(sleep):
    lazy = pl.from_pandas(sleep.assign(Reaction=sleep["Reaction"].astype(str))).lazy()
    with pytest.raises(bs.DataTypeError, match=r"the response 'Reaction' must be numeric"):
        bs.fit(lazy, formula=SLEEP)
    with pytest.raises(bs.ColumnError, match=r"'Dayz' \(did you mean 'Days'\?\)"):
        bs.fit(_duckdb(sleep), formula="Reaction ~ Dayz + (Days | Subject)")
    with pytest.raises(bs.DataError, match=r"must be 'raise' or 'drop'"):
        bs.fit(pl.from_pandas(sleep), formula=SLEEP, missing="skip")
    # a term that is not finite beyond the first 1001 rows (the prototype): counted in the engine
    late = pd.concat(
        [sleep.assign(Subject=sleep["Subject"].astype(str) + f"-{k}") for k in range(6)],
        ignore_index=True,
    )
    late["Days"] = late["Days"] + 1.0
    late.loc[1050, "Days"] = -1.0
    with pytest.raises(
        bs.DataError, match=r"the terms of `formula` must be finite; .* in 1 of 1080 rows"
    ):
        bs.fit(pl.from_pandas(late).lazy(), formula="Reaction ~ log(Days) + (1 | Subject)")


def test_untranslatable_terms_name_the_term_and_the_fix(sleep):
    with pytest.raises(
        bs.FormulaError,
        match=r"term 'center\(Days\)' must be computable inside the engine.*center\(\) depends "
        r"on the whole column.*Collect the data to pandas first",
    ):
        bs.fit(pl.from_pandas(sleep).lazy(), formula="Reaction ~ center(Days) + (1 | Subject)")
    with pytest.raises(bs.FormulaError, match=r"term 'poly\(Days, 2\)' must be computable"):
        bs.fit(_duckdb(sleep), formula="Reaction ~ poly(Days, 2) + (1 | Subject)")


# -- Dask on a local cluster of two worker processes; Spark local[2] on loopback -------------
# (the session's fixtures dask_client and spark: tests/conftest.py)


@pytest.mark.parametrize(("data", "formula"), [pytest.param(*CASES[0], marks=HEAVY), CASES[1]])
def test_spark_equals_pandas(request, spark, data, formula):
    df = request.getfixturevalue(data)
    native = spark.createDataFrame(pa.Table.from_pandas(df, preserve_index=False))
    assert_same_fit(bs.fit(native, formula=formula), bs.fit(df, formula=formula))


def test_spark_bad_input(spark, sleep):
    df = sleep.assign(Subject=sleep["Subject"].astype(float))
    df.loc[[2, 5], "Subject"] = np.nan
    native = spark.createDataFrame(pa.Table.from_pandas(df, preserve_index=False))
    with pytest.raises(bs.DataError, match=r"2 of 180 rows hold NaN, inf or a missing value"):
        bs.fit(native, formula=SLEEP)
    text = spark.createDataFrame(
        pa.Table.from_pandas(sleep.assign(Reaction=sleep["Reaction"].astype(str)))
    )
    with pytest.raises(bs.DataTypeError, match=r"the response 'Reaction' must be numeric"):
        bs.fit(text, formula=SLEEP)


def test_pandas_frames_keep_the_row_path(sleep):
    # the engine path is taken for engine frames only; a dict of columns stays on the rows
    fit = bs.fit({c: sleep[c].to_numpy() for c in sleep.columns}, formula=SLEEP)
    assert_same_fit(fit, bs.fit(pd.DataFrame(sleep), formula=SLEEP), rtol=1e-12)


# -- several factors: the criterion from cross-product blocks alone ---------------------------


def _multi_cases():
    from test_multi import CASES

    return CASES


@pytest.mark.parametrize(
    ("name", "csv", "formula", "method"), _multi_cases(), ids=[c[0] for c in _multi_cases()]
)
def test_pls_from_blocks_equals_the_row_path(name, csv, formula, method):
    """The criterion, its gradient and every estimate from the blocks alone (no rows) equal the
    row path's at the same theta to 1e-10; the optimised fits reach the same criterion to 1e-10
    (theta itself agrees as far as the optimiser's stopping rule pins it: on a flat optimum,
    1e-8)."""
    from test_multi import read

    from bayeshrink.lmm.blocks import row_blocks
    from bayeshrink.lmm.multi import MultiDesign
    from bayeshrink.lmm.pls import _Problem, fit_pls

    design = MultiDesign.from_formula(read(csv), formula)
    factors = list(design.factors)
    blocks = row_blocks(design.y, design.X, factors)
    tol = 1e-10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        rows = fit_pls(design.y, design.X, factors, method)
        at = fit_pls(None, None, factors, method, theta=rows.theta, blocks=blocks)
        opt = fit_pls(None, None, factors, method, blocks=blocks)
    row_prob = _Problem(design.y, design.X, factors, method)
    block_prob = _Problem(None, None, factors, method, blocks=blocks)
    theta = row_prob.start()
    np.testing.assert_allclose(block_prob.start(), theta, rtol=tol)
    f_r, g_r = row_prob.value_and_grad(theta)
    f_b, g_b = block_prob.value_and_grad(theta)
    np.testing.assert_allclose(f_b, f_r, rtol=tol)
    np.testing.assert_allclose(g_b, g_r, rtol=0, atol=tol * max(1.0, np.abs(g_r).max()))
    np.testing.assert_allclose(opt.criterion, rows.criterion, rtol=tol)
    np.testing.assert_allclose(at.beta, rows.beta, rtol=tol, atol=tol * np.abs(rows.beta).max())
    np.testing.assert_allclose(at.sigma, rows.sigma, rtol=tol)
    np.testing.assert_allclose(at.criterion, rows.criterion, rtol=tol)
    for fb, fr in zip(at.factors, rows.factors, strict=True):
        np.testing.assert_allclose(fb.cov, fr.cov, rtol=0, atol=tol * np.abs(fr.cov).max())
        scale = max(np.abs(fr.b).max(), rows.sigma)
        np.testing.assert_allclose(fb.b, fr.b, rtol=0, atol=tol * scale)
        np.testing.assert_allclose(fb.cond_cov, fr.cond_cov, rtol=tol, atol=tol * rows.sigma**2)


PENICILLIN = ("penicillin.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)")
PASTES = ("pastes.csv", "strength ~ 1 + (1 | batch/cask)")
SIM_CROSSED = ("multi_sim_crossed.csv", "y ~ x + (1 + x | subj) + (1 | item)")


def assert_same_pls(csv, formula, native_of, method="reml"):
    """The several-factor fit from the engine's blocks equals the row path's (the pandas fit's
    numeric core) to 1e-9: fixed effects, sigma, criterion, theta, every conditional mode and
    conditional covariance, the factors and their levels."""
    from test_multi import read

    from bayeshrink.engines_blocks import engine_pls_blocks
    from bayeshrink.formula import parse_formula
    from bayeshrink.lmm.multi import MultiDesign
    from bayeshrink.lmm.pls import fit_pls

    df = read(csv)
    design = MultiDesign.from_formula(df, formula)
    ref = fit_pls(design.y, design.X, list(design.factors), method)
    blocks, factors = engine_pls_blocks(native_of(df), parse_formula(formula))
    assert [f.name for f in factors] == [f.name for f in design.factors]
    for f, g in zip(factors, design.factors, strict=True):
        assert list(f.labels) == list(g.labels) and f.terms == g.terms
    fit = fit_pls(None, None, factors, method, blocks=blocks)
    tol = 1e-9
    np.testing.assert_allclose(fit.beta, ref.beta, rtol=tol, atol=tol * np.abs(ref.beta).max())
    np.testing.assert_allclose(fit.sigma, ref.sigma, rtol=tol)
    np.testing.assert_allclose(fit.criterion, ref.criterion, rtol=tol)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=0, atol=tol * max(1.0, ref.theta.max()))
    for a, b in zip(fit.factors, ref.factors, strict=True):
        np.testing.assert_allclose(a.cov, b.cov, rtol=0, atol=tol * np.abs(b.cov).max())
        np.testing.assert_allclose(a.b, b.b, rtol=0, atol=tol * max(np.abs(b.b).max(), ref.sigma))
        np.testing.assert_allclose(a.cond_cov, b.cond_cov, rtol=tol, atol=tol * ref.sigma**2)


@pytest.mark.parametrize("case", [PENICILLIN, PASTES, SIM_CROSSED], ids=["pen", "pastes", "sim"])
@pytest.mark.parametrize("engine", ["polars-lazy", "duckdb"])
def test_several_factors_from_engine_blocks(case, engine):
    native_of = {"polars-lazy": lambda d: pl.from_pandas(d).lazy(), "duckdb": _duckdb}[engine]
    assert_same_pls(*case, native_of)
    if case is PASTES:
        assert_same_pls(*case, native_of, method="ml")


def assert_same_multi(fit, ref, rtol=1e-9):
    """Two several-factor fits agree to ``rtol``: fixed effects and their covariance, logLik,
    sigma, and per factor its levels, covariance, conditional modes and SDs and its table()
    (no pooling, shrinkage, prediction SDs)."""
    assert type(fit) is type(ref) and fit.factors == ref.factors
    assert list(fit.fixed_terms) == list(ref.fixed_terms) and fit.n_obs == ref.n_obs
    np.testing.assert_allclose(fit.fixef, ref.fixef, rtol=rtol, atol=rtol * ref.sigma)
    np.testing.assert_allclose(fit.vcov, ref.vcov, rtol=rtol, atol=0)
    np.testing.assert_allclose(fit.loglik, ref.loglik, rtol=rtol)
    np.testing.assert_allclose(fit.sigma, ref.sigma, rtol=rtol)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=0, atol=rtol * max(1, ref.theta.max()))
    for f in ref.factors:
        assert list(fit.ranef(f).index) == list(ref.ranef(f).index)
        cov, ref_cov = fit.cov_re(f).to_numpy(), ref.cov_re(f).to_numpy()
        np.testing.assert_allclose(cov, ref_cov, rtol=0, atol=rtol * np.abs(ref_cov).max())
        b, ref_b = fit.ranef(f).to_numpy(), ref.ranef(f).to_numpy()
        np.testing.assert_allclose(b, ref_b, rtol=0, atol=rtol * max(np.abs(ref_b).max(), 1e-300))
        np.testing.assert_allclose(fit.ranef_sd(f), ref.ranef_sd(f), rtol=rtol)
        t, ref_t = fit.table(factor=f), ref.table(factor=f)
        for c in ref_t.columns:  # each column to rtol of its largest value
            scale = np.nanmax(np.abs(ref_t[c].to_numpy(dtype=float)))
            np.testing.assert_allclose(t[c], ref_t[c], rtol=0, atol=rtol * scale, err_msg=c)


def _no_collect(monkeypatch):
    """Collecting a whole engine frame to pandas fails the test: only the blocks may leave."""
    import bayeshrink.frames as frames

    def refuse(data):
        raise AssertionError("the rows were collected")

    monkeypatch.setattr(frames, "engine_to_pandas", refuse)


NATIVE = {
    "polars-lazy": lambda d: pl.from_pandas(d).lazy(),
    "duckdb": _duckdb,
}


@pytest.mark.parametrize(
    "case",
    [PENICILLIN, PASTES, pytest.param(SIM_CROSSED, marks=HEAVY)],
    ids=["pen", "pastes", "sim"],
)
@pytest.mark.parametrize("engine", list(NATIVE))
def test_several_factor_fits_stay_in_the_engine(monkeypatch, case, engine):
    from test_multi import read

    csv, formula = case
    df = read(csv)
    ref = bs.fit(df, formula=formula)
    _no_collect(monkeypatch)
    fit = bs.fit(NATIVE[engine](df), formula=formula)
    assert_same_multi(fit, ref)
    assert fit.design.blocks is not None
    assert "Random effects:" in str(fit)
    if case is PASTES:
        assert_same_multi(
            bs.fit(NATIVE[engine](df), formula=formula, method="ml"),
            bs.fit(df, formula=formula, method="ml"),
        )


def test_methods_that_need_the_rows_say_so(sleep):
    from test_multi import read

    df = read(PENICILLIN[0])
    fit = bs.fit(pl.from_pandas(df).lazy(), formula=PENICILLIN[1])
    need = (
        r"this fit was computed inside polars: only its cross-product blocks left the engine, "
        r"not its rows, and this method needs the rows .* bs\.fit\(lf\.collect\(\)\.to_pandas"
        r"\(\), formula=\.\.\.\); fit\.predict\(frame\), fit\.fitted\(frame\)"
    )
    for call in (
        fit.fitted,
        fit.resid,
        fit.simulate,
        lambda: fit.predict(df.head(3), interval="prediction"),
        lambda: fit.confint(method="profile"),
    ):
        with pytest.raises(bs.DataError, match=need):
            call()
    rel = bs.fit(_duckdb(df), formula=PENICILLIN[1])
    with pytest.raises(bs.DataError, match=r"inside DuckDB: .* bs\.fit\(rel\.df\(\)"):
        rel.simulate()
    # what needs only the blocks works: fixed-effect predictions for new rows, the tables
    np.testing.assert_allclose(
        fit.predict(df.head(5)), bs.fit(df, formula=PENICILLIN[1]).predict(df.head(5)), rtol=1e-9
    )


@pytest.mark.parametrize(
    "case", [PENICILLIN, pytest.param(PASTES, marks=HEAVY)], ids=["pen", "pastes"]
)
def test_several_factors_on_a_dask_cluster(dask_client, case):
    import dask.dataframe as dd
    from test_multi import read

    df = read(case[0])
    fit = bs.fit(dd.from_pandas(df, npartitions=3), formula=case[1])
    assert_same_multi(fit, bs.fit(df, formula=case[1]))


@pytest.mark.parametrize(
    "case", [pytest.param(PENICILLIN, marks=HEAVY), PASTES], ids=["pen", "pastes"]
)
def test_several_factors_on_spark(spark, case):
    from test_multi import read

    df = read(case[0])
    native = spark.createDataFrame(pa.Table.from_pandas(df, preserve_index=False))
    assert_same_multi(bs.fit(native, formula=case[1]), bs.fit(df, formula=case[1]))
