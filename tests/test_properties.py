"""Invariants of the estimator, checked by property-based tests (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayeshrink as bs

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def long_data(draw):
    """Random unbalanced one-way data: 2-12 groups of 1-15 rows, at least one group of 2+."""
    k = draw(st.integers(2, 12))
    sizes = draw(st.lists(st.integers(1, 15), min_size=k, max_size=k))
    if max(sizes) < 2:
        sizes[0] = 2
    seed = draw(st.integers(0, 2**32 - 1))
    ratio = draw(st.sampled_from([0.0, 0.05, 0.5, 2.0, 20.0]))
    rng = np.random.default_rng(seed)
    effects = rng.normal(0, np.sqrt(ratio), size=k)
    g = np.repeat(np.arange(k), sizes)
    y = 3.0 + effects[g] + rng.normal(size=g.size)
    return pd.DataFrame({"g": [f"g{i:02d}" for i in g], "y": y})


@st.composite
def summary_data(draw):
    k = draw(st.integers(2, 15))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    se = rng.uniform(0.2, 3.0, size=k)
    tau = draw(st.sampled_from([0.0, 0.5, 2.0, 10.0]))
    y = rng.normal(1.0, np.sqrt(tau**2 + se**2))
    return pd.DataFrame({"g": [f"s{i}" for i in range(k)], "y": y, "se": se})


def _loglik(fit, tau2, sigma2=None, mu=None):
    """The (restricted) log-likelihood of the one-way model at (tau2, sigma2), with mu at its
    GLS value unless given, written from the marginal covariance of each group's rows,
    V_j = sigma^2 I + tau^2 11' (long data), or tau^2 + se_j^2 (summary data): a formula apart
    from the estimator's profiled 1-D criterion. Constants are dropped."""
    s = fit.stats
    if fit.data_kind == "long":
        n = s.n.astype(float)
        d = sigma2 + n * tau2  # the eigenvalue of V_j along 1
        w = n / d  # 1'V_j^-1 1
        logdet = (n - 1) * np.log(sigma2) + np.log(d)
        m = np.sum(w * s.mean) / np.sum(w) if mu is None else mu
        # r'V^-1 r = SSW / sigma^2 + n (ybar - mu)^2 / d
        quad = s.ssw / sigma2 + n * (s.mean - m) ** 2 / d
    else:
        v = tau2 + s.se**2
        w = 1.0 / v
        logdet = np.log(v)
        m = np.sum(w * s.mean) / np.sum(w) if mu is None else mu
        quad = (s.mean - m) ** 2 / v
    value = -0.5 * np.sum(logdet + quad)
    if fit.method == "reml":
        value -= 0.5 * np.log(np.sum(w))
    return value


def _check_optimal(fit):
    """No nearby (tau^2, sigma^2) has a higher (restricted) likelihood than the estimate."""
    if fit.method == "dl":
        return  # a moment estimator, not an optimum
    long = fit.data_kind == "long"
    sigma2 = fit.sigma2 if long else None
    best = _loglik(fit, fit.tau2, sigma2)
    scale = fit.tau2 if fit.tau2 > 0 else (fit.sigma2 / fit.stats.n.max() if long else 1.0)
    steps = [(1 + e) for e in (-1e-3, 1e-3, -1e-2, 1e-2)]
    trials = [(fit.tau2 * f, sigma2) for f in steps] + [(0.0, sigma2), (1e-4 * scale, sigma2)]
    if long:
        trials += [(fit.tau2, sigma2 * f) for f in steps]
    for tau2, s2 in trials:
        if tau2 >= 0:
            assert _loglik(fit, tau2, s2) <= best + 1e-9 * abs(best), (tau2, s2)
    if fit.method == "ml":  # mu is an ML estimate too
        for f in (-1e-3, 1e-3):
            mu = fit.mu + f * (abs(fit.mu) + fit.mu_se)
            assert _loglik(fit, fit.tau2, sigma2, mu) <= best + 1e-9 * abs(best)


def _check_invariants(fit):
    _check_optimal(fit)
    t = fit.table()
    b = t["shrinkage"].to_numpy()
    lo = np.minimum(t["no_pooling"], fit.mu)
    hi = np.maximum(t["no_pooling"], fit.mu)
    slack = 1e-12 * (np.abs(t["no_pooling"]) + abs(fit.mu) + 1)
    assert np.all((t["blup"] >= lo - slack) & (t["blup"] <= hi + slack))
    assert np.all(t["cond_sd"] <= t["pred_sd"] + 1e-15)
    assert np.all(t["cond_sd"] <= t["se"] + 1e-15)
    assert np.all(np.isfinite(t.drop(columns="n").to_numpy(dtype=float)))
    if fit.tau == 0:  # complete pooling, exactly
        assert np.all(b == 1.0) and np.all(t["blup"] == fit.mu) and np.all(t["cond_sd"] == 0)


@SETTINGS
@given(long_data(), st.sampled_from(["reml", "ml"]))
def test_long_invariants(df, method):
    _check_invariants(bs.fit(df, y="y", group="g", method=method))


@SETTINGS
@given(summary_data(), st.sampled_from(["reml", "ml", "dl"]))
def test_summary_invariants(df, method):
    _check_invariants(bs.fit_summary(df, estimate="y", se="se", group="g", method=method))


def _assert_same(a, b, rtol=1e-10):
    np.testing.assert_allclose(
        [a.mu, a.tau, a.sigma], [b.mu, b.tau, b.sigma], rtol=rtol, atol=rtol * b.sigma
    )
    pd.testing.assert_frame_equal(a.table(), b.table(), rtol=rtol, atol=rtol * b.sigma)


@SETTINGS
@given(long_data(), st.integers(0, 2**32 - 1))
def test_row_order_changes_nothing(df, seed):
    shuffled = df.sample(frac=1.0, random_state=seed % (2**31))
    _assert_same(bs.fit(shuffled, y="y", group="g"), bs.fit(df, y="y", group="g"))


@SETTINGS
@given(
    long_data(),
    st.sampled_from([(1e9, 1.0), (0.0, 1e-8), (-5e8, 1.0), (0.0, 1e6)]),
    st.sampled_from(["reml", "ml"]),
)
def test_shift_and_scale_equivariance(df, transform, method):
    shift, scale = transform
    base = bs.fit(df, y="y", group="g", method=method)
    moved = bs.fit(df.assign(y=df["y"] * scale + shift), y="y", group="g", method=method)
    # Expected numbers are those of the untransformed fit carried through the transformation.
    # Relative tolerance 1e-6 is what the brief asks; adding 1e9 to y ~ N(3, 1) leaves only
    # ~1e-7 of absolute resolution (ulp of 1e9), i.e. ~1e-7 relative to sigma ~ 1.
    spread = base.sigma * scale
    np.testing.assert_allclose(moved.mu, base.mu * scale + shift, rtol=1e-6, atol=1e-6 * spread)
    np.testing.assert_allclose(moved.tau, base.tau * scale, rtol=1e-6, atol=1e-6 * spread)
    np.testing.assert_allclose(moved.sigma, base.sigma * scale, rtol=1e-6)
    tb, tm = base.table(), moved.table()
    np.testing.assert_allclose(
        tm["blup"], tb["blup"] * scale + shift, rtol=1e-6, atol=1e-6 * spread
    )
    np.testing.assert_allclose(tm["cond_sd"], tb["cond_sd"] * scale, rtol=1e-6, atol=1e-6 * spread)
    np.testing.assert_allclose(tm["shrinkage"], tb["shrinkage"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_tau_to_zero_gives_complete_pooling(method):
    """As the true between-group variance shrinks to 0, the fit pools every group to mu."""
    rng = np.random.default_rng(7)
    k, n = 8, 6
    g = np.repeat(np.arange(k), n)
    noise = rng.normal(size=g.size)
    noise -= np.bincount(g, noise)[g] / n  # remove group means: no between-group signal at all
    effects = rng.normal(size=k)
    shrink = []
    for scale in [1.0, 0.3, 0.1, 0.0]:
        df = pd.DataFrame({"g": g, "y": 10 + scale * effects[g] + noise})
        fit = bs.fit(df, y="y", group="g", method=method)
        shrink.append(fit.shrinkage()["Intercept"].mean())
    assert shrink == sorted(shrink)  # more pooling as tau falls
    assert fit.boundary and np.all(fit.table()["blup"] == fit.mu)


def test_summary_tau_to_zero_gives_complete_pooling():
    se = np.array([1.0, 2.0, 1.5, 0.5, 1.0])
    z = np.array([1.0, -1.0, 0.5, -0.2, 0.3])
    fits = [
        bs.fit_summary(
            pd.DataFrame({"g": list("abcde"), "y": spread * z, "se": se}),
            estimate="y",
            se="se",
            group="g",
        )
        for spread in [5.0, 1.0, 0.0]
    ]
    shrink = [f.shrinkage()["Intercept"].mean() for f in fits]
    assert shrink == sorted(shrink) and shrink[0] < 1  # more pooling as the spread falls
    last = fits[-1]
    assert last.boundary and np.all(last.table()["blup"] == last.mu)


def test_large_offset_group_stats_are_stable():
    """The within-group sum of squares of y ~ 1e9 + N(0, 1) keeps its accuracy (two-pass)."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(50), 20)
    y = rng.normal(size=g.size)
    small = bs.group_stats(pd.DataFrame({"g": g, "y": y}), "y", "g")
    big = bs.group_stats(pd.DataFrame({"g": g, "y": y + 1e9}), "y", "g")
    # absolute resolution of numbers near 1e9 is 1.2e-7; the SSW of 19 deviations inherits it
    np.testing.assert_allclose(big.ssw, small.ssw, rtol=1e-5)
    np.testing.assert_allclose(big.mean - 1e9, small.mean, atol=1e-6)
