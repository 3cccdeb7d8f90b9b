"""After a GLMM fit: simulate, anova, confint (Wald, profile, bootstrap) against lme4
(tests/reference/make_glmm_afterfit_references.R -> cbpp_afterfit.json, lme4 1.1-31)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE
from scipy import special, stats

import bayeshrink as bs
from bayeshrink.errors import ColumnError, DataError, DataTypeError, MethodError
from bayeshrink.glmm import inference as gi

F1 = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
F0 = "cbind(incidence, size - incidence) ~ 1 + (1 | herd)"
NAMES = ["sd_(Intercept)|herd", "(Intercept)", "period[2]", "period[3]", "period[4]"]


@pytest.fixture(scope="module")
def ref():
    return json.loads((REFERENCE / "cbpp_afterfit.json").read_text())


@pytest.fixture(scope="module")
def gm(cbpp):
    return bs.fit(cbpp, formula=F1, family="binomial")


@pytest.fixture(scope="module")
def gm0(cbpp):
    return bs.fit(cbpp, formula=F0, family="binomial")


# ---------------------------------------------------------------------------- Wald
def test_wald_matches_lme4(gm, ref):
    # confint(gm, method = "Wald", oldNames = FALSE): NA for the SD, fixef +- z se
    ci = gm.confint()
    assert list(ci.index) == NAMES
    assert ci.attrs == {"level": 0.95, "method": "wald"}
    assert np.isnan(ci.iloc[0]["lo"]) and np.isnan(ci.iloc[0]["hi"])
    # vcov(gm) agrees with lme4's finite-difference Hessian to rtol 1e-4 (test_glmm), so the
    # half-widths z se to 5e-5 of themselves
    half = 1.96 * gm.fixef_se.to_numpy()
    np.testing.assert_allclose(ci["lo"].iloc[1:], ref["wald"]["lo"][1:], atol=1e-4 * half.max())
    np.testing.assert_allclose(ci["hi"].iloc[1:], ref["wald"]["hi"][1:], atol=1e-4 * half.max())
    # bs.inference.confint dispatches a GlmmFit here
    pd.testing.assert_frame_equal(bs.inference.confint(gm), ci)


# ---------------------------------------------------------------------------- profile
@pytest.fixture(scope="module")
def prof(gm):
    return gm.confint(method="profile")


def test_profile_bounds_are_exact_roots(gm, prof):
    # at each bound the deviance, every other parameter re-optimised, is z^2 above the fit's
    dev = gi._Deviance(gm)
    names = list(gi._estimates(gm).index)
    z = stats.norm.ppf(0.975)
    assert dev.dev_hat == pytest.approx(gm.minus2loglik, abs=1e-9)
    for name in NAMES:
        pr = gi._Profile(gm, dev, name, names.index(name), 1)
        for side, col in ((-1, "lo"), (1, "hi")):
            assert pr.zeta(prof.loc[name, col], side) == pytest.approx(side * z, abs=1e-7)


def _zeta_at(gm, name, v, side):
    dev = gi._Deviance(gm)
    names = list(gi._estimates(gm).index)
    return gi._Profile(gm, dev, name, names.index(name), 1).zeta(v, side)


@pytest.mark.parametrize(("key", "level"), [("profile", 0.95), ("profile80", 0.8)])
def test_profile_matches_lme4(gm, prof, ref, key, level):
    # confint(gm, method = "profile", level = level, oldNames = FALSE). lme4 evaluates zeta on
    # a grid and inverts an interpolating spline through it, so its bounds are roots of zeta up
    # to that interpolation: our exact zeta at lme4's bounds is +-z to 1e-3 (measured: 5e-4),
    # which moves a bound by 1e-3 / zeta', 1e-3 of an SE
    r = ref[key]
    z = stats.norm.ppf(0.5 + level / 2)
    ours = prof if level == 0.95 else gm.confint(method="profile", level=level)
    assert ours.attrs == {"level": level, "method": "profile"}
    for k, name in enumerate(NAMES):
        for side, col in ((-1, "lo"), (1, "hi")):
            assert _zeta_at(gm, name, r[col][k], side) == pytest.approx(side * z, abs=1e-3)
            se = (r["hi"][k] - r["lo"][k]) / (2 * z)
            assert abs(ours.loc[name, col] - r[col][k]) <= 1e-3 * se


def test_profile_parm(gm, prof):
    ci = gm.confint(["sd_(Intercept)|herd", "period[4]"], method="profile")
    pd.testing.assert_frame_equal(ci, prof.loc[["sd_(Intercept)|herd", "period[4]"]])
    # the fit's own spelling of the intercept is accepted
    assert list(gm.confint("Intercept").index) == ["(Intercept)"]


def test_profile_sd_bound_at_zero():
    # a herd effect far too small to detect: the deviance at SD = 0 rises by less than z^2,
    # so the lower bound is 0 (one-sided), as lme4's
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(20), 15)
    y = rng.binomial(1, special.expit(-0.3 + 0.05 * rng.normal(size=20)[g]))
    fit = bs.fit(pd.DataFrame({"y": y, "g": g}), formula="y ~ 1 + (1 | g)", family="binomial")
    ci = fit.confint(method="profile")
    assert ci.loc["sd_(Intercept)|g", "lo"] == 0.0
    assert ci.loc["sd_(Intercept)|g", "hi"] > fit.theta[0]


def test_profile_refuses_what_it_cannot_do(cbpp):
    m0 = bs.fit(cbpp, formula=F1, family="binomial", nagq=0)
    with pytest.raises(MethodError, match="nagq=0"):
        m0.confint(method="profile")
    sl = pd.read_csv(REFERENCE / "glmm_slopes.csv")
    fit = bs.fit(sl, formula="y ~ x + (x | g)", family="binomial")
    with pytest.raises(MethodError, match="vector term"):
        fit.confint(method="profile")


# ---------------------------------------------------------------------------- anova
def test_anova_matches_lme4(gm, gm0, ref):
    # anova(gm0, gm)
    a = bs.anova(gm, gm0)  # sorted by the number of parameters, as lme4
    r = ref["anova"]
    assert list(a["npar"]) == r["npar"]
    np.testing.assert_allclose(a["loglik"], r["logLik"], rtol=1e-9)
    np.testing.assert_allclose(a["aic"], r["AIC"], rtol=1e-9)
    np.testing.assert_allclose(a["bic"], r["BIC"], rtol=1e-9)
    np.testing.assert_allclose(a["deviance"], r["deviance"], rtol=1e-9)
    assert np.isnan(a["chisq"].iloc[0])
    # the logLiks agree to 1e-9 relative (~1e-7 absolute), so chisq to 2e-7 and p with it
    assert a["chisq"].iloc[1] == pytest.approx(r["Chisq"][1], abs=5e-7)
    assert a["df"].iloc[1] == r["Df"][1]
    assert a["p_value"].iloc[1] == pytest.approx(r["p"][1], rel=1e-5)


def test_anova_bad_input(cbpp, gm, gm0):
    with pytest.raises(DataError, match="at least two"):
        bs.anova(gm)
    other = cbpp.assign(incidence=np.minimum(cbpp["incidence"] + 1, cbpp["size"]))
    with pytest.raises(DataError, match="same rows and response"):
        bs.anova(gm0, bs.fit(other, formula=F1, family="binomial"))
    pois = bs.fit(cbpp, formula="incidence ~ period + (1 | herd)", family="poisson")
    with pytest.raises(DataError, match="same family"):
        bs.anova(gm, pois)
    # not nested: different fixed terms with the same count of parameters
    sz = bs.fit(cbpp, formula="cbind(incidence, size - incidence) ~ size + (1 | herd)",
                family="binomial")  # fmt: skip
    with pytest.raises(MethodError, match="nested"):
        bs.anova(sz, gm)
    with pytest.raises(DataTypeError, match="GLMM fit"):
        gi.anova(gm, "m0")


# ---------------------------------------------------------------------------- simulate
def _exact_moments(gm, cbpp):
    """E and Var of incidence under the fitted model, b ~ N(0, sd^2) integrated out by
    Gauss-Hermite (50 nodes: exact to rounding for these smooth integrands)."""
    z, w = np.polynomial.hermite_e.hermegauss(50)
    w = w / w.sum()
    eta = gm.predict(random=False)
    p = special.expit(eta[:, None] + gm.theta[0] * z[None, :])
    n = cbpp["size"].to_numpy()[:, None]
    mean = (n * p) @ w
    second = (n * p * (1 - p) + (n * p) ** 2) @ w
    return mean, second - mean**2


def test_simulate_moments(gm, cbpp, ref):
    # simulate(gm, nsim = 20000): successes per row, new herd effects each time
    nsim = ref["simulate"]["nsim"]
    sims = gm.simulate(nsim, seed=7).to_numpy()
    assert sims.shape == (56, nsim)
    assert np.all(sims == np.round(sims)) and np.all(
        (0 <= sims) & (sims <= cbpp[["size"]].to_numpy())
    )
    mean, var = _exact_moments(gm, cbpp)
    se = np.sqrt(var / nsim)
    # 56 rows, 4.5 SE each: a false alarm has probability 56 x 7e-6
    assert np.all(np.abs(sims.mean(axis=1) - mean) <= 4.5 * se)
    assert np.all(np.abs(np.array(ref["simulate"]["mean"]) - mean) <= 4.5 * se)
    # the variance: SE of a sample variance about sqrt((m4 - var^2) / nsim) <= var sqrt(8/nsim)
    # for these mixtures (kurtosis under 9); 4.5 of them
    sv = sims.var(axis=1, ddof=1)
    assert np.all(np.abs(sv - var) <= 4.5 * var * np.sqrt(8 / nsim))
    # bs.inference.simulate dispatches here
    pd.testing.assert_frame_equal(bs.inference.simulate(gm, 3, seed=1), gm.simulate(3, seed=1))


def test_simulate_use_u(gm, cbpp, ref):
    # simulate(gmd, use.u = TRUE) (lme4's default fit): the herd effects kept at their modes,
    # binomial(n, p_i); lme4's default fit is within 1e-4 of ours, 0.1 SE here
    nsim = ref["simulate"]["nsim"]
    sims = gm.simulate(nsim, seed=8, use_u=True).to_numpy()
    n = cbpp["size"].to_numpy()
    p = gm.fitted()
    se = np.sqrt(n * p * (1 - p) / nsim)
    assert np.all(np.abs(sims.mean(axis=1) - n * p) <= 4.5 * se)
    assert np.all(np.abs(np.array(ref["simulate"]["mean_use_u"]) - n * p) <= 4.5 * se)


def test_simulate_binary_and_poisson_forms():
    ra = pd.read_csv(REFERENCE / "glmm_rates.csv")
    fit = bs.fit(ra, formula="count ~ z + offset(log(exposure)) + (1 | site)", family="poisson")
    s = fit.simulate(4000, seed=2, use_u=True).to_numpy()
    mu = fit.fitted()
    assert np.all(np.abs(s.mean(axis=1) - mu) <= 4.5 * np.sqrt(mu / 4000))
    sl = pd.read_csv(REFERENCE / "glmm_slopes.csv")
    b = bs.fit(sl, formula="y ~ x + (x | g)", family="binomial").simulate(2, seed=1)
    assert set(np.unique(b.to_numpy())) <= {0.0, 1.0}
    with pytest.raises(DataError, match="nsim"):
        fit.simulate(0)


# ---------------------------------------------------------------------------- bootstrap
def test_bootstrap_in_distribution(gm, ref):
    # bootMer(gm, function(m) c(sd, fixef(m)), nsim = 500): the two bootstrap distributions
    # are of the same estimator; their means and SDs agree within Monte Carlo error
    nb = 100
    draws = gi.bootstrap(gm, n_boot=nb, random_seed=11)
    assert list(draws.columns) == NAMES
    assert draws.attrs["failed"] == 0
    r = ref["bootstrap"]
    m_ours, s_ours = draws.mean().to_numpy(), draws.std().to_numpy()
    m_r, s_r = np.array(r["mean"]), np.array(r["sd"])
    se_mean = np.sqrt(s_r**2 / nb + s_r**2 / r["n"])
    assert np.all(np.abs(m_ours - m_r) <= 4 * se_mean)
    se_sd = s_r * np.sqrt(1 / (2 * (nb - 1)) + 1 / (2 * (r["n"] - 1)))
    assert np.all(np.abs(s_ours - s_r) <= 4 * se_sd)
    # confint(method = "bootstrap") is the percentile interval of the same draws
    ci = gm.confint(method="bootstrap", n_boot=nb, random_seed=11)
    np.testing.assert_allclose(ci["lo"], draws.quantile(0.025), rtol=1e-12)
    np.testing.assert_allclose(ci["hi"], draws.quantile(0.975), rtol=1e-12)


def test_confint_bad_input(gm):
    with pytest.raises(MethodError, match="'wald', 'profile' or 'bootstrap'"):
        gm.confint(method="exact")
    with pytest.raises(DataError, match="level"):
        gm.confint(level=1.5)
    with pytest.raises(ColumnError, match="must name parameters"):
        gm.confint("nope")


def test_profile_agq_and_poisson_bounds_are_roots(cbpp):
    # the profile runs on each fit's own deviance: AGQ's (no analytic gradient) and a Poisson
    # fit with an offset; each bound is a root of zeta -+ z
    z = stats.norm.ppf(0.975)
    agq = bs.fit(cbpp, formula=F1, family="binomial", nagq=9)
    ra = pd.read_csv(REFERENCE / "glmm_rates.csv")
    pois = bs.fit(ra, formula="count ~ z + offset(log(exposure)) + (1 | site)", family="poisson")
    for fit, name in ((agq, "sd_(Intercept)|herd"), (pois, "sd_(Intercept)|site"), (pois, "z")):
        ci = fit.confint(name, method="profile")
        dev = gi._Deviance(fit)
        names = list(gi._estimates(fit).index)
        pr = gi._Profile(fit, dev, name, names.index(name), 1)
        for side, col in ((-1, "lo"), (1, "hi")):
            assert pr.zeta(ci.loc[name, col], side) == pytest.approx(side * z, abs=1e-6)
        assert ci.loc[name, "lo"] < ci.loc[name, "estimate"] < ci.loc[name, "hi"]
