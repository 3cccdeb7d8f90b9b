r"""Variance components of the one-way hierarchical normal model.

The model and the names used for its parts everywhere in bayeshrink (code, tables, docs):

.. code-block:: text

    long data      y_ij  = theta_j + e_ij,   e_ij ~ N(0, sigma^2),   i = 1..n_j
    summary data   y_j   = theta_j + e_j,    e_j  ~ N(0, se_j^2),    se_j known
    both           theta_j = mu + b_j,        b_j  ~ N(0, tau^2),     j = 1..J

=============  ==========================================================================
name           meaning
=============  ==========================================================================
``mu``         population mean of the group effects (the fixed intercept; lme4 ``fixef``)
``mu_se``      standard error of ``mu`` (lme4 ``vcov``, metafor ``se``)
``tau``        between-group SD, sqrt(tau^2) (lme4 ``VarCorr`` of the group term)
``sigma``      within-group (residual) SD; NaN for summary data, whose ``se_j`` are known
``n``          group size n_j
``se``         sampling SE of a group's own estimate: sigma / sqrt(n_j), or the given se_j
``no_pooling`` the group's own estimate: its mean ybar_j (``lm(y ~ 0 + g)``) or the given y_j
``shrinkage``  B_j = se_j^2 / (se_j^2 + tau^2), the fraction of the way from ``no_pooling``
               to ``mu`` (0: no pooling, 1: complete pooling)
``blup``       mu + (1 - B_j) (no_pooling_j - mu); lme4 ``coef``, metafor ``blup()$pred``
``cond_sd``    SD of theta_j given the data and mu = mu_hat: sqrt((1 - B_j) se_j^2)
               (lme4 ``ranef(condVar = TRUE)``)
``pred_sd``    also counting the uncertainty of mu_hat: sqrt(cond_sd^2 + B_j^2 mu_se^2)
               (metafor ``blup()$se``; Henderson's prediction error SD)
``boundary``   lme4's "boundary (singular) fit": tau / sigma < 1e-4 (long data; the exact
               solver then returns tau = 0), tau = 0 (summary data)
=============  ==========================================================================

Models with covariates and several correlated random terms (``bs.fit(df, formula=...)``) live
in :mod:`bayeshrink.lmm`; both answer the one result API of :mod:`bayeshrink.api`, and their
per-term tables (``fit.table(term)``) use the same names, with ``prior_mean``/``prior_sd`` for
``mu``/``tau``.

Estimation is exact, not wherever a general-purpose optimizer stopped. For long data the
criterion is profiled over mu and sigma^2, leaving one parameter, the variance ratio
lambda = tau^2 / sigma^2; for summary data mu is profiled out, leaving tau^2. The remaining 1-D
criterion is scanned on a logarithmic grid (plus the boundary point 0), and the root of its
analytic derivative is then solved by Brent's method to machine precision inside the bracket
around the best grid point. A boundary fit is declared when the derivative at 0 is non-negative
and 0 is the best point, exactly the condition for a minimum at tau^2 = 0.

The criteria (``-2 log L`` up to constants), with w_j = 1 / Var(ybar_j) and
r_j = ybar_j - mu_hat:

* long ML:   N log Q(lambda) + sum log(1 + n_j lambda),  sigma^2 = Q / N
* long REML: (N - 1) log Q + sum log(1 + n_j lambda) + log sum w_j,  sigma^2 = Q / (N - 1)
  where Q = SSW + sum_j w_j r_j^2 and w_j = n_j / (1 + n_j lambda) (lme4's REML criterion);
* summary ML:   sum log(tau^2 + se_j^2) + sum w_j r_j^2,  w_j = 1 / (tau^2 + se_j^2)
* summary REML: the ML criterion + log sum w_j (metafor's REML);
* summary DL:   the DerSimonian-Laird moment estimator, max(0, (Q - (J - 1)) / (S1 - S2 / S1)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .data import GroupStats
from .errors import MethodError

__all__ = ["METHODS_LONG", "METHODS_SUMMARY", "VarianceComponents", "estimate"]

METHODS_LONG = ("reml", "ml")
METHODS_SUMMARY = ("reml", "ml", "dl")
_LOG2PI = float(np.log(2.0 * np.pi))
_EPS = float(np.finfo(float).eps)


@dataclass(frozen=True)
class VarianceComponents:
    """Estimated parameters of the one-way model (see the module glossary)."""

    method: str
    mu: float
    mu_se: float
    tau2: float
    sigma2: float
    loglik: float
    boundary: bool


def check_method(method, allowed: tuple[str, ...], data_kind: str) -> str:
    if not isinstance(method, str) or method.lower() not in allowed:
        options = ", ".join(repr(m) for m in allowed)
        extra = (
            " The DerSimonian-Laird estimator needs known standard errors: use `bs.fit_summary`."
            if data_kind == "long" and isinstance(method, str) and method.lower() == "dl"
            else ""
        )
        raise MethodError(
            f"`method` must be one of {options} for {data_kind} data; got {method!r}.{extra}"
        )
    return method.lower()


def estimate(stats: GroupStats, method: str = "reml") -> VarianceComponents:
    """Estimate mu, tau^2 and sigma^2 from per-group statistics by REML, ML or DL."""
    if stats.data_kind == "long":
        return _estimate_long(stats, check_method(method, METHODS_LONG, "long"))
    return _estimate_summary(stats, check_method(method, METHODS_SUMMARY, "summary"))


# --------------------------------------------------------------------------- 1-D optimizer


def _argmin_halfline(
    crit: Callable[[np.ndarray], np.ndarray],
    grad: Callable[[float], float],
    scale: float,
) -> float:
    """Global minimizer over x >= 0 of a smooth 1-D criterion with derivative ``grad``."""
    grid = np.concatenate([[0.0], scale * np.logspace(-8.0, 8.0, 49)])
    values = crit(grid)
    i = int(np.nanargmin(values))
    while i == len(grid) - 1 and grid[-1] < 1e250:  # still falling: look further out
        grid = np.concatenate([grid, grid[-1] * np.logspace(1.0 / 3.0, 16.0, 48)])
        values = crit(grid)
        i = int(np.nanargmin(values))
    if i == 0:
        if grad(0.0) >= 0.0:
            return 0.0  # boundary: the criterion rises from tau^2 = 0
        lo, hi = 0.0, float(grid[1])
    else:
        lo, hi = float(grid[i - 1]), float(grid[min(i + 1, len(grid) - 1)])
    g_lo, g_hi = grad(lo), grad(hi)
    if g_lo < 0.0 < g_hi:
        x = optimize.brentq(grad, lo, hi, xtol=1e-300, rtol=4 * _EPS, maxiter=1000)
    else:  # not a clean sign change (e.g. a flat stretch): minimize the criterion itself
        res = optimize.minimize_scalar(
            lambda t: float(crit(np.array([t]))[0]),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-14 * max(hi, scale)},
        )
        x = float(res.x)
    best = float(crit(np.array([x]))[0])
    return 0.0 if float(values[0]) <= best else float(x)


# --------------------------------------------------------------------------- long data


def _estimate_long(stats: GroupStats, method: str) -> VarianceComponents:
    n = stats.n.astype(float)
    N = float(n.sum())
    # centre on the complete-pooling mean: every residual below is O(spread), never O(level)
    centre = float(np.dot(n, stats.mean) / N)
    ybar = stats.mean - centre
    ssw = float(stats.ssw.sum())
    reml = method == "reml"
    dof = N - 1.0 if reml else N

    def parts(lam):
        lam = np.asarray(lam, dtype=float)[..., None]
        w = n / (1.0 + n * lam)
        S = w.sum(-1)
        mu = (w * ybar).sum(-1) / S
        r = ybar - mu[..., None]
        Q = ssw + (w * r * r).sum(-1)
        return w, S, mu, r, Q

    def crit(lam):
        _, S, _, _, Q = parts(lam)
        value = dof * np.log(Q) + np.log1p(n * np.asarray(lam)[..., None]).sum(-1)
        return value + np.log(S) if reml else value

    def grad(lam):
        w, S, _, r, Q = parts(lam)
        g = -dof * float((w * w * r * r).sum()) / float(Q) + float(S)
        return g - float((w * w).sum()) / float(S) if reml else g

    lam = _argmin_halfline(crit, grad, scale=1.0 / float(np.median(n)))
    _, S, mu, _, Q = parts(lam)
    S, mu, Q = float(S), float(mu), float(Q)
    sigma2 = Q / dof
    logdet = float(np.log1p(n * lam).sum())
    if reml:
        m2ll = dof * (1.0 + _LOG2PI + np.log(sigma2)) + logdet + np.log(S)
    else:
        m2ll = N * (1.0 + _LOG2PI + np.log(sigma2)) + logdet
    return VarianceComponents(
        method=method,
        mu=mu + centre,
        mu_se=float(np.sqrt(sigma2 / S)),
        tau2=float(lam * sigma2),
        sigma2=float(sigma2),
        loglik=float(-0.5 * m2ll),
        boundary=lam == 0.0,
    )


# --------------------------------------------------------------------------- summary data


def _estimate_summary(stats: GroupStats, method: str) -> VarianceComponents:
    s2 = stats.se**2
    k = float(len(s2))
    w0 = 1.0 / s2
    centre = float(np.dot(w0, stats.mean) / w0.sum())  # the fixed-effect (complete pooling) mean
    y = stats.mean - centre
    reml = method == "reml"

    def parts(tau2):
        t = np.asarray(tau2, dtype=float)[..., None]
        w = 1.0 / (t + s2)
        S = w.sum(-1)
        mu = (w * y).sum(-1) / S
        r = y - mu[..., None]
        return w, S, mu, r

    def crit(tau2):
        w, S, _, r = parts(tau2)
        value = -np.log(w).sum(-1) + (w * r * r).sum(-1)
        return value + np.log(S) if reml else value

    def grad(tau2):
        w, S, _, r = parts(tau2)
        g = float(w.sum()) - float((w * w * r * r).sum())
        return g - float((w * w).sum()) / float(S) if reml else g

    if method == "dl":
        q = float(np.dot(w0, y * y) - np.dot(w0, y) ** 2 / w0.sum())
        c = float(w0.sum() - (w0 * w0).sum() / w0.sum())
        tau2 = max(0.0, (q - (k - 1.0)) / c)
    else:
        tau2 = _argmin_halfline(crit, grad, scale=float(np.median(s2)))
    w, S, mu, r = parts(tau2)
    S, mu = float(S), float(mu)
    m2ll = k * _LOG2PI - float(np.log(w).sum()) + float((w * r * r).sum())
    if reml:  # metafor's restricted log-likelihood, including its 0.5 log|X'X| term
        m2ll += -_LOG2PI + np.log(S) - np.log(k)
    return VarianceComponents(
        method=method,
        mu=mu + centre,
        mu_se=float(np.sqrt(1.0 / S)),
        tau2=float(tau2),
        sigma2=float("nan"),
        loglik=float(-0.5 * m2ll),
        boundary=tau2 == 0.0,
    )
