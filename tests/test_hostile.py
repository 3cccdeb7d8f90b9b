"""Hostile and awkward inputs: each gets the right answer or a clear BayeshrinkError.

Right answers are checked against a closed form (exact rational arithmetic on the float data),
against lme4/metafor (tests/reference/), or against another of our own code paths (1e-10).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs

EPS = float(np.finfo(float).eps)


# ---------------------------------------------------------------- the one-way estimator


def _balanced_with_tau2(target: float, J: int = 10, n: int = 5, seed: int = 0):
    """Balanced long data whose REML tau^2 is close to ``target`` > 0."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    e = rng.normal(size=J * n)
    e -= np.bincount(g, e)[g] / n  # no between-group signal in the noise
    msw = (e**2).sum() / (J * (n - 1))
    a = rng.normal(size=J)
    a -= a.mean()
    a /= np.sqrt((a**2).sum() / (J - 1))
    y = 5.0 + e + np.sqrt(msw + n * target) * a[g] / np.sqrt(n)
    return pd.DataFrame({"g": g, "y": y}), J, n


def _anova_reml_exact(y: np.ndarray, J: int, n: int) -> tuple[float, float]:
    """Balanced one-way REML in closed form, in exact rational arithmetic on the float data:
    sigma^2 = MSW, tau^2 = max(0, (MSB - MSW) / n) (the ANOVA estimator, which REML equals for
    balanced data; lme4: lmer(y ~ 1 + (1 | g), REML = TRUE))."""
    yf = [Fraction(float(v)) for v in y]
    means = [sum(yf[j * n : (j + 1) * n]) / n for j in range(J)]
    grand = sum(means) / J
    ssw = sum((yf[i] - means[i // n]) ** 2 for i in range(J * n))
    ssb = n * sum((m - grand) ** 2 for m in means)
    msw = ssw / (J * (n - 1))
    return float(max(Fraction(0), (ssb / (J - 1) - msw) / n)), float(msw)


@pytest.mark.parametrize("target", [1e-4, 1e-8, 1e-10])
def test_tiny_tau2_is_found_by_the_gradient_not_lost_in_a_flat_criterion(target):
    df, J, n = _balanced_with_tau2(target)
    tau2, sigma2 = _anova_reml_exact(df["y"].to_numpy(), J, n)
    assert tau2 > 0
    fit = bs.fit(df, y="y", group="g")
    assert not fit.boundary
    # tau^2 = (MSB - MSW) / n: rounding of MSB and MSW (a few eps * MSW each) is amplified by
    # MSW / (n tau^2), so that is the attainable relative accuracy
    rtol = 100 * EPS * sigma2 / (n * tau2)
    np.testing.assert_allclose(fit.tau2, tau2, rtol=rtol)
    np.testing.assert_allclose(fit.sigma2, sigma2, rtol=1e-12)
