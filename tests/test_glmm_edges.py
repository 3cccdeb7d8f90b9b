"""GLMM edge cases: levels, missing rows, degenerate weights and messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE

import bayeshrink as bs
from bayeshrink.errors import (
    DataError,
    DataTypeError,
    MethodError,
    NonIntegerWarning,
    RowsDroppedWarning,
    SeparationError,
)

CBPP_F = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return bs.fit(cbpp, formula=CBPP_F, family="binomial")


def test_predict_matches_a_level_given_as_text(cbpp_fit):
    # herd is an integer in the fit; "1" is herd 1, as in the LMM path, not a new level
    as_int = cbpp_fit.predict(pd.DataFrame({"herd": [1, 2], "period": ["1", "2"]}))
    as_text = cbpp_fit.predict(
        pd.DataFrame({"herd": ["1", "2"], "period": ["1", "2"]}), allow_new_levels=True
    )
    np.testing.assert_array_equal(as_text, as_int)
    pop = cbpp_fit.predict(pd.DataFrame({"herd": [1, 2], "period": ["1", "2"]}), random=False)
    assert not np.allclose(as_text, pop)


def test_predict_missing_group_raises(cbpp_fit):
    nd = pd.DataFrame({"herd": [1.0, np.nan], "period": ["1", "1"]})
    for allow in (False, True):
        with pytest.raises(DataError, match=r"row 1 holds a missing value"):
            cbpp_fit.predict(nd, allow_new_levels=allow)
    # population predictions need no group
    assert np.isfinite(cbpp_fit.predict(nd, random=False)).all()


def test_rows_keep_the_data_index_after_missing_drop():
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        dict(y=rng.integers(0, 2, 200), x=rng.normal(size=200), g=np.repeat(np.arange(20), 10))
    )
    df["x"] = df["x"].astype(float)
    df.loc[[3, 50], "x"] = np.nan
    df.index = df.index + 1000
    with pytest.warns(RowsDroppedWarning, match=r"rows 1003, 1050"):
        m = bs.fit(df, formula="y ~ x + (1|g)", family="binomial", missing="drop")
    kept = df.dropna().index
    full = bs.fit(df.dropna().reset_index(drop=True), formula="y ~ x + (1|g)", family="binomial")
    f = m.fitted()
    assert isinstance(f, pd.Series) and f.name == "fitted"
    assert f.index.equals(kept)
    np.testing.assert_allclose(f.to_numpy(), full.fitted().to_numpy(), rtol=1e-10)
    for t in ("deviance", "pearson", "response"):
        r = m.resid(type=t)
        assert isinstance(r, pd.Series) and r.name == "resid" and r.index.equals(kept)
    s = m.simulate(2, seed=1)
    assert s.index.equals(kept) and list(s.columns) == ["sim_1", "sim_2"]
    # assigning back aligns on the labels: the dropped rows only are missing
    assert list(df.index[df.assign(sim=s["sim_1"])["sim"].isna()]) == [1003, 1050]


def test_non_integer_warning_says_what_is_fitted_and_that_lme4_rounds(cbpp):
    frac = cbpp.assign(incidence=cbpp["incidence"] + 0.5)
    with pytest.warns(NonIntegerWarning, match=r"fits them as given.*lme4's glmer rounds"):
        bs.fit(frac, formula=CBPP_F, family="binomial")
    prop = cbpp.assign(p=cbpp["incidence"] / cbpp["size"], w=cbpp["size"] * 1.5)
    with pytest.warns(NonIntegerWarning, match=r"dbinom\(round\(n\*y\), round\(n\), p\)"):
        bs.fit(prop, formula="p ~ period + (1 | herd)", family="binomial", weights="w")
    with pytest.warns(NonIntegerWarning, match=r"lgamma\(y \+ 1\).*dpois"):
        bs.fit(frac, formula="incidence ~ period + (1 | herd)", family="poisson")


def test_predict_refuses_an_offset_that_is_not_finite():
    df = pd.read_csv(REFERENCE / "glmm_rates.csv")
    m = bs.fit(df, formula="count ~ z + offset(log(exposure)) + (1 | site)", family="poisson")
    nd = df.iloc[:3].copy()
    assert np.isfinite(m.predict(nd, type="response")).all()
    nd["exposure"] = [1.0, 0.0, -1.0]
    with pytest.raises(DataError, match=r"offset\(log\(exposure\)\).*rows 1, 2 give NaN or inf"):
        m.predict(nd, type="response")
    # as the fit, which refuses the same rows
    with pytest.raises(DataError, match="must be present and finite"):
        bs.fit(
            df.assign(exposure=np.r_[0.0, df["exposure"].iloc[1:]]),
            formula="count ~ z + offset(log(exposure)) + (1 | site)",
            family="poisson",
        )


def test_all_weights_zero_is_no_information(cbpp):
    prop = cbpp.assign(p=cbpp["incidence"] / cbpp["size"], w=0.0)
    with pytest.raises(DataError, match=r"no trials: `weights` \(the trials\) are 0 on every row"):
        bs.fit(prop, formula="p ~ period + (1 | herd)", family="binomial", weights="w")
    zero = cbpp.assign(incidence=0, size=0)
    with pytest.raises(DataError, match=r"counts sum to 0 on every row.*no information"):
        bs.fit(zero, formula=CBPP_F, family="binomial")
    with pytest.raises(DataError, match=r"no weight: `weights` \('w'\) is 0 on every row"):
        bs.fit(prop, formula="incidence ~ period + (1 | herd)", family="poisson", weights="w")


def test_a_fixed_level_without_trials_is_named(cbpp):
    d = cbpp.copy()
    d.loc[d["period"] == "4", ["incidence", "size"]] = 0
    with pytest.raises(DataError, match=r"rank deficient.*'period\[4\]' has no trials"):
        bs.fit(d, formula=CBPP_F, family="binomial")
    # a few rows without trials are fine: they carry no information
    d = cbpp.copy()
    d.loc[0, ["incidence", "size"]] = 0
    m = bs.fit(d, formula=CBPP_F, family="binomial")
    ref = bs.fit(cbpp.drop(index=0), formula=CBPP_F, family="binomial")
    np.testing.assert_allclose(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-6)


def test_weights_of_text_are_a_type_error(cbpp):
    prop = cbpp.assign(p=cbpp["incidence"] / cbpp["size"], w="a")
    with pytest.raises(
        DataTypeError, match=r"`weights` must be numbers.*'w' holds \w+ values \(e.g. 'a'\)"
    ):
        bs.fit(prop, formula="p ~ period + (1 | herd)", family="binomial", weights="w")
    with pytest.raises(DataTypeError, match=r"the array given"):
        bs.fit(prop, formula="p ~ period + (1 | herd)", family="binomial", weights=prop["w"].values)
    # numbers still fit, as a column or an array
    a = bs.fit(prop, formula="p ~ period + (1 | herd)", family="binomial", weights="size")
    b = bs.fit(
        prop, formula="p ~ period + (1 | herd)", family="binomial", weights=prop["size"].values
    )
    np.testing.assert_array_equal(a.fixef.to_numpy(), b.fixef.to_numpy())


def test_table_says_no_trials_and_gives_the_poisson_exposure(cbpp):
    d = cbpp.copy()
    d.loc[d["herd"] == 1, ["incidence", "size"]] = 0
    t = bs.fit(d, formula=CBPP_F, family="binomial").table()
    assert t.loc[1, "own_status"] == "no trials: no estimate"
    assert t.loc[1, "trials"] == 0 and np.isnan(t.loc[1, "no_pooling"])
    assert "exposure" not in t.columns
    df = pd.read_csv(REFERENCE / "glmm_rates.csv")
    m = bs.fit(df, formula="count ~ 1 + offset(log(exposure)) + (1 | site)", family="poisson")
    t = m.table()
    exposure = df.groupby("site")["exposure"].sum()
    np.testing.assert_allclose(t["exposure"], exposure.loc[t.index], rtol=1e-12)
    # the group's own estimate with the intercept alone: its rate, events / exposure
    np.testing.assert_allclose(t["no_pooling"], np.log(t["events"] / t["exposure"]), rtol=1e-8)
    # without an offset, 1 per row
    t1 = bs.fit(df, formula="count ~ 1 + (1 | site)", family="poisson").table()
    np.testing.assert_array_equal(t1["exposure"], t1["n"])
    w = df.assign(w=1.0)
    w.loc[w["site"] == w["site"].iloc[0], "w"] = 0.0
    tw = bs.fit(w, formula="count ~ 1 + (1 | site)", family="poisson", weights="w").table()
    assert tw["own_status"].iloc[0] == "no weight: no estimate"


def test_reml_is_refused_for_a_glmm(cbpp, cbpp_fit):
    with pytest.raises(MethodError, match=r"maximum likelihood.*REML does not apply"):
        bs.fit(cbpp, formula=CBPP_F, family="binomial", method="reml")
    ml = bs.fit(cbpp, formula=CBPP_F, family="binomial", method="ml")
    assert ml.loglik == cbpp_fit.loglik
    # the linear mixed model's default is still REML
    p = cbpp.assign(p=cbpp["incidence"] / cbpp["size"])
    default = bs.fit(p, formula="p ~ period + (1 | herd)")
    reml = bs.fit(p, formula="p ~ period + (1 | herd)", method="reml")
    assert default.method == reml.method and default.loglik == reml.loglik


def test_cbind_without_family_says_binomial(cbpp):
    with pytest.raises(MethodError, match=r"cbind\(successes, failures\).*family='binomial'"):
        bs.fit(cbpp, formula=CBPP_F)


def test_all_zero_poisson_counts_are_a_separation_error():
    df = pd.read_csv(REFERENCE / "glmm_rates.csv").assign(count=0)
    with pytest.raises(SeparationError, match=r"every count of the response 'count' is 0"):
        bs.fit(df, formula="count ~ z + offset(log(exposure)) + (1 | site)", family="poisson")


@pytest.mark.parametrize(
    ("change", "formula", "kw", "one", "two"),
    [
        ("binary", "y ~ period + (1 | herd)", {}, "row 0 holds other values", "rows 0, 1 hold"),
        ("cbind", CBPP_F, {}, "row 0 gives a negative count", "rows 0, 1 give"),
        ("count", "incidence ~ period + (1 | herd)", {}, "row 0 is negative", "rows 0, 1 are"),
        ("weight", "p ~ period + (1 | herd)", {"weights": "w"}, "row 0 is negative", "rows 0, 1"),
    ],
)
def test_row_messages_agree_in_number(cbpp, change, formula, kw, one, two):
    family = "poisson" if change == "count" else "binomial"

    def broken(rows):
        d = cbpp.assign(y=(cbpp["incidence"] > 0).astype(float), p=0.5, w=1.0)
        col = {"binary": "y", "cbind": "incidence", "count": "incidence", "weight": "w"}[change]
        d.loc[rows, col] = {"binary": 2, "cbind": 99, "count": -1, "weight": -1}[change]
        return d

    with pytest.raises(DataError, match=one):
        bs.fit(broken([0]), formula=formula, family=family, **kw)
    with pytest.raises(DataError, match=two):
        bs.fit(broken([0, 1]), formula=formula, family=family, **kw)


def test_row_messages_name_the_data_labels(cbpp):
    d = cbpp.assign(y=(cbpp["incidence"] > 0).astype(float))
    d.index = d.index + 100
    d.loc[101, "y"] = 2
    with pytest.raises(DataError, match="row 101 holds other values"):
        bs.fit(d, formula="y ~ period + (1 | herd)", family="binomial")


def test_a_singular_fit_says_so_as_the_lmm(cbpp_fit):
    rng = np.random.default_rng(3)
    df = pd.DataFrame(dict(y=rng.integers(0, 2, 200), g=np.repeat(np.arange(20), 10)))
    m = bs.fit(df, formula="y ~ 1 + (1 | g)", family="binomial")
    assert m.boundary
    assert "boundary (singular) fit" in m.summary()
    assert "boundary=True" in repr(m)
    assert "yes (singular fit)" in m._repr_html_()
    assert not cbpp_fit.boundary
    assert "boundary (singular)" not in cbpp_fit.summary() and "boundary=False" in repr(cbpp_fit)
