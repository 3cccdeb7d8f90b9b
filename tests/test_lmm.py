"""General mixed models from a formula: agreement with lme4 1.1-31, and the checks on input.

References: tests/reference/sleepstudy_*.json (shared references) and lmm_*.json, made by
tests/reference/make_lmm_references.R (bobyqa, rhoend 2e-12).

Tolerance: 1e-6 relative. Per-group arrays (ranef, coef, conditional SDs) are compared with
``rtol = 1e-6`` and ``atol = 1e-6 x`` the largest magnitude in that array, because an element near
zero (a ranef of -0.33 among values of +-40) has no meaningful relative error. bayeshrink solves
the score equations to a gradient of ~1e-12 in theta; what remains is lme4's optimizer error (at
lme4's sleepstudy theta our analytic gradient is 1.5e-5 and the REML criterion is not lower).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, load_ref

import bayeshrink as bs
from bayeshrink.lmm import MixedFit, fit_formula

RTOL = 1e-6


def close(actual, expected, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=atol
    )


def lme4_name(term: str) -> str:
    """formulae's names to lme4's: Intercept -> (Intercept), phase[deprived] -> phasedeprived."""
    return "(Intercept)" if term == "Intercept" else re.sub(r"\[(.*)\]$", r"\1", term)


def check_against_lme4(fit, ref: dict, *, loglik: bool = True) -> None:
    fixed = [lme4_name(t) for t in fit.fixed_terms]
    assert fixed == list(ref["fixef"])
    close(fit.fixef, [ref["fixef"][t] for t in fixed])
    close(fit.fixef_se, [ref["fixef_se"][t] for t in fixed])
    close(fit.sigma, ref["sigma"])
    terms = [lme4_name(t) for t in fit.random_terms]
    q = len(terms)
    if "cov_re" in ref:
        assert terms == ref["cov_re_terms"]
        expected = np.asarray(ref["cov_re"], float).reshape(q, q)
    else:  # the shared sleepstudy files give VarCorr as rows
        expected = np.zeros((q, q))
        for row in ref["varcorr"]:
            if row["grp"] == "Residual":
                continue
            i = terms.index(row["var1"])
            k = i if row["var2"] is None else terms.index(row["var2"])
            expected[i, k] = expected[k, i] = row["vcov"]
    close(fit.cov_re, expected, atol=RTOL * np.abs(expected).max())
    if loglik:
        close(fit.loglik, ref["logLik"], rtol=1e-9)
    assert fit.boundary == ref["singular"]
    order = [str(g) for g in fit.groups]
    pos = [order.index(g) for g in ref["groups"]]
    for name, ours in (("ranef", fit.ranef()), ("ranef_sd", fit.ranef_sd()), ("coef", fit.coef())):
        for term in ours.columns:
            want = np.asarray(ref[name][lme4_name(term)], float)
            got = ours[term].to_numpy()[pos]
            close(got, want, atol=RTOL * np.abs(want).max())


def radon():
    return bs.load_dataset("radon")


def sleep():
    return bs.load_dataset("sleepstudy")


def sleep_phase():
    d = sleep()
    d["phase"] = np.where(d["Days"] < 2, "baseline", "deprived")
    return d


def sim(name):
    return pd.read_csv(REFERENCE / f"{name}.csv")


THREE = "y ~ x + x2 + (1 + x + x2 | g)"
CASES = [
    # lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
    ("sleepstudy_slopes", sleep, "Reaction ~ Days + (Days | Subject)", "reml"),
    # lmer(Reaction ~ Days + (1 | Subject), sleepstudy)
    ("sleepstudy_intercepts", sleep, "Reaction ~ Days + (1 | Subject)", "reml"),
    # lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
    ("lmm_sleepstudy_slopes_ML", sleep, "Reaction ~ Days + (Days | Subject)", "ml"),
    # lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy)
    (
        "lmm_sleepstudy_uncorrelated",
        sleep,
        "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
        "reml",
    ),
    # sleepstudy$phase <- ifelse(Days < 2, "baseline", "deprived")
    # lmer(Reaction ~ phase + (phase | Subject))   [a singular fit in lme4 too]
    ("lmm_sleepstudy_phase", sleep_phase, "Reaction ~ phase + (phase | Subject)", "reml"),
    # lmer(Reaction ~ 1 + (Days | Subject)): Days is a random-only term
    ("lmm_sleepstudy_random_only", sleep, "Reaction ~ 1 + (Days | Subject)", "reml"),
    # lmer(log_radon ~ floor + (1 | county), radon, REML = TRUE / FALSE)
    ("lmm_radon_floor_REML", radon, "log_radon ~ floor + (1 | county)", "reml"),
    ("lmm_radon_floor_ML", radon, "log_radon ~ floor + (1 | county)", "ml"),
    # lmer(log_radon ~ floor + log_uranium + (1 | county), radon, REML = TRUE / FALSE)
    ("lmm_radon_uranium_REML", radon, "log_radon ~ floor + log_uranium + (1 | county)", "reml"),
    ("lmm_radon_uranium_ML", radon, "log_radon ~ floor + log_uranium + (1 | county)", "ml"),
    # lmer(log_radon ~ floor + (1 + floor | county), radon, REML = TRUE / FALSE)
    ("lmm_radon_slopes_REML", radon, "log_radon ~ floor + (1 + floor | county)", "reml"),
    ("lmm_radon_slopes_ML", radon, "log_radon ~ floor + (1 + floor | county)", "ml"),
    # lmer(y ~ x + x2 + (1 + x + x2 | g), lmm_sim_three_terms.csv, REML = TRUE / FALSE)
    ("lmm_sim_three_terms", lambda: sim("lmm_sim_three_terms"), THREE, "reml"),
    ("lmm_sim_three_terms_ML", lambda: sim("lmm_sim_three_terms"), THREE, "ml"),
    # boundary covariances: lmer(y ~ x + (x | g), lmm_sim_zero_slope.csv / lmm_sim_corr_one.csv)
    ("lmm_sim_zero_slope", lambda: sim("lmm_sim_zero_slope"), "y ~ x + (x | g)", "reml"),
    ("lmm_sim_corr_one", lambda: sim("lmm_sim_corr_one"), "y ~ x + (x | g)", "reml"),
    # 3 groups, 11 rows: the optimum is inside, next to a stationary point on the boundary
    ("lmm_sim_tiny", lambda: sim("lmm_sim_tiny"), "y ~ x + (x | g)", "reml"),
]


IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("ref_name", "data", "formula", "method"), CASES, ids=IDS)
def test_matches_lme4(ref_name, data, formula, method):
    ref = load_ref(ref_name)
    fit = fit_formula(data(), formula, method)  # always the general estimator
    check_against_lme4(fit, ref)
    if "theta" in ref:
        # getME(m, "theta"): same parametrisation, same order
        theta = np.asarray(ref["theta"], float)
        close(fit.theta, theta, atol=RTOL * np.abs(theta).max())


@pytest.mark.parametrize("ref_name", ["lmm_sim_zero_slope", "lmm_sim_corr_one"])
def test_boundary_fits_are_singular(ref_name):
    # isSingular(m) is TRUE and the covariance of (intercept, slope) has rank 1: |corr| = 1
    fit = fit_formula(sim(ref_name), "y ~ x + (x | g)")
    assert fit.boundary
    assert fit.theta[2] == 0.0
    assert abs(abs(fit.corr_re.iloc[0, 1]) - 1.0) < 1e-12
    assert "Boundary (singular) fit" in fit.summary()


def test_published_radon_numbers():
    # Gelman & Hill (2007) section 12.4: lmer(y ~ x + (1 | county)): 1.46, -0.69, 0.33, 0.76
    fit = bs.fit(radon(), formula="log_radon ~ floor + (1 | county)")
    assert isinstance(fit, MixedFit)
    assert fit.fixef.round(2).tolist() == [1.46, -0.69]
    assert round(fit.sd_re["Intercept"], 2) == 0.33
    assert round(fit.sigma, 2) == 0.76


# ---------------------------------------------------------------- one model, two code paths


def test_intercept_only_formula_is_the_one_way_fit(seed_demo):
    d = seed_demo[seed_demo["model"] == "2"]
    by_columns = bs.fit(d, y="y", group="group")
    by_formula = bs.fit(d, formula="y ~ 1 + (1 | group)")
    assert type(by_formula) is type(by_columns)
    pd.testing.assert_frame_equal(by_formula.table(), by_columns.table())
    assert (by_formula.mu, by_formula.tau, by_formula.sigma) == (
        by_columns.mu,
        by_columns.tau,
        by_columns.sigma,
    )
    assert (
        bs.fit(d, formula="y ~ (1 | group)", method="ml").tau
        == bs.fit(d, y="y", group="group", method="ml").tau
    )


@pytest.mark.parametrize("model", ["1", "2", "3", "1b"])
@pytest.mark.parametrize("method", ["reml", "ml"])
def test_general_estimator_agrees_with_one_way(seed_demo, model, method):
    # Two independent optimisers of the same criterion: brentq on the 1-D score, and L-BFGS-B +
    # Newton on theta. Both stop at machine precision in the score, so they agree to ~1e-9.
    d = seed_demo[seed_demo["model"] == model]
    one = bs.fit(d, y="y", group="group", method=method)
    gen = fit_formula(d, "y ~ 1 + (1 | group)", method)
    close(gen.fixef["Intercept"], one.mu, rtol=1e-9)
    close(gen.fixef_se["Intercept"], one.mu_se, rtol=1e-8)
    close(gen.sigma, one.sigma, rtol=1e-9)
    close(np.sqrt(gen.cov_re.iloc[0, 0]), one.tau, rtol=1e-8, atol=1e-10 * one.sigma)
    close(gen.coef()["Intercept"], one.coef()["Intercept"], rtol=1e-9)
    close(
        gen.ranef_sd()["Intercept"], one.ranef_sd()["Intercept"], rtol=1e-8, atol=1e-10 * one.sigma
    )
    close(gen.loglik, one.loglik, rtol=1e-12)
    close(gen.pred_sd()["Intercept"], one.pred_sd()["Intercept"], rtol=1e-8, atol=1e-10 * one.sigma)
    assert gen.boundary == one.boundary
    # lme4's accessors on the one-way result mean the same things
    pd.testing.assert_frame_equal(one.coef(), gen.coef()[["Intercept"]], rtol=1e-8)
    close(one.ranef()["Intercept"], gen.ranef()["Intercept"], atol=1e-8 * one.sigma)
    close(one.ranef_sd()["Intercept"], gen.ranef_sd()["Intercept"], rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- the Bayesian reading


def test_blup_is_the_posterior_mean_under_the_plugin_prior():
    # prior b_j ~ N(0, cov_re); likelihood of b_j centred at (own fit - fixef) with covariance
    # sigma^2 (Z_j'Z_j)^-1; their product is N(ranef, ranef_cov) to rounding.
    fit = bs.fit(sleep(), formula="Reaction ~ Days + (Days | Subject)")
    prior_prec = np.linalg.inv(fit.cov_re.to_numpy())
    own = (fit.own_fit() - fit.fixef[fit.random_terms]).to_numpy()
    d = sleep()
    for j, (subject, rows) in enumerate(d.groupby("Subject")):
        Z = np.column_stack([np.ones(len(rows)), rows["Days"]])
        lik_prec = Z.T @ Z / fit.sigma**2
        post_cov = np.linalg.inv(prior_prec + lik_prec)
        post_mean = post_cov @ lik_prec @ own[j]
        assert fit.groups[j] == subject
        close(post_mean, fit.ranef().to_numpy()[j], rtol=1e-9, atol=1e-9)
        close(post_cov, fit.ranef_cov()[j], rtol=1e-9, atol=1e-9)
        close(np.sqrt(np.diag(np.linalg.inv(lik_prec))), fit.own_se().to_numpy()[j], rtol=1e-9)


def test_own_fit_is_per_group_least_squares():
    # lmList(Reaction ~ Days | Subject): every fixed term has a random part, so the "own fit"
    # is each subject's own regression line.
    d = sleep()
    fit = bs.fit(d, formula="Reaction ~ Days + (Days | Subject)")
    own = fit.own_fit()
    for subject, rows in d.groupby("Subject"):
        slope, intercept = np.polyfit(rows["Days"], rows["Reaction"], 1)
        close(own.loc[subject].to_numpy(), [intercept, slope], rtol=1e-10)
    # coef() sits between the own fit and the population line, term by term here
    shrink = fit.shrinkage()
    assert ((shrink > 0) & (shrink < 1)).all().all()


def test_categorical_covariate_and_functions():
    d = sleep()
    d["phase"] = np.where(d["Days"] < 2, "baseline", "deprived")
    fit = bs.fit(d, formula="log(Reaction) ~ phase + (1 | Subject)")
    assert fit.fixed_terms == ["Intercept", "phase[deprived]"]
    # the same model with the dummy written out by hand
    d["deprived"] = (d["phase"] == "deprived").astype(float)
    d["logR"] = np.log(d["Reaction"])
    by_hand = bs.fit(d, formula="logR ~ deprived + (1 | Subject)")
    close(fit.fixef.to_numpy(), by_hand.fixef.to_numpy(), rtol=1e-10)
    close(fit.cov_re.to_numpy(), by_hand.cov_re.to_numpy(), rtol=1e-8)


def test_results_display_and_export():
    fit = bs.fit(sleep(), formula="Reaction ~ Days + (Days | Subject)")
    text = fit.summary()
    assert "Linear mixed model fit by REML" in text
    assert "REML criterion 1743.6283" in text  # lme4 prints: REML criterion at convergence: 1743.6
    assert "Subject, 18 levels" in text
    assert fit._repr_html_().startswith("<div>") and "Days" in fit._repr_html_()
    assert "MixedFit('Reaction ~ Days" in repr(fit)
    d = fit.to_dict()
    assert d["random_terms"] == ["Intercept", "Days"] and len(d["coef"]["Days"]) == 18
    t = fit.table("Days")
    assert list(t.columns) == [
        "n",
        "no_pooling",
        "se",
        "shrinkage",
        "blup",
        "cond_sd",
        "pred_sd",
        "prior_mean",
        "prior_sd",
    ]
    close(t["blup"], fit.coef()["Days"], rtol=0)
    close(t["prior_mean"], fit.fixef["Days"], rtol=0)


def test_linear_in_rows_order_and_shift():
    # equivariance: row order does not matter; shifting y moves only the intercept
    d = sleep()
    fit = bs.fit(d, formula="Reaction ~ Days + (Days | Subject)")
    shuffled = d.sample(frac=1.0, random_state=1)
    shuffled["Reaction"] = shuffled["Reaction"] + 1e6
    moved = bs.fit(shuffled, formula="Reaction ~ Days + (Days | Subject)")
    close(moved.fixef["Intercept"] - 1e6, fit.fixef["Intercept"], rtol=1e-9)
    close(moved.fixef["Days"], fit.fixef["Days"], rtol=1e-7)
    close(moved.cov_re.to_numpy(), fit.cov_re.to_numpy(), rtol=1e-6)


# ---------------------------------------------------------------- bad input


def _with(d, **cols):
    return d.assign(**cols)


BAD = [
    (lambda d: d, "Reaction ~ Dayz + (Days | Subject)", bs.ColumnError, "did you mean 'Days'"),
    (
        lambda d: _with(d, R=d["Reaction"].astype(str)),
        "R ~ Days + (Days | Subject)",
        bs.DataTypeError,
        "response 'R' must be numeric",
    ),
    (
        lambda d: _with(d, D2=2 * d["Days"]),
        "Reaction ~ Days + D2 + (Days | Subject)",
        bs.DataError,
        "rank deficient: 'D2'",
    ),
    (
        lambda d: _with(d, c=1.0),
        "Reaction ~ Days + c + (Days | Subject)",
        bs.DataError,
        "rank deficient: 'c'",
    ),
    (
        lambda d: _with(d, level=d["Subject"].astype(int) % 7),
        "Reaction ~ Days + (1 + level | Subject)",
        bs.DataError,
        "no level of Subject has data that can separate",
    ),
    (
        lambda d: d.groupby("Subject").head(2),
        "Reaction ~ Days + (Days | Subject)",
        bs.DataError,
        "more random effects",
    ),
    (
        # several grouping factors are fitted (tests/test_multi.py); Days:Subject has one row
        # per level, so its variance cannot be told apart from the residual
        lambda d: d,
        "Reaction ~ Days + (1 | Subject/Days)",
        bs.DataError,
        r"more random effects for 'Days:Subject' \(1 terms x 180 levels",
    ),
    (lambda d: d, "Reaction ~ Days", bs.DataError, "random-effects term"),
    (lambda d: d, "Reaction ~ Days + (Days || Subject)", bs.DataError, r"\(1 \| g\) \+ \(0 \+ x"),
    (lambda d: d, "Reaction Days", bs.DataError, "must be a string such as"),
    (
        lambda d: d,
        "Reaction ~ Days + (1 | Subject) + (1 | Subject)",
        bs.DataError,
        "repeats a random term",
    ),
    (
        lambda d: _with(d, Reaction=d["Reaction"].where(d.index != 3)),
        "Reaction ~ Days + (Days | Subject)",
        bs.DataError,
        "row 3 holds NaN",
    ),
    (
        lambda d: _with(d, Reaction=d["Reaction"].where(d.index != 7, 0.0)),
        "log(Reaction) ~ Days + (Days | Subject)",
        bs.DataError,
        "give NaN or inf in row 7",
    ),
]


@pytest.mark.parametrize(("make", "formula", "error", "match"), BAD, ids=[b[3] for b in BAD])
def test_bad_input_gets_a_clear_error(make, formula, error, match):
    with pytest.raises(error, match=match):
        bs.fit(make(sleep()), formula=formula)


def test_missing_drop_warns_and_fits_the_rest():
    d = sleep()
    d.loc[[3, 40], "Days"] = np.nan
    with pytest.warns(bs.RowsDroppedWarning, match="left out 2 of 180 rows"):
        fit = bs.fit(d, formula="Reaction ~ Days + (Days | Subject)", missing="drop")
    assert fit.n_obs == 178
    clean = bs.fit(d.dropna(), formula="Reaction ~ Days + (Days | Subject)")
    close(fit.fixef, clean.fixef, rtol=1e-12)


def test_formula_and_columns_are_exclusive():
    with pytest.raises(bs.MethodError, match="either `formula` or `y` and `group`"):
        bs.fit(sleep(), y="Reaction", group="Subject", formula="Reaction ~ (1 | Subject)")
    with pytest.raises(bs.MethodError, match="needs `y` and `group`"):
        bs.fit(sleep(), y="Reaction")
    with pytest.raises(bs.MethodError, match="'reml' or 'ml' for a mixed model"):
        bs.fit(sleep(), formula="Reaction ~ Days + (Days | Subject)", method="dl")


def test_engine_frames_are_accepted():
    pl = pytest.importorskip("polars")
    d = sleep()
    formula = "Reaction ~ Days + (Days | Subject)"
    ref = bs.fit(d, formula=formula)
    for frame in (pl.from_pandas(d), pl.from_pandas(d).lazy()):
        got = bs.fit(frame, formula=formula)
        close(got.fixef, ref.fixef, rtol=1e-12)
        close(got.coef().to_numpy(), ref.coef().to_numpy(), rtol=1e-12)


def test_fit_objects_pickle_and_compare_by_identity():
    import pickle

    fit = bs.fit(sleep(), formula="Reaction ~ Days + (Days | Subject)")
    again = pickle.loads(pickle.dumps(fit))
    pd.testing.assert_frame_equal(again.coef(), fit.coef())
    assert fit == fit and fit != again  # identity, as ShrinkageFit: no elementwise array compare
