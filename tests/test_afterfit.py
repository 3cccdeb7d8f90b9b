"""lme4's row-level after-fit methods on every fit: fitted(), resid(), simulate().

References: tests/reference/make_afterfit_references.R (lme4 1.1-31, tight bobyqa). simulate()
is checked by its moments against what the fitted model implies, within Monte Carlo error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs
from bayeshrink.errors import DataError, DataTypeError

REF = Path(__file__).parent / "reference"


def ref(name: str) -> dict:
    return json.loads((REF / f"afterfit_{name}.json").read_text())


@pytest.fixture(scope="module")
def sleep():
    return bs.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def slopes(sleep):
    return bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")


@pytest.fixture(scope="module")
def pen():
    return bs.load_dataset("penicillin")


@pytest.fixture(scope="module")
def crossed(pen):
    return bs.fit(pen, formula="diameter ~ 1 + (1 | plate) + (1 | sample)")


# ---------------------------------------------------------------------------- fitted, resid
def test_fitted_and_resid_match_lme4_on_sleepstudy_slopes(slopes, sleep):
    r = ref("sleepstudy_slopes")
    scale = np.abs(r["fitted"]).max()
    # fitted(m); residuals(m) for m <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
    np.testing.assert_allclose(slopes.fitted(sleep), r["fitted"], rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(slopes.resid(sleep), r["residuals"], rtol=0, atol=1e-6 * scale)
    assert slopes.fitted(sleep).index.equals(sleep.index)


def test_fitted_and_resid_match_lme4_on_penicillin(crossed, pen):
    r = ref("penicillin")
    scale = np.abs(r["fitted"]).max()
    # fitted(m); residuals(m) for m <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)
    np.testing.assert_allclose(crossed.fitted(), r["fitted"], rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(crossed.resid(), r["residuals"], rtol=0, atol=1e-6 * scale)
    # the fit's own rows and the same rows passed again: two of our own paths
    np.testing.assert_allclose(crossed.fitted(pen), crossed.fitted(), rtol=1e-12)
    np.testing.assert_allclose(crossed.resid(pen), crossed.resid(), rtol=1e-12, atol=1e-12)


def test_one_way_fitted_is_the_groups_blup(sleep):
    fit = bs.fit(sleep, formula="Reaction ~ 1 + (1 | Subject)")
    blup = fit.coef()["Intercept"]
    np.testing.assert_allclose(fit.fitted(sleep), blup.loc[sleep["Subject"]].to_numpy(), rtol=1e-13)
    np.testing.assert_allclose(fit.resid(sleep), sleep["Reaction"] - fit.fitted(sleep), rtol=1e-13)


def test_fitted_needs_the_rows_of_a_one_factor_fit(slopes, sleep):
    with pytest.raises(DataError, match=r"`data` must be given for a one-factor fit"):
        slopes.fitted()
    new = sleep.head(3).assign(Subject=999)
    with pytest.raises(DataError, match=r"`data` must hold levels of 'Subject' seen in the fit"):
        slopes.fitted(new)
    with pytest.raises(DataError, match=r"`data` must hold the response 'Reaction'"):
        slopes.resid(sleep.drop(columns="Reaction"))


# ---------------------------------------------------------------------------- simulate
NSIM = 4000


def _check_moments(sims: pd.DataFrame, mean, cov, pairs) -> None:
    """Row means, variances and the covariances of ``pairs`` of rows against the model's,
    each within 5 Monte Carlo standard errors (normal draws)."""
    y = sims.to_numpy()
    n = y.shape[1]
    v = np.diag(cov)
    z_mean = (y.mean(axis=1) - mean) / np.sqrt(v / n)
    assert np.abs(z_mean).max() < 5.0
    z_var = (y.var(axis=1, ddof=1) - v) / (v * np.sqrt(2.0 / (n - 1)))
    assert np.abs(z_var).max() < 5.0
    for i, j in pairs:
        c = np.cov(y[i], y[j])[0, 1]
        se = np.sqrt((v[i] * v[j] + cov[i, j] ** 2) / n)
        assert abs(c - cov[i, j]) < 5.0 * se, (i, j, c, cov[i, j])


def test_simulate_has_the_moments_of_the_fitted_model_slopes(slopes, sleep):
    sims = slopes.simulate(NSIM, seed=20261206, data=sleep)
    assert list(sims.columns[:2]) == ["sim_1", "sim_2"] and sims.shape == (len(sleep), NSIM)
    X = np.c_[np.ones(len(sleep)), sleep["Days"]]
    G = slopes.cov_re().to_numpy()
    same = sleep["Subject"].to_numpy()[:, None] == sleep["Subject"].to_numpy()[None, :]
    cov = same * (X @ G @ X.T) + slopes.sigma**2 * np.eye(len(sleep))
    mean = X @ slopes.fixef.to_numpy()
    # rows 0 and 9: one subject's first and last day; rows 0 and 10: two subjects (0)
    _check_moments(sims, mean, cov, [(0, 9), (3, 4), (0, 10)])


def test_simulate_redraws_each_crossed_factor(crossed, pen):
    sims = crossed.simulate(NSIM, seed=7)
    plate = pen["plate"].to_numpy()
    sample = pen["sample"].to_numpy()
    s2p = crossed.cov_re("plate").iloc[0, 0]
    s2s = crossed.cov_re("sample").iloc[0, 0]
    cov = (
        s2p * (plate[:, None] == plate[None, :])
        + s2s * (sample[:, None] == sample[None, :])
        + crossed.sigma**2 * np.eye(len(pen))
    )
    mean = np.full(len(pen), crossed.fixef.iloc[0])
    same_plate = int(np.flatnonzero((plate == plate[0]) & (sample != sample[0]))[0])
    same_sample = int(np.flatnonzero((plate != plate[0]) & (sample == sample[0]))[0])
    neither = int(np.flatnonzero((plate != plate[0]) & (sample != sample[0]))[0])
    _check_moments(sims, mean, cov, [(0, same_plate), (0, same_sample), (0, neither)])


def test_simulate_one_way_and_reproducibility(sleep):
    fit = bs.fit(sleep, y="Reaction", group="Subject")
    a = fit.simulate(3, seed=1, data=sleep)
    pd.testing.assert_frame_equal(a, fit.simulate(3, seed=1, data=sleep))
    assert not np.allclose(a.to_numpy(), fit.simulate(3, seed=2, data=sleep).to_numpy())
    sims = fit.simulate(NSIM, seed=3, data=sleep)
    g = sleep["Subject"].to_numpy()
    cov = fit.tau2 * (g[:, None] == g[None, :]) + fit.sigma2 * np.eye(len(sleep))
    _check_moments(sims, np.full(len(sleep), fit.mu), cov, [(0, 1), (0, 10)])


@pytest.mark.parametrize("nsim", [0, -2, 1.5, "3", True])
def test_simulate_bad_nsim(crossed, nsim):
    with pytest.raises(DataError, match=r"`nsim` must be an integer >= 1; got"):
        crossed.simulate(nsim)


def test_simulate_refuses_summary_data():
    schools = bs.load_dataset("eight_schools")
    fit = bs.fit_summary(schools, estimate="y", se="sigma", group="school")
    with pytest.raises(DataTypeError, match=r"`fit` must be fitted to long data"):
        fit.simulate(2, data=schools)


# ---------------------------------------------------------------------------- bootstrap, several
def test_dense_refit_is_the_fit(crossed):
    """The bootstrap's refit at the fitted response lands on the fit (two of our own paths; the
    refit's optimiser uses finite differences, which stop at ~1e-6 relative in theta)."""
    from bayeshrink.inference.bootstrap import DenseRefit

    beta, sigma, covs = DenseRefit(crossed).refit(crossed.design.y)
    np.testing.assert_allclose(beta, crossed.fixef, rtol=1e-9)
    np.testing.assert_allclose(sigma, crossed.sigma, rtol=1e-5)
    for cov, name in zip(covs, crossed.factors, strict=True):
        np.testing.assert_allclose(cov, crossed.cov_re(name), rtol=1e-5)


def test_bootstrap_confint_with_crossed_factors_matches_lme4(crossed):
    r = ref("penicillin")["bootstrap"]
    n_boot = 200
    ci = crossed.confint(method="bootstrap", n_boot=n_boot, random_seed=2026)
    # confint(m, method = "boot", nsim = 4000, seed = 101, oldNames = FALSE) in lme4, and the
    # density of bootMer's replicates at each bound (make_afterfit_references.R)
    assert list(ci.index) == r["parm"]
    assert ci.attrs["method"] == "bootstrap"
    p = 0.025
    for bound, q, dens in (("lo", r["q_lo"], r["dens_lo"]), ("hi", r["q_hi"], r["dens_hi"])):
        # Monte Carlo SE of an estimated quantile, ours (n_boot) and lme4's (nsim) together
        se = np.sqrt(p * (1 - p) * (1 / n_boot + 1 / r["nsim"])) / np.asarray(dens)
        z = (ci[bound].to_numpy() - np.asarray(q)) / se
        assert np.all(np.abs(z) < 4.0), (bound, z)


@pytest.mark.parametrize("n_boot", [0, 1, 2.5, "200"])
def test_bootstrap_with_several_factors_bad_n_boot(crossed, n_boot):
    with pytest.raises(DataError, match=r"`n_boot` must be an integer >= 2; got"):
        crossed.confint(method="bootstrap", n_boot=n_boot)


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.2, "0.95"])
def test_bootstrap_with_several_factors_bad_level(crossed, level):
    with pytest.raises(DataError, match=r"`level` must be a probability strictly between 0 and 1"):
        crossed.confint(method="bootstrap", level=level, n_boot=10)
