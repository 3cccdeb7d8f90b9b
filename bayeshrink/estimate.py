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
lambda = tau^2 / sigma^2; for summary data mu is profiled out, leaving tau^2. The data are first
standardised (centred on the complete-pooling mean and divided by a power of two near their
spread, which is exact), so the units of y never change the answer; estimates are mapped back.
The analytic derivative of the remaining 1-D criterion is scanned on a logarithmic grid; each
change of its sign from negative to positive brackets a local minimum, solved to machine
precision by Brent's method. A boundary fit is declared when the derivative at 0 is
non-negative (and no interior minimum is lower), exactly the condition for a minimum at
tau^2 = 0. Brackets are never chosen on criterion values, which are flat to rounding near a
small tau^2. Groups with the same sampling variance (the same size, in long data) enter the
criterion through their count, mean and sum of squares, so each evaluation costs O(distinct
sizes) and memory stays O(groups).

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


def _pow2_scale(x: float) -> tuple[float, int]:
    """A power of two near ``x`` (> 0 finite) and its exponent: dividing by it is exact."""
    if not (x > 0.0 and np.isfinite(x)):
        return 1.0, 0
    e = int(np.frexp(x)[1])
    return float(np.ldexp(1.0, e)), e


@dataclass(frozen=True)
class _Classes:
    """Groups whose estimates share one sampling variance ``v``, pooled into one class.

    Every criterion below depends on a group only through v_j and its residual, so groups of
    equal v (all groups of the same size, in long data) enter through their count ``c``, their
    mean ``m`` and their sum of squares ``ss`` about it: an evaluation costs O(classes), and
    memory stays O(groups) however finely the criterion is scanned.
    """

    v: np.ndarray
    c: np.ndarray
    m: np.ndarray
    ss: np.ndarray

    @classmethod
    def build(cls, v: np.ndarray, y: np.ndarray) -> _Classes:
        uv, inv = np.unique(v, return_inverse=True)
        inv = inv.ravel()
        c = np.bincount(inv, minlength=len(uv)).astype(float)
        m = np.bincount(inv, weights=y, minlength=len(uv)) / c
        d = y - m[inv]
        m += np.bincount(inv, weights=d, minlength=len(uv)) / c  # refinement pass
        d = y - m[inv]
        return cls(uv, c, m, np.bincount(inv, weights=d * d, minlength=len(uv)))

    def parts(self, x: float) -> tuple[float, float, float, float, float]:
        """At x (the variance of the group effects in the units of v): S = sum w_j,
        mu = sum w_j y_j / S, R = sum w_j r_j^2, R2 = sum w_j^2 r_j^2, W2 = sum w_j^2."""
        w = 1.0 / (x + self.v)
        cw = self.c * w
        S = float(cw.sum())
        mu = float(np.dot(cw, self.m)) / S
        d = self.m - mu
        rr = self.ss + self.c * d * d
        return S, mu, float(np.dot(w, rr)), float(np.dot(w * w, rr)), float(np.dot(cw, w))


def _argmin_halfline(
    crit: Callable[[float], float], grad: Callable[[float], float], scale: float
) -> float:
    """Global minimizer over x >= 0 of a smooth 1-D criterion with derivative ``grad``.

    The derivative is scanned on a logarithmic grid; every change of its sign from negative to
    non-negative brackets a local minimum, solved to machine precision by Brent's method, and
    x = 0 is a candidate when the derivative there is non-negative. Criterion values are
    compared only between these candidates, never to choose a bracket: near a small optimum the
    criterion is flat to rounding, its derivative is not.
    """
    from scipy import optimize

    grid = [0.0, *(scale * np.logspace(-8.0, 8.0, 49))]
    g = [grad(x) for x in grid]
    while g[-1] < 0.0 and grid[-1] < 1e250:  # still falling: look further out
        more = grid[-1] * np.logspace(1.0 / 3.0, 16.0, 48)
        grid += list(more)
        g += [grad(x) for x in more]
    candidates = [0.0] if g[0] >= 0.0 else []
    for i in range(len(grid) - 1):
        if g[i] < 0.0 <= g[i + 1]:
            lo, hi = grid[i], grid[i + 1]
            if g[i + 1] == 0.0:
                candidates.append(hi)
            else:
                candidates.append(
                    optimize.brentq(grad, lo, hi, xtol=1e-300, rtol=4 * _EPS, maxiter=1000)
                )
    if not candidates:  # falling as far as floating point reaches
        candidates.append(grid[-1])
    if len(candidates) == 1:
        return float(candidates[0])
    values = [crit(x) for x in candidates]
    return float(candidates[int(np.argmin(values))])


# --------------------------------------------------------------------------- long data


def _estimate_long(stats: GroupStats, method: str) -> VarianceComponents:
    n = stats.n.astype(float)
    N = float(n.sum())
    # Standardise: centre on the complete-pooling mean (every residual is O(spread), never
    # O(level)) and divide by a power of two near the within-group SD (exact), so that no sum
    # below overflows or underflows whatever the units of y; estimates are mapped back at the end.
    centre = float(np.dot(n / N, stats.mean))
    dev = stats.mean - centre
    if stats.mean_lo is not None:
        dev = dev + stats.mean_lo
    ssw_max = float(stats.ssw.max())
    spread = np.sqrt(ssw_max) if ssw_max > 0.0 else float(np.abs(dev).max())
    s, e = _pow2_scale(spread)
    ssw = float(np.ldexp(stats.ssw, -2 * e).sum())
    cls = _Classes.build(1.0 / n, dev / s)
    reml = method == "reml"
    dof = N - 1.0 if reml else N

    def crit(lam: float) -> float:
        S, _, R, _, _ = cls.parts(lam)
        value = dof * np.log(ssw + R) + float(np.dot(cls.c, np.log1p(lam / cls.v)))
        return value + np.log(S) if reml else value

    def grad(lam: float) -> float:
        S, _, R, R2, W2 = cls.parts(lam)
        g = S - dof * R2 / (ssw + R)
        return g - W2 / S if reml else g

    lam = _argmin_halfline(crit, grad, scale=1.0 / float(np.median(n)))
    S, mu, R, _, _ = cls.parts(lam)
    sigma2_std = (ssw + R) / dof
    sigma2 = float(np.ldexp(sigma2_std, 2 * e))
    logdet = float(np.dot(cls.c, np.log1p(lam / cls.v)))
    log_sigma2 = float(np.log(sigma2_std)) + 2 * e * np.log(2.0)
    if reml:
        m2ll = dof * (1.0 + _LOG2PI + log_sigma2) + logdet + np.log(S)
    else:
        m2ll = N * (1.0 + _LOG2PI + log_sigma2) + logdet
    return VarianceComponents(
        method=method,
        mu=centre + s * mu,
        mu_se=s * float(np.sqrt(sigma2_std / S)),
        tau2=float(np.ldexp(lam * sigma2_std, 2 * e)),
        sigma2=sigma2,
        loglik=float(-0.5 * m2ll),
        boundary=lam == 0.0,
    )


# --------------------------------------------------------------------------- summary data


def _estimate_summary(stats: GroupStats, method: str) -> VarianceComponents:
    k = float(stats.n_groups)
    # Standardise as for long data: centre on the fixed-effect (complete pooling) mean and
    # divide by a power of two near the median standard error.
    s, e = _pow2_scale(float(np.median(stats.se)))
    se = stats.se / s
    s2 = se * se
    w0 = 1.0 / s2
    centre = float(np.dot(w0 / w0.sum(), stats.mean))
    y = (stats.mean - centre) / s
    reml = method == "reml"
    cls = _Classes.build(s2, y)

    def crit(tau2: float) -> float:
        S, _, R, _, _ = cls.parts(tau2)
        value = float(np.dot(cls.c, np.log(tau2 + cls.v))) + R
        return value + np.log(S) if reml else value

    def grad(tau2: float) -> float:
        S, _, _, R2, W2 = cls.parts(tau2)
        g = S - R2
        return g - W2 / S if reml else g

    if method == "dl":
        q = float(np.dot(w0, y * y) - np.dot(w0, y) ** 2 / w0.sum())
        c = float(w0.sum() - (w0 * w0).sum() / w0.sum())
        tau2 = max(0.0, (q - (k - 1.0)) / c)
    else:
        tau2 = _argmin_halfline(crit, grad, scale=float(np.median(s2)))
    S, mu, R, _, _ = cls.parts(tau2)
    # -2 log L in the original units: each log w_j gains -2 log s, log S gains -2 log s
    log_s = e * np.log(2.0)
    m2ll = k * _LOG2PI + float(np.dot(cls.c, np.log(tau2 + cls.v))) + 2.0 * k * log_s + R
    if reml:  # metafor's restricted log-likelihood, including its 0.5 log|X'X| term
        m2ll += -_LOG2PI + np.log(S) - 2.0 * log_s - np.log(k)
    return VarianceComponents(
        method=method,
        mu=centre + s * mu,
        mu_se=s * float(np.sqrt(1.0 / S)),
        tau2=float(np.ldexp(tau2, 2 * e)),
        sigma2=float("nan"),
        loglik=float(-0.5 * m2ll),
        boundary=tau2 == 0.0,
    )
