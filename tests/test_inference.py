"""predict, confint, AIC/BIC/deviance and anova: agreement with lme4 1.1-31, and their checks.

References: tests/reference/api_*.json, made by tests/reference/make_api_references.R (bobyqa,
rhoend 2e-12, two restarts). In R, ``sleep`` is sleepstudy.csv with ``phase`` added and
``newdata`` holds subjects 308 (Days 0, 4.5), 309 (9), 372 (12) and a subject "new" never
observed (0, 3, 9).

Tolerances: 1e-6 relative for predictions, information criteria, the LRT and Wald intervals
(measured gaps are <= 4e-8). Profile intervals 1e-4 (relative, or of the interval's half-width
for a bound near 0; absolute for a correlation, which lives on [-1, 1]): lme4 interpolates its
profile with splines while bayeshrink solves zeta = +-z by root finding; at lme4's endpoints
bayeshrink's zeta differs from z by up to 2.6e-4 (the sleepstudy correlation at level 0.9), at
its own by < 1e-7.
"""

from __future__ import annotations

import math
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, load_ref
from scipy import stats

import bayeshrink as bs
from bayeshrink.inference import (
    RefitWarning,
    bootstrap,
    model_of,
    refit_from_stats,
)
from bayeshrink.inference.backends import Scale
from bayeshrink.inference.profile import Profile

RTOL = 1e-6
PROFILE_RTOL = 1e-4

FORMULAS = {
    "slopes": "Reaction ~ Days + (Days | Subject)",
    "intercepts": "Reaction ~ Days + (1 | Subject)",
    "oneway": "Reaction ~ 1 + (1 | Subject)",
    "phase_log": "Reaction ~ phase + log(Days + 1) + (1 | Subject)",
}
CASES = [(name, tag) for name in FORMULAS for tag in ("REML", "ML")]


def lme4_name(term: str) -> str:
    """The fit's names to lme4's: Intercept -> (Intercept), phase[deprived] -> phasedeprived."""
    return "(Intercept)" if term == "Intercept" else re.sub(r"\[(.*)\]$", r"\1", term)


def close(actual, expected, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=rtol)


def sleep() -> pd.DataFrame:
    d = bs.load_dataset("sleepstudy")
    d["phase"] = np.where(d["Days"] < 2, "baseline", "deprived")
    return d


def newdata(ref) -> pd.DataFrame:
    d = pd.DataFrame({"Subject": ref["newdata_subject"], "Days": ref["newdata_days"]})
    d["phase"] = np.where(d["Days"] < 2, "baseline", "deprived")
    return d


_FITS: dict = {}


def fitted(name: str, tag: str):
    key = (name, tag)
    if key not in _FITS:
        _FITS[key] = bs.fit(sleep(), formula=FORMULAS[name], method=tag.lower())
    return _FITS[key]


def profile_close(parm: str, got, want) -> None:
    """1e-4 relative; for a bound near 0, 1e-4 of the interval's half-width (lme4's spline error
    is in zeta, i.e. proportional to the width); a correlation (on [-1, 1]) 1e-4 absolute."""
    want = np.asarray(want, float)
    if parm.startswith("cor_"):
        atol = PROFILE_RTOL
    else:
        atol = PROFILE_RTOL * abs(want[1] - want[0]) / 2
    np.testing.assert_allclose(np.asarray(got, float), want, rtol=PROFILE_RTOL, atol=atol)


def ci_frame(fit_ci: pd.DataFrame) -> pd.DataFrame:
    out = fit_ci.copy()
    out.index = [lme4_name(i) for i in out.index]
    return out


# ------------------------------------------------------------------------------ predict


@pytest.mark.parametrize(("name", "tag"), CASES)
def test_predict_matches_lme4(name, tag):
    ref = load_ref(f"api_sleepstudy_{name}_{tag}")
    m = fitted(name, tag)
    nd = newdata(ref)
    # R: predict(m, newdata = newdata, allow.new.levels = TRUE)
    close(m.predict(nd, allow_new_levels=True), ref["predict_new"])
    # R: predict(m, newdata = newdata, re.form = NA)
    close(m.predict(nd, random=False), ref["predict_population"])
    if name != "oneway":
        # R: predict(m)   (the fitted values; bayeshrink keeps no rows, so they are passed back)
        close(m.predict(sleep()), ref["fitted"])


def test_predict_oneway_without_newdata_is_per_group():
    # R: predict(lmer(Reaction ~ 1 + (1 | Subject), sleep)) is each row's subject BLUP
    ref = load_ref("api_sleepstudy_oneway_REML")
    m = fitted("oneway", "REML")
    per_group = m.predict()
    rows = per_group.loc[sleep()["Subject"].to_numpy()].to_numpy()
    close(rows, ref["fitted"])
    close(per_group, m.table()["blup"], rtol=1e-12)


def test_new_rows_are_encoded_as_the_fit_rows():
    # only "deprived" rows: a fresh encoding would drop phase's reference level
    ref = load_ref("api_sleepstudy_phase_log_REML")
    m = fitted("phase_log", "REML")
    nd = newdata(ref)
    late = nd["Days"] >= 2
    # R: predict(m, newdata = newdata, allow.new.levels = TRUE)[newdata$Days >= 2]
    close(
        m.predict(nd[late].reset_index(drop=True), allow_new_levels=True),
        np.asarray(ref["predict_new"])[late.to_numpy()],
    )
    # a pickled fit evaluates log(Days + 1) the same way
    again = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(
        again.predict(nd, allow_new_levels=True), m.predict(nd, allow_new_levels=True)
    )


def test_stateful_transform_keeps_the_fit_centre():
    d = sleep()
    m = bs.fit(d, formula="Reaction ~ center(Days) + (1 | Subject)")
    m0 = bs.fit(d.assign(Dc=d["Days"] - d["Days"].mean()), formula="Reaction ~ Dc + (1 | Subject)")
    one = pd.DataFrame({"Subject": ["308"], "Days": [9.0], "Dc": [9.0 - d["Days"].mean()]})
    # a single row: center() over the new rows would give 0
    close(m.predict(one), m0.predict(one), rtol=1e-10)


def test_integer_labels_match_their_text():
    m = fitted("intercepts", "REML")
    a = m.predict(pd.DataFrame({"Subject": [308], "Days": [1.0]}))
    b = m.predict(pd.DataFrame({"Subject": ["308"], "Days": [1.0]}))
    assert a.iloc[0] == b.iloc[0]


def test_interval_sd_is_the_tables_pred_sd_and_cond_sd():
    # a one-way group's mean: pred_sd counts vcov(mu), cond_sd does not (two code paths)
    m = fitted("oneway", "REML")
    t = m.table()
    with_v = m.predict(interval="confidence")
    plug = m.predict(interval="confidence", fixef_uncertainty=False)
    close(with_v["sd"], t["pred_sd"], rtol=1e-10)
    close(plug["sd"], t["cond_sd"], rtol=1e-10)
    pred = m.predict(interval="prediction", fixef_uncertainty=False)
    close(pred["sd"] ** 2, t["cond_sd"] ** 2 + m.sigma**2, rtol=1e-10)
    # a formula fit at Days = 0 predicts the intercept coefficient: MixedFit.pred_sd
    s = fitted("slopes", "REML")
    rows = pd.DataFrame({"Subject": s.groups, "Days": 0.0})
    got = s.predict(rows, interval="confidence")
    close(got["sd"], s.pred_sd()["Intercept"], rtol=1e-10)
    close(got["fit"], s.coef()["Intercept"], rtol=1e-12)
    rows1 = pd.DataFrame({"Subject": s.groups, "Days": 1.0})
    diff = s.predict(rows1) - s.predict(rows)
    close(diff, s.coef()["Days"], rtol=1e-10)


def test_new_group_interval_is_the_plugin_prior():
    m = fitted("slopes", "REML")
    x = np.array([1.0, 3.0])
    got = m.predict(
        pd.DataFrame({"Subject": ["new"], "Days": [3.0]}),
        allow_new_levels=True,
        interval="prediction",
        level=0.9,
    ).iloc[0]
    var = x @ m.cov_re().to_numpy() @ x + m.sigma**2 + x @ m.vcov.to_numpy() @ x
    close(got["fit"], x @ m.fixef.to_numpy(), rtol=1e-12)
    close(got["sd"], math.sqrt(var), rtol=1e-12)
    close(got["hi"] - got["fit"], stats.norm.ppf(0.95) * math.sqrt(var), rtol=1e-12)
    pop = m.predict(pd.DataFrame({"Days": [3.0]}), random=False, interval="confidence").iloc[0]
    close(pop["sd"], math.sqrt(x @ m.vcov.to_numpy() @ x), rtol=1e-12)


def test_new_group_prediction_interval_covers_at_the_nominal_rate():
    """Known parameters: y = 2 + b_j + e, tau = sigma = 1, 30 groups of 10. Each replication
    fits the model and draws one new group's observation. The plug-in interval ignores the
    uncertainty of tau and sigma, so coverage may sit a little under 0.95. Measured over 10,000
    replications: 0.9490 (MCSE 0.0022) counting vcov(beta), 0.9464 (MCSE 0.0023) with beta
    plugged in. For y ~ x + (x | g) (30 groups of 10, SDs 1 and 0.3, x uniform on [0, 1], a new
    group at a random x), 1,500 replications: 0.9453 (MCSE 0.0059) and 0.9440 (0.0059)."""
    rng = np.random.default_rng(20261126)
    reps, J, n = 300, 30, 10
    g = np.repeat([f"g{j:02d}" for j in range(J)], n)
    hits = 0
    for _ in range(reps):
        y = 2.0 + rng.normal(0, 1, J)[np.repeat(np.arange(J), n)] + rng.normal(0, 1, J * n)
        f = bs.fit({"y": y, "g": g}, y="y", group="g")
        p = f.predict(
            pd.DataFrame({"g": ["new"]}), allow_new_levels=True, interval="prediction"
        ).iloc[0]
        y_new = 2.0 + rng.normal() + rng.normal()
        hits += p["lo"] <= y_new <= p["hi"]
    cover = hits / reps
    mcse = math.sqrt(0.95 * 0.05 / reps)
    assert abs(cover - 0.95) < 3.5 * mcse, (cover, mcse)


# ------------------------------------------------------------------------------ criteria


@pytest.mark.parametrize(("name", "tag"), CASES)
def test_information_criteria_match_lme4(name, tag):
    ref = load_ref(f"api_sleepstudy_{name}_{tag}")
    m = fitted(name, tag)
    # R: logLik(m), attr(logLik(m), "df"), AIC(m), BIC(m)
    close(m.loglik, ref["logLik"])
    assert m.n_params == ref["df"]
    close(m.aic, ref["AIC"])
    close(m.bic, ref["BIC"])
    # R: suppressWarnings(deviance(m)): REMLcrit(m) for a REML fit, -2 logLik for ML
    close(m.deviance, ref["deviance"])
    if tag == "REML":
        close(m.deviance, ref["REMLcrit"])


def test_dyestuff2_boundary_criteria():
    for tag in ("REML", "ML"):
        ref = load_ref(f"api_dyestuff2_{tag}")
        f = bs.fit(bs.load_dataset("dyestuff2"), y="Yield", group="Batch", method=tag.lower())
        assert f.boundary and ref["singular"]
        # R: AIC(m), BIC(m) for lmer(Yield ~ 1 + (1 | Batch), Dyestuff2)
        close(f.aic, ref["AIC"])
        close(f.bic, ref["BIC"])


# ------------------------------------------------------------------------------ anova


@pytest.mark.parametrize(
    ("key", "models", "tag"),
    [
        ("intercepts_slopes_REML", ["intercepts", "slopes"], "REML"),
        ("intercepts_slopes_ML", ["intercepts", "slopes"], "ML"),
        ("oneway_intercepts_slopes_REML", ["oneway", "intercepts", "slopes"], "REML"),
    ],
)
def test_anova_matches_lme4(key, models, tag):
    # R: anova(m_intercepts, m_slopes) (REML fits are refitted by ML), and with the one-way model
    ref = load_ref("api_sleepstudy_anova")[key]
    fits = [fitted(m, tag) for m in models]
    if tag == "REML":
        with pytest.warns(RefitWarning, match="refitting .* REML fit"):
            a = bs.anova(*reversed(fits))  # any order: sorted by npar as lme4
    else:
        a = bs.anova(*fits)
    assert list(a.index) == [FORMULAS[m] for m in models]
    np.testing.assert_array_equal(a["npar"], ref["npar"])
    for col, rcol in [
        ("aic", "AIC"),
        ("bic", "BIC"),
        ("loglik", "logLik"),
        ("deviance", "deviance"),
    ]:
        close(a[col], ref[rcol])
    for col, rcol in [("chisq", "Chisq"), ("df", "Df"), ("p_value", "p")]:
        assert np.isnan(a[col].iloc[0])
        close(a[col].iloc[1:], ref[rcol][1:])


def test_anova_boundary_correction_is_the_chi_square_mixture():
    d = sleep()
    m0 = bs.fit(d, formula="Reaction ~ Days + (1 | Subject)", method="ml")
    m1 = bs.fit(d, formula="Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", method="ml")
    m2 = bs.fit(d, formula="Reaction ~ Days + (Days | Subject)", method="ml")
    plain = bs.anova(m0, m1)
    mixed = bs.anova(m0, m1, boundary_correction=True)
    x = plain["chisq"].iloc[1]
    assert plain["df"].iloc[1] == 1
    close(mixed["p_value"].iloc[1], 0.5 * stats.chi2.sf(x, 1), rtol=1e-12)
    # a random slope with its correlation: 0.5 chi2(1) + 0.5 chi2(2)
    x2 = bs.anova(m0, m2)["chisq"].iloc[1]
    got = bs.anova(m0, m2, boundary_correction=True)["p_value"].iloc[1]
    close(got, 0.5 * stats.chi2.sf(x2, 1) + 0.5 * stats.chi2.sf(x2, 2), rtol=1e-12)
    with pytest.raises(bs.MethodError, match="adds exactly one random term"):
        bs.anova(m1, m2, boundary_correction=True)


# ------------------------------------------------------------------------------ confint


@pytest.mark.parametrize(("name", "tag"), CASES)
def test_wald_intervals_match_lme4(name, tag):
    ref = load_ref(f"api_sleepstudy_{name}_{tag}")
    m = fitted(name, tag)
    for level, key in ((0.95, "confint_wald"), (0.9, "confint_wald_90")):
        # R: confint(m, method = "Wald", level = level, oldNames = FALSE)
        ci = ci_frame(m.confint(method="wald", level=level))
        assert list(ci.index) == list(ref[key])
        for parm, (lo, hi) in ref[key].items():
            if lo is None:  # lme4 gives NA for the variance parameters
                assert np.isnan(ci.loc[parm, "lo"]) and np.isnan(ci.loc[parm, "hi"])
            else:
                close([ci.loc[parm, "lo"], ci.loc[parm, "hi"]], [lo, hi])


@pytest.mark.parametrize(("name", "tag"), CASES)
def test_profile_intervals_match_lme4(name, tag):
    ref = load_ref(f"api_sleepstudy_{name}_{tag}")
    m = fitted(name, tag)
    # R: confint(m, method = "profile", oldNames = FALSE)
    ci = ci_frame(m.confint(method="profile"))
    assert list(ci.index) == list(ref["confint_profile"])
    for parm, (lo, hi) in ref["confint_profile"].items():
        profile_close(parm, [ci.loc[parm, "lo"], ci.loc[parm, "hi"]], [lo, hi])


def test_profile_level_and_parm():
    ref = load_ref("api_sleepstudy_slopes_REML")
    m = fitted("slopes", "REML")
    parm = ["cor_Days.(Intercept)|Subject", "Days"]
    # R: confint(m, method = "profile", level = 0.9, oldNames = FALSE)
    ci = m.confint(parm, level=0.9, method="profile")
    assert list(ci.index) == parm
    for p in parm:
        profile_close(p, ci.loc[p, ["lo", "hi"]], ref["confint_profile_90"][p])
    assert ci.attrs == {"level": 0.9, "method": "profile"}


def test_profile_endpoints_solve_zeta_exactly():
    """bayeshrink's endpoints are roots of zeta = +-z, not interpolations."""
    m = fitted("slopes", "ML")
    prof = Profile(m)
    ci = m.confint(method="profile")
    z = stats.norm.ppf(0.975)
    for k in range(4):  # the variance parameters
        for col, sign in (("lo", -1), ("hi", 1)):
            zeta, _ = prof.zeta_var(k, ci.iloc[k][col], prof.theta_hat)
            assert abs(zeta - sign * z) < 1e-7


def test_profile_of_a_boundary_fit_is_one_sided():
    # R: confint(lmer(Yield ~ 1 + (1 | Batch), Dyestuff2), method = "profile", oldNames = FALSE)
    ref = load_ref("api_dyestuff2_REML")
    f = bs.fit(bs.load_dataset("dyestuff2"), y="Yield", group="Batch")
    ci = ci_frame(f.confint(method="profile"))
    assert ci.loc["sd_(Intercept)|Batch", "lo"] == 0.0
    assert ref["confint_profile"]["sd_(Intercept)|Batch"][0] == 0
    for parm in ("sd_(Intercept)|Batch", "sigma"):
        close(ci.loc[parm, "hi"], ref["confint_profile"][parm][1], rtol=PROFILE_RTOL)
    close(ci.loc["sigma", "lo"], ref["confint_profile"]["sigma"][0], rtol=PROFILE_RTOL)
    # The intercept's profile has a kink where the batch SD leaves 0 (at |mu - 5.67| ~ 1.3),
    # which lme4's spline smooths over: at lme4's bounds (4.31210, 7.01909) zeta is 1.96091,
    # 1e-3 above z. bayeshrink's bounds solve zeta = z, and sit 1.7e-4 (relative) inside.
    lo, hi = ref["confint_profile"]["(Intercept)"]
    assert lo < ci.loc["(Intercept)", "lo"] < lo * (1 + 2e-4)
    assert hi * (1 - 2e-4) < ci.loc["(Intercept)", "hi"] < hi
    prof = Profile(f)
    z = stats.norm.ppf(0.975)
    zeta_lo, _ = prof.zeta_fixed(0, ci.loc["(Intercept)", "lo"], prof.theta_hat)
    zeta_r, _ = prof.zeta_fixed(0, lo, prof.theta_hat)
    assert abs(zeta_lo + z) < 1e-7
    assert abs(zeta_r + 1.96091) < 1e-5


def test_bootstrap_is_reproducible_and_brackets_the_estimates():
    m = fitted("intercepts", "REML")
    a = m.confint(method="bootstrap", n_boot=60, random_seed=3)
    b = m.confint(method="bootstrap", n_boot=60, random_seed=3)
    c = m.confint(method="bootstrap", n_boot=60, random_seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["lo"], c["lo"])
    assert ((a["lo"] < a["estimate"]) & (a["estimate"] < a["hi"])).all()


def test_bootstrap_refits_reach_the_optimum():
    """The bootstrap's refits (started at the fitted theta) against the estimator: on each
    simulated data set the REML criterion they reach is no higher than the estimator's."""
    from bayeshrink.lmm.estimate import ProfiledCriterion, estimate_lmm, theta_layout

    m = fitted("slopes", "REML")
    p = model_of(m)
    seen = []
    import importlib

    # the refits run in the backends module
    inf = importlib.import_module("bayeshrink.inference.backends")

    original = inf.refit_from_stats

    def spy(st, block_sizes, method, theta0):
        seen.append((st, theta0))
        return original(st, block_sizes, method, theta0)

    inf.refit_from_stats = spy
    try:
        bootstrap(m, n_boot=8, random_seed=11)
    finally:
        inf.refit_from_stats = original
    rows, cols, _ = theta_layout(p.block_sizes)
    for st, theta0 in seen:
        _, sigma, cov = refit_from_stats(st, p.block_sizes, "reml", theta0)
        L = np.linalg.cholesky(cov / sigma**2)
        ours = ProfiledCriterion(st, p.block_sizes, "reml").value(L[rows, cols])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = estimate_lmm(st, p.block_sizes, "reml")
        assert ours <= est.criterion + 1e-8 * abs(est.criterion)


def test_simulated_cross_products_have_the_right_moments():
    """E[y*'y*] and E[X'y*] of the exact cross-product simulation, against their closed forms
    (Monte Carlo tolerance)."""
    m = fitted("intercepts", "ML")
    p = model_of(m)
    s = p.backend.stats
    rng_draws = 4000
    import importlib

    # the module whose refits the bootstrap calls
    inf = importlib.import_module("bayeshrink.inference.backends")

    got = []
    original = inf.refit_from_stats

    def grab(st, block_sizes, method, theta0):
        got.append(st.cross[:, -1, :].copy())
        return np.zeros(len(p.beta)), 1.0, np.eye(len(p.random_names))

    inf.refit_from_stats = grab
    try:
        bootstrap(m, n_boot=rng_draws, random_seed=5)
    finally:
        inf.refit_from_stats = original
    draws = np.array(got)  # (draws, J, k+1): D'y and y'y per group, standardized columns
    sc = Scale.of(s)
    std = sc.std
    beta_s, cov_s, sigma_s = sc.to_std(p.beta, p.terms[0].cov_re, p.sigma)
    k = std.cross.shape[1] - 1
    gamma = np.zeros(k)
    gamma[std.x_idx] = beta_s
    DtD = std.cross[:, :k, :k]
    mean_Dy = DtD @ gamma
    z = np.zeros(k)
    z[std.z_idx] = 1.0  # the random intercept's column
    mean_yy = (
        np.einsum("a,jab,b->j", gamma, DtD, gamma)
        + cov_s[0, 0] * np.einsum("a,jab,b->j", z, DtD, z)
        + sigma_s**2 * std.n
    )
    se_yy = draws[:, :, k].std(axis=0) / math.sqrt(rng_draws)
    assert np.all(np.abs(draws[:, :, k].mean(axis=0) - mean_yy) < 4.5 * se_yy)
    se_Dy = draws[:, :, :k].std(axis=0) / math.sqrt(rng_draws)
    assert np.all(np.abs(draws[:, :, :k].mean(axis=0) - mean_Dy) < 4.5 * se_Dy)


# ------------------------------------------------------------------------------ bad input


def test_unknown_level_needs_allow_new_levels():
    m = fitted("slopes", "REML")
    with pytest.raises(bs.DataError, match=r"levels of 'Subject' seen in the fit.*'new'"):
        m.predict(pd.DataFrame({"Subject": ["308", "new"], "Days": [1.0, 2.0]}))
    f = fitted("oneway", "REML")
    with pytest.raises(bs.DataError, match="allow_new_levels=True"):
        f.predict(pd.DataFrame({"Subject": ["nobody"]}))


def test_missing_column_in_newdata():
    m = fitted("slopes", "REML")
    with pytest.raises(bs.ColumnError, match=r"missing 'Days'"):
        m.predict(pd.DataFrame({"Subject": ["308"], "days": [1.0]}))
    with pytest.raises(bs.ColumnError, match=r"missing 'Subject'"):
        m.predict(pd.DataFrame({"Days": [1.0]}))
    # the population prediction does not need the group
    assert len(m.predict(pd.DataFrame({"Days": [1.0]}), random=False)) == 1
    with pytest.raises(bs.ColumnError, match="grouping column 'Subject'"):
        fitted("oneway", "REML").predict(pd.DataFrame({"g": ["308"]}))


def test_formula_fit_predict_needs_newdata():
    with pytest.raises(bs.DataError, match="`newdata` must be given for a formula fit"):
        fitted("slopes", "REML").predict()


def test_bad_interval_and_level():
    m = fitted("intercepts", "REML")
    nd = pd.DataFrame({"Subject": ["308"], "Days": [1.0]})
    with pytest.raises(bs.MethodError, match="`interval` must be None, 'prediction'"):
        m.predict(nd, interval="credible")
    for bad in (0, 1, 1.5, -0.1, True):
        with pytest.raises(bs.DataError, match="`level` must be a probability strictly between"):
            m.predict(nd, interval="prediction", level=bad)
        with pytest.raises(bs.DataError, match="`level` must be a probability strictly between"):
            m.confint(level=bad)


def test_unknown_confint_method_and_parm():
    m = fitted("intercepts", "REML")
    with pytest.raises(bs.MethodError, match="`method` must be 'wald', 'profile' or 'bootstrap'"):
        m.confint(method="likelihood")
    with pytest.raises(bs.ColumnError, match="`parm` must name parameters of the fit"):
        m.confint("sd_Days|Subject")
    assert list(m.confint("Intercept").index) == ["(Intercept)"]
    with pytest.raises(bs.DataError, match="`n_boot` must be an integer >= 2"):
        m.confint(method="bootstrap", n_boot=1)


def test_anova_refuses_non_nested_models():
    d = sleep()
    a = bs.fit(d, formula="Reaction ~ Days + (1 | Subject)", method="ml")
    b = bs.fit(d, formula="Reaction ~ phase + (phase | Subject)", method="ml")
    with pytest.raises(bs.DataError, match=r"must be nested.*fixed terms"):
        bs.anova(a, b)
    c = bs.fit(d, formula="Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", method="ml")
    e = bs.fit(d, formula="Reaction ~ Days + (Days | Subject)", method="ml")
    bs.anova(c, e)  # independent blocks are nested in the correlated one
    f = bs.fit(d, formula="Reaction ~ Days + (0 + Days | Subject)", method="ml")
    g = bs.fit(d, formula="Reaction ~ Days + (1 | Subject)", method="ml")
    with pytest.raises(bs.DataError, match="is not nested in"):
        bs.anova(f, g)  # same npar, different random terms


def test_anova_refuses_different_data():
    d = sleep()
    a = bs.fit(d, formula="Reaction ~ Days + (1 | Subject)", method="ml")
    b = bs.fit(d.iloc[:-10], formula="Reaction ~ Days + (Days | Subject)", method="ml")
    with pytest.raises(bs.DataError, match=r"same rows and response.*observations"):
        bs.anova(a, b)
    c = bs.fit(d.assign(Reaction=np.log(d["Reaction"])), formula=FORMULAS["slopes"], method="ml")
    with pytest.raises(bs.DataError, match="different response values"):
        bs.anova(a, c)
    with pytest.raises(bs.DataError, match="at least two fitted models"):
        bs.anova(a)


def test_summary_data_cannot_predict_or_profile():
    schools = bs.load_dataset("eight_schools")
    f = bs.fit_summary(schools, estimate="y", se="sigma", group="school")
    with pytest.raises(bs.DataTypeError, match="fitted to long data"):
        f.predict()
    with pytest.raises(bs.DataTypeError, match="fitted to long data"):
        f.confint(method="profile")
    assert np.isfinite(f.confint().loc["(Intercept)", "lo"])


def test_summary_data_information_criteria_match_metafor():
    schools = bs.load_dataset("eight_schools")
    ref = load_ref("api_eight_schools_fitstats")
    for method in ("REML", "ML"):
        f = bs.fit_summary(schools, estimate="y", se="sigma", group="school", method=method)
        # R: fitstats(rma(yi = y, sei = sigma, method = method))
        close(f.loglik, ref[method]["logLik"])
        assert f.n_params == ref[method]["parms"]
        close(f.aic, ref[method]["AIC"])
        close(f.bic, ref[method]["BIC"])


def test_categorical_slopes_and_interactions_predict_from_coef():
    """A categorical random slope and an interaction: predictions on the fitted rows are each
    row's coefficients times its covariates (two code paths)."""
    d = sleep()
    m = bs.fit(d, formula="Reaction ~ phase + (phase | Subject)")
    coef = m.coef()
    deprived = [c for c in coef.columns if "deprived" in c]
    assert len(coef.columns) == 2 and len(deprived) == 1
    g = d["Subject"].to_numpy()
    want = (
        coef.loc[g, "Intercept"].to_numpy()
        + (d["phase"] == "deprived").to_numpy() * coef.loc[g, deprived[0]].to_numpy()
    )
    close(m.predict(d), want, rtol=1e-10)
    mi = bs.fit(d, formula="Reaction ~ Days * phase + (1 | Subject)")
    X = np.column_stack(
        [
            np.ones(len(d)),
            d["Days"],
            d["phase"] == "deprived",
            d["Days"] * (d["phase"] == "deprived"),
        ]
    ).astype(float)
    fe = mi.fixef.to_numpy()
    pop = mi.predict(d, random=False).to_numpy()
    close(pop, X @ fe, rtol=1e-10)


def test_profile_and_bootstrap_do_not_depend_on_a_covariates_units():
    """Days + 1e6 (or in thousands of days): the intervals of everything but the intercept are
    the same, mapped by the change of units (profile and bootstrap run on the estimator's
    standardized columns)."""
    d = sleep()
    m = fitted("slopes", "ML")
    far = bs.fit(d.assign(Days=d["Days"] + 1e6), formula=FORMULAS["slopes"], method="ml")
    kilo = bs.fit(d.assign(Days=d["Days"] / 1000), formula=FORMULAS["slopes"], method="ml")
    same = ["sd_Days|Subject", "sigma", "Days"]
    ref = m.confint(same, method="profile")
    close(far.confint(same, method="profile")[["lo", "hi"]], ref[["lo", "hi"]], rtol=1e-6)
    got = kilo.confint(same, method="profile")[["lo", "hi"]]
    close(got.loc["sigma"], ref.loc["sigma", ["lo", "hi"]], rtol=1e-6)
    close(
        got.loc[["sd_Days|Subject", "Days"]] / 1000,
        ref.loc[["sd_Days|Subject", "Days"], ["lo", "hi"]],
        rtol=1e-6,
    )
    b0 = m.confint(same, method="bootstrap", n_boot=20, random_seed=2)
    b1 = far.confint(same, method="bootstrap", n_boot=20, random_seed=2)
    close(b1[["lo", "hi"]], b0[["lo", "hi"]], rtol=1e-6)


def test_three_by_three_covariance_matches_lme4():
    ref = load_ref("api_sim_three_terms_REML")
    d = pd.read_csv(REFERENCE / "lmm_sim_three_terms.csv", dtype={"g": str})
    m = bs.fit(d, formula="y ~ x + x2 + (1 + x + x2 | g)")
    # R: AIC(m3), BIC(m3)
    close(m.aic, ref["AIC"])
    close(m.bic, ref["BIC"])
    # R: confint(m3, method = "Wald", oldNames = FALSE)
    wald = ci_frame(m.confint())
    for parm, (lo, hi) in ref["confint_wald"].items():
        if lo is not None:
            close(wald.loc[parm, ["lo", "hi"]], [lo, hi])
    # R: confint(m3, method = "profile", oldNames = FALSE)
    prof = ci_frame(m.confint(method="profile"))
    assert list(prof.index) == list(ref["confint_profile"])
    for parm, (lo, hi) in ref["confint_profile"].items():
        profile_close(parm, prof.loc[parm, ["lo", "hi"]], [lo, hi])


def test_newdata_with_missing_values_or_unseen_categories():
    m = fitted("phase_log", "REML")
    with pytest.raises(bs.DataError, match="must be finite on `newdata`"):
        m.predict(pd.DataFrame({"Subject": ["308"], "Days": [np.nan], "phase": ["baseline"]}))
    with pytest.raises(bs.DataError, match=r"could not be encoded.*\(recovery\)"):
        m.predict(pd.DataFrame({"Subject": ["308"], "Days": [1.0], "phase": ["recovery"]}))


def test_a_missing_group_in_newdata_is_not_a_new_level():
    # as the GLMM path: an error naming the rows, with or without allow_new_levels
    m = fitted("phase_log", "REML")
    nd = pd.DataFrame({"Subject": ["308", None], "Days": [1.0, 2.0], "phase": ["baseline"] * 2})
    for allow in (False, True):
        with pytest.raises(bs.DataError, match=r"row 1 holds a missing value"):
            m.predict(nd, allow_new_levels=allow)
    assert np.isfinite(m.predict(nd, random=False)).all()
