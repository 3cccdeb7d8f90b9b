"""Parameter names, the (sd, cor, sigma) parametrisation and lme4's ``profile``
(likelihood-ratio intervals), for any fit through its model's deviance
(:class:`~.model.ModelPieces`: ``backend.ml_parts`` / ``ml_criterion`` / ``with_fixed``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..api import lme4_term
from .backends import best_of, chol_psd, restart_zeros, score, theta_bounds
from .model import ModelPieces, model_of, refit_by_method


def variance_parameter_names(p: ModelPieces) -> list[str]:
    """lme4's ``confint(oldNames = FALSE)`` names of the random-effects parameters, in theta's
    order (term by term, block by block: each column's SD, then its correlations with the
    terms below), then ``sigma``."""
    names = []
    for term in p.terms:
        for block in term.blocks():
            terms = [lme4_term(t) for t in block]
            for c in range(len(terms)):
                names.append(f"sd_{terms[c]}|{term.name}")
                for r in range(c + 1, len(terms)):
                    names.append(f"cor_{terms[r]}.{terms[c]}|{term.name}")
    return [*names, "sigma"]


def _layout(p: ModelPieces):
    from ..lmm.estimate import theta_layout

    return theta_layout(p.block_sizes)


def stacked_cov(covs) -> np.ndarray:
    """The terms' covariances as one block-diagonal matrix (the stacked theta's layout)."""
    from scipy.linalg import block_diag

    return block_diag(*covs) if len(covs) else np.zeros((0, 0))


def phi_from(p: ModelPieces, covs, sigma: float) -> np.ndarray:
    """(sd, cor, ..., sigma) in lme4's order from each term's covariance matrix and sigma."""
    cov_re = stacked_cov(covs)
    rows, cols, diag = _layout(p)
    sd = np.sqrt(np.clip(np.diag(cov_re), 0, None))
    phi = np.empty(len(rows) + 1)
    for i, (r, c, d) in enumerate(zip(rows, cols, diag, strict=True)):
        if d:
            phi[i] = sd[r]
        else:
            den = sd[r] * sd[c]
            phi[i] = cov_re[r, c] / den if den > 0 else 0.0
    phi[-1] = sigma
    return phi


def theta_from_phi(p: ModelPieces, phi: np.ndarray, Gz: np.ndarray | None = None):
    """The stacked theta (of the columns Z Gz^-1, when Gz is given) from (SDs, correlations,
    sigma)."""
    rows, cols, diag = _layout(p)
    q = len(p.random_names)
    sigma = phi[-1]
    sd = np.zeros(q)
    C = np.eye(q)
    for i, (r, c, d) in enumerate(zip(rows, cols, diag, strict=True)):
        if d:
            sd[r] = phi[i]
        else:
            C[r, c] = C[c, r] = phi[i]
    T = C * np.outer(sd, sd) / sigma**2
    if Gz is not None:
        T = Gz @ T @ Gz.T
    L = chol_psd(T)
    if L is None:
        return None
    return L[rows, cols]


def _criterion(backend):
    """The backend's profiled ML criterion as scipy wants it, and its ``jac``."""
    if backend.grad:
        return backend.ml_criterion, True
    return (lambda theta: backend.ml_criterion(theta)[0]), None


class Profile:
    """lme4's ``profile`` of a fit: the signed root of the rise in the ML deviance when one
    parameter is held fixed and every other one re-optimised, solved for +-z (REML fits are
    refitted by ML, as lme4 does). The deviance is the model's own (``backend.ml_parts``), on
    its scale (the estimator's standardized columns for one factor), so the units of a
    covariate do not change the intervals. An SD estimated at 0 gets the lower bound 0."""

    def __init__(self, fit):
        self.fit = fit if fit.method == "ml" else refit_by_method(fit, "ml")
        p = model_of(self.fit)
        self.p = p
        self.N = float(p.n_obs)
        self.sc = p.backend.scale
        self.dev = p.backend.ml_parts
        self.phi_hat = phi_from(p, [t.cov_re for t in p.terms], p.sigma)
        diag = _layout(p)[2]
        self.kind = np.array([*np.where(diag, "sd", "cor"), "sigma"])
        scale = np.where(self.kind == "cor", 1.0, np.abs(self.phi_hat))
        scale[(self.kind != "cor") & (scale == 0)] = p.sigma
        self.scale = scale
        self.rows, self.cols, self.diag = _layout(p)
        self.q = len(p.random_names)
        self.Gz_inv = np.linalg.inv(self.sc.Gz)
        self.theta_hat = theta_from_phi(self.p, self.phi_hat, self.sc.Gz)
        # every deviance here is on the standardized scale (a constant apart from the data's),
        # so the base is too: the ML criterion at the optimum, sigma profiled out
        self.base = float(p.backend.ml_criterion(self.theta_hat)[0])

    def deviance_phi(self, phi: np.ndarray) -> float:
        """lme4's devfun2: the ML deviance at (SDs, correlations, sigma), beta profiled out (on
        the standardized scale, a constant apart from the data's)."""
        theta = theta_from_phi(self.p, phi, self.sc.Gz)
        sigma = phi[-1] / self.sc.sy
        if theta is None or sigma <= 0:
            return np.inf
        return self._dev(theta, sigma)

    def zeta_cor(self, i: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """A correlation held at ``value``, the other SDs, correlations and sigma re-optimised
        in lme4's own coordinates (bounded, no equality constraint: robust where the fit is
        singular). ``start`` and the returned state are theta, as for the other parameters."""
        free = [k for k in range(len(self.phi_hat)) if k != i]
        sc = self.scale[free]
        phi_start = self._phi_of_theta(start)

        def obj(u):
            phi = np.empty(len(self.phi_hat))
            phi[i] = value
            phi[free] = u * sc
            d = self.deviance_phi(phi)
            return d if np.isfinite(d) else 1e300

        bnds = []
        for k, s_ in zip(free, sc, strict=True):
            lo, hi = self.bounds(k)
            bnds.append((lo / s_, hi / s_))
        best = best_of(obj, (phi_start[free] / sc, self.phi_hat[free] / sc), bnds)
        zero = (self.kind[free] == "sd") & (best.x <= 1e-6)
        best = restart_zeros(obj, best, bnds, zero, unit=self.p.sigma / sc)
        phi = np.empty(len(self.phi_hat))
        phi[i] = value
        phi[free] = np.clip(best.x, [b[0] for b in bnds], [b[1] for b in bnds]) * sc
        d = max(self.deviance_phi(phi) - self.base, 0.0)
        theta = theta_from_phi(self.p, phi, self.sc.Gz)
        return math.copysign(math.sqrt(d), value - self.phi_hat[i]), (
            theta if theta is not None else self.theta_hat
        )

    def _phi_of_theta(self, theta_s: np.ndarray) -> np.ndarray:
        """(SDs, correlations, sigma) from standardized theta, sigma at its profiled value."""
        T = self._T(theta_s)
        _, r2 = self.dev(theta_s)
        sigma = self.sc.sy * math.sqrt(r2 / self.N)
        return phi_from(self.p, [sigma**2 * T], sigma)

    def bounds(self, i: int) -> tuple[float, float]:
        k = self.kind[i]
        if k == "cor":
            return (-1.0, 1.0)
        if k == "sigma":
            return (1e-12 * self.scale[i], np.inf)
        return (0.0, np.inf)

    # ---------------------------------------------------------------- variance parameters
    def _T(self, theta_s: np.ndarray) -> np.ndarray:
        """The relative covariance Sigma / sigma^2 on the data's scale from standardized theta."""
        L = np.zeros((self.q, self.q))
        L[self.rows, self.cols] = theta_s
        with np.errstate(over="ignore", invalid="ignore"):
            M = self.Gz_inv @ L
            return M @ M.T

    def _dev(self, theta_s: np.ndarray, sigma_s: float) -> float:
        logdet, r2 = self.dev(theta_s)
        if not np.isfinite(logdet) or sigma_s <= 0:
            return 1e300
        return logdet + r2 / sigma_s**2 + self.N * math.log(2.0 * math.pi * sigma_s**2)

    def zeta_var(self, i: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """Signed root of the deviance rise with an SD or sigma (``i``) held at ``value``; the
        other parameters are re-optimised in the estimator's standardized theta (well
        conditioned whatever the covariates' units), with sigma fixed or, for an SD, free in
        log scale with the SD held by an equality constraint. Correlations: :meth:`zeta_cor`."""
        kind = self.kind[i]
        if kind == "cor":
            return self.zeta_cor(i, value, start)
        sy = self.sc.sy
        bnds = theta_bounds(self.diag)
        cons = ()
        jac = None
        if kind == "sigma":
            sig_s = value / sy

            def f(theta):
                return self._dev(theta, sig_s)

        elif kind == "sd":
            # variables (theta, log sigma_s), the SD held by an equality constraint
            r = self.rows[i]
            nt = len(self.diag)

            def f(x):
                return self._dev(x[:nt], math.exp(min(x[nt], 700.0)))

            def gap(x):
                t = self._T(x[:nt])[r, r]
                g = sy * math.exp(min(x[nt], 700.0)) * math.sqrt(max(t, 0.0)) - value
                return g / self.scale[i] if np.isfinite(g) else 1e10

            cons = ({"type": "eq", "fun": gap},)
            log_sig = math.log(self.phi_hat[-1] / sy)
            bnds = [*bnds, (log_sig - 30.0, log_sig + 30.0)]
            start = np.r_[np.asarray(start, float)[:nt], log_sig]

        theta_hat = self.theta_hat
        if kind == "sd":
            theta_hat = np.r_[theta_hat, math.log(self.phi_hat[-1] / sy)]
        best = best_of(f, (np.asarray(start, float), theta_hat), bnds, jac, cons)
        diag = np.r_[self.diag, False] if kind == "sd" else self.diag
        # restart diagonal entries left at 0 (the criterion is even there), all if infeasible
        zero = diag & ((best.x <= 1e-6) | ~np.isfinite(score(best)))
        best = restart_zeros(f, best, bnds, zero, jac=jac, cons=cons)
        d = max(float(best.fun) - self.base, 0.0)
        x = np.asarray(best.x)
        return math.copysign(math.sqrt(d), value - self.phi_hat[i]), x[: len(self.diag)]

    # ---------------------------------------------------------------- fixed effects
    def zeta_fixed(self, j: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """beta_j held at ``value`` (the model's ``with_fixed``), theta re-optimised with beta
        and sigma profiled out."""
        f, jac = _criterion(self.p.backend.with_fixed(j, value))
        bnds = theta_bounds(self.diag)
        best = best_of(f, (start, self.theta_hat), bnds, jac)
        best = restart_zeros(f, best, bnds, self.diag & (best.x <= 1e-6), jac=jac)  # as zeta_var
        d = max(float(best.fun) - self.base, 0.0)
        return math.copysign(math.sqrt(d), value - self.p.beta[j]), np.asarray(best.x)

    # ---------------------------------------------------------------- intervals
    def interval(self, name_index: int, kind: str, z: float) -> tuple[float, float]:
        if kind == "fixed":
            j = name_index
            est = float(self.p.beta[j])
            step0 = float(math.sqrt(self.p.vcov[j, j]))
            zeta = self.zeta_fixed
            start = self.theta_hat
            lo_bound, hi_bound = -np.inf, np.inf
        else:
            j = name_index
            est = float(self.phi_hat[j])
            step0 = 0.1 * self.scale[j] if self.kind[j] != "cor" else 0.1
            zeta = self.zeta_var
            start = self.theta_hat
            lo_bound, hi_bound = self.bounds(j)
            if self.kind[j] == "sigma":
                lo_bound = 0.0
        return (
            self._side(zeta, j, est, -1, step0, lo_bound, z, start),
            self._side(zeta, j, est, +1, step0, hi_bound, z, start),
        )

    def _side(self, zeta, j, est, sign, step, bound, z, start) -> float:
        """The value on one side of est where |zeta| = z (bound if it is not reached)."""
        from scipy import optimize

        if sign < 0 and est <= bound:
            return float(bound)  # e.g. an SD estimated at 0: a one-sided interval
        prev_v, prev_z, prev_start = est, 0.0, start
        v = est + sign * step
        cache = {}
        for _ in range(200):
            if (sign > 0 and v >= bound) or (sign < 0 and v <= bound):
                v = float(bound)
                if not np.isfinite(v):
                    break
                zb, sb = zeta(j, v, prev_start)
                if abs(zb) < z:
                    return v
                cache[v] = (zb, sb)
                break
            zv, sv = zeta(j, v, prev_start)
            cache[v] = (zv, sv)
            if abs(zv) >= z:
                break
            # extrapolate linearly in zeta to the target, at most 4x the last step
            slope = (abs(zv) - abs(prev_z)) / abs(v - prev_v)
            nxt = abs(v - est) + (z - abs(zv)) / slope * 1.1 if slope > 0 else 4 * abs(v - est)
            nxt = min(nxt, abs(v - est) + 4 * abs(v - prev_v))
            prev_v, prev_z, prev_start = v, zv, sv
            v = est + sign * max(nxt, abs(v - est) * 1.01)
        a, b = prev_v, v
        sa = prev_start

        def g(x):
            if x == est:  # zeta is 0 at the estimate by definition
                return -z
            return abs(zeta(j, x, sa)[0]) - z

        if a == b:
            return float(a)
        return float(optimize.brentq(g, a, b, xtol=1e-12 * max(1.0, abs(b)), rtol=1e-12))


def estimates(p: ModelPieces) -> pd.Series:
    """The parameters of ``confint`` (lme4's names) at the fit's estimates."""
    vn = variance_parameter_names(p)
    fn = [lme4_term(t) for t in p.fixed_names]
    phi = phi_from(p, [t.cov_re for t in p.terms], p.sigma)
    return pd.Series(np.r_[phi, p.beta], index=vn + fn)
