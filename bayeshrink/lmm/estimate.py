r"""REML and ML for a linear mixed model with one grouping factor, from per-group cross-products.

Model (group j, n_j rows; q random terms, p fixed)::

    y_j = X_j beta + Z_j b_j + e_j,   b_j ~ N(0, sigma^2 T),   e_j ~ N(0, sigma^2 I_{n_j})

with ``T = Lambda Lambda'`` the *relative* covariance of the random effects and ``Lambda``
lower triangular with a non-negative diagonal (block diagonal when the formula has several
blocks on the factor). ``theta`` holds Lambda's free entries column by column within each block,
exactly lme4's ``getME(m, "theta")``; ``Sigma_b = sigma^2 T`` is lme4's ``VarCorr``.

With A_j = Z_j'Z_j, B_j = Z_j'X_j, c_j = Z_j'y_j and M_j = I + Lambda' A_j Lambda, Woodbury gives
everything from the cross-products (Bates et al. 2015, J. Stat. Softw. 67(1), eqs. 34 and 41):

    H      = sum_j X_j'X_j - B_j' Lambda M_j^-1 Lambda' B_j          (X' V^-1 X, sigma = 1)
    beta   = H^-1 (X'y - sum_j B_j' Lambda M_j^-1 Lambda' c_j)
    r2     = penalised residual sum of squares at beta
    ML:    -2 l = sum_j log|M_j| + N (1 + log(2 pi r2 / N))
    REML:  -2 l = sum_j log|M_j| + log|H| + (N - p)(1 + log(2 pi r2 / (N - p)))

The BLUPs (conditional modes) and their conditional covariance are

    b_j = Lambda M_j^-1 Lambda' (c_j - B_j beta),   Var(b_j | y) = sigma^2 Lambda M_j^-1 Lambda'

which is the posterior of b_j under the plug-in prior N(0, sigma^2 T) and the group's likelihood.
The gradient of the criterion in theta is analytic (below), so the optimiser converges to the
precision of the arithmetic; the work per evaluation is O(J q^3), independent of the rows.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ..errors import ConvergenceWarning, MethodError
from .design import MixedStats

__all__ = ["LMMComponents", "estimate_lmm", "theta_layout"]

#: lme4's isSingular(): a diagonal entry of Lambda below this is "on the boundary".
SINGULAR_TOL = 1e-4


def theta_layout(block_sizes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns (in the q x q Lambda) and is-diagonal flags of theta, in lme4's order."""
    rows, cols, diag = [], [], []
    start = 0
    for size in block_sizes:
        for c in range(size):
            for r in range(c, size):
                rows.append(start + r)
                cols.append(start + c)
                diag.append(r == c)
        start += size
    return np.array(rows, dtype=int), np.array(cols, dtype=int), np.array(diag, dtype=bool)


@dataclass(frozen=True, eq=False)
class LMMComponents:
    """The estimates at the optimum. Names follow lme4; matrices are plain numpy."""

    method: str
    theta: np.ndarray
    Lambda: np.ndarray  # (q, q) relative covariance factor
    beta: np.ndarray  # fixed effects (intercept shifted back to the data's scale)
    sigma: float
    H: np.ndarray  # X'V^-1 X in sigma = 1 units; vcov(beta) = sigma^2 H^-1
    criterion: float  # -2 log-likelihood (ML) or REML criterion, as lme4
    b: np.ndarray  # (J, q) conditional modes
    S: np.ndarray  # (J, q, q) Var(b_j | y) / sigma^2
    boundary: bool
    n_obs: int
    grad_norm: float

    @property
    def loglik(self) -> float:
        return -0.5 * self.criterion

    @property
    def cov_re(self) -> np.ndarray:
        return self.sigma**2 * self.Lambda @ self.Lambda.T

    @property
    def vcov_beta(self) -> np.ndarray:
        return self.sigma**2 * np.linalg.inv(self.H)


class _Criterion:
    """The profiled criterion and its gradient in theta, from the cross-products."""

    def __init__(self, stats: MixedStats, block_sizes, method: str):
        self.s = stats
        self.method = method
        self.rows, self.cols, self.diag = theta_layout(block_sizes)
        self.q, self.p = stats.q, stats.p
        self.N = float(stats.n.sum())
        self.dof = self.N - self.p if method == "reml" else self.N
        # [B | c] stacked: (J, q, p + 1)
        self.Bc = np.concatenate([stats.B, stats.c[:, :, None]], axis=2)

    def Lam(self, theta) -> np.ndarray:
        L = np.zeros((self.q, self.q))
        L[self.rows, self.cols] = theta
        return L

    def parts(self, theta):
        s, p, q = self.s, self.p, self.q
        L = self.Lam(theta)
        M = L.T @ s.A @ L + np.eye(q)  # (J, q, q), batched matmul
        chol = np.linalg.cholesky(M)
        logdet_M = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
        Minv = np.linalg.inv(M)
        R = L.T @ self.Bc  # Lambda' [B | c]: (J, q, p + 1)
        U = Minv @ R  # M^-1 Lambda' [B | c]
        Q = np.tensordot(R, U, axes=([0, 1], [0, 1]))  # sum_j R_j' U_j
        H = s.XtX - Q[:p, :p]
        Xv = s.Xty - Q[:p, p]
        yv = s.yty - Q[p, p]
        if p:
            beta = np.linalg.solve(H, Xv)
            r2 = yv - beta @ Xv
            logdet_H = np.linalg.slogdet(H)[1]
        else:
            beta = np.zeros(0)
            r2 = yv
            logdet_H = 0.0
        r2 = max(r2, np.finfo(float).tiny)
        crit = logdet_M + self.dof * (1.0 + math.log(2.0 * math.pi * r2 / self.dof))
        if self.method == "reml":
            crit += logdet_H
        return L, Minv, U, H, beta, r2, crit

    def value(self, theta) -> float:
        return self.parts(theta)[-1]

    def value_and_grad(self, theta):
        s, p = self.s, self.p
        L, Minv, U, H, beta, r2, crit = self.parts(theta)
        # conditional modes b_j = Lambda M^-1 Lambda' (c_j - B_j beta)
        u = U[:, :, p] - U[:, :, :p] @ beta
        b = u @ L.T
        e = s.c - s.B @ beta
        Pe = e - (s.A @ b[:, :, None])[:, :, 0]  # Z_j'(conditional residual)
        AL = s.A @ L  # (J, q, q)
        PA = s.A - AL @ (Minv @ np.transpose(AL, (0, 2, 1)))
        G = PA.sum(axis=0) - (self.dof / r2) * (Pe.T @ Pe)
        if self.method == "reml" and p:
            PB = s.B - AL @ U[:, :, :p]  # (J, q, p)
            PBH = PB @ np.linalg.inv(H)
            G = G - np.tensordot(PBH, PB, axes=([0, 2], [0, 2]))
        grad_L = 2.0 * G @ L
        return crit, grad_L[self.rows, self.cols]


def _polish(crit: _Criterion, theta: np.ndarray, iters: int = 30) -> np.ndarray:
    """Newton steps (finite-difference Hessian of the analytic gradient) on the free coordinates."""
    f, g = crit.value_and_grad(theta)
    for _ in range(iters):
        active = crit.diag & (theta <= 0.0) & (g > 0.0)
        free = ~active
        if not free.any():
            break
        idx = np.flatnonzero(free)
        Hs = np.empty((len(idx), len(idx)))
        for a, i in enumerate(idx):
            h = 1e-6 * max(1.0, abs(theta[i]))
            tp, tm = theta.copy(), theta.copy()
            tp[i] += h
            tm[i] -= h
            if crit.diag[i] and tm[i] < 0:
                tm[i] = theta[i]
                Hs[:, a] = (crit.value_and_grad(tp)[1][idx] - g[idx]) / h
            else:
                Hs[:, a] = (crit.value_and_grad(tp)[1][idx] - crit.value_and_grad(tm)[1][idx]) / (
                    2 * h
                )
        Hs = 0.5 * (Hs + Hs.T)
        step = -np.linalg.lstsq(Hs, g[idx], rcond=1e-12)[0]
        # Near the optimum the criterion is flat to rounding (|f| ~ N), so a step is judged by
        # the analytic gradient it leaves, which stays accurate there, unless f clearly rises.
        gnorm = np.max(np.abs(g[idx]))
        improved = False
        for scale in (1.0, 0.5, 0.25, 0.1):
            trial = theta.copy()
            trial[idx] += scale * step
            trial[crit.diag] = np.maximum(trial[crit.diag], 0.0)
            ft, gt = crit.value_and_grad(trial)
            act = crit.diag & (trial <= 0.0) & (gt > 0.0)
            gt_norm = np.max(np.abs(np.where(act, 0.0, gt)))
            if gt_norm < gnorm and ft <= f + 1e-10 * max(1.0, abs(f)):
                improved = True
                theta, f, g = trial, ft, gt
                break
        if not improved or np.max(np.abs(scale * step)) < 1e-14:
            break
    return theta


def estimate_lmm(stats: MixedStats, block_sizes, method: str = "reml") -> LMMComponents:
    """Maximise the (restricted) likelihood over theta; everything else is in closed form."""
    method = str(method).lower()
    if method not in ("reml", "ml"):
        raise MethodError(
            f"`method` must be 'reml' or 'ml' for a mixed model; got {method!r}. (The "
            "DerSimonian-Laird estimator is for group estimates with known SEs: bs.fit_summary.)"
        )
    crit = _Criterion(stats, block_sizes, method)
    n_theta = len(crit.rows)
    start = np.where(crit.diag, 1.0, 0.0)
    bounds = [(0.0, None) if d else (None, None) for d in crit.diag]

    def run(x0) -> tuple[np.ndarray, float]:
        res = optimize.minimize(
            crit.value_and_grad,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 2000, "maxcor": 20},
        )
        theta = _polish(crit, np.asarray(res.x, dtype=float))
        return theta, crit.value(theta)

    # lme4's start, Lambda = I
    theta, f = run(start)
    # The criterion depends on Lambda only through Lambda Lambda', so it is even in each
    # diagonal entry: at Lambda_kk = 0 its derivative in Lambda_kk vanishes whether or not the
    # optimum lies inside. A boundary end is therefore only accepted after restarts that move
    # each zero diagonal entry back inside do not find a lower criterion.
    tried: set[int] = set()
    while True:
        zero = [k for k in np.flatnonzero(crit.diag & (theta < SINGULAR_TOL)) if k not in tried]
        if not zero:
            break
        k = zero[0]
        tried.add(k)
        scale = max(1.0, float(np.abs(theta).max()))
        for v in (0.05, 0.3, 1.0):
            x0 = theta.copy()
            x0[k] = v * scale
            cand, fc = run(x0)
            if fc < f - 1e-10 * max(1.0, abs(f)):
                theta, f = cand, fc
                break
    # A diagonal entry the optimiser leaves at ~1e-20 is a boundary estimate: put it at exactly 0
    # when that does not raise the criterion, so that a singular fit shows |corr| = 1 exactly.
    f0 = crit.value(theta)
    for i in np.flatnonzero(crit.diag & (theta > 0) & (theta < 1e-8)):
        trial = theta.copy()
        trial[i] = 0.0
        if crit.value(trial) <= f0 + 1e-12 * max(1.0, abs(f0)):
            theta = trial
    L, Minv, U, H, beta, r2, value = crit.parts(theta)
    _, grad = crit.value_and_grad(theta)
    projected = np.where(crit.diag & (theta <= 0) & (grad > 0), 0.0, grad)
    grad_norm = float(np.max(np.abs(projected))) if n_theta else 0.0
    if grad_norm > 1e-3:
        warnings.warn(
            f"the optimiser stopped with a gradient of {grad_norm:.2g} in theta; the estimates "
            "may not be at the optimum. Rescaling covariates (e.g. centring them) usually helps.",
            ConvergenceWarning,
            stacklevel=3,
        )
    p = stats.p
    sigma = math.sqrt(r2 / crit.dof)
    u = U[:, :, p] - U[:, :, :p] @ beta
    b = u @ L.T
    S = np.einsum("ik,jkl,ml->jim", L, Minv, L)
    beta = beta.copy()
    if stats.intercept_col is not None:
        beta[stats.intercept_col] += stats.y_shift
    boundary = bool(np.any(theta[crit.diag] < SINGULAR_TOL))
    return LMMComponents(
        method=method,
        theta=theta,
        Lambda=L,
        beta=beta,
        sigma=sigma,
        H=H,
        criterion=float(value),
        b=b,
        S=S,
        boundary=boundary,
        n_obs=int(stats.n.sum()),
        grad_norm=grad_norm,
    )
