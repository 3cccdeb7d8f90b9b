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
    from bayeshrink.inference import model_of

    p = model_of(crossed)
    beta, sigma, covs, converged = p.backend.refit(p, crossed.design.y)
    assert converged
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


# ---------------------------------------------------------------------------- offsets
@pytest.mark.parametrize(
    "case, csv",
    [("sleepstudy", None), ("sim_crossed", "multi_sim_crossed.csv")],
)
def test_fitted_and_resid_with_an_offset_match_lme4(case, csv, sleep):
    # fitted(m); residuals(m) of lme4 fits with an offset() term, which fitted() includes
    # (make_afterfit_offset_simulate_references.R): one factor and two crossed factors
    r = json.loads((REF / "afterfit_offsets.json").read_text())[case]
    data = sleep if csv is None else pd.read_csv(REF / csv, dtype={"subj": str, "item": str})
    m = bs.fit(data, formula=r["formula"])
    scale = np.abs(r["fitted"]).max()
    np.testing.assert_allclose(m.fitted(data), r["fitted"], rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(m.resid(data), r["residuals"], rtol=0, atol=1e-6 * scale)


# ---------------------------------------------------------------------------- simulate, lme4
def test_simulate_moments_match_lme4_simulate_on_penicillin(crossed, pen):
    """Row means, variances and covariances (same plate, same sample, neither) of our
    simulate() against those of lme4's simulate(m, nsim = 20000): both are Monte Carlo
    estimates, so each difference is judged by the two runs' standard errors together."""
    r = ref("simulate_penicillin")
    n_ours, n_r = 4000, r["nsim"]
    sims = crossed.simulate(n_ours, seed=11).to_numpy()
    mean, var = sims.mean(axis=1), sims.var(axis=1, ddof=1)
    v_r = np.asarray(r["var"])
    z_mean = (mean - r["mean"]) / np.sqrt(v_r * (1 / n_ours + 1 / n_r))
    se_var = np.sqrt((np.asarray(r["fourth"]) - v_r**2) * (1 / n_ours + 1 / n_r))
    z_var = (var - v_r) / se_var
    assert np.abs(z_mean).max() < 4.5 and np.abs(z_var).max() < 4.5, (z_mean, z_var)
    for j, c_r in zip(r["pairs"], r["cov"], strict=True):
        c = np.cov(sims[0], sims[j])[0, 1]
        se = np.sqrt((v_r[0] * v_r[j] + c_r**2) * (1 / n_ours + 1 / n_r))
        assert abs(c - c_r) < 4.5 * se, (j, c, c_r)


# ---------------------------------------------------------------------------- one model API
@pytest.fixture(scope="module")
def two_backends(sleep):
    """One model through both backends of the model API: per-group cross-products (bs.fit's
    one-factor fit) and rows (the several-factor estimator given one factor)."""
    from bayeshrink.lmm.multi import fit_multi

    f = "Reaction ~ Days + (Days | Subject)"
    return bs.fit(sleep, formula=f), fit_multi(sleep, f)


def test_two_backends_give_the_same_after_fit_numbers(two_backends, sleep):
    # both are exact computations at estimates that agree to ~1e-10 (two estimators): 1e-8
    groups, rows = two_backends
    assert type(groups).__name__ == "MixedFit" and type(rows).__name__ == "MultiFit"
    new = pd.DataFrame({"Subject": [308, 999], "Days": [4.5, 4.5]})
    for interval in ("prediction", "confidence"):
        a = groups.predict(new, allow_new_levels=True, interval=interval)
        b = rows.predict(new, allow_new_levels=True, interval=interval)
        np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(rows.fitted(), groups.fitted(sleep), rtol=1e-8)
    np.testing.assert_allclose(rows.resid(), groups.resid(sleep), rtol=1e-8, atol=1e-8)
    assert groups.n_params == rows.n_params == 6
    a = groups.confint(["cor_Days.(Intercept)|Subject", "Days"], method="profile")
    b = rows.confint(["cor_Days.(Intercept)|Subject", "Days"], method="profile")
    pd.testing.assert_frame_equal(a, b, rtol=1e-8)


def test_two_backends_bootstrap_one_distribution(sleep):
    """bootMer through the cross-product draws and through simulated rows: the same
    distribution (means within 4 Monte Carlo SEs of their difference, sqrt(2 / n) SD)."""
    from bayeshrink.lmm.multi import fit_multi

    f = "Reaction ~ Days + (1 | Subject)"
    n = 300
    a = bs.inference.bootstrap(bs.fit(sleep, formula=f), n_boot=n, random_seed=1)
    b = bs.inference.bootstrap(fit_multi(sleep, f), n_boot=n, random_seed=2)
    assert list(a.columns) == list(b.columns)
    sd = a.std().to_numpy()
    z = (a.mean().to_numpy() - b.mean().to_numpy()) / (sd * np.sqrt(2 / n))
    assert np.abs(z).max() < 4.0, z
    # and the SDs: the SE of a sample SD is about SD / sqrt(2 (n - 1))
    z_sd = (a.std().to_numpy() - b.std().to_numpy()) / (sd * np.sqrt(2 / (2 * (n - 1))))
    assert np.abs(z_sd).max() < 4.0, z_sd


def test_model_api_bad_input(crossed, slopes):
    from bayeshrink.inference import model_of

    p = model_of(crossed)
    assert [t.name for t in p.terms] == crossed.factors
    with pytest.raises(bs.errors.ColumnError, match=r"`factor` must name one of .*'plate'"):
        p.term()
    with pytest.raises(bs.errors.ColumnError, match=r"`factor` must be one of .*got 'batch'"):
        p.term("batch")
    assert model_of(slopes).term().name == "Subject"
    with pytest.raises(DataTypeError, match=r"`fit` must be a fitted model"):
        model_of(object())
