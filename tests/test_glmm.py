"""GLMMs against lme4's glmer (references: tests/reference/make_glmm_references.R and
cbpp_laplace.json, lme4 1.1-31 at tight settings; see tests/reference/README)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE

import bayeshrink as bs
from bayeshrink.errors import (
    DataError,
    MethodError,
    NonIntegerWarning,
    PirlsConvergenceError,
    SeparationError,
)

CBPP_F = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def ref(name):
    return json.loads((REFERENCE / f"{name}.json").read_text())


def lme4_names(names):
    """Our fixed-effect names in lme4's spelling: Intercept -> (Intercept), period[2] -> period2."""
    out = []
    for n in names:
        n = "(Intercept)" if n == "Intercept" else n.replace("[", "").replace("]", "")
        out.append(n)
    return out


@pytest.fixture(scope="module")
def cbpp():
    df = pd.read_csv(REFERENCE / "cbpp.csv")
    df["period"] = df["period"].astype(str)
    return df


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return bs.fit(cbpp, formula=CBPP_F, family="binomial")


def check_against(fit, r, rtol=1e-5, vcov_rtol=1e-4, factor_map=None):
    """Estimates, logLik, ranef and condVar against one lme4 reference."""
    fe = dict(zip(lme4_names(fit.fixed_terms), fit.fixef.to_numpy(), strict=True))
    # fixef(m)
    for k, v in r["fixef"].items():
        assert fe[k] == pytest.approx(v, rel=rtol, abs=rtol * 1e-2)
    # getME(m, "theta")
    np.testing.assert_allclose(
        np.abs(fit.theta), np.abs(np.atleast_1d(r["theta"])), rtol=rtol, atol=1e-7
    )
    # logLik(m): ours is never below lme4's (deviance <= lme4's + 1e-6)
    assert -2 * fit.loglik <= -2 * r["logLik"] + 1e-6
    assert fit.loglik == pytest.approx(r["logLik"], rel=1e-8)
    # vcov(m): lme4's is 2 x the inverse of a finite-difference Hessian (step 1e-4)
    np.testing.assert_allclose(fit.vcov.to_numpy(), np.array(r["vcov"]), rtol=vcov_rtol, atol=1e-8)
    # ranef(m, condVar = TRUE)
    for fac, blk in r["ranef"].items():
        ours = fit.ranef(fac)
        sds = fit.ranef_sd(fac)
        assert [str(x) for x in ours.index] == [str(x) for x in blk["levels"]]
        for term, vals in blk["values"].items():
            t = "Intercept" if term == "(Intercept)" else term
            np.testing.assert_allclose(ours[t].to_numpy(), vals, rtol=rtol, atol=1e-6)
            if "sd" in blk:
                np.testing.assert_allclose(sds[t].to_numpy(), blk["sd"][term], rtol=rtol, atol=1e-7)


# ---------------------------------------------------------------------------- cbpp, Laplace
def test_cbpp_laplace_matches_lme4(cbpp_fit):
    r = ref("cbpp_laplace")
    # m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
    fe = dict(zip(lme4_names(cbpp_fit.fixed_terms), cbpp_fit.fixef, strict=True))
    for k, v in r["fixef"].items():
        assert fe[k] == pytest.approx(v, rel=1e-6)
    assert cbpp_fit.theta[0] == pytest.approx(r["theta"], rel=1e-6)
    # logLik(m) = -92.02628; ours at least as high
    assert cbpp_fit.loglik >= r["logLik"] - 5e-7
    assert cbpp_fit.loglik == pytest.approx(r["logLik"], rel=1e-9)
    assert cbpp_fit.aic == pytest.approx(r["AIC"], rel=1e-9)
    assert cbpp_fit.bic == pytest.approx(r["BIC"], rel=1e-9)
    # deviance(m): the sum of squared deviance residuals, 73.47, not -2 logLik (184.05)
    assert cbpp_fit.deviance == pytest.approx(r["deviance"], rel=1e-7)
    assert cbpp_fit.minus2loglik == pytest.approx(r["minus2LL"], rel=1e-9)
    # sqrt(diag(vcov(m))), lme4's finite-difference Hessian
    np.testing.assert_allclose(cbpp_fit.fixef_se, list(r["fixef_se"].values()), rtol=2e-5)
    np.testing.assert_allclose(cbpp_fit.vcov.to_numpy(), np.array(r["vcov"]), rtol=1e-4)
    # ranef(m, condVar = TRUE)$herd
    assert [str(x) for x in cbpp_fit.groups] == r["ranef"]["herd"]["levels"]
    np.testing.assert_allclose(
        cbpp_fit.ranef()["Intercept"], r["ranef"]["herd"]["values"]["(Intercept)"], rtol=2e-6
    )
    np.testing.assert_allclose(
        cbpp_fit.ranef_sd()["Intercept"], r["ranef_sd"]["herd"]["(Intercept)"], rtol=2e-6
    )
    # fitted(m)
    np.testing.assert_allclose(cbpp_fit.fitted(), r["fitted"], rtol=1e-6)
    # as.data.frame(VarCorr(m))
    vc = cbpp_fit.varcorr()
    assert list(vc["grp"]) == ["herd"]
    assert vc["vcov"].iloc[0] == pytest.approx(r["varcorr"][0]["vcov"], rel=2e-6)


def test_cbpp_predict_matches_lme4(cbpp_fit):
    r = ref("cbpp_laplace")
    nd = pd.DataFrame(r["newdata"])
    nd["herd"] = [int(h) if h.isdigit() else h for h in nd["herd"]]
    # predict(m, newdata, allow.new.levels = TRUE); type = "response"; re.form = NA
    link = cbpp_fit.predict(nd, allow_new_levels=True)
    np.testing.assert_allclose(link, r["predict_link"], rtol=1e-6)
    resp = cbpp_fit.predict(nd, type="response", allow_new_levels=True)
    np.testing.assert_allclose(resp, r["predict_response"], rtol=1e-6)
    pop = cbpp_fit.predict(nd, type="response", random=False)
    np.testing.assert_allclose(pop, r["predict_population"], rtol=1e-6)
    with pytest.raises(DataError, match="allow_new_levels=True"):
        cbpp_fit.predict(nd)


def test_cbpp_residuals_and_table(cbpp_fit, cbpp):
    # sum(residuals(m, "deviance")^2) == deviance(m)
    assert np.sum(cbpp_fit.resid() ** 2) == pytest.approx(cbpp_fit.deviance, rel=1e-12)
    p = cbpp_fit.fitted()
    y = cbpp["incidence"] / cbpp["size"]
    np.testing.assert_allclose(cbpp_fit.resid("response"), y - p, rtol=1e-12)
    np.testing.assert_allclose(
        cbpp_fit.resid("pearson"), (y - p) * np.sqrt(cbpp["size"] / (p * (1 - p))), rtol=1e-12
    )
    t = cbpp_fit.table()
    assert {"no_pooling", "se", "shrinkage", "blup", "cond_sd", "own_status"} <= set(t.columns)
    # one term: shrinkage = se^2 / (se^2 + tau^2) with se^2 from the curvature at the mode, so
    # blup sits between the prior mean and the group's own estimate
    assert ((t["shrinkage"] > 0) & (t["shrinkage"] < 1)).all()
    lo = np.minimum(t["no_pooling"], t["prior_mean"])
    hi = np.maximum(t["no_pooling"], t["prior_mean"])
    assert ((t["blup"] >= lo - 1e-9) & (t["blup"] <= hi + 1e-9)).all()
    np.testing.assert_allclose(t["blup"], cbpp_fit.coef()["Intercept"], rtol=1e-12)
    assert "conditional modes" in cbpp_fit.summary()
    assert "<table>" in cbpp_fit._repr_html_()
    assert json.dumps(cbpp_fit.to_dict())


def test_response_forms_agree(cbpp, cbpp_fit):
    # a proportion with weights= the trials is the same model as cbind()
    df = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    w = bs.fit(df, formula="prop ~ period + (1 | herd)", family="binomial", weights="size")
    assert w.loglik == pytest.approx(cbpp_fit.loglik, rel=1e-10)
    np.testing.assert_allclose(w.fixef, cbpp_fit.fixef, rtol=1e-7)
    # one Bernoulli row per animal: same estimates; the log-likelihood differs by the binomial
    # coefficients, sum(lchoose(size, incidence))
    rows = []
    for _, r in cbpp.iterrows():
        rows += [(r["herd"], r["period"], 1)] * int(r["incidence"])
        rows += [(r["herd"], r["period"], 0)] * int(r["size"] - r["incidence"])
    long = pd.DataFrame(rows, columns=["herd", "period", "y"])
    b = bs.fit(long, formula="y ~ period + (1 | herd)", family="binomial")
    np.testing.assert_allclose(b.fixef, cbpp_fit.fixef, rtol=1e-6)
    from scipy.special import gammaln

    lchoose = np.sum(
        gammaln(cbpp["size"] + 1)
        - gammaln(cbpp["incidence"] + 1)
        - gammaln(cbpp["size"] - cbpp["incidence"] + 1)
    )
    assert b.loglik == pytest.approx(cbpp_fit.loglik - lchoose, rel=1e-8)
    # boolean and two-level string responses: the first level is the failure
    s = bs.fit(
        long.assign(y=long["y"].map({0: "no", 1: "yes"})),
        formula="y ~ period + (1 | herd)",
        family="binomial",
    )
    np.testing.assert_allclose(s.fixef, b.fixef, rtol=1e-9)
    t = bs.fit(long.assign(y=long["y"] == 1), formula="y ~ period + (1 | herd)", family="binomial")
    np.testing.assert_allclose(t.fixef, b.fixef, rtol=1e-9)


def test_units_do_not_matter(cbpp):
    # a covariate in other units (x 1000, shifted) gives the same fit, its coefficient / 1000
    df = cbpp.assign(x=np.arange(len(cbpp)) % 7 * 1.0)
    a = bs.fit(df, formula="cbind(incidence, size - incidence) ~ x + (1 | herd)", family="binomial")
    b = bs.fit(
        df.assign(x=df["x"] * 1000 + 5e5),
        formula="cbind(incidence, size - incidence) ~ x + (1 | herd)",
        family="binomial",
    )
    assert a.loglik == pytest.approx(b.loglik, rel=1e-10)
    assert b.fixef["x"] * 1000 == pytest.approx(a.fixef["x"], rel=1e-6)


# ---------------------------------------------------------------------------- bad input
def test_bad_binomial_responses(cbpp):
    with pytest.raises(DataError, match=r"must be 0/1, boolean or two-level"):
        bs.fit(cbpp, formula="incidence ~ period + (1 | herd)", family="binomial")
    bad = cbpp.assign(incidence=cbpp["incidence"].where(cbpp.index != 3, 99))
    with pytest.raises(DataError, match=r"successes > trials"):
        bs.fit(bad, formula=CBPP_F, family="binomial")
    with pytest.raises(DataError, match="proportion in"):
        bs.fit(cbpp, formula="incidence ~ period + (1 | herd)", family="binomial", weights="size")
    three = cbpp.assign(y=np.array(["a", "b", "c", "a"] * 14))
    with pytest.raises(DataError, match="must have two levels"):
        bs.fit(three, formula="y ~ 1 + (1 | herd)", family="binomial")


def test_bad_poisson_and_options(cbpp):
    neg = cbpp.assign(incidence=cbpp["incidence"] - 3)
    with pytest.raises(DataError, match="counts >= 0"):
        bs.fit(neg, formula="incidence ~ period + (1 | herd)", family="poisson")
    frac = cbpp.assign(incidence=cbpp["incidence"] + 0.5)
    with pytest.warns(NonIntegerWarning, match="whole numbers"):
        bs.fit(frac, formula="incidence ~ period + (1 | herd)", family="poisson")
    with pytest.raises(MethodError, match="`family` must be one of"):
        bs.fit(cbpp, formula=CBPP_F, family="gamma")
    with pytest.raises(MethodError, match="`link` must be one of"):
        bs.fit(cbpp, formula=CBPP_F, family="binomial", link="log")
    with pytest.raises(MethodError, match="`nagq` must be an integer"):
        bs.fit(cbpp, formula=CBPP_F, family="binomial", nagq=-1)
    with pytest.raises(MethodError, match="apply to family='binomial' or 'poisson'"):
        bs.fit(cbpp, formula="incidence ~ period + (1 | herd)", nagq=5)


def test_nagq_needs_one_scalar_term(cbpp):
    df = cbpp.assign(x=np.arange(len(cbpp)) % 5 * 1.0, site=np.arange(len(cbpp)) % 4)
    with pytest.raises(MethodError, match="single scalar random term"):
        bs.fit(
            df,
            formula="cbind(incidence, size - incidence) ~ x + (x | herd)",
            family="binomial",
            nagq=5,
        )
    with pytest.raises(MethodError, match="2 grouping factors"):
        bs.fit(
            df,
            formula="cbind(incidence, size - incidence) ~ 1 + (1 | herd) + (1 | site)",
            family="binomial",
            nagq=5,
        )


def test_complete_separation():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat(np.arange(10), 10), "x": rng.normal(size=100)})
    df["y"] = (df["x"] > 0).astype(int)
    with pytest.raises(SeparationError, match=r"'x'.*separation"):
        bs.fit(df, formula="y ~ x + (1 | g)", family="binomial")


def test_all_zero_group_is_fine(cbpp):
    df = cbpp.copy()
    df.loc[df["herd"] == 3, "incidence"] = 0
    fit = bs.fit(df, formula=CBPP_F, family="binomial")
    t = fit.table()
    assert np.isfinite(t.loc[3, "blup"]) and t.loc[3, "blup"] < t["prior_mean"].iloc[0]
    # no finite own estimate: NaN with the reason
    assert np.isnan(t.loc[3, "no_pooling"])
    assert t.loc[3, "own_status"].startswith("all failures")
    assert 0 < t.loc[3, "shrinkage"] < 1


def test_pirls_failure_is_a_clear_error(cbpp, monkeypatch):
    from bayeshrink.glmm.core import GlmmCore

    monkeypatch.setattr(GlmmCore, "__init__", _no_tolerance(GlmmCore.__init__))
    with pytest.raises(PirlsConvergenceError, match="PIRLS must find the conditional modes"):
        bs.fit(cbpp, formula=CBPP_F, family="binomial")


def _no_tolerance(init):
    def wrapped(self, *a, **k):
        init(self, *a, **k)
        self.tol = 0.0  # a step is never small enough: PIRLS runs out of iterations

    return wrapped
