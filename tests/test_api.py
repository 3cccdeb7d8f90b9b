"""One result API: the same accessors with the same types whether or not there are covariates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(8), 6)
    x = rng.normal(size=g.size)
    y = 2.0 + 0.5 * x + rng.normal(0, 1.0, 8)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"g": [f"g{i}" for i in g], "x": x, "y": y})


FORMULAS = ["y ~ 1 + (1 | g)", "y ~ x + (1 | g)"]
SCALARS = {"sigma": float, "boundary": bool, "loglik": float}
SERIES = ("fixef", "fixef_se")
FRAMES = ("ranef", "coef", "ranef_sd", "shrinkage", "pred_sd", "own_fit", "own_se")


@pytest.fixture(scope="module", params=FORMULAS)
def fit(request, data):
    return bs.fit(data, formula=request.param)


def test_the_two_formulas_give_the_two_fit_classes(data):
    assert isinstance(bs.fit(data, formula=FORMULAS[0]), bs.ShrinkageFit)
    assert isinstance(bs.fit(data, formula=FORMULAS[1]), bs.MixedFit)


def test_every_fit_answers_the_common_api_with_the_same_types(fit):
    assert isinstance(fit, bs.FitResult)
    for name, kind in SCALARS.items():
        assert type(getattr(fit, name)) is kind, name
    for name in SERIES:
        s = getattr(fit, name)
        assert isinstance(s, pd.Series) and list(s.index) == list(fit.fixed_terms), name
        assert s.dtype == float
    v = fit.vcov
    assert isinstance(v, pd.DataFrame) and list(v.index) == list(fit.fixed_terms) == list(v)
    np.testing.assert_allclose(np.sqrt(np.diag(v)), fit.fixef_se, rtol=1e-12)
    for name in FRAMES:
        f = getattr(fit, name)()
        assert isinstance(f, pd.DataFrame), name
        # lme4's coef() has every fixed term; the others one column per random term
        cols = list(fit.fixed_terms) if name == "coef" else list(fit.random_terms)
        assert list(f.columns) == cols and f.index.equals(fit.groups), name
        assert all(d == np.float64 for d in f.dtypes), name
    np.testing.assert_allclose(
        fit.coef()["Intercept"], fit.fixef["Intercept"] + fit.ranef()["Intercept"], rtol=1e-12
    )
    assert list(fit.table().columns) == list(bs.api.TABLE_COLUMNS)
    assert fit.data_kind == "long"


def test_varcorr_has_lme4s_columns_and_rows(fit):
    # R: as.data.frame(VarCorr(lmer(y ~ 1 + (1 | g), d)))
    #      grp        var1 var2     vcov    sdcor
    #    1   g (Intercept) <NA> tau^2    tau
    #    2 Residual   <NA> <NA> sigma^2  sigma
    vc = fit.varcorr()
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert vc["grp"].tolist() == ["g", "Residual"]
    assert vc["var1"].tolist() == ["Intercept", None] and vc["var2"].tolist() == [None, None]
    np.testing.assert_allclose(vc["vcov"], [fit.cov_re().iloc[0, 0], fit.sigma**2], rtol=1e-14)
    np.testing.assert_allclose(vc["sdcor"], np.sqrt(vc["vcov"]), rtol=1e-14)


def test_varcorr_of_correlated_terms():
    fit = bs.fit(bs.load_dataset("sleepstudy"), formula="Reaction ~ Days + (Days | Subject)")
    vc = fit.varcorr()
    # R: as.data.frame(VarCorr(lmer(Reaction ~ Days + (Days | Subject), sleepstudy)))
    #        grp        var1 var2       vcov       sdcor
    # 1  Subject (Intercept) <NA> 612.100158 24.74065797
    # 2  Subject        Days <NA>  35.071714  5.92213766
    # 3  Subject (Intercept) Days   9.604409  0.06555124
    # 4 Residual        <NA> <NA> 654.940008 25.59179572
    assert vc["var1"].tolist() == ["Intercept", "Days", "Intercept", None]
    assert vc["var2"].tolist() == [None, None, "Days", None]
    np.testing.assert_allclose(
        vc["sdcor"], [24.74065797, 5.92213766, 0.06555124, 25.59179572], rtol=1e-3
    )


def test_one_to_dict_schema(data):
    one, mixed = (bs.fit(data, formula=f).to_dict() for f in FORMULAS)
    common = set(mixed) & set(one)
    assert {"groups", "table", "coef", "varcorr", "fixef", "boundary"} <= common
    assert set(mixed) - set(one) == {"theta"}
    assert set(one) - set(mixed) == {"mu", "mu_se", "tau", "tau2", "var_ratio", "complete_pooling"}
    assert one["groups"] == mixed["groups"] == [f"g{i}" for i in range(8)]
    assert one["table"]["Intercept"].keys() == mixed["table"]["Intercept"].keys()


def test_boundary_is_lme4s_rule_on_both_fits(data):
    # no between-group signal: both fits end on the boundary, by the same rule
    flat = data.assign(y=data["y"] - data.groupby("g")["y"].transform("mean") + 3.0)
    one, mixed = (bs.fit(flat, formula=f) for f in FORMULAS)
    assert one.boundary and mixed.boundary
    assert one.tau < 1e-4 * one.sigma


# ---------------------------------------------------------------------------- one model, one fit
REF = __import__("pathlib").Path(__file__).parent / "reference"


def _sleep_halves():
    sleep = bs.load_dataset("sleepstudy")
    sleep["half"] = np.where(sleep["Days"] < 5, "early", "late")
    sleep["bc"] = sleep["Subject"].astype(str) + ":" + sleep["half"]
    return sleep


@pytest.mark.parametrize(
    "formula, combined, name",
    [
        ("strength ~ 1 + (1 | batch:cask)", "strength ~ 1 + (1 | bc)", "batch:cask"),
        (
            "Reaction ~ Days + (Days | Subject:half)",
            "Reaction ~ Days + (Days | bc)",
            "Subject:half",
        ),
    ],
)
def test_one_factor_spelled_as_an_interaction_is_the_same_fit(formula, combined, name):
    """(1 | batch:cask) and a column holding the same labels are one model: the same type and
    the same numbers (two of our own paths: 1e-9)."""
    if name == "batch:cask":
        pastes = pd.read_csv(REF / "pastes.csv")
        pastes["bc"] = pastes["batch"] + ":" + pastes["cask"]
    else:
        pastes = _sleep_halves()
    a = bs.fit(pastes, formula=formula)
    b = bs.fit(pastes, formula=combined)
    assert type(a) is type(b)
    assert a.factors == [name] and b.factors == ["bc"]  # lme4's names
    assert a.formula == formula
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-9)
    np.testing.assert_allclose(a.vcov, b.vcov, rtol=1e-9)
    np.testing.assert_allclose(a.cov_re(), b.cov_re(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-9)
    np.testing.assert_allclose(a.loglik, b.loglik, rtol=1e-9)
    assert list(a.groups) == list(b.groups) and a.groups.name == name
    np.testing.assert_allclose(a.ranef(name), b.ranef("bc"), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.ranef_sd(), b.ranef_sd(), rtol=1e-9)
    # new rows name the factor by its columns
    np.testing.assert_allclose(a.predict(pastes), b.predict(pastes), rtol=1e-9)
    with pytest.raises(bs.errors.ColumnError, match=r"`factor` must be one of the grouping"):
        a.ranef("bc")


def test_one_factor_interaction_matches_lme4():
    # m <- lmer(strength ~ 1 + (1 | batch:cask), Pastes): the same fit as the cask:batch factor
    # of lmer(strength ~ 1 + (1 | sample), Pastes), whose labels are batch:cask ("A:a")
    pastes = pd.read_csv(REF / "pastes.csv")
    a = bs.fit(pastes, formula="strength ~ 1 + (1 | batch:cask)")
    s = bs.fit(pastes, formula="strength ~ 1 + (1 | sample)")
    np.testing.assert_allclose(a.ranef().to_numpy(), s.ranef().to_numpy(), rtol=1e-9)
    assert list(a.groups) == list(s.groups)


# ---------------------------------------------------------------------------- one result type
SHAPES = {
    "one-way": ("sleepstudy", "Reaction ~ 1 + (1 | Subject)"),
    "slopes": ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    "crossed": ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
}
PER_FACTOR = (
    "ranef",
    "coef",
    "ranef_sd",
    "ranef_cov",
    "shrinkage",
    "pred_sd",
    "own_fit",
    "own_se",
    "cov_re",
    "sd_re",
    "corr_re",
    "table",
)


@pytest.fixture(scope="module")
def shapes():
    out = {}
    for name, (data, formula) in SHAPES.items():
        out[name] = bs.fit(bs.load_dataset(data), formula=formula)
    return out


def test_every_fit_is_a_fit_result_with_the_same_signatures(shapes):
    import inspect

    assert {type(f).__name__ for f in shapes.values()} == {"ShrinkageFit", "MixedFit", "MultiFit"}
    for name in PER_FACTOR:
        sigs = {k: inspect.signature(getattr(type(f), name)) for k, f in shapes.items()}
        assert len(set(map(str, sigs.values()))) == 1, (name, sigs)
        assert "factor" in sigs["one-way"].parameters, name
    for name in ("predict", "confint", "fitted", "resid", "simulate", "intervals"):
        sigs = {str(inspect.signature(getattr(type(f), name))) for f in shapes.values()}
        assert len(sigs) == 1, (name, sigs)


def test_every_fit_answers_per_factor_with_the_same_types(shapes):
    for kind, fit in shapes.items():
        assert isinstance(fit, bs.FitResult), kind
        assert isinstance(fit.factors, list) and all(isinstance(f, str) for f in fit.factors)
        assert type(fit.sigma) is float and type(fit.loglik) is float
        assert isinstance(fit.fixef, pd.Series) and isinstance(fit.vcov, pd.DataFrame)
        assert isinstance(fit.varcorr(), pd.DataFrame)
        for factor in fit.factors:
            for name in PER_FACTOR:
                value = getattr(fit, name)(factor=factor)
                kind_of = {"ranef_cov": np.ndarray, "sd_re": pd.Series}.get(name, pd.DataFrame)
                assert isinstance(value, kind_of), (kind, name)
            cov = fit.cov_re(factor)
            assert list(cov.index) == list(cov.columns) == list(fit.ranef(factor).columns)
            n_levels = len(fit.ranef(factor))
            assert fit.ranef_cov(factor).shape == (n_levels, len(cov), len(cov))
            np.testing.assert_allclose(
                np.sqrt(np.diagonal(fit.ranef_cov(factor), axis1=1, axis2=2)),
                fit.ranef_sd(factor),
                rtol=1e-12,
            )
            assert list(fit.table(factor=factor).columns) == list(bs.api.TABLE_COLUMNS)
        if len(fit.factors) == 1:
            pd.testing.assert_frame_equal(fit.ranef(), fit.ranef(fit.factors[0]))
            with pytest.raises(bs.errors.ColumnError, match=r"`factor` must be one of"):
                fit.cov_re("nope")
        else:
            with pytest.raises(bs.errors.ColumnError, match=r"`factor` must name one of"):
                fit.cov_re()
