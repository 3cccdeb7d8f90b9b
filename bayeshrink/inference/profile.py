"""Parameter names, the (sd, cor, sigma) parametrisation and lme4's ``profile``
(likelihood-ratio intervals), for one and several grouping factors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .pieces import (
    FitPieces,
    MultiPieces,
    MultiSystem,
    fit_pieces,
    multi_pieces,
    refit_by_method,
    rel_factor,
)

# =============================================================================== confint


def lme4_term(t: str) -> str:
    return "(Intercept)" if t == "Intercept" else t


def variance_parameter_names(p: FitPieces) -> list[str]:
    """lme4's ``confint(oldNames = FALSE)`` names of the random-effects parameters, in theta's
    order (per block: each column's SD, then its correlations with the terms below), then
    ``sigma``."""
    names, start = [], 0
    for size in p.block_sizes:
        terms = [lme4_term(t) for t in p.random_names[start : start + size]]
        for c in range(size):
            names.append(f"sd_{terms[c]}|{p.factor}")
            for r in range(c + 1, size):
                names.append(f"cor_{terms[r]}.{terms[c]}|{p.factor}")
        start += size
    return [*names, "sigma"]


def _layout(p: FitPieces):
    from ..lmm.estimate import theta_layout

    return theta_layout(p.block_sizes)


def phi_from(p: FitPieces, cov_re: np.ndarray, sigma: float) -> np.ndarray:
    """(sd, cor, ..., sigma) in lme4's order from a covariance matrix and sigma."""
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


def chol_psd(T: np.ndarray) -> np.ndarray | None:
    """Lower-triangular L with L L' = T for a positive semi-definite T (zero columns where T is
    singular); None when T is not positive semi-definite."""
    q = T.shape[0]
    L = np.zeros_like(T)
    scale = max(float(np.max(np.abs(np.diag(T)))), 1e-300)
    for j in range(q):
        d = T[j, j] - L[j, :j] @ L[j, :j]
        if d < -1e-10 * scale:
            return None
        if d <= 1e-14 * scale:
            # a zero pivot: the rest of the column must vanish too
            rest = T[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]
            if np.any(np.abs(rest) > 1e-7 * scale):
                return None
            continue
        L[j, j] = math.sqrt(d)
        L[j + 1 :, j] = (T[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def theta_from_phi(p: FitPieces, phi: np.ndarray, Gz: np.ndarray | None = None):
    """theta (of the columns Z Gz^-1, when Gz is given) from (SDs, correlations, sigma)."""
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


def ml_deviance_function(stats, block_sizes):
    """theta -> (log|M|, r2): the pieces of the ML deviance at theta, with beta profiled out.

    The profile and the bootstrap reach the estimator's criterion only through this function:
    with sigma given, the ML deviance is log|M| + r2 / sigma^2 + N log(2 pi sigma^2) (lme4's
    ``devfun2``); with sigma profiled it is log|M| + N (1 + log(2 pi r2 / N))."""
    from ..lmm.estimate import ProfiledCriterion

    crit = ProfiledCriterion(stats, block_sizes, "ml")
    N = crit.N

    def f(theta: np.ndarray) -> tuple[float, float]:
        try:
            *_, r2, value = crit.parts(np.asarray(theta, float))
        except np.linalg.LinAlgError:  # far out, X'V^-1 X can be singular: not a candidate
            return math.inf, 1.0
        return value - N * (1.0 + math.log(2.0 * math.pi * r2 / N)), r2

    return f


def profiled_ml_criterion(stats, block_sizes):
    """theta -> (ML criterion with beta and sigma profiled out, its gradient in theta)."""
    from ..lmm.estimate import ProfiledCriterion

    vg = ProfiledCriterion(stats, block_sizes, "ml").value_and_grad

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            return vg(theta)
        except np.linalg.LinAlgError:
            return 1e300, np.zeros(len(theta))

    return f


def _score(res) -> float:
    """An optimisation result's value, infinite when it ended infeasible."""
    ok = (res.success or res.status in (0, 8, 9)) and float(res.fun) < 1e299
    return float(res.fun) if ok else math.inf


def minimize(fun, x0, bounds, jac=None, constraints=()):
    """A small bounded minimisation (SLSQP: scipy's L-BFGS-B costs milliseconds per call on
    problems of a few variables, and the profile solves hundreds of them)."""
    from scipy import optimize

    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds], float)
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds], float)
    x0 = np.clip(np.asarray(x0, float), lo, hi)
    return optimize.minimize(
        fun,
        x0,
        jac=jac,
        method="SLSQP",
        bounds=bounds,
        constraints=constraints,
        options={"ftol": 1e-14, "maxiter": 300},
    )


@dataclass(frozen=True, eq=False)
class Scale:
    """The estimator's centred and scaled cross-products and the map to the data's scale
    (``MixedStats.std`` / ``.transform``): W = W_s G with X = X_s Gx, Z = Z_s Gz and
    y = sy y_s + X_s beta0. Profiles and bootstrap refits work on the standardized
    cross-products, so they are right at any scale of the covariates, as the estimator is."""

    std: object  # MixedStats of the standardized columns
    Gx: np.ndarray
    Gz: np.ndarray
    beta0: np.ndarray
    sy: float

    @classmethod
    def of(cls, stats) -> Scale:
        tr = getattr(stats, "transform", None)
        if getattr(stats, "std", None) is not None and tr is not None:
            return cls(stats.std, tr.Gx, tr.Gz, np.asarray(tr.beta0, float), float(tr.y_scale))
        beta0 = np.zeros(stats.p)
        if stats.intercept_col is not None:
            beta0[stats.intercept_col] = stats.y_shift  # the y column holds y - shift
        return cls(stats, np.eye(stats.p), np.eye(stats.q), beta0, 1.0)

    def to_std(self, beta, cov_re, sigma):
        beta_s = (self.Gx @ beta - self.beta0) / self.sy
        return beta_s, self.Gz @ cov_re @ self.Gz.T / self.sy**2, sigma / self.sy

    def from_std(self, beta_s, cov_s, sigma_s):
        Gz_inv = np.linalg.inv(self.Gz)
        beta = np.linalg.solve(self.Gx, self.beta0 + self.sy * beta_s)
        return beta, self.sy**2 * Gz_inv @ cov_s @ Gz_inv.T, self.sy * sigma_s


class Profile:
    """The likelihood profile of one fit (ML, as lme4's ``profile``: REML fits are refitted)."""

    def __init__(self, fit):
        self.fit = fit if fit.method == "ml" else refit_by_method(fit, "ml")
        p = fit_pieces(self.fit)
        self.p = p
        self.N = float(p.n_obs)
        self.sc = Scale.of(p.stats)
        self.dev = ml_deviance_function(self.sc.std, p.block_sizes)
        self.phi_hat = phi_from(p, p.cov_re, p.sigma)
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
        self.base = float(profiled_ml_criterion(self.sc.std, p.block_sizes)(self.theta_hat)[0])

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
        best = None
        for x0 in (phi_start[free] / sc, self.phi_hat[free] / sc):
            res = minimize(obj, x0, bnds)
            if best is None or _score(res) < _score(best):
                best = res
            if np.isfinite(_score(res)):
                break
        zero = (self.kind[free] == "sd") & (best.x <= 1e-6)
        if zero.any():
            for v0 in (0.02, 0.1, 0.5):
                x0 = best.x.copy()
                x0[zero] = v0 * self.p.sigma / sc[zero]
                res = minimize(obj, x0, bnds)
                if _score(res) < _score(best) - 1e-12 * abs(best.fun):
                    best = res
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
        return phi_from(self.p, sigma**2 * T, sigma)

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
        bnds = [(0.0, None) if d else (None, None) for d in self.diag]
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
        starts = [np.asarray(start, float), theta_hat]
        best = None
        for x0 in starts:
            res = minimize(f, x0, bnds, jac=jac, constraints=cons)
            if best is None or _score(res) < _score(best):
                best = res
            if np.isfinite(_score(res)):
                break
        diag = np.r_[self.diag, False] if kind == "sd" else self.diag
        zero = diag & (best.x <= 1e-6)  # restart diagonal entries left at 0 (even there)
        if zero.any() or not np.isfinite(_score(best)):
            zero = zero | (diag & ~np.isfinite(_score(best)))
            for v0 in (0.02, 0.1, 0.5):
                x0 = best.x.copy()
                x0[zero] = v0
                res = minimize(f, x0, bnds, jac=jac, constraints=cons)
                if _score(res) < _score(best) - 1e-12 * abs(best.fun):
                    best = res
        fun = float(best.fun)
        d = max(fun - self.base, 0.0)
        x = np.asarray(best.x)
        return math.copysign(math.sqrt(d), value - self.phi_hat[i]), x[: len(self.diag)]

    # ---------------------------------------------------------------- fixed effects
    def _fixed_stats(self, j: int, value: float):
        """Standardized cross-products of the model with beta_j fixed at ``value``: response
        y - value x_j, fixed columns all but x_j. With x_j = X_s g_j and y = sy y_s + X_s beta0:
        W' = [W_s (non-y) | X_s Gx[:, -j] | y_s + X_s (beta0 - value g_j) / sy]."""
        from ..lmm.design import MixedStats

        st, sc = self.sc.std, self.sc
        k = st.cross.shape[1] - 1
        p = len(st.x_idx)
        keep = np.array([x for x in range(p) if x != j], dtype=int)
        G = sc.Gx[:, keep]
        if len(keep):
            G = G / np.linalg.norm(G, axis=0)  # unit columns: only their span matters
        # the offset's part in the span of the kept columns is absorbed by their coefficients:
        # leave it out, so that y'y holds no large cancelling terms (e.g. Days + 1e6)
        w = (sc.beta0 - value * sc.Gx[:, j]) / sc.sy
        if len(keep):
            w = w - G @ np.linalg.lstsq(G, w, rcond=None)[0]
        T = np.zeros((k + 1, k + len(keep) + 1))
        T[:k, :k] = np.eye(k)
        T[st.x_idx, k : k + len(keep)] = G
        T[k, -1] = 1.0
        T[st.x_idx, -1] = w
        cross = np.einsum("ab,jac,cd->jbd", T, st.cross, T)
        return MixedStats(
            cross=cross,
            n=st.n,
            x_idx=np.arange(k, k + len(keep)),
            z_idx=st.z_idx,
            y_shift=0.0,
            intercept_col=None,
        )

    def zeta_fixed(self, j: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        from ..lmm.estimate import theta_layout

        st = self._fixed_stats(j, value)
        f = profiled_ml_criterion(st, self.p.block_sizes)
        diag = theta_layout(self.p.block_sizes)[2]
        bnds = [(0.0, None) if d else (None, None) for d in diag]
        best = None
        for x0 in (start, self.theta_hat):
            res = minimize(f, x0, bnds, jac=True)
            if best is None or res.fun < best.fun:
                best = res
            if res.success and np.isfinite(res.fun):
                break
        zero = diag & (best.x <= 1e-6)  # restart diagonal entries left at 0 (see zeta_var)
        if zero.any():
            for v in (0.02, 0.1, 0.5):
                x0 = best.x.copy()
                x0[zero] = v
                res = minimize(f, x0, bnds, jac=True)
                if res.fun < best.fun - 1e-12 * abs(best.fun):
                    best = res
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


def _multi_variance_names(p: MultiPieces) -> list[str]:
    names = []
    for f in p.multi:
        start = 0
        for size in f.block_sizes:
            terms = [lme4_term(t) for t in f.terms[start : start + size]]
            for c in range(size):
                names.append(f"sd_{terms[c]}|{f.name}")
                for r in range(c + 1, size):
                    names.append(f"cor_{terms[r]}.{terms[c]}|{f.name}")
            start += size
    return [*names, "sigma"]


def multi_phi(p: MultiPieces, covs, sigma: float) -> np.ndarray:
    """(sd, cor, ..., sigma) in lme4's order from each factor's covariance and sigma."""
    out = []
    for f, cov in zip(p.multi, covs, strict=True):
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        start = 0
        for size in f.block_sizes:
            for c in range(start, start + size):
                out.append(sd[c])
                for r in range(c + 1, start + size):
                    den = sd[r] * sd[c]
                    out.append(cov[r, c] / den if den > 0 else math.nan)
            start += size
    return np.array([*out, sigma])


def _multi_covs(p: MultiPieces, phi: np.ndarray) -> list[np.ndarray]:
    """Each factor's covariance from (sd, cor, ...) in lme4's order (inverse of multi_phi)."""
    covs, i = [], 0
    for f in p.multi:
        q = len(f.terms)
        sd = np.zeros(q)
        cor = np.eye(q)
        start = 0
        for size in f.block_sizes:
            for c in range(start, start + size):
                sd[c] = phi[i]
                i += 1
                for r in range(c + 1, start + size):
                    cor[r, c] = cor[c, r] = phi[i]
                    i += 1
            start += size
        covs.append(cor * np.outer(sd, sd))
    return covs


class MultiProfile:
    """lme4's ``profile`` of a several-factor fit: the signed root of the rise in the ML deviance
    when one parameter is held fixed and every other one re-optimised, solved for +-z.

    The deviance is evaluated by :class:`MultiSystem` on the data's scale. The free parameters
    are optimised on an unbounded scale (log for SDs and sigma, atanh for correlations); for a
    fixed effect, sigma is profiled out in closed form and the others are the relative SDs and
    correlations. An SD estimated at 0 gets the lower bound 0 (one-sided, as lme4).
    """

    def __init__(self, fit):
        if fit.method != "ml":
            fit = refit_by_method(fit, "ml")
        self.fit = fit
        self.p = multi_pieces(fit)
        self.system = MultiSystem(fit)
        p = self.p
        self.phi = multi_phi(p, [f.cov_re for f in p.multi], p.sigma)
        self.n_var = len(self.phi)
        self.is_cor = np.array([n.startswith("cor_") for n in _multi_variance_names(p)], dtype=bool)
        self.d_min = self._dev_phi(self.phi)

    def _to_x(self, phi, idx):
        cor = self.is_cor[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(cor, np.arctanh(np.clip(phi, -1 + 1e-12, 1 - 1e-12)), np.log(phi))

    def _to_phi(self, x, idx):
        return np.where(self.is_cor[idx], np.tanh(x), np.exp(x))

    def _dev_phi(self, phi) -> float:
        covs = _multi_covs(self.p, phi)
        sigma = float(phi[-1])
        try:
            return self.system.ml_deviance([rel_factor(c, sigma) for c in covs], sigma)
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            return 1e300

    @staticmethod
    def _min(f, x0):
        from scipy import optimize

        if len(x0) == 0:
            return f(x0), x0
        best = optimize.minimize(f, x0, method="BFGS", options={"gtol": 1e-7, "maxiter": 500})
        return float(best.fun), best.x

    def zeta_var(self, i: int, value: float, start):
        free = [k for k in range(self.n_var) if k != i and np.isfinite(self.phi[k])]
        free = [k for k in free if self.is_cor[k] or self.phi[k] > 0]

        def f(x):
            phi = self.phi.copy()
            phi[i] = value
            phi[free] = self._to_phi(x, free)
            return self._dev_phi(phi)

        x0 = self._to_x(self.phi[free], free) if start is None else start
        d, x = self._min(f, x0)
        return d, x

    def zeta_fixed(self, j: int, value: float, start):
        X = self.system.X
        keep = [c for c in range(X.shape[1]) if c != j]
        sysj = MultiSystem(self.fit, y=self.system.y - X[:, j] * value, X=X[:, keep])
        p = self.p
        sig = self.phi[-1]
        rel = self.phi[:-1].copy()
        rel[~self.is_cor[:-1]] /= sig
        free = [k for k in range(len(rel)) if self.is_cor[k] or rel[k] > 0]

        def f(x):
            r = rel.copy()
            r[free] = np.where(self.is_cor[free], np.tanh(x), np.exp(x))
            covs = _multi_covs(p, np.r_[r, 1.0])
            try:
                return sysj.ml_deviance([rel_factor(c, 1.0) for c in covs])
            except (np.linalg.LinAlgError, RuntimeError, ValueError):
                return 1e300

        if start is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                start = np.where(self.is_cor[free], np.arctanh(rel[free]), np.log(rel[free]))
        return self._min(f, start)

    def interval(self, k: int, kind: str, z: float) -> tuple[float, float]:
        if kind == "var":
            est = float(self.phi[k])
            if self.is_cor[k]:
                lo_b, hi_b = -1.0, 1.0
            else:
                lo_b, hi_b = 0.0, math.inf
            zeta = self.zeta_var
        else:
            est = float(self.p.beta[k])
            lo_b, hi_b = -math.inf, math.inf
            zeta = self.zeta_fixed
        out = []
        for sign in (-1.0, 1.0):
            bound = lo_b if sign < 0 else hi_b
            if kind == "var" and not self.is_cor[k] and est == 0.0 and sign < 0:
                out.append(0.0)
                continue
            out.append(self._side(zeta, k, est, sign, bound, z, kind))
        return out[0], out[1]

    def _side(self, zeta, k, est, sign, bound, z, kind) -> float:
        """The value on one side of ``est`` where |zeta| = z (``bound`` if it is not reached);
        each profile optimisation starts where the previous one ended."""
        from scipy import optimize

        state = {"x": None}

        def zf(v):
            d, x = zeta(k, v, state["x"])
            state["x"] = x
            return math.sqrt(max(d - self.d_min, 0.0))

        if kind == "var" and not self.is_cor[k]:
            # multiplicative steps on an SD
            def at(t):
                return est * math.exp(sign * t)
        else:
            scale = math.sqrt(self.p.vcov[k, k]) if kind == "fixed" else 0.1 * (1 - est * est)

            def at(t):
                return est + sign * t * scale

        t_prev, t = 0.0, 0.25 if kind == "var" else 0.5 * z
        for _ in range(60):
            v = at(t)
            if math.isfinite(bound) and sign * (v - bound) >= 0:
                v_b = bound - sign * 1e-9
                if zf(v_b) < z:
                    return bound
                v = v_b
                t = None
            val = zf(v)
            if val >= z:
                a = at(t_prev)
                b = v
                g = lambda u: zf(u) - z  # noqa: E731
                return float(optimize.brentq(g, a, b, xtol=1e-12 * max(abs(est), 1.0), rtol=1e-12))
            if t is None:
                return bound
            t_prev, t = t, t * 1.6
        return bound


def estimates(p) -> pd.Series:
    if isinstance(p, MultiPieces):
        vn = _multi_variance_names(p)
        fn = [lme4_term(t) for t in p.fixed_names]
        phi = multi_phi(p, [f.cov_re for f in p.multi], p.sigma)
        return pd.Series(np.r_[phi, p.beta], index=vn + fn)
    vn = variance_parameter_names(p)
    fn = [lme4_term(t) for t in p.fixed_names]
    return pd.Series(np.r_[phi_from(p, p.cov_re, p.sigma), p.beta], index=vn + fn)
