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
def cbpp_fit(cbpp):
    return bs.fit(cbpp, formula=CBPP_F, family="binomial")


def check_against(fit, r, vcov_rtol=1e-4, floor=1e-8):
    """Estimates, logLik, ranef and condVar against one lme4 reference.

    Ours must be the better optimum of the same criterion: deviance <= lme4's + 1e-6. Near an
    optimum a deviance gap d allows the estimates to differ by about sqrt(2 d) standard
    errors (the quadratic approximation), so estimates are compared in units of their SEs with
    the tolerance 2 sqrt(2 max(d, floor)) (3e-4 SE for the default floor; more where lme4's own
    optimum is measurably worse than ours). vcov(m) is 2 x the inverse of lme4's
    finite-difference Hessian (step 1e-4), compared with ``vcov_rtol``.
    """
    gap = 2 * (fit.loglik - r["logLik"])  # our deviance below lme4's
    assert gap >= -1e-6
    tol = 2 * np.sqrt(2 * max(gap, floor))
    se = dict(zip(lme4_names(fit.fixed_terms), fit.fixef_se.to_numpy(), strict=True))
    fe = dict(zip(lme4_names(fit.fixed_terms), fit.fixef.to_numpy(), strict=True))
    # fixef(m)
    for k, v in r["fixef"].items():
        assert abs(fe[k] - v) <= tol * se[k], (k, fe[k], v)
    # getME(m, "theta"): relative, as theta's SE is not at hand
    np.testing.assert_allclose(
        np.abs(fit.theta), np.abs(np.atleast_1d(r["theta"])), rtol=tol, atol=1e-7
    )
    # vcov(m)
    np.testing.assert_allclose(fit.vcov.to_numpy(), np.array(r["vcov"]), rtol=vcov_rtol, atol=1e-8)
    # ranef(m, condVar = TRUE): modes in units of their conditional SD, the SDs relative
    for fac, blk in r["ranef"].items():
        ours = fit.ranef(fac)
        sds = fit.ranef_sd(fac)
        assert [str(x) for x in ours.index] == [str(x) for x in blk["levels"]]
        for term, vals in blk["values"].items():
            t = "Intercept" if term == "(Intercept)" else term
            assert np.all(np.abs(ours[t].to_numpy() - vals) <= tol * sds[t].to_numpy())
            np.testing.assert_allclose(sds[t].to_numpy(), blk["sd"][term], rtol=tol)


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
    # deviance(m): the sum of squared deviance residuals, 73.47, not -2 logLik (184.05); it
    # moves at first order with the estimates
    assert cbpp_fit.deviance == pytest.approx(r["deviance"], rel=1e-6)
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
    assert {"no_pooling", "se", "shrinkage", "cond_mode", "cond_sd", "own_status"} <= set(t.columns)
    # one term: shrinkage = se^2 / (se^2 + tau^2) with se^2 from the curvature at the mode, so
    # the conditional mode sits between the prior mean and the group's own estimate
    assert ((t["shrinkage"] > 0) & (t["shrinkage"] < 1)).all()
    lo = np.minimum(t["no_pooling"], t["prior_mean"])
    hi = np.maximum(t["no_pooling"], t["prior_mean"])
    assert ((t["cond_mode"] >= lo - 1e-9) & (t["cond_mode"] <= hi + 1e-9)).all()
    np.testing.assert_allclose(t["cond_mode"], cbpp_fit.coef()["Intercept"], rtol=1e-12)
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
    assert np.isfinite(t.loc[3, "cond_mode"]) and t.loc[3, "cond_mode"] < t["prior_mean"].iloc[0]
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


# ---------------------------------------------------------------------------- more references
def test_cbpp_agq25_marginal_loglik(cbpp):
    r = ref("cbpp_agq25")
    # glmer(..., nAGQ = 25): the same optimum; lme4 prints logLik -50.005 (a deviance-residual
    # constant), the marginal log-likelihood at its estimates, by integrate() per herd, is -91.983
    fit = bs.fit(cbpp, formula=CBPP_F, family="binomial", nagq=25)
    assert fit.method == "AGQ(25)"
    check_against(fit, {**r, "logLik": r["marginal_logLik"]})
    assert fit.loglik == pytest.approx(r["marginal_logLik"], abs=1e-7)
    assert r["logLik"] == pytest.approx(-50.005, abs=1e-3)


def test_cbpp_nagq0(cbpp):
    # glmer(..., nAGQ = 0): theta optimised, beta from PIRLS; vcov from RX
    fit = bs.fit(cbpp, formula=CBPP_F, family="binomial", nagq=0)
    check_against(fit, ref("cbpp_nagq0"), vcov_rtol=1e-6)


def test_contraception_logit_and_probit():
    ct = pd.read_csv(REFERENCE / "contraception.csv")
    ct["livch"] = ct["livch"].astype(str)
    # glmer(use ~ age + I(age^2) + urban + livch + (1 | district), Contraception, binomial)
    f = "use ~ age + I(age**2) + urban + livch + (1 | district)"
    logit = bs.fit(ct, formula=f, family="binomial")
    r = ref("contraception_logit")
    check_against(logit, {**r, "fixef": _rename_age(r["fixef"])}, vcov_rtol=2e-3)
    # binomial(link = "probit"): lme4's Laplace with the IRLS weights (glmmTMB's observed
    # Hessian gives -1185.930). lme4's tight optimum sits 1.1e-5 below ours in logLik, so its
    # estimates are good to about 1e-2 of an SE; ours is the better optimum of lme4's criterion:
    # lme4's own devfun (devFunOnly = TRUE, tolPwrss = 1e-12) gives 2372.16447228 at our
    # estimates and 2372.16447230 at its own (its stored logLik carries its PIRLS tolerance).
    probit = bs.fit(ct, formula=f, family="binomial", link="probit")
    r = ref("contraception_probit")
    assert probit.loglik >= r["logLik"]
    assert probit.loglik == pytest.approx(-1186.082, abs=5e-4)
    check_against(probit, {**r, "fixef": _rename_age(r["fixef"])}, vcov_rtol=3e-3)


def _rename_age(fixef):
    return {("I(age ** 2)" if k == "I(age^2)" else k): v for k, v in fixef.items()}


def test_random_slopes_binomial():
    # glmer(y ~ x + (x | g), binomial) on simulated data (make_glmm_references.R)
    sl = pd.read_csv(REFERENCE / "glmm_slopes.csv")
    fit = bs.fit(sl, formula="y ~ x + (x | g)", family="binomial")
    check_against(fit, ref("slopes_binomial"), vcov_rtol=2e-4)
    vc = fit.varcorr()
    assert list(vc["var1"]) == ["Intercept", "x", "Intercept"]
    assert vc["var2"].iloc[2] == "x"


def test_poisson_with_offset():
    # glmer(count ~ z + offset(log(exposure)) + (1 | site), poisson)
    ra = pd.read_csv(REFERENCE / "glmm_rates.csv")
    fit = bs.fit(ra, formula="count ~ z + offset(log(exposure)) + (1 | site)", family="poisson")
    r = ref("rates_poisson")
    check_against(fit, r, vcov_rtol=2e-4)
    np.testing.assert_allclose(fit.fitted(), r["fitted"], rtol=2e-6)
    # the offset is evaluated on new rows: twice the exposure, twice the rate
    nd = ra.head(3)
    np.testing.assert_allclose(
        fit.predict(nd.assign(exposure=2 * nd["exposure"]), type="response"),
        2 * fit.predict(nd, type="response"),
        rtol=1e-12,
    )


def test_grouseticks_crossed_poisson():
    gt = pd.read_csv(REFERENCE / "grouseticks.csv")
    gt["YEAR"] = gt["YEAR"].astype(str)
    # R's scale() divides by the SD with n - 1 (formulae's scale by the SD with n): the column
    # is made the R way so the coefficient is lme4's
    gt["sHEIGHT"] = (gt["HEIGHT"] - gt["HEIGHT"].mean()) / gt["HEIGHT"].std(ddof=1)
    # glmer(TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION), poisson)
    fit = bs.fit(
        gt,
        formula="TICKS ~ YEAR + sHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
        family="poisson",
    )
    r = ref("grouseticks_poisson")
    r["fixef"] = {("sHEIGHT" if k == "scale(HEIGHT)" else k): v for k, v in r["fixef"].items()}
    assert fit.factors == ["INDEX", "BROOD", "LOCATION"]  # lme4's order: most levels first
    # lme4's optimum is 2.3e-5 below ours in logLik
    assert fit.loglik >= r["logLik"]
    check_against(fit, r, vcov_rtol=1e-2)


def test_sufficient_statistics_path_equals_rows(cbpp, monkeypatch):
    # Bernoulli rows with covariates constant within (herd, period): fitted from per-cell
    # successes and trials; the row-by-row path must give the same fit
    from bayeshrink.glmm import estimate as glmm_fit

    rows = []
    for _, r in cbpp.iterrows():
        rows += [(r["herd"], r["period"], 1, 1.0 + (r["herd"] % 3))] * int(r["incidence"])
        rows += [(r["herd"], r["period"], 0, 1.0 + (r["herd"] % 3))] * int(
            r["size"] - r["incidence"]
        )
    long = pd.DataFrame(rows, columns=["herd", "period", "y", "t"])
    for family, f in [
        ("binomial", "y ~ period + (1 | herd)"),
        ("poisson", "y ~ period + offset(log(t)) + (1 | herd)"),
    ]:
        agg = bs.fit(long, formula=f, family=family)
        monkeypatch.setattr(glmm_fit, "AGGREGATE", False)
        rowwise = bs.fit(long, formula=f, family=family)
        monkeypatch.setattr(glmm_fit, "AGGREGATE", True)
        assert agg.loglik == pytest.approx(rowwise.loglik, abs=1e-8)
        np.testing.assert_allclose(agg.fixef, rowwise.fixef, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(agg.ranef(), rowwise.ranef(), rtol=1e-5, atol=1e-7)
        assert agg.deviance == pytest.approx(rowwise.deviance, rel=1e-6)


def test_plugin_posterior_mode_is_the_conditional_mode(cbpp_fit, cbpp):
    from scipy import integrate, special

    post = bs.plugin_posterior(cbpp_fit)
    # the mode of the exact plug-in posterior is lme4's conditional mode; the Laplace normal
    # N(mode, condVar) sits beside it
    np.testing.assert_allclose(post["laplace_mean"], cbpp_fit.coef()["Intercept"], rtol=1e-12)
    np.testing.assert_allclose(post["laplace_sd"], cbpp_fit.ranef_sd()["Intercept"], rtol=1e-12)
    # brute force for herd 1 with scipy's quad: mean and sd of the plug-in posterior
    beta, tau = cbpp_fit.fixef.to_numpy(), cbpp_fit.theta[0]
    rows = cbpp[cbpp["herd"] == 1]
    X = np.column_stack(
        [np.ones(len(rows))] + [(rows["period"] == k).to_numpy(float) for k in "234"]
    )
    eta0 = X @ beta
    s, n = rows["incidence"].to_numpy(), rows["size"].to_numpy()

    def dens(b, power=0):
        p = special.expit(eta0 + b)
        ll = np.sum(s * np.log(p) + (n - s) * np.log1p(-p)) - 0.5 * (b / tau) ** 2
        return b**power * np.exp(ll + 20)

    m0 = integrate.quad(dens, -8, 8, epsabs=0, epsrel=1e-12)[0]
    m1 = integrate.quad(lambda b: dens(b, 1), -8, 8, epsabs=0, epsrel=1e-12)[0] / m0
    m2 = integrate.quad(lambda b: dens(b, 2), -8, 8, epsabs=0, epsrel=1e-12)[0] / m0
    row = post.loc[1]
    assert row["mean"] - beta[0] == pytest.approx(m1, abs=1e-6)
    assert row["sd"] == pytest.approx(np.sqrt(m2 - m1**2), rel=1e-5)
    # the mean is not the mode: the posterior is skewed
    assert abs(row["mean"] - row["mode"]) > 1e-3
    assert row["q0.025"] < row["q0.5"] < row["q0.975"]


def test_missing_rows_drop(cbpp, cbpp_fit):
    from bayeshrink.errors import RowsDroppedWarning

    extra = pd.DataFrame({"herd": [1], "incidence": [np.nan], "size": [5], "period": ["1"]})
    df = pd.concat([cbpp, extra], ignore_index=True)
    with pytest.raises(DataError, match="NaN"):
        bs.fit(df, formula=CBPP_F, family="binomial")
    with pytest.warns(RowsDroppedWarning, match="left out 1"):
        fit = bs.fit(df, formula=CBPP_F, family="binomial", missing="drop")
    assert fit.n_obs == len(cbpp)
    assert fit.loglik == pytest.approx(cbpp_fit.loglik, abs=1e-9)


def test_several_factor_glmm_prints_bounded_tables_and_needs_factor():
    """A three-factor Poisson fit (grouseticks): str/HTML bounded per factor, to_dict is JSON,
    and the per-factor accessors ask for `factor=` as every several-factor fit does."""
    import json

    d = pd.read_csv(REFERENCE / "grouseticks.csv")
    f = bs.fit(
        d,
        formula="TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
        family="poisson",
    )
    text = str(f)
    assert "Per INDEX (403 levels)" in text and "more groups" in text
    assert len(text.splitlines()) < 120
    assert len(f._repr_html_()) < 40_000
    out = json.loads(json.dumps(f.to_dict()))
    assert out["n_groups"] == {"INDEX": 403, "BROOD": 118, "LOCATION": 63}
    with pytest.raises(bs.ColumnError, match="when the model has several"):
        f.ranef()
    assert len(f.ranef(factor="BROOD")) == 118


def test_theta_at_zero_is_not_taken_for_the_optimum(cbpp):
    # cbpp's sizes and periods with these incidences (a parametric-bootstrap sample): the
    # deviance is even in theta, so its gradient at theta = 0 is exactly 0 while it falls away
    # from 0. lme4 (default glmer): theta 0.3830975, logLik -68.8818
    inc = [int(c) for c in "01004238200311040104310111061010101072113010822020007320"]
    fit = bs.fit(cbpp.assign(incidence=inc), formula=CBPP_F, family="binomial")
    # lme4's default optimum is not tight (ours is 1.4e-5 higher in logLik): theta to 1e-3
    assert fit.theta[0] == pytest.approx(0.3830975, rel=1e-3)
    assert fit.loglik >= -68.8818 - 5e-5


def test_bad_response_forms(cbpp):
    # the cbind() and offset() forms are read by formula/parse.py (split_offsets,
    # cbind_arguments)
    from bayeshrink.errors import FormulaError

    with pytest.raises(FormulaError, match="takes two arguments"):
        bs.fit(cbpp, formula="cbind(incidence) ~ period + (1 | herd)", family="binomial")
    with pytest.raises(FormulaError, match="is a binomial response"):
        bs.fit(cbpp, formula=CBPP_F, family="poisson")
    with pytest.raises(DataError, match="`weights` must not be given"):
        bs.fit(cbpp, formula=CBPP_F, family="binomial", weights="size")
    # a Poisson group of all zeros is fine too: its conditional mode is finite
    df = cbpp.copy()
    df.loc[df["herd"] == 5, "incidence"] = 0
    fit = bs.fit(df, formula="incidence ~ period + offset(log(size)) + (1 | herd)",
                 family="poisson")  # fmt: skip
    t = fit.table()
    assert np.isfinite(t.loc[5, "cond_mode"]) and t.loc[5, "own_status"].startswith("all zero")


def test_binary_response_with_the_normal_family_warns(cbpp):
    df = cbpp.assign(any_case=(cbpp["incidence"] > 0).astype(int))
    with pytest.warns(bs.FamilyWarning, match="family="):
        bs.fit(df, formula="any_case ~ period + (1 | herd)")
