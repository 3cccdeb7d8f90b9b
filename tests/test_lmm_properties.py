"""Invariants of the general mixed-model estimator, checked on random data sets (hypothesis).

* the estimate is the optimum: the projected gradient of the criterion in theta is at rounding
  level, and no small move of theta (inside the parameter space) lowers the criterion;
* equivariance: rescaling and shifting y rescales beta, sigma and cov_re and leaves theta alone;
* row order does not matter.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayeshrink.lmm import fit_formula
from bayeshrink.lmm.estimate import ProfiledCriterion

# derandomized: CI sees the same examples every run (a wider random search is run by hand,
# `BAYESHRINK_HYPOTHESIS_EXAMPLES=2000 pytest tests/test_lmm_properties.py`)
EXAMPLES = int(os.environ.get("BAYESHRINK_HYPOTHESIS_EXAMPLES", "100"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 100,
    suppress_health_check=[HealthCheck.too_slow],
)
FORMULA = "y ~ x + (x | g)"


@st.composite
def slope_data(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n_groups = draw(st.integers(3, 12))
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 9, size=n_groups)  # N > 2 J: the random effects are identifiable
    g = np.repeat([f"g{j:02d}" for j in range(n_groups)], sizes)
    x = rng.normal(size=g.size)
    sd_int, sd_slope = draw(st.sampled_from([(1.0, 0.5), (1.0, 0.0), (0.0, 0.0), (3.0, 2.0)]))
    codes = np.repeat(np.arange(n_groups), sizes)
    u0 = rng.normal(0, sd_int, n_groups)[codes]
    u1 = rng.normal(0, sd_slope, n_groups)[codes]
    y = 1.0 + 0.5 * x + u0 + u1 * x + rng.normal(size=g.size)
    return pd.DataFrame({"g": g, "x": x, "y": y})


@SETTINGS
@given(slope_data(), st.sampled_from(["reml", "ml"]))
def test_the_estimate_is_the_optimum(df, method):
    fit = fit_formula(df, FORMULA, method)
    crit = ProfiledCriterion(fit.design.stats, fit.design.block_sizes, method)
    theta = fit.theta
    f0, grad = crit.value_and_grad(theta)
    at_bound = crit.diag & (theta == 0.0)
    # on the boundary the gradient may point outward (into theta_kk < 0), nowhere else
    assert np.all(grad[at_bound] >= -1e-6)
    assert np.max(np.abs(np.where(at_bound, 0.0, grad))) < 1e-5 * max(1.0, abs(f0))
    rng = np.random.default_rng(0)
    for _ in range(20):
        step = rng.normal(size=theta.size) * 1e-3
        trial = theta + step
        trial[crit.diag] = np.maximum(trial[crit.diag], 0.0)
        assert crit.value(trial) >= f0 - 1e-9 * abs(f0)


@SETTINGS
@given(slope_data(), st.floats(0.01, 100.0), st.floats(-1e3, 1e3))
def test_equivariance_in_y(df, scale, shift):
    fit = fit_formula(df, FORMULA)
    moved = fit_formula(df.assign(y=scale * df["y"] + shift), FORMULA)
    sd = fit.sigma
    np.testing.assert_allclose(moved.sigma, scale * sd, rtol=1e-6)
    np.testing.assert_allclose(
        moved.fixef["Intercept"],
        scale * fit.fixef["Intercept"] + shift,
        rtol=1e-6,
        atol=1e-6 * scale * sd,
    )
    np.testing.assert_allclose(moved.fixef["x"], scale * fit.fixef["x"], atol=1e-5 * scale * sd)
    np.testing.assert_allclose(
        moved.cov_re().to_numpy(), scale**2 * fit.cov_re().to_numpy(), atol=1e-5 * (scale * sd) ** 2
    )
    assert moved.boundary == fit.boundary


@SETTINGS
@given(slope_data(), st.integers(0, 2**32 - 1))
def test_row_order_does_not_matter(df, seed):
    fit = fit_formula(df, FORMULA)
    shuffled = fit_formula(df.sample(frac=1.0, random_state=seed % 2**31), FORMULA)
    np.testing.assert_allclose(shuffled.theta, fit.theta, atol=1e-7)
    np.testing.assert_allclose(
        shuffled.coef().to_numpy(), fit.coef().to_numpy(), atol=1e-6 * fit.sigma
    )


# ---------------------------------------------------------------- right at any scale
# Covariates are centred and scaled inside the estimator and every estimate is mapped back, so
# the units of a covariate change only the numbers the answer is reported in, as the algebra
# says: a shift c of a covariate x (with the intercept in the same part of the model) leaves the
# criterion, sigma and the slope alone, moves the intercept by -c * slope and the intercept's
# random effect by -c * b_slope; a scale k moves the REML log-likelihood by exactly -log|k| (the
# log|X'V^-1 X| term) and the ML one not at all.

SLEEP_FORMULAS = ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"]


def _sleep():
    import bayeshrink as bs

    return bs.load_dataset("sleepstudy")


def _shifted_cov(cov: np.ndarray, c: float) -> np.ndarray:
    """Covariance of (b0 - c b1, b1) from that of (b0, b1); unchanged for a 1 x 1 cov."""
    if cov.shape[0] == 1:
        return cov
    C = np.array([[1.0, -c], [0.0, 1.0]])
    return C @ cov @ C.T


@pytest.mark.parametrize("formula", SLEEP_FORMULAS)
@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("shift", [200.0, 1000.0, 1e6, 1.7e9])  # 1.7e9: a Unix timestamp
def test_shifting_a_covariate_changes_only_the_intercept(formula, method, shift):
    d = _sleep()
    base = fit_formula(d, formula, method)
    moved = fit_formula(d.assign(Days=d["Days"] + shift), formula, method)
    np.testing.assert_allclose(moved.criterion, base.criterion, rtol=1e-12)
    np.testing.assert_allclose(moved.sigma, base.sigma, rtol=1e-9)
    np.testing.assert_allclose(moved.fixef["Days"], base.fixef["Days"], rtol=1e-9)
    np.testing.assert_allclose(
        moved.fixef["Intercept"],
        base.fixef["Intercept"] - shift * base.fixef["Days"],
        rtol=1e-9,
        atol=1e-9 * shift * abs(base.fixef["Days"]),
    )
    expected = _shifted_cov(base.cov_re().to_numpy(), shift)
    np.testing.assert_allclose(moved.cov_re().to_numpy(), expected, rtol=1e-7)
    np.testing.assert_allclose(moved.fixef_se["Days"], base.fixef_se["Days"], rtol=1e-8)
    assert moved.boundary == base.boundary


@SETTINGS
@given(
    st.sampled_from([*SLEEP_FORMULAS, "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"]),
    st.sampled_from(["reml", "ml"]),
    st.integers(-6, 6),
    st.floats(0.1, 1.0),
    st.booleans(),
)
def test_scaling_a_covariate_moves_the_loglik_by_log_k(formula, method, exponent, mantissa, neg):
    k = (-1.0 if neg else 1.0) * mantissa * 10.0**exponent
    d = _sleep()
    base = fit_formula(d, formula, method)
    moved = fit_formula(d.assign(Days=d["Days"] * k), formula, method)
    expected = base.loglik - (np.log(abs(k)) if method == "reml" else 0.0)
    np.testing.assert_allclose(moved.loglik, expected, rtol=1e-11)
    np.testing.assert_allclose(moved.sigma, base.sigma, rtol=1e-9)
    np.testing.assert_allclose(moved.fixef["Days"] * k, base.fixef["Days"], rtol=1e-9)
    factor = pd.Series({t: abs(k) if t == "Days" else 1.0 for t in base.random_terms})
    np.testing.assert_allclose(moved.sd_re() * factor, base.sd_re(), rtol=1e-7)
    assert moved.boundary == base.boundary


NEAR = json.loads((REFERENCE / "lmm_near_boundary.json").read_text())


@pytest.mark.parametrize("case", sorted(NEAR))
def test_near_boundary_fits_are_never_worse_than_lme4(case):
    # logLik(lmer(formula, d, REML = TRUE)), with lme4's default optimiser and with bobyqa at
    # rhoend 2e-12 (tests/reference/make_near_boundary_references.R); the optimum is at least as
    # high as the better of the two, up to lme4's own precision (~1e-8 in the criterion)
    ref = NEAR[case]
    d = pd.read_csv(REFERENCE / "lmm_near_boundary.csv.gz")
    d = d[d["case"] == int(case)]
    fit = fit_formula(d, ref["formula"], "reml")
    best = max(ref["logLik_default"], ref["logLik_bobyqa"])
    assert fit.loglik >= best - 1e-7
    if fit.loglik - best < 1e-6:  # the same optimum: the same verdict on the boundary
        assert fit.boundary == ref["singular"]


@pytest.mark.parametrize("noise", [1e-3, 1e-6])
def test_a_near_perfect_fixed_part_does_not_cancel_the_residuals(noise):
    # y = 5 + 3 x + b_g + e with x spread over +-1e3 and b_g, e of size `noise`: R^2 = 1 - 1e-12
    # or closer. The fixed effects are free, so fitting y - 5 - 3 x must give the same sigma and
    # variance ratio; forming the penalised RSS as y'y - beta'X'y would lose them.
    rng = np.random.default_rng(3)
    J, n = 40, 6
    g = np.repeat(np.arange(J), n)
    x = rng.normal(0, 1e3, J * n)
    e = noise * (rng.normal(size=J)[g] + rng.normal(size=J * n))
    d = pd.DataFrame({"g": g.astype(str), "x": x, "y": 5 + 3 * x + e, "r": e})
    full = fit_formula(d, "y ~ x + (1 | g)")
    resid = fit_formula(d, "r ~ x + (1 | g)")
    np.testing.assert_allclose(full.sigma, resid.sigma, rtol=1e-6)
    np.testing.assert_allclose(full.theta, resid.theta, rtol=1e-6)
    np.testing.assert_allclose(full.fixef["x"] - 3.0, resid.fixef["x"], atol=1e-6 * noise)
