r"""The robust critical value of Armstrong, Kolesar & Plagborg-Moller (2022) for empirical-Bayes
confidence intervals (:func:`cva`), and the maximal non-coverage :func:`rho` behind it.

Armstrong, T. B., Kolesar, M. & Plagborg-Moller, M. (2022), "Robust empirical Bayes confidence
intervals", Econometrica 90(6): 2567-2602. :func:`cva` is the (1 - alpha) point that bounds the
average non-coverage over all distributions of the effects with the estimated second (and
fourth) moment; it reproduces the published values of the authors' R package ``ebci``. Used by
:func:`bayeshrink.intervals.robust`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri

from .errors import MethodError

__all__ = ["cva", "cva_many", "rho"]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)

# =========================================================================== robust EBCI (AKP)


def _phi(x: float) -> float:
    return _INV_SQRT2PI * math.exp(-0.5 * x * x)


def _Phi(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def _r0(t: float, chi: float) -> float:
    """Non-coverage P(|Z + b| > chi) of the interval +- chi at squared normalized bias t = b^2."""
    b = math.sqrt(t)
    return _Phi(-chi - b) + _Phi(b - chi)


def _r0_vec(t: np.ndarray, chi: float) -> np.ndarray:
    b = np.sqrt(t)
    return ndtr(-chi - b) + ndtr(b - chi)


def _r1(t: float, chi: float) -> float:
    """d r0 / dt; its limit chi phi(chi) at t = 0."""
    if t < 1e-8:
        return chi * _phi(chi) * (1.0 + t * (chi * chi - 3.0) / 6.0)
    b = math.sqrt(t)
    return (_phi(b - chi) - _phi(b + chi)) / (2.0 * b)


def _r2(t: float, chi: float) -> float:
    """d^2 r0 / dt^2; its limit phi(chi) chi (chi^2 - 3) / 6 at t = 0."""
    if t < 1e-5:
        return _phi(chi) * chi * (chi * chi - 3.0) / 6.0
    b = math.sqrt(t)
    num = _phi(b + chi) * (t + chi * b + 1.0) + _phi(b - chi) * (chi * b - t - 1.0)
    return num / (4.0 * t * b)


def _t0(chi: float) -> float:
    """Where the tangent to r0(., chi) from (0, r0(0)) touches it (0 when r0 is concave).

    r0 is convex then concave in t when chi^2 > 3 (AKP, Lemma B.1): the least concave majorant
    of r0 is the chord from 0 to t0 followed by r0 itself, with t0 solving
    r0(t0) - r0(0) = t0 r0'(t0).
    """
    from scipy import optimize

    if chi * chi <= 3.0:
        return 0.0
    lo, hi = max(chi * chi - 3.0, 1e-6), chi * chi
    if _r2(lo, chi) > 0.0 > _r2(hi, chi):
        ip = optimize.brentq(_r2, lo, hi, args=(chi,), xtol=1e-14, rtol=1e-14)
    else:
        ip = lo
    r00 = _r0(0.0, chi)

    def f(t):
        return _r0(t, chi) - r00 - t * _r1(t, chi)

    up = 2.0 * chi * chi + 1.0
    while f(up) < 0.0:
        ip, up = up, 2.0 * up
    if f(ip) >= 0.0:
        return ip
    return optimize.brentq(f, ip, up, xtol=1e-14, rtol=1e-14)


_U = np.concatenate([np.linspace(0.0, 0.99, 100), 1.0 - np.logspace(-2.0, -9.0, 36)])


def _two_point(m2: float, kappa: float, chi: float) -> tuple[float, float, float]:
    """max over two-point distributions of t with E t = m2, E t^2 = kappa m2^2 of E r0(t, chi).

    Points a < m2 < b with b = m2 (kappa m2 - a) / (m2 - a) and P(a) = (b - m2) / (b - a):
    a one-dimensional search over a in [0, m2) (a grid, then a bounded refinement).
    Returns (value, a, b).
    """
    from scipy import optimize

    def value(a):
        a = np.asarray(a, float)
        b = m2 * (kappa * m2 - a) / (m2 - a)
        p = (b - m2) / (b - a)
        return p * _r0_vec(a, chi) + (1.0 - p) * _r0_vec(b, chi)

    u = _U
    vals = value(m2 * u)
    i = int(np.argmax(vals))
    lo, hi = u[max(i - 1, 0)], u[min(i + 1, len(u) - 1)]
    res = optimize.minimize_scalar(
        lambda x: -float(value(m2 * x)),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-13},
    )
    best_u, best = (float(res.x), -float(res.fun)) if -res.fun > vals[i] else (u[i], vals[i])
    a = m2 * best_u
    return float(best), a, m2 * (kappa * m2 - a) / (m2 - a)


def rho(m2: float, kappa: float, chi: float) -> float:
    r"""Maximal average non-coverage rho(m2, kappa, chi) of the interval +- chi (AKP 2022).

    sup E_F r0(t, chi) over distributions F of the squared normalized bias t = b^2 with
    E_F t = m2 and E_F t^2 <= kappa m2^2, r0(t, chi) = Phi(-chi - sqrt t) + Phi(sqrt t - chi)
    (Armstrong, Kolesar & Plagborg-Moller 2022, eq. (9) and Appendix B):

    * kappa = 1 (or m2 = 0): the point mass, r0(m2, chi);
    * m2 >= t0(chi): r0(m2, chi) (the concave part);
    * otherwise, if kappa m2 >= t0 (always when kappa = inf): the chord
      r0(0) + m2 / t0 (r0(t0) - r0(0)), attained by mass m2/t0 at t0 and the rest at 0;
    * otherwise the fourth-moment constraint binds, and the maximum is over two-point
      distributions with both moments at their bounds (a 1-D search).
    """
    if m2 <= 0.0 or kappa == 1.0:
        return _r0(max(m2, 0.0), chi)
    t0 = _t0(chi)
    if m2 >= t0:
        return _r0(m2, chi)
    if math.isinf(kappa) or kappa * m2 >= t0:
        r00 = _r0(0.0, chi)
        return r00 + m2 / t0 * (_r0(t0, chi) - r00)
    return _two_point(m2, kappa, chi)[0]


def _cv_point(m2: float, alpha: float) -> float:
    """chi with r0(m2, chi) = alpha: sqrt of the 1 - alpha quantile of a noncentral chi^2_1(m2)."""
    from scipy import optimize

    b = math.sqrt(m2)
    z = float(ndtri(1.0 - alpha))
    lo, hi = max(b + float(ndtri(1.0 - alpha)) - 1.0, 0.0), b + z + 10.0
    return optimize.brentq(lambda c: _r0(m2, c) - alpha, lo, hi, xtol=1e-14, rtol=1e-14)


def cva(m2: float, kappa: float = math.inf, alpha: float = 0.05) -> float:
    r"""AKP's robust critical value cva_alpha(m2, kappa).

    The smallest chi with rho(m2, kappa, chi) <= alpha (:func:`rho`): an interval
    estimate +- chi * (its SE) then covers at least 1 - alpha of the groups on average, whatever
    the distribution of the effects, given the second moment m2 (and kurtosis kappa) of the
    normalized bias. cva(0, .) = z_{1 - alpha/2}; kappa = 1 gives sqrt of the noncentral
    chi^2_1(m2) quantile; kappa = inf uses the second moment only.

    Armstrong, T. B., Kolesar, M. & Plagborg-Moller, M. (2022), "Robust empirical Bayes
    confidence intervals", Econometrica 90(6): 2567-2602, eq. (10).

    Examples
    --------
    >>> from bayeshrink.intervals import cva
    >>> round(cva(0.0), 6)               # the normal critical value
    1.959964
    >>> round(cva(25.0, kappa=3.0), 6)   # ebci's published cva(m2=25, kappa=3)
    11.883584
    """
    from scipy import optimize

    m2, kappa, alpha = float(m2), float(kappa), float(alpha)
    if not (0.0 < alpha < 1.0) or not m2 >= 0.0 or not kappa >= 1.0 or math.isinf(m2):
        raise MethodError(
            f"`cva` needs 0 <= m2 < inf, kappa >= 1 and 0 < alpha < 1; got m2={m2}, "
            f"kappa={kappa}, alpha={alpha}. The kurtosis of any distribution is at least 1."
        )
    lo = _cv_point(m2, alpha)  # rho >= r0(m2, .): the point mass is always feasible
    if m2 == 0.0 or kappa == 1.0:
        return lo
    up = math.sqrt((1.0 + m2) / alpha)  # Chebyshev: E (Z + b)^2 / chi^2 <= alpha
    f_lo = rho(m2, kappa, lo) - alpha
    if f_lo <= 1e-15:
        return lo
    if rho(m2, kappa, up) - alpha >= 0.0:
        return up
    return optimize.brentq(lambda c: rho(m2, kappa, c) - alpha, lo, up, xtol=1e-13, rtol=1e-13)


def cva_many(m2: np.ndarray, kappa: np.ndarray, alpha: float) -> np.ndarray:
    """cva elementwise over rows (m2 (B, J), kappa (B,)), computing each distinct value once."""
    out = np.empty_like(m2)
    for b in range(m2.shape[0]):
        values, inverse = np.unique(m2[b], return_inverse=True)
        cvs = np.array([cva(v, float(kappa[b]), alpha) for v in values])
        out[b] = cvs[inverse]
    return out
