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
    np.testing.assert_allclose(vc["vcov"], [fit.cov_re.iloc[0, 0], fit.sigma**2], rtol=1e-14)
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
