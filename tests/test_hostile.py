"""Hostile and awkward inputs: each gets the right answer or a clear BayeshrinkError.

Right answers are checked against a closed form (exact rational arithmetic on the float data),
against lme4/metafor (tests/reference/), or against another of our own code paths (1e-10).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs

EPS = float(np.finfo(float).eps)


# ---------------------------------------------------------------- the one-way estimator


def _balanced_with_tau2(target: float, J: int = 10, n: int = 5, seed: int = 0):
    """Balanced long data whose REML tau^2 is close to ``target`` > 0."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    e = rng.normal(size=J * n)
    e -= np.bincount(g, e)[g] / n  # no between-group signal in the noise
    msw = (e**2).sum() / (J * (n - 1))
    a = rng.normal(size=J)
    a -= a.mean()
    a /= np.sqrt((a**2).sum() / (J - 1))
    y = 5.0 + e + np.sqrt(msw + n * target) * a[g] / np.sqrt(n)
    return pd.DataFrame({"g": g, "y": y}), J, n


def _anova_reml_exact(y: np.ndarray, J: int, n: int) -> tuple[float, float]:
    """Balanced one-way REML in closed form, in exact rational arithmetic on the float data:
    sigma^2 = MSW, tau^2 = max(0, (MSB - MSW) / n) (the ANOVA estimator, which REML equals for
    balanced data; lme4: lmer(y ~ 1 + (1 | g), REML = TRUE))."""
    yf = [Fraction(float(v)) for v in y]
    means = [sum(yf[j * n : (j + 1) * n]) / n for j in range(J)]
    grand = sum(means) / J
    ssw = sum((yf[i] - means[i // n]) ** 2 for i in range(J * n))
    ssb = n * sum((m - grand) ** 2 for m in means)
    msw = ssw / (J * (n - 1))
    return float(max(Fraction(0), (ssb / (J - 1) - msw) / n)), float(msw)


@pytest.mark.parametrize("target", [1e-4, 1e-8, 1e-10])
def test_tiny_tau2_is_found_by_the_gradient_not_lost_in_a_flat_criterion(target):
    df, J, n = _balanced_with_tau2(target)
    tau2, sigma2 = _anova_reml_exact(df["y"].to_numpy(), J, n)
    assert tau2 > 0
    fit = bs.fit(df, y="y", group="g")
    assert not fit.components.boundary  # tau^2 > 0 (lme4 would call tau/sigma < 1e-4 singular)
    # tau^2 = (MSB - MSW) / n: rounding of MSB and MSW (a few eps * MSW each) is amplified by
    # MSW / (n tau^2), so that is the attainable relative accuracy
    rtol = 100 * EPS * sigma2 / (n * tau2)
    np.testing.assert_allclose(fit.tau2, tau2, rtol=rtol)
    np.testing.assert_allclose(fit.sigma2, sigma2, rtol=1e-12)


# ---------------------------------------------------------------- extreme scales

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SCALES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def seed_models():
    demo = bs.load_dataset("seed_demo")
    return {m: demo[demo["model"] == m][["group", "y"]] for m in ["1", "2", "3", "1b"]}


@_SCALES
@given(
    model=st.sampled_from(["1", "2", "3", "1b"]),
    method=st.sampled_from(["reml", "ml"]),
    exponent=st.floats(-150, 150),
    shift=st.floats(-1e3, 1e3),
)
def test_long_fit_is_equivariant_over_300_orders_of_magnitude(
    seed_models, model, method, exponent, shift
):
    k = 10.0**exponent
    df = seed_models[model]
    base = bs.fit(df, y="y", group="group", method=method)
    moved = bs.fit(df.assign(y=(df["y"] + shift) * k), y="y", group="group", method=method)
    assert moved.boundary == base.boundary
    # the only differences are the roundings of (y + shift) * k: ~1e-13 of the spread
    np.testing.assert_allclose(
        moved.mu, (base.mu + shift) * k, rtol=1e-10, atol=1e-10 * base.sigma * k
    )
    np.testing.assert_allclose(moved.tau, base.tau * k, rtol=1e-9, atol=1e-10 * base.sigma * k)
    np.testing.assert_allclose(moved.sigma, base.sigma * k, rtol=1e-10)
    np.testing.assert_allclose(
        moved.loglik,
        base.loglik - moved.n_obs * np.log(k) + (np.log(k) if method == "reml" else 0.0),
        rtol=1e-9,
    )


@_SCALES
@given(
    method=st.sampled_from(["reml", "ml", "dl"]),
    exponent=st.floats(-150, 150),
    shift=st.floats(-1e3, 1e3),
)
def test_summary_fit_is_equivariant_over_300_orders_of_magnitude(method, exponent, shift):
    k = 10.0**exponent
    schools = bs.load_dataset("eight_schools")
    base = bs.fit_summary(schools, "y", "sigma", "school", method=method)
    moved = bs.fit_summary(
        schools.assign(y=(schools["y"] + shift) * k, sigma=schools["sigma"] * k),
        "y",
        "sigma",
        "school",
        method=method,
    )
    assert moved.boundary == base.boundary
    np.testing.assert_allclose(moved.mu, (base.mu + shift) * k, rtol=1e-10, atol=1e-10 * k)
    np.testing.assert_allclose(moved.mu_se, base.mu_se * k, rtol=1e-10)
    np.testing.assert_allclose(moved.tau, base.tau * k, rtol=1e-9, atol=1e-10 * k)


def test_eight_schools_tiny_and_huge_units_keep_the_boundary_verdict():
    # metafor: rma(yi = y, sei = sigma, data = schools, method = "REML"): tau^2 = 0, mu 7.6856
    schools = bs.load_dataset("eight_schools")
    for k in [1e-150, 1e150]:
        fit = bs.fit_summary(
            schools.assign(y=schools["y"] * k, sigma=schools["sigma"] * k), "y", "sigma", "school"
        )
        assert fit.boundary and fit.tau == 0.0
        np.testing.assert_allclose(fit.mu / k, 7.685616724956, rtol=1e-10)


@pytest.mark.parametrize(
    ("factor", "match"),
    [
        (1e154, r"`y` must have deviations .*\(below about 1e153\).*divide `y` by 1e156"),
        (1e-200, r"`y` must vary within groups .* about 4\.8e-200.*multiply `y` by 1e200"),
    ],
)
def test_scales_beyond_double_precision_are_refused_clearly(seed_models, factor, match):
    df = seed_models["2"]
    with pytest.raises(bs.DataError, match=match):
        bs.fit(df.assign(y=df["y"] * factor), y="y", group="group")


def test_summary_standard_errors_beyond_double_precision_are_refused():
    schools = bs.load_dataset("eight_schools")
    with pytest.raises(bs.DataError, match=r"`se` must lie between about 1e-153 and 1e153"):
        bs.fit_summary(schools.assign(sigma=schools["sigma"] * 1e-160), "y", "sigma", "school")


# ---------------------------------------------------------------- variation, decided exactly


def test_tiny_spread_at_a_large_level_is_variation():
    """1e12 + N(0, 1e-3): the values vary (by ~8 ulps of 1e12); the fit is that of the data
    minus 1e12, which float64 holds exactly here (Sterbenz)."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 5)
    y = 1e12 + rng.normal(0, 1e-3, g.size)
    fit = bs.fit(pd.DataFrame({"g": g, "y": y}), y="y", group="g")
    ref = bs.fit(pd.DataFrame({"g": g, "y": y - 1e12}), y="y", group="g")
    np.testing.assert_allclose([fit.tau, fit.sigma], [ref.tau, ref.sigma], rtol=1e-10)
    np.testing.assert_allclose(fit.mu - 1e12, ref.mu, atol=2e-4)  # ulp(1e12) = 1.2e-4


def test_integers_beyond_float64_resolution_are_refused_not_called_identical():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(5), 4)
    y = (2**62 + rng.integers(0, 5, g.size)).astype(np.int64)
    with pytest.raises(bs.DataError, match=r"integers that float64 represents exactly.*baseline"):
        bs.fit(pd.DataFrame({"g": g, "y": y}), y="y", group="g")
    # minus the baseline, as the message says: an ordinary fit (of what are now small whole
    # numbers from 0, which the normal family's check reads as counts)
    with pytest.warns(bs.FamilyWarning, match="looks like counts"):
        fit = bs.fit(pd.DataFrame({"g": g, "y": y - y.min()}), y="y", group="g")
    assert np.isfinite(fit.sigma) and fit.sigma > 0


def test_identical_values_at_any_level_are_still_caught():
    for level in [0.0, 1e12, 1e-200, 1e200]:
        df = pd.DataFrame({"g": list("aabbcc"), "y": level * np.array([1, 1, 3, 3, 7, 7.0])})
        with pytest.raises(bs.DataError, match="every group's values are identical"):
            bs.fit(df, y="y", group="g")


# ---------------------------------------------------------------- GroupStats.from_arrays, dtypes


@pytest.mark.parametrize("n", [[0, 3], [-1, 3], [2.7, 3], [np.nan, 3]])
def test_from_arrays_refuses_impossible_group_sizes(n):
    with pytest.raises(bs.DataError, match=r"`n` must hold whole numbers of at least 1"):
        bs.GroupStats.from_arrays(labels=["a", "b"], mean=[1.0, 2.0], n=n, ssw=[1.0, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ssw": [-1.0, 1.0]}, r"`ssw` must be finite and non-negative"),
        ({"mean": [np.nan, 1.0]}, r"`mean` must be finite"),
        ({"mean": [1.0, 2.0, 3.0]}, r"`mean` must hold one value per group \(2\); got shape"),
        ({"mean": [1 + 1j, 2.0]}, r"`mean` must be real numbers; got complex"),
        ({"mean": ["a", "b"]}, r"`mean` must be numeric"),
    ],
)
def test_from_arrays_refuses_bad_statistics(kwargs, match):
    args = {"labels": ["a", "b"], "mean": [1.0, 2.0], "n": [2, 3], "ssw": [1.0, 1.0]} | kwargs
    with pytest.raises(bs.BayeshrinkError, match=match):
        bs.GroupStats.from_arrays(**args)


def test_complex_y_is_refused_without_a_numpy_warning():
    df = pd.DataFrame({"g": list("aabb"), "y": np.array([1, 2, 3, 4]) + 1j})
    with pytest.raises(bs.DataTypeError, match=r"`y` column 'y' must hold real numbers"):
        bs.fit(df, y="y", group="g")  # filterwarnings=error: a ComplexWarning would fail here
    with pytest.raises(bs.DataTypeError, match=r"`estimate` column 'y' must hold real numbers"):
        bs.fit_summary(df.assign(se=1.0), "y", "se", "g")


# ---------------------------------------------------------------- the command line

from bayeshrink.cli import main  # noqa: E402


def _cli_error(capsys, argv) -> str:
    """Run the CLI; it must fail with exit code 2 and exactly one line on stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("bayeshrink: error: ")
    return err


@pytest.fixture
def csv_files(tmp_path):
    files = {
        "empty": b"",
        "header": b"g,y\n",
        "latin1": "g,y\ncafé,1\ncafé,2\nbar,3\nbar,5\n".encode("latin-1"),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_bytes(content)
    return paths


@pytest.mark.parametrize("engine", ["polars", "duckdb", "pandas"])
@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("empty", r"`FILE` must hold a header row and data; got '.*empty\.csv', which is empty"),
        ("header", r"the data must hold at least one row; got an empty table"),
        ("latin1", r"`FILE` must be UTF-8 text; '.*latin1\.csv' is not .*iconv -f latin1"),
    ],
)
def test_cli_unreadable_files_give_one_line(capsys, csv_files, engine, name, match):
    import re

    err = _cli_error(
        capsys, ["fit", str(csv_files[name]), "--y", "y", "--group", "g", "--engine", engine]
    )
    assert re.search(match, err), err


def test_cli_folder_as_file(capsys, tmp_path):
    err = _cli_error(capsys, ["fit", str(tmp_path), "--y", "y", "--group", "g"])
    assert "`FILE` must be a file" in err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--draws", "0", "--no-figures"], "`--draws` must be a whole number of at least 1"),
        (["--draws", "-5", "--no-figures"], "`--draws` must be a whole number of at least 1"),
        (["--seed", "-1", "--no-figures"], "`--seed` must be a non-negative whole number"),
    ],
)
def test_cli_demo_bad_options(capsys, argv, match):
    assert match in _cli_error(capsys, ["demo", *argv])


def test_cli_demo_out_must_be_a_writable_folder(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    err = _cli_error(capsys, ["demo", "--no-pymc", "--out", str(a_file)])
    assert "`--out` must name a folder for the figures" in err and "which is a file" in err
    err = _cli_error(capsys, ["demo", "--no-pymc", "--out", str(a_file / "sub")])
    assert "`--out` must be a folder bayeshrink can create and write to" in err
    assert not (a_file.parent / "sub").exists()


@pytest.mark.parametrize("engine", ["polars", "duckdb", "pandas"])
def test_cli_json_is_valid_json_with_null_for_missing_numbers(capsys, tmp_path, engine):
    import json

    schools = bs.load_dataset("eight_schools")
    path = tmp_path / "schools.csv"
    schools.to_csv(path, index=False)
    argv = ["fit", str(path), "--y", "y", "--se", "sigma", "--group", "school", "--json"]
    assert main([*argv, "--engine", engine]) == 0
    text = capsys.readouterr().out
    out = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert out["sigma"] is None and out["table"]["Intercept"]["n"][0] is None
    # metafor: rma(yi = y, sei = sigma, data = schools, method = "REML")$b = 7.6856
    np.testing.assert_allclose(out["mu"], 7.685616724956, rtol=1e-10)


# ---------------------------------------------------------------- formulas

from conftest import load_ref  # noqa: E402


@pytest.fixture(scope="module")
def sleep():
    return bs.load_dataset("sleepstudy")


@pytest.mark.parametrize("term", ["I(Days**2)", "{Days**2}", "I(Days ** 2)", "np.power(Days, 2)"])
def test_polynomial_terms_match_lme4(sleep, term):
    # lmer(Reaction ~ Days + I(Days^2) + (Days | Subject), sleepstudy)   [bobyqa, rhoend 2e-12]
    ref = load_ref("lmm_sleepstudy_quadratic")
    fit = bs.fit(sleep, formula=f"Reaction ~ Days + {term} + (Days | Subject)")
    assert list(fit.fixed_terms)[:2] == ["Intercept", "Days"] and len(fit.fixed_terms) == 3
    rtol = 1e-6
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), rtol=rtol)
    np.testing.assert_allclose(fit.fixef_se.to_numpy(), list(ref["fixef_se"].values()), rtol=rtol)
    np.testing.assert_allclose(fit.sigma, ref["sigma"], rtol=rtol)
    cov = np.asarray(ref["cov_re"], float).reshape(2, 2)
    np.testing.assert_allclose(fit.cov_re.to_numpy(), cov, rtol=rtol, atol=rtol * cov.max())
    np.testing.assert_allclose(fit.loglik, ref["logLik"], rtol=1e-9)
    # and the same as an explicit column
    explicit = bs.fit(
        sleep.assign(D2=sleep["Days"] ** 2), formula="Reaction ~ Days + D2 + (Days | Subject)"
    )
    np.testing.assert_allclose(fit.fixef.to_numpy(), explicit.fixef.to_numpy(), rtol=1e-10)


def test_lme4_power_syntax_gets_a_hint(sleep):
    with pytest.raises(bs.FormulaError, match=r"Powers are written with '\*\*'.*I\(x\*\*2\)"):
        bs.fit(sleep, formula="Reaction ~ Days + I(Days^2) + (Days | Subject)")


def test_formula_with_one_group_is_refused_as_lme4_does(sleep):
    # lme4: "grouping factors must have > 1 sampled level"
    one = sleep[sleep["Subject"] == sleep["Subject"].iloc[0]]
    for formula in ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"]:
        with pytest.raises(bs.DataError, match=r"at least 2 levels of 'Subject'.*got 1 level"):
            bs.fit(one, formula=formula)


def test_a_column_named_intercept_cannot_replace_the_intercept(sleep):
    df = sleep.assign(Intercept=sleep["Days"] * 2.0)
    with pytest.raises(bs.FormulaError, match=r"may not use a column named 'Intercept'"):
        bs.fit(df, formula="Reaction ~ Intercept + (1 | Subject)")
    # unused, it changes nothing: lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
    fit = bs.fit(df, formula="Reaction ~ Days + (Days | Subject)")
    np.testing.assert_allclose(fit.fixef["Intercept"], 251.405104848485, rtol=1e-9)


@pytest.mark.parametrize(
    "formula",
    ["y ~ Days + (Days | Subject)", "y ~ Days + (1 | Subject)", "y ~ 1 + (Days | Subject)"],
)
def test_zero_residual_variance_is_a_clear_error(sleep, formula):
    df = sleep.assign(y=2.0 * sleep["Days"] + 1.0)
    with pytest.raises(bs.DataError, match=r"must vary around the model.*sigma\^2 is 0"):
        bs.fit(df, formula=formula)


def test_a_saturated_fixed_part_is_not_mistaken_for_zero_residual(sleep):
    # Days as a 10-level factor: each subject's 10 rows are fitted exactly by its own
    # regression, but the shared fixed effects leave residual variation; lme4 fits it.
    fit = bs.fit(sleep.assign(d=sleep["Days"].astype(str)), formula="Reaction ~ d + (1 | Subject)")
    assert fit.sigma > 0 and len(fit.fixed_terms) == 10


def test_unary_plus_is_read_as_r_reads_it(sleep):
    a = bs.fit(sleep, formula="Reaction ~ Days + + (Days | Subject)")
    b = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-12)


def test_unknown_functions_are_named_with_the_known_ones(sleep):
    with pytest.raises(bs.FormulaError, match=r"known functions; got foo\(\).*Known: C, I, .*log"):
        bs.fit(sleep, formula="Reaction ~ foo(Days) + (Days | Subject)")


def test_duplicated_column_names_in_the_formula_path(sleep):
    df = pd.concat([sleep, sleep[["Days"]]], axis=1)
    with pytest.raises(bs.DataError, match=r"unique names; 'Days' appears 2 times"):
        bs.fit(df, formula="Reaction ~ Days + (Days | Subject)")


def test_missing_drop_that_leaves_no_rows(sleep):
    df = sleep.assign(Reaction=np.nan)
    with (
        pytest.warns(bs.RowsDroppedWarning),
        pytest.raises(bs.DataError, match=r"none are left after dropping the 180 rows"),
    ):
        bs.fit(df, formula="Reaction ~ Days + (Days | Subject)", missing="drop")


def test_decimal_response_from_duckdb_with_a_formula(sleep):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.register("sleep_view", sleep)
    rel = con.sql(
        'select "Subject", "Days", cast("Reaction" as decimal(12, 4)) as "Reaction" from sleep_view'
    )
    fit = bs.fit(rel, formula="Reaction ~ Days + (Days | Subject)")
    ref = bs.fit(
        sleep.assign(Reaction=sleep["Reaction"].round(4)),
        formula="Reaction ~ Days + (Days | Subject)",
    )
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-10)


# ---------------------------------------------------------------- careless arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_groups": float("nan")}, r"`n_groups` must be an integer >= 2; got nan"),
        ({"n_groups": "5"}, r"`n_groups` must be an integer >= 2; got '5'"),
        ({"n_per_group": 2.7}, r"`n_per_group` must hold whole numbers; got 2\.7"),
        ({"n_groups": 2, "n_per_group": [[1, 2], [3, 4]]}, r"`n_per_group` must be one whole"),
        ({"sd_group": float("nan")}, r"`sd_group` must be a finite number; got nan"),
        ({"sd_resid": float("inf")}, r"`sd_resid` must be a finite number; got inf"),
        ({"mu": float("nan")}, r"`mu` must be a finite number; got nan"),
        ({"seed": -1}, r"`seed` must be a non-negative integer, a numpy Generator or None"),
        ({"seed": "a"}, r"`seed` must be a non-negative integer"),
    ],
)
def test_simulate_refuses_impossible_arguments(kwargs, match):
    with pytest.raises(bs.DataError, match=match):
        bs.simulate(**({"n_groups": 3} | kwargs))


def test_fit_argument_mistakes():
    df = bs.simulate(5, seed=1)
    with pytest.raises(bs.DataTypeError, match=r"`y` must name one column; got list \['y'\]"):
        bs.fit(df, y=["y"], group="group")
    with pytest.raises(bs.DataError, match=r"`y` and `group` must be different columns"):
        bs.fit(df, y="y", group="y")
    with pytest.raises(bs.DataError, match=r"dict must hold columns of equal length.*'g': 2"):
        bs.fit({"y": [1.0, 2.0, 3.0], "g": ["a", "b"]}, y="y", group="g")
    with pytest.raises(bs.DataTypeError, match=r"`stats` must be a GroupStats; got DataFrame"):
        bs.fit_stats(df)


@pytest.mark.parametrize("n", [-3, 0, 2.5])
def test_fit_summary_refuses_impossible_sizes(n):
    schools = bs.load_dataset("eight_schools").assign(n=n)
    with pytest.raises(bs.DataError, match=r"`n` must hold group sizes"):
        bs.fit_summary(schools, "y", "sigma", "school", n="n")


# ---------------------------------------------------------------- plots


@pytest.fixture
def demo_fit(close_figures):
    demo = bs.load_dataset("seed_demo")
    return bs.fit(demo[demo["model"] == "2"], y="y", group="group")


def test_triplot_groups_given_carelessly(demo_fit):
    from conftest import panels_of

    with pytest.raises(bs.DataError, match=r"`groups` must name at least one group; got an empty"):
        bs.plot_triplot(demo_fit, groups=[])
    with pytest.raises(bs.DataError, match=r"`groups` must name each group once; got \['g1'\]"):
        bs.plot_triplot(demo_fit, groups=["g1", "g2", "g1"])
    # one label as a string is one group, not its characters 'g' and '1'
    pc = bs.plot_triplot(demo_fit, groups="g1")
    assert list(panels_of(pc)) == ["g1"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"ratios": [-1, 0]},
            r"`ratios` must be finite and >= 0 \(tau\^2/sigma\^2\); got \[-1\.0\]",
        ),
        ({"ratios": [np.nan]}, r"`ratios` must be finite and >= 0"),
        ({"ratios": ["a"]}, r"`ratios` must be numbers"),
    ],
)
def test_shrinkage_curve_refuses_impossible_ratios(demo_fit, kwargs, match):
    with pytest.raises(bs.BayeshrinkError, match=match):
        bs.plot_shrinkage_curve(demo_fit, **kwargs)


def test_shrinkage_curve_ratio_zero_is_complete_pooling(demo_fit):
    fig = bs.plot_shrinkage_curve(demo_fit, ratios=0)  # one number is a list of one
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_gid() == "curve-other"]
    assert np.all(line.get_ydata() == 1.0)  # B = 1 / (1 + n * 0)


def test_shrinkage_curve_refuses_negative_taus():
    schools = bs.fit_summary(bs.load_dataset("eight_schools"), "y", "sigma", "school")
    with pytest.raises(bs.DataError, match=r"`taus` must be finite and >= 0"):
        bs.plot_shrinkage_curve(schools, taus=[-2.0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"col_wrap": 0}, bs.DataError, r"`col_wrap` must be a whole number .* at least 1; got 0"),
        ({"col_wrap": -1}, bs.DataError, r"`col_wrap` must be .*; got -1"),
        ({"n_points": 1}, bs.DataError, r"`n_points` must be a whole number of at least 20"),
        ({"idata": 42}, bs.DataTypeError, r"`idata` must be the draws returned by bs\.sample"),
        ({"idata": {}}, bs.DataTypeError, r"got dict without a posterior"),
    ],
)
def test_triplot_layout_and_draws_arguments(demo_fit, kwargs, error, match):
    with pytest.raises(error, match=match):
        bs.plot_triplot(demo_fit, **kwargs)


@pytest.mark.parametrize("terms", [["Days", "Days"], "Days", ["Days"]])
def test_shrinkage_2d_needs_two_different_terms(sleep, close_figures, terms):
    m = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    with pytest.raises(bs.DataError, match=r"`terms` must name two of the random terms"):
        bs.plot_shrinkage_2d(m, terms=terms)


# ---------------------------------------------------------------- sampling and comparison


@pytest.fixture(scope="module")
def seed_fits():
    demo = bs.load_dataset("seed_demo")
    return {m: bs.fit(demo[demo["model"] == m], y="y", group="group") for m in ["2", "3"]}


@pytest.fixture(scope="module")
def runs(seed_fits):
    """One plug-in and one full run of seed demo model 2, and a plug-in run of model 3 (same
    group labels g1..g5, other data): few draws, enough for these checks."""
    f2, f3 = seed_fits["2"], seed_fits["3"]
    kw = {"draws": 1000, "tune": 1000, "chains": 4}  # enough to pass the convergence checks
    return {
        "plugin2": bs.sample(bs.plugin_model(f2), random_seed=1, **kw),
        "full2": bs.sample(bs.hierarchical_model(f2), random_seed=2, **kw),
        "plugin3": bs.sample(bs.plugin_model(f3), random_seed=3, **kw),
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"draws": 0}, r"`draws` must be a whole number of at least 4 .*; got 0"),
        ({"draws": -5}, r"`draws` must be a whole number of at least 4 .*; got -5"),
        ({"draws": 1}, r"`draws` must be a whole number of at least 4 .*; got 1"),
        ({"draws": 2.5}, r"`draws` must be a whole number"),
        ({"chains": 0}, r"`chains` must be a whole number of at least 1; got 0"),
        ({"tune": -1}, r"`tune` must be a whole number of at least 0 .*; got -1"),
        ({"target_accept": 1.5}, r"`target_accept` must lie strictly between 0 and 1 .*; got 1\.5"),
    ],
)
def test_sample_refuses_impossible_run_sizes(seed_fits, kwargs, match):
    with pytest.raises(bs.DataError, match=match):
        bs.sample(bs.plugin_model(seed_fits["2"]), **kwargs)


@pytest.mark.parametrize("thing", ["fit", None, 42])
def test_sample_needs_a_model(seed_fits, thing):
    obj = seed_fits["2"] if thing == "fit" else thing
    hint = r"bs\.sample\(bs\.plugin_model\(fit\)\)" if thing == "fit" else "got"
    with pytest.raises(
        bs.DataTypeError, match=r"`model` must be a model from bs\.plugin_model.*" + hint
    ):
        bs.sample(obj)


@pytest.mark.parametrize("prob", [-0.2, 0.0, 1.0, 1.5, float("nan")])
def test_interval_probability_must_lie_in_0_1(seed_fits, runs, prob):
    f2 = seed_fits["2"]
    with pytest.raises(bs.DataError, match=r"`prob` must lie strictly between 0 and 1"):
        bs.compare(f2, full=runs["full2"], prob=prob)
    with pytest.raises(bs.DataError, match=r"`prob` must lie strictly between 0 and 1"):
        bs.hyperparameters(f2, full=runs["full2"], prob=prob)


@pytest.mark.parametrize("draws", [42, {}, "plugin"])
def test_compare_refuses_what_is_not_draws(seed_fits, draws):
    with pytest.raises(
        bs.DataTypeError, match=r"`plugin` must be the draws returned by bs\.sample"
    ):
        bs.compare(seed_fits["2"], plugin=draws)


def test_draws_of_another_fits_model_are_refused_even_with_equal_labels(seed_fits, runs):
    # models 2 and 3 both have groups g1..g5: labels cannot tell their draws apart
    with pytest.raises(bs.DataError, match=r"`plugin` must be sampled from a model of this fit"):
        bs.compare(seed_fits["3"], plugin=runs["plugin2"])
    with pytest.raises(bs.DataError, match=r"`full` must be sampled from a model of this fit"):
        bs.compare(seed_fits["3"], full=runs["full2"])
    ok = bs.compare(seed_fits["3"], plugin=runs["plugin3"])  # its own draws are fine
    assert np.all(np.abs(ok["plugin_gap_mcse"]) < 5)


def test_draws_of_the_wrong_model_kind_are_refused(seed_fits, runs):
    f2 = seed_fits["2"]
    with pytest.raises(
        bs.DataError, match=r"`plugin` must be draws of the plug-in model.*hierarch"
    ):
        bs.compare(f2, plugin=runs["full2"])
    with pytest.raises(bs.DataError, match=r"`full` must be draws of the hierarchical model.*plug"):
        bs.compare(f2, full=runs["plugin2"])


def test_mixed_model_draws_for_a_one_way_fit_are_refused(seed_fits, sleep):
    m = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    with pytest.warns(bs.SamplerConvergenceWarning):  # a deliberately short single chain
        mixed = bs.sample(bs.plugin_model(m), draws=100, tune=100, chains=1, random_seed=1)
    with pytest.raises(
        bs.DataError,
        match=r"`plugin` must be sampled from a model of this fit.*"
        r"mixed model",
    ):
        bs.compare(seed_fits["2"], plugin=mixed)


def test_compare_and_hyperparameters_show_rhat_and_ess(seed_fits, runs):
    import arviz as az

    f2 = seed_fits["2"]
    c = bs.compare(f2, plugin=runs["plugin2"], full=runs["full2"])
    for tag in ("plugin", "full"):
        for col in ("mcse", "rhat", "ess_bulk", "ess_tail"):
            assert f"{tag}_{col}" in c.columns
    rhat = az.rhat(runs["full2"], var_names=["theta"])["theta"].values
    np.testing.assert_allclose(c["full_rhat"].to_numpy(), rhat, rtol=1e-10)
    h = bs.hyperparameters(f2, full=runs["full2"])
    tau_ess = float(az.ess(runs["full2"], var_names=["tau"], method="tail")["tau"])
    np.testing.assert_allclose(h.loc["tau", "posterior_ess_tail"], tau_ess, rtol=1e-10)
    assert {"posterior_rhat", "posterior_ess_bulk"} <= set(h.columns)


def test_unconverged_runs_warn_with_rhat_and_ess():
    schools = bs.fit_summary(bs.load_dataset("eight_schools"), "y", "sigma", "school")
    model = bs.hierarchical_model(schools, parametrization="centered")
    with pytest.warns(
        bs.SamplerConvergenceWarning,
        match=r"R-hat of tau is 1\.\d+ \(above 1\.01\); ESS bulk of tau is \d+ \(below 100",
    ):
        bs.sample(model, draws=25, tune=15, chains=4, random_seed=5)


@pytest.mark.parametrize("engine", ["polars", "pandas"])
def test_cli_semicolon_csv_is_named_as_such(capsys, tmp_path, engine):
    path = tmp_path / "semi.csv"
    path.write_text("g;y\na;1\na;2\nb;3\nb;5\n")
    err = _cli_error(capsys, ["fit", str(path), "--y", "y", "--group", "g", "--engine", engine])
    assert "`FILE` must be comma-separated; its header 'g;y' looks separated by ';'" in err


@pytest.mark.parametrize("engine", ["polars", "duckdb", "pandas"])
def test_cli_corrupt_parquet_gives_one_line(capsys, tmp_path, engine):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not a parquet file")
    err = _cli_error(capsys, ["fit", str(path), "--y", "y", "--group", "g", "--engine", engine])
    assert "`FILE` must be a well-formed CSV or Parquet file" in err


def test_formula_with_unbalanced_parentheses(sleep):
    with pytest.raises(bs.FormulaError, match=r"parentheses do not balance \(2 '\(' and 1 '\)'\)"):
        bs.fit(sleep, formula="Reaction ~ log(Days + (1 | Subject)")


def test_cli_warnings_are_one_line_each(capsys, tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"g": list("aabbcc"), "y": [1.0, 2.0, np.nan, 3.0, 5.0, 4.0]}).to_csv(
        path, index=False
    )
    argv = ["fit", str(path), "--y", "y", "--group", "g", "--missing", "drop"]
    assert main([*argv, "--engine", "pandas"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("bayeshrink: warning: left out 1 of 6 rows") and err.count("\n") == 1


# ---------------------------------------------------------------- simulation studies


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"designs": 42}, bs.DataTypeError, r"`designs` must be a Design, a dict .*; got int"),
        ({"chunk_size": 0}, bs.MethodError, r"`chunk_size` must be a whole number .* got 0"),
        ({"designs": [{"groups": 5, "mu": float("inf")}]}, bs.DataError, r"`mu` must be a finite"),
        ({"designs": [{"groups": 5, "ratio": "big"}]}, bs.DataError, r"`ratio` must be >= 0"),
    ],
)
def test_simulation_study_refuses_careless_arguments(kwargs, error, match):
    args = {"designs": [{"groups": 5}], "replications": 2, "progress": False} | kwargs
    with pytest.raises(error, match=match):
        bs.simulation_study(**args)


def test_cli_explore_unreadable_file_gives_one_line(capsys, csv_files, tmp_path):
    out = tmp_path / "page.html"
    for name in ("empty", "latin1"):
        argv = ["explore", str(csv_files[name]), "--y", "y", "--group", "g", "--out", str(out)]
        err = _cli_error(capsys, argv)
        assert "`FILE` must" in err


def test_vectorized_diagnostics_equal_arviz_stats():
    """R-hat and bulk/tail ESS are computed for all group effects at once (arviz-stats loops
    over elements in Python); they must equal arviz-stats' to rounding, ties and constant
    draws included, for several chains, one chain and very short chains."""
    import warnings

    import arviz as az
    import xarray as xr

    from bayeshrink.posterior import convergence_table

    rng = np.random.default_rng(0)
    C, N, V = 4, 300, 12
    x = np.empty((C, N, V))
    for v in range(V):
        phi = [0.0, 0.5, 0.9, 0.99, -0.3, 0.95][v % 6]
        e = rng.normal(size=(C, N))
        for t in range(1, N):
            e[:, t] += phi * e[:, t - 1]
        x[:, :, v] = e + (v == 7) * np.arange(C)[:, None]  # chains apart: R-hat >> 1
    x[:, :, 3] = 2.5  # a pinned effect
    x[:, :, 4] = np.round(x[:, :, 4])  # ties
    for c, n in [(4, 300), (1, 300), (2, 7), (4, 5)]:
        ds = xr.Dataset(
            {"a": (("chain", "draw", "level"), x[:c, :n]), "mu": (("chain", "draw"), x[:c, :n, 1])}
        )
        tree = xr.DataTree.from_dict({"posterior": ds})
        ours = convergence_table(tree, ["a", "mu"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # arviz-stats' RuntimeWarnings on constant draws
            ref = {
                "rhat": az.rhat(tree),
                "ess_bulk": az.ess(tree, method="bulk"),
                "ess_tail": az.ess(tree, method="tail"),
            }
        for key, trees in ref.items():
            for var in ("a", "mu"):
                np.testing.assert_allclose(
                    np.asarray(ours[key][var].values, float),
                    np.asarray(trees[var].values, float),
                    rtol=1e-10,
                    equal_nan=True,
                    err_msg=f"{key} {var} {c}x{n}",
                )


@pytest.fixture
def sleep_csv(tmp_path, sleep):
    path = tmp_path / "sleep.csv"
    sleep.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--out", "x.csv"], r"`--out` must come with --predict NEWDATA"),
        (["--interval", "prediction"], r"`--interval` must come with --predict NEWDATA"),
        (["--predict", "{empty}"], r"`--predict` must hold at least one row"),
        (["--predict", "{latin1}"], r"`--predict` must be UTF-8 text"),
        (["--predict", "{new}", "--out", "{tmp}"], r"`--out` must name a file .* a folder"),
        (["--predict", "{new}", "--out", "{tmp}/no/p.csv"], r"`--out` must be a file in an exis"),
    ],
)
def test_cli_predict_careless_options(capsys, tmp_path, sleep, sleep_csv, extra, match):
    import re

    sleep.head(0).to_csv(tmp_path / "empty.csv", index=False)
    sleep.head(3).to_csv(tmp_path / "new.csv", index=False)
    (tmp_path / "latin1.csv").write_bytes("Subject,Days\ncafé,1\n".encode("latin-1"))
    names = {"empty": "empty.csv", "latin1": "latin1.csv", "new": "new.csv"}
    extra = [e.format(tmp=tmp_path, **{k: tmp_path / v for k, v in names.items()}) for e in extra]
    argv = ["fit", str(sleep_csv), "--formula", "Reaction ~ Days + (Days | Subject)", *extra]
    err = _cli_error(capsys, argv)
    assert re.search(match, err), err


def test_predict_for_no_rows_and_unknown_levels(sleep):
    m = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    with pytest.raises(bs.DataError, match=r"`newdata` must hold at least one row"):
        m.predict(sleep.head(0))
    with pytest.raises(bs.DataError, match=r"got 1 new level\(s\): 999\. Pass"):
        m.predict(sleep.head(2).assign(Subject=999))


def test_group_intervals_of_a_formula_fit_are_refused_clearly(sleep):
    m = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    with pytest.raises(bs.MethodError, match=r"`intervals` must be called on a one-way fit"):
        m.intervals()


# ---------------------------------------------------------------- what a new user writes


def test_formula_passed_positionally_is_read_as_the_formula():
    # bambi's and statsmodels' habit: bs.fit(df, "y ~ x + (1 | g)")
    pastes = bs.load_dataset("pastes")
    sleep = bs.load_dataset("sleepstudy")
    for data, formula in (
        (sleep, "Reaction ~ Days + (Days | Subject)"),
        (sleep, "Reaction ~ 1 + (1 | Subject)"),  # the one-way fast path
        (pastes, "strength ~ 1 + (1 | batch) + (1 | batch:cask)"),  # several factors
    ):
        by_position = bs.fit(data, formula)
        by_keyword = bs.fit(data, formula=formula)
        assert type(by_position) is type(by_keyword)
        np.testing.assert_allclose(by_position.fixef, by_keyword.fixef, rtol=1e-12)
        assert by_position.loglik == pytest.approx(by_keyword.loglik, rel=1e-12)
    # lme4: fixef(lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE))
    ml = bs.fit(sleep, "Reaction ~ Days + (Days | Subject)", method="ml")
    np.testing.assert_allclose(ml.fixef, [251.405105, 10.467286], rtol=1e-6)
    with pytest.raises(bs.MethodError, match=r"formula passed as the second argument must come "):
        bs.fit(sleep, "Reaction ~ Days + (Days | Subject)", "ml")
    with pytest.raises(bs.MethodError, match=r"either `formula` or `y` and `group`"):
        bs.fit(sleep, "Reaction ~ Days + (1 | Subject)", formula="Reaction ~ 1 + (1 | Subject)")


def test_anova_of_reml_fits_says_why_it_refits():
    sleep = bs.load_dataset("sleepstudy")
    sleep = sleep.assign(w=np.random.default_rng(1).normal(size=len(sleep)))
    same = [
        bs.fit(sleep, formula="Reaction ~ Days + w + (1 | Subject)"),
        # the same fixed effects, written in another order
        bs.fit(sleep, formula="Reaction ~ w + Days + (Days | Subject)"),
    ]
    with pytest.warns(bs.RefitWarning) as record:
        bs.anova(*same)
    (message,) = [str(w.message) for w in record]
    assert "not comparable" not in message
    assert "same fixed effects" in message and "refit=False" in message
    # and refit=False accepts them: chisq = 2 (REML logLik_1 - REML logLik_0)
    kept = bs.anova(*same, refit=False)
    assert kept["chisq"].iloc[1] == pytest.approx(2 * (same[1].loglik - same[0].loglik), rel=1e-12)
    different = [
        bs.fit(sleep, formula="Reaction ~ Days + (1 | Subject)"),
        bs.fit(sleep, formula="Reaction ~ Days + w + (Days | Subject)"),
    ]
    with pytest.warns(
        bs.RefitWarning, match=r"REML likelihoods of models with different fixed effects are not"
    ):
        bs.anova(*different)
    with pytest.raises(bs.MethodError, match=r"only valid for models with the same fixed effects"):
        bs.anova(*different, refit=False)


# ------------------------------------------------- responses the normal family fits badly


def _sleep_responses():
    sleep = bs.load_dataset("sleepstudy")
    rng = np.random.default_rng(5)
    return sleep.assign(
        slow=(sleep["Reaction"] > 300).astype(int),  # 0/1
        slow_bool=sleep["Reaction"] > 300,
        lapses=rng.poisson(np.exp(0.15 * sleep["Days"])),  # counts, zeros among them
        lapses_float=lambda d: d["lapses"].astype(float),
        answer=np.where(sleep["Reaction"] > 300, "yes", "no"),
        rounded=sleep["Reaction"].round(),  # whole numbers in the hundreds: not counts
        likert=1 + (sleep["Reaction"].rank(pct=True) * 4.999).astype(int),  # 1..5, no zero
    )


def _engines(df: pd.DataFrame) -> dict:
    import duckdb
    import polars as pl

    return {"pandas": df, "polars": pl.from_pandas(df), "duckdb": duckdb.from_df(df)}


def _fits(data, col: str):
    """The response through each normal-family path: one-way, formula, several factors."""
    return [
        lambda: bs.fit(data, y=col, group="Subject"),
        lambda: bs.fit(data, formula=f"{col} ~ Days + (1 | Subject)"),
        lambda: bs.fit(data, formula=f"{col} ~ 1 + (1 | Subject) + (1 | Days)"),
    ]


@pytest.mark.parametrize(
    ("col", "match"),
    [
        ("slow", r"'slow' holds only 0 and 1 \(a binary response\).*family=\"binomial\""),
        ("slow_bool", r"'slow_bool' is boolean \(a binary response\).*family=\"binomial\""),
        ("lapses", r"'lapses' looks like counts \(whole numbers from 0 to \d+\).*\"poisson\""),
        ("lapses_float", r"'lapses_float' looks like counts.*family=\"poisson\""),
    ],
)
def test_binary_and_count_responses_warn_naming_their_family(col, match):
    d = _sleep_responses()
    for data in _engines(d).values():
        for fit in _fits(data, col):
            with pytest.warns(bs.FamilyWarning, match=match):
                fit()


def test_boolean_response_is_fitted_as_its_0_1_coding():
    d = _sleep_responses()
    with pytest.warns(bs.FamilyWarning):
        as_bool = bs.fit(d, y="slow_bool", group="Subject")
    with pytest.warns(bs.FamilyWarning):
        as_int = bs.fit(d, y="slow", group="Subject")
    assert as_bool.tau == pytest.approx(as_int.tau, rel=1e-10)
    assert as_bool.mu == pytest.approx(as_int.mu, rel=1e-10)


def test_yes_no_response_points_to_the_binomial_family():
    d = _sleep_responses()
    for data in _engines(d).values():
        for fit in _fits(data, "answer"):
            with pytest.raises(
                bs.DataTypeError,
                match=r"the response 'answer' must be numeric for the normal family; got the two "
                r"levels 'no' and 'yes' \(a binary response\)\. Fit it with family=\"binomial\"",
            ):
                fit()
    # three or more text levels are not a binary response: the usual type error
    with pytest.raises(bs.DataTypeError, match=r"`y` column 'Subject2' must be numeric"):
        bs.fit(d.assign(Subject2=d["Subject"].astype(str)), y="Subject2", group="Days")


@pytest.mark.parametrize("col", ["rounded", "likert", "Reaction"])
def test_whole_numbers_without_zeros_are_not_called_counts(col):
    import warnings

    d = _sleep_responses()
    assert (d[col] == d[col].round()).all() or col == "Reaction"
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.FamilyWarning)
        for data in _engines(d).values():
            for fit in _fits(data, col):
                fit()
