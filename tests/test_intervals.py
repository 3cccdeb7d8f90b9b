"""Intervals for the group effects: published values, closed forms, limiting cases, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import bayeshrink as bs
from bayeshrink.batchfit import fit_batch
from bayeshrink.data import GroupStats
from bayeshrink.errors import DataError, MethodError
from bayeshrink.estimate import estimate
from bayeshrink.intervals import METHODS, OneWayArrays, cva, interval_arrays, rho

Z975 = stats.norm.ppf(0.975)


@pytest.fixture(scope="module")
def demo_fit():
    demo = bs.load_dataset("seed_demo")
    return bs.fit(demo[demo["model"] == "2"], y="y", group="group")


@pytest.fixture(scope="module")
def schools():
    return bs.fit_summary(
        bs.load_dataset("eight_schools"), estimate="y", se="sigma", group="school"
    )


# --------------------------------------------------------------------------- the robust cva


# Armstrong, Kolesar & Plagborg-Moller's R package ebci (github.com/kolesarm/ebci),
# tests/testthat/test-cv.R, values published to the digits shown:
@pytest.mark.parametrize(
    ("m2", "kappa", "alpha", "published", "digits"),
    [
        (25.0, 3.0, 0.05, 11.88358367, 8),  # expect_equal(cva(m2=25, kappa=3)$cv, 11.88358367)
        (1.0, 3.0, 0.2, 1.8494683, 7),  # cva(m2=1, kappa=3, alpha=0.2)$cv
        (100.0, 3.0, 0.05, 24.86172217, 8),  # cva(10^2, 3)$cv
        (2.8**2, 8.0, 0.1, 7.0779747158, 10),  # cva(m2=2.8^2, alpha=0.1, kappa=8)$cv
    ],
)
def test_cva_matches_the_published_values(m2, kappa, alpha, published, digits):
    assert cva(m2, kappa, alpha) == pytest.approx(published, abs=0.6 * 10.0**-digits)


def test_rho_matches_the_published_values():
    # ebci test-cv.R: rho(m2=1, kappa=3, chi=11.9699639845401)$alpha == 6.0216e-05
    assert rho(1.0, 3.0, 11.9699639845401) == pytest.approx(6.0216e-05, abs=5e-10)
    # ebci test-cv.R: rho(2.8^2, 8, 7.1324290147839279896)$alpha == 0.09805099
    assert rho(2.8**2, 8.0, 7.1324290147839279896) == pytest.approx(0.09805099, abs=5e-9)


def test_cva_limits():
    # no bias: the normal critical value (ebci: cva(m2=0, ...)$cv == qnorm(1 - alpha/2))
    for kappa in (1.0, 4.0, math.inf):
        assert cva(0.0, kappa, 0.05) == pytest.approx(Z975, rel=1e-12)
    assert cva(0.0, 4.0, 0.2) == pytest.approx(stats.norm.ppf(0.9), rel=1e-12)
    # kappa = 1: a point mass at m2, so cva is the root of the noncentral chi^2_1(m2) quantile
    for m2, alpha in ((1.0, 0.05), (4.0, 0.1), (0.3, 0.2)):
        assert cva(m2, 1.0, alpha) == pytest.approx(
            math.sqrt(stats.ncx2.ppf(1 - alpha, 1, m2)), rel=1e-9
        )
    # ebci test-cv.R: the kurtosis bound does not bind at m2=4, kappa=20 nor m2=1, kappa=1e4
    assert cva(4.0, 20.0) == pytest.approx(cva(4.0, math.inf), rel=1e-9)
    assert cva(1.0, 1e4, 0.2) == pytest.approx(cva(1.0, math.inf, 0.2), rel=1e-9)
    # ... and binds at m2=0.25, kappa=15
    assert cva(0.25, 15.0) < cva(0.25, math.inf) - 1e-4
    # monotone in m2 and in kappa
    assert cva(0.5, 3.0) < cva(1.0, 3.0) < cva(1.0, 6.0) < cva(1.0, math.inf)


@pytest.mark.parametrize(
    ("m2", "kappa", "chi"), [(0.25, 15.0, 2.2), (1.0, 3.0, 3.0), (0.5, 2.0, 2.5)]
)
def test_rho_agrees_with_a_linear_program(m2, kappa, chi):
    """AKP's primal: maximize E r0(t) over distributions on a fine grid of t (scipy linprog)."""
    t0 = 4.0 * chi**2 + kappa * m2
    grid = np.unique(np.concatenate([np.linspace(0.0, t0, 4000), [m2]]))
    r0 = stats.norm.cdf(-chi - np.sqrt(grid)) + stats.norm.cdf(np.sqrt(grid) - chi)
    res = optimize.linprog(
        -r0,
        A_eq=np.vstack([np.ones_like(grid), grid]),
        b_eq=[1.0, m2],
        A_ub=(grid**2)[None, :],
        b_ub=[kappa * m2**2],
        bounds=(0, None),
        method="highs",
    )
    assert res.status == 0
    # the grid LP is a lower bound on the supremum; a fine grid is within ~1e-5 of it
    assert rho(m2, kappa, chi) == pytest.approx(-res.fun, abs=2e-5)
    assert rho(m2, kappa, chi) >= -res.fun - 1e-9


# --------------------------------------------------------------------------- closed forms


def _summary_arrays(y, se, mu, tau2, mu_se=0.0, method="reml"):
    y = np.asarray(y, float)[None]
    return OneWayArrays(
        data_kind="summary",
        method=method,
        y=y,
        se=np.broadcast_to(np.asarray(se, float), y.shape),
        mu=np.array([mu]),
        mu_se=np.array([mu_se]),
        tau2=np.array([tau2]),
        sigma2=np.array([np.nan]),
    )


def test_known_tau_and_mu_gives_the_exact_conjugate_posterior():
    y, se, mu, tau2 = np.array([1.0, -2.0, 0.5, 3.0]), np.array([1.0, 2.0, 0.5, 1.5]), 0.3, 0.8
    out = interval_arrays(_summary_arrays(y, se, mu, tau2), "cond", 0.9)
    prec = 1 / tau2 + 1 / se**2
    mean = (mu / tau2 + y / se**2) / prec
    lo, hi = stats.norm.interval(0.9, loc=mean, scale=np.sqrt(1 / prec))
    np.testing.assert_allclose(out["lo"][0], lo, rtol=1e-12)
    np.testing.assert_allclose(out["hi"][0], hi, rtol=1e-12)


def test_pred_is_the_exact_posterior_with_a_flat_prior_on_mu():
    """Known tau, mu flat: the joint Gaussian posterior of (theta, mu) by linear algebra."""
    y, se, tau2 = np.array([1.0, -2.0, 0.5, 3.0, 0.0]), np.array([1.0, 2.0, 0.5, 1.5, 1.0]), 0.8
    k = len(y)
    prec = np.zeros((k + 1, k + 1))  # (theta_1..k, mu)
    prec[:k, :k] = np.diag(1 / se**2 + 1 / tau2)
    prec[:k, k] = prec[k, :k] = -1 / tau2
    prec[k, k] = k / tau2
    cov = np.linalg.inv(prec)
    mean = cov @ np.r_[y / se**2, 0.0]
    w = 1 / (tau2 + se**2)
    mu_hat, mu_se = (w @ y) / w.sum(), math.sqrt(1 / w.sum())
    out = interval_arrays(_summary_arrays(y, se, mu_hat, tau2, mu_se), "pred", 0.95)
    np.testing.assert_allclose(out["estimate"][0], mean[:k], rtol=1e-12)
    np.testing.assert_allclose(out["sd"][0], np.sqrt(np.diag(cov)[:k]), rtol=1e-10)


def test_tau_to_infinity_gives_the_no_pooling_interval():
    rng = np.random.default_rng(3)
    se = rng.uniform(0.5, 2.0, 12)
    df = pd.DataFrame(
        {"g": [f"s{j:02d}" for j in range(12)], "y": rng.normal(0, 1e6, 12), "se": se}
    )
    fit = bs.fit_summary(df, estimate="y", se="se", group="g")
    own = fit.intervals(method="no-pooling")
    np.testing.assert_allclose(own["lo"], df["y"] - Z975 * se, rtol=1e-14, atol=1e-9)
    opts = {"bootstrap": {"n_boot": 50, "random_seed": 1}}
    for method in ("cond", "pred", "morris", "kass-steffey", "bootstrap", "robust"):
        iv = fit.intervals(method=method, **opts.get(method, {}))
        # O(se^2 / tau^2) ~ 1e-12 of the shrinkage, i.e. ~1e-6 absolute at y ~ 1e6
        np.testing.assert_allclose(iv["lo"], own["lo"], atol=1e-5, err_msg=method)
        np.testing.assert_allclose(iv["hi"], own["hi"], atol=1e-5, err_msg=method)


def test_morris_equal_variances_closed_form():
    """Morris (1983), equal V: B = (k-3)/(k-1) V/(V + A), A = max(0, S/(k-1) - V)."""
    rng = np.random.default_rng(5)
    k, V = 9, 0.7
    for spread in (0.3, 3.0):  # A = 0 (truncated) and A > 0
        y = rng.normal(0, spread, k)
        ybar, S = y.mean(), ((y - y.mean()) ** 2).sum()
        A = max(0.0, S / (k - 1) - V)
        B = (k - 3) / (k - 1) * V / (V + A)
        var = V * (1 - (k - 1) / k * B) + 2 / (k - 3) * B**2 * (y - ybar) ** 2
        out = interval_arrays(_summary_arrays(y, math.sqrt(V), 0.0, 1.0), "morris", 0.95)
        np.testing.assert_allclose(out["estimate"][0], y - B * (y - ybar), rtol=1e-12)
        np.testing.assert_allclose(out["sd"][0], np.sqrt(var), rtol=1e-10)
        if A > 0:  # untruncated: Morris's B = (k - 3) V / S
            assert B == pytest.approx((k - 3) * V / S, rel=1e-12)


def _explicit_reml_information(n, sigma2, tau2):
    """0.5 tr(P dV_a P dV_b) with the full N x N covariance of long data (an independent path)."""
    Z = np.repeat(np.eye(len(n)), n, axis=0)
    N = Z.shape[0]
    V = sigma2 * np.eye(N) + tau2 * Z @ Z.T
    Vi = np.linalg.inv(V)
    X = np.ones((N, 1))
    P = Vi - Vi @ X @ np.linalg.inv(X.T @ Vi @ X) @ X.T @ Vi
    dV = [Z @ Z.T, np.eye(N)]
    return np.array([[0.5 * np.trace(P @ a @ P @ b) for b in dV] for a in dV])


def test_kass_steffey_matches_an_explicit_delta_method(demo_fit):
    fit = demo_fit
    info = _explicit_reml_information(fit.stats.n, fit.sigma2, fit.tau2)
    cov = np.linalg.inv(info)

    def post_mean(mu, tau2, sigma2):
        se2 = sigma2 / fit.stats.n
        b = se2 / (se2 + tau2)
        return fit.stats.mean - b * (fit.stats.mean - mu)

    eta = np.array([fit.mu, fit.tau2, fit.sigma2])
    h = 1e-6 * np.maximum(np.abs(eta), 1.0)
    grads = np.array(
        [
            (post_mean(*(eta + h * e)) - post_mean(*(eta - h * e))) / (2 * h[i])
            for i, e in enumerate(np.eye(3))
        ]
    )  # (3, groups)
    t = fit.table()
    var = (
        t["cond_sd"].to_numpy() ** 2
        + grads[0] ** 2 * fit.mu_se**2
        + np.einsum("aj,ab,bj->j", grads[1:], cov, grads[1:])
    )
    iv = fit.intervals(method="kass-steffey")
    np.testing.assert_allclose(iv["sd"], np.sqrt(var), rtol=1e-7)  # central differences
    assert (iv["sd"] > t["pred_sd"]).all()


def test_kass_steffey_summary_information_is_reml(schools):
    # metafor-style REML information of tau^2: 0.5 tr(P P), P = W - w w' / sum(w)
    t = schools.table()
    w = 1 / (schools.tau2 + t["se"].to_numpy() ** 2)
    P = np.diag(w) - np.outer(w, w) / w.sum()
    info = 0.5 * np.trace(P @ P)
    resid = t["no_pooling"] - schools.mu
    g = resid * t["shrinkage"] / (schools.tau2 + t["se"] ** 2)
    expected = np.sqrt(t["pred_sd"] ** 2 + g**2 / info)
    np.testing.assert_allclose(schools.intervals(method="kass-steffey")["sd"], expected, rtol=1e-12)


def test_kass_steffey_is_positive_on_a_boundary_fit(schools):
    assert schools.boundary
    iv = schools.intervals(method="kass-steffey")
    assert (iv["half_width"] > schools.intervals(method="pred")["half_width"] + 1e-9).any()


def test_robust_follows_the_ebci_recipe(schools):
    """The AKP interval from its ingredients (weights 1/se^2, PMT-truncated moments)."""
    t = schools.table()
    y, se = t["no_pooling"].to_numpy(), t["se"].to_numpy()
    om = 1 / se**2
    mu = (om @ y) / om.sum()
    eps = y - mu
    mu2 = max(
        (om @ (eps**2 - se**2)) / om.sum(),
        2 * np.mean(om**2 * se**4) / (om.sum() * np.mean(om * se**2)),
    )
    w = mu2 / (mu2 + se**2)
    iv = schools.intervals(method="robust")
    np.testing.assert_allclose(iv["estimate"], mu + w * eps, rtol=1e-12)
    cvs = [cva(s**2 / mu2, math.inf, 0.05) for s in se]
    np.testing.assert_allclose(iv["half_width"], np.array(cvs) * w * se, rtol=1e-10)
    assert np.isinf(iv["kappa"]).all()
    tight = schools.intervals(method="robust", kurtosis=True)
    assert (tight["half_width"] <= iv["half_width"] + 1e-12).all()


# --------------------------------------------------------------------------- the fit method


@pytest.mark.parametrize("method", [m for m in METHODS if m != "full"])
def test_intervals_table_shape(demo_fit, schools, method):
    opts = {"n_boot": 30, "random_seed": 2} if method == "bootstrap" else {}
    for fit in (demo_fit, schools):
        iv = fit.intervals(method=method, **opts)
        assert iv.index.equals(fit.table().index)
        assert list(iv.columns[:4]) == ["estimate", "lo", "hi", "half_width"]
        assert (iv["lo"] <= iv["estimate"]).all() and (iv["estimate"] <= iv["hi"]).all()
        if not (method == "cond" and fit.boundary):  # cond_sd is 0 on a boundary fit
            assert (iv["half_width"] > 0).all()
        assert np.isfinite(iv.drop(columns="kappa", errors="ignore").to_numpy(float)).all()


def test_cond_and_pred_are_the_table_columns(demo_fit):
    t = demo_fit.table()
    for method, col in (("cond", "cond_sd"), ("pred", "pred_sd")):
        iv = demo_fit.intervals(0.9, method=method)
        np.testing.assert_allclose(iv["estimate"], t["blup"], rtol=1e-14)
        np.testing.assert_allclose(iv["half_width"], stats.norm.ppf(0.95) * t[col], rtol=1e-13)


def test_bootstrap_is_reproducible(demo_fit):
    a = demo_fit.intervals(method="bootstrap", n_boot=200, random_seed=7)
    b = demo_fit.intervals(method="bootstrap", n_boot=200, random_seed=7)
    c = demo_fit.intervals(method="bootstrap", n_boot=200, random_seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["lo"], c["lo"])


def test_bootstrap_variance_is_the_laird_louis_decomposition(schools):
    """Mixture variance = mean plug-in variance + variance of the bootstrap BLUPs (L&L eq. 3.3);
    its quantiles lie inside the mixture's support and bracket the estimate."""
    iv = schools.intervals(method="bootstrap", n_boot=400, random_seed=3)
    assert (iv["sd"] > 0).all()
    assert ((iv["hi"] - iv["lo"]) < 2 * 5 * iv["sd"]).all()


def test_full_quantiles_from_draws(demo_fit):
    import xarray as xr

    rng = np.random.default_rng(0)
    draws = rng.normal(size=(2, 500, 5)) + np.arange(5)
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset(
                {"theta": (("chain", "draw", "level"), draws)},
                coords={"level": list(demo_fit.groups)},
            )
        }
    )
    iv = demo_fit.intervals(method="full", draws=tree)
    flat = draws.reshape(-1, 5)
    np.testing.assert_allclose(iv["lo"], np.quantile(flat, 0.025, axis=0), rtol=1e-12)
    np.testing.assert_allclose(iv["estimate"], flat.mean(0), rtol=1e-12)
    same = demo_fit.intervals(method="full", draws=flat)
    pd.testing.assert_frame_equal(iv, same)


# --------------------------------------------------------------------------- bad input


def test_bad_input(demo_fit):
    with pytest.raises(MethodError, match=r"`method` must be one of 'cond'.*got 'morriss'"):
        demo_fit.intervals(method="morriss")
    for level in (0.0, 1.0, 95, -0.1, True, "0.95"):
        with pytest.raises(MethodError, match=r"`level` must be a number strictly between 0 and 1"):
            demo_fit.intervals(level=level, method="cond")
    with pytest.raises(MethodError, match=r"`draws` must be given for method='full'"):
        demo_fit.intervals(method="full")
    for n_boot in (10.5, "100", 1, True):
        with pytest.raises(MethodError, match=r"`n_boot` must be an integer >= 2"):
            demo_fit.intervals(method="bootstrap", n_boot=n_boot)
    with pytest.raises(MethodError, match=r"options for method='cond' must be among no options"):
        demo_fit.intervals(method="cond", n_boot=10)
    with pytest.raises(MethodError, match=r"`weights` must be 'precision' or 'equal'"):
        demo_fit.intervals(method="robust", weights="flat")
    with pytest.raises(DataError, match=r"`draws` as an array must have shape \(draws, 5\)"):
        demo_fit.intervals(method="full", draws=np.zeros((10, 4)))
    with pytest.raises(DataError, match=r"`draws` must hold posterior draws of `theta`"):
        demo_fit.intervals(method="full", draws={"posterior": {}})
    with pytest.raises(MethodError, match=r"`cva` needs 0 <= m2 < inf, kappa >= 1"):
        cva(1.0, 0.5)


def test_morris_needs_four_groups():
    df = pd.DataFrame({"g": ["a", "b", "c"], "y": [1.0, 2.0, 4.0], "se": [1.0, 1.0, 1.0]})
    fit = bs.fit_summary(df, estimate="y", se="se", group="g")
    with pytest.raises(DataError, match=r"Morris intervals need at least 4 groups"):
        fit.intervals(method="morris")


# --------------------------------------------------------------------------- batch fits


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_batch_fits_equal_the_scalar_fits_long(method):
    rng = np.random.default_rng(11)
    B, n = 60, np.array([2, 3, 5, 4, 7, 2])
    mean = rng.normal(0, 0.3, (B, len(n))) + rng.normal(size=(B, len(n))) / np.sqrt(n)
    ssw = rng.chisquare(n.sum() - len(n), B)
    batch = fit_batch(mean, n=n, ssw=ssw, method=method)
    assert 0 < batch.boundary.mean() < 1  # both kinds of fit are exercised
    for b in range(B):
        stats_b = GroupStats.from_arrays(
            labels=range(len(n)), mean=mean[b], n=n, ssw=np.r_[ssw[b], np.zeros(len(n) - 1)]
        )
        vc = estimate(stats_b, method)
        assert batch.boundary[b] == vc.boundary
        for name in ("mu", "tau2", "sigma2", "mu_se"):
            assert getattr(batch, name)[b] == pytest.approx(getattr(vc, name), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("method", ["reml", "ml", "dl"])
def test_batch_fits_equal_the_scalar_fits_summary(method):
    rng = np.random.default_rng(12)
    B, se = 60, rng.uniform(0.5, 2.0, 7)
    mean = rng.normal(0, 0.8, (B, 7)) + rng.normal(size=(B, 7)) * se
    batch = fit_batch(mean, se=se, method=method)
    for b in range(B):
        vc = estimate(GroupStats.from_arrays(labels=range(7), mean=mean[b], se=se), method)
        assert batch.boundary[b] == vc.boundary
        for name in ("mu", "tau2", "mu_se"):
            assert getattr(batch, name)[b] == pytest.approx(getattr(vc, name), rel=1e-10, abs=1e-14)


# =========================================================================== formula fits
@pytest.fixture(scope="module")
def sleep():
    return bs.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def crossed():
    return bs.fit(
        bs.load_dataset("penicillin"), formula="diameter ~ 1 + (1 | plate) + (1 | sample)"
    )


@pytest.mark.parametrize("method", ["morris", "cond", "pred", "no-pooling", "robust"])
def test_formula_one_way_intervals_are_the_one_way_fit_s(sleep, method):
    """The same one-way model through the formula estimator: its conditional one-way problem is
    the one-way fit's (two of our own paths). Kass-Steffey and the bootstrap differ by design:
    for a formula fit they hold sigma at its estimate."""
    from bayeshrink.lmm import fit_formula

    one = bs.fit(sleep, y="Reaction", group="Subject")
    formula = fit_formula(sleep, "Reaction ~ 1 + (1 | Subject)")
    assert type(formula).__name__ == "MixedFit"
    a, b = one.intervals(method=method), formula.intervals(method=method)
    np.testing.assert_allclose(b[["lo", "hi"]], a[["lo", "hi"]], rtol=1e-9)
    assert list(a.index) == list(b.index)


@pytest.mark.parametrize(
    "formula, factor",
    [
        ("Reaction ~ Days + (1 | Subject)", None),
        ("diameter ~ 1 + (1 | plate) + (1 | sample)", "plate"),
        ("diameter ~ 1 + (1 | plate) + (1 | sample)", "sample"),
    ],
)
def test_formula_cond_intervals_are_the_fit_s_conditional_distribution(sleep, formula, factor):
    """The conditional one-way problem reproduces the fit's posterior of every level:
    BLUP +- z ranef_sd (lme4's condVar) comes out of (own estimate, SE, mu, tau^2)."""
    data = sleep if "Reaction" in formula else bs.load_dataset("penicillin")
    fit = bs.fit(data, formula=formula)
    ci = fit.intervals(method="cond", factor=factor)
    z = stats.norm.ppf(0.975)
    coef = fit.coef(factor)["Intercept"]
    sd = fit.ranef_sd(factor)["Intercept"]
    np.testing.assert_allclose(ci["estimate"], coef, rtol=1e-9)
    np.testing.assert_allclose(ci["half_width"], z * sd, rtol=1e-9)
    assert ci.index.equals(fit.table(factor=factor).index)


@pytest.mark.parametrize("method", ["morris", "kass-steffey", "bootstrap", "robust"])
def test_formula_intervals_of_each_crossed_factor(crossed, method):
    opts = {"n_boot": 50, "random_seed": 1} if method == "bootstrap" else {}
    cond = crossed.intervals(method="cond", factor="plate")
    ci = crossed.intervals(method=method, factor="plate", **opts)
    assert (ci["lo"] < ci["estimate"]).all() and (ci["estimate"] < ci["hi"]).all()
    if method in ("morris", "kass-steffey"):  # they add the uncertainty of mu and tau^2
        assert (ci["half_width"] >= cond["half_width"] * (1 - 1e-9)).all()


def test_formula_intervals_bad_input(sleep, crossed):
    slopes = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    with pytest.raises(MethodError, match=r"`term` must be a scalar random term.*'Days'"):
        slopes.intervals()
    with pytest.raises(bs.errors.ColumnError, match=r"`factor` must name one of the grouping"):
        crossed.intervals()
    with pytest.raises(bs.errors.ColumnError, match=r"`factor` must be one of the grouping"):
        crossed.intervals(factor="batch")
    with pytest.raises(bs.errors.ColumnError, match=r"`term` must be one of the random terms"):
        crossed.intervals(factor="plate", term="Days")
    one = bs.fit(sleep, y="Reaction", group="Subject")
    with pytest.raises(bs.errors.ColumnError, match=r"`factor` must be one of the grouping"):
        one.intervals(factor="plate")


def test_formula_intervals_of_a_scalar_factor_beside_a_vector_one():
    # y ~ x + (1 + x | subj) + (1 | item): item's scalar term has intervals; subj's vector
    # term has none (its levels' intervals are joint), said clearly
    from pathlib import Path

    d = pd.read_csv(
        Path(__file__).parent / "reference" / "multi_sim_crossed.csv",
        dtype={"subj": str, "item": str},
    )
    fit = bs.fit(d, formula="y ~ x + (1 + x | subj) + (1 | item)")
    for method in ("morris", "kass-steffey", "robust"):
        ci = fit.intervals(method=method, factor="item")
        assert ci.index.equals(fit.table(factor="item").index)
        assert (ci["lo"] < ci["estimate"]).all() and (ci["estimate"] < ci["hi"]).all()
    with pytest.raises(MethodError, match=r"`term` must be a scalar random term.*'subj'"):
        fit.intervals(factor="subj")


def test_formula_intervals_of_a_nested_factor():
    # strength ~ 1 + (1 | batch/cask): the inner factor cask:batch, BLUP +- z condVar for "cond"
    fit = bs.fit(bs.load_dataset("pastes"), formula="strength ~ 1 + (1 | batch/cask)")
    ci = fit.intervals(method="cond", factor="cask:batch")
    sd = fit.ranef_sd("cask:batch")["Intercept"]
    np.testing.assert_allclose(ci["half_width"], stats.norm.ppf(0.975) * sd, rtol=1e-9)
    assert len(fit.intervals(factor="batch")) == 10
    with pytest.raises(bs.errors.ColumnError, match=r"`factor` must be one of the grouping"):
        fit.intervals(factor="cask")
