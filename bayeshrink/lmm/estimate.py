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

Right at any scale. The optimiser sees centred and scaled columns (X, the random slopes, and y
as residuals of a least-squares fit on X; see :class:`~bayeshrink.lmm.design.Standardization`),
and every estimate is mapped back exactly, so shifting or rescaling a covariate changes only the
numbers the answer is reported in. With one variance parameter the criterion is minimised exactly
in lambda = theta^2 (sign changes of the analytic derivative, then Brent's method); with several,
a diagonal entry of Lambda at 0 is accepted only when the criterion along it, and restarts from
inside, find nothing lower: the criterion is even in each diagonal entry, so its gradient there
is 0 whether or not the optimum is inside. ``boundary`` is lme4's ``isSingular()`` rule (a
diagonal entry of Lambda below 1e-4) applied to the standardized columns, so that it too does not
depend on a covariate's units; for covariates with unit SD it is lme4's rule.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..api import SINGULAR_TOL
from ..errors import ConvergenceWarning, MethodError
from .design import MixedStats

__all__ = ["LMMComponents", "ProfiledCriterion", "estimate_lmm", "theta_layout"]


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
    """The estimates at the optimum, on the data's own scale. Names follow lme4."""

    method: str
    theta: np.ndarray
    Lambda: np.ndarray  # (q, q) relative covariance factor
    beta: np.ndarray  # fixed effects
    sigma: float
    H: np.ndarray  # X'V^-1 X in sigma = 1 units
    vcov_beta: np.ndarray  # sigma^2 H^-1, computed on the standardized scale and mapped back
    criterion: float  # -2 log-likelihood (ML) or REML criterion, as lme4
    b: np.ndarray  # (J, q) conditional modes
    S: np.ndarray  # (J, q, q) Var(b_j | y) / sigma^2
    boundary: bool
    n_obs: int
    grad_norm: float  # largest projected gradient entry at the end, on the standardized scale
    theta_std: np.ndarray  # theta of the standardized columns (what the optimiser saw)

    @property
    def loglik(self) -> float:
        return -0.5 * self.criterion

    @property
    def cov_re(self) -> np.ndarray:
        return self.sigma**2 * self.Lambda @ self.Lambda.T


class ProfiledCriterion:
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


def _polish(crit: ProfiledCriterion, theta: np.ndarray, iters: int = 30) -> np.ndarray:
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


def _minimise_scalar(crit: ProfiledCriterion, scale: float) -> float:
    """Global minimiser over theta >= 0 of a criterion with one (scalar) theta, exactly.

    Solved in lambda = theta^2, in which the derivative at the boundary is not forced to 0 (in
    theta the criterion is even, so theta = 0 is always stationary): the sign of the analytic
    derivative is scanned on a logarithmic grid, every sign change from - to + is solved by
    Brent's method, and the lowest of those minima and the boundary point wins."""

    from scipy import optimize

    def f(lam: float) -> float:
        return crit.value(np.array([math.sqrt(lam)]))

    def g(lam: float) -> float:
        t = math.sqrt(lam) if lam > 0.0 else 1e-7 * math.sqrt(scale)
        return float(crit.value_and_grad(np.array([t]))[1][0]) / (2.0 * t)

    grid = np.concatenate([[0.0], scale * np.logspace(-10.0, 10.0, 61)])
    grads = np.array([g(x) for x in grid])
    while grads[-1] < 0.0 and grid[-1] < 1e250:  # still falling: look further out
        more = grid[-1] * np.logspace(1.0, 20.0, 20)
        grid = np.concatenate([grid, more])
        grads = np.concatenate([grads, [g(x) for x in more]])
    candidates = [0.0] if grads[0] >= 0.0 else []
    for i in np.flatnonzero((grads[:-1] < 0.0) & (grads[1:] >= 0.0)):
        lo, hi = float(grid[i]), float(grid[i + 1])
        if grads[i + 1] == 0.0:
            candidates.append(hi)
            continue
        candidates.append(
            optimize.brentq(g, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
        )
    if not candidates:  # no sign change at all: the criterion falls everywhere we looked
        candidates = [float(grid[-1])]
    values = [f(x) for x in candidates]
    return math.sqrt(candidates[int(np.argmin(values))])


def _minimise_vector(crit: ProfiledCriterion) -> np.ndarray:
    """L-BFGS-B from lme4's start (Lambda = I), Newton polish, and boundary ends accepted only
    when the criterion says so."""
    start = np.where(crit.diag, 1.0, 0.0)
    bounds = [(0.0, None) if d else (None, None) for d in crit.diag]

    def run(x0) -> tuple[np.ndarray, float]:
        from scipy import optimize

        res = optimize.minimize(
            crit.value_and_grad,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-12, "gtol": 1e-7, "maxiter": 2000, "maxcor": 20},
        )
        theta = _polish(crit, np.asarray(res.x, dtype=float))
        return theta, crit.value(theta)

    def better(fc: float, f: float) -> bool:
        return fc < f - 1e-10 * max(1.0, abs(f))

    theta, f = run(start)
    # The criterion depends on Lambda only through Lambda Lambda', so it is even in each
    # diagonal entry: at Lambda_kk = 0 its derivative in Lambda_kk vanishes whether or not the
    # optimum lies inside, and a line search that overshoots to 0 stops there. A boundary end is
    # therefore judged by the criterion itself: along each zero diagonal entry (the others held)
    # on a logarithmic grid, and by restarts from inside; any lower point restarts the search.
    probe = np.logspace(-4.0, 2.0, 25)
    for _ in range(4 * len(theta)):
        zero = np.flatnonzero(crit.diag & (theta < SINGULAR_TOL))
        moved = False
        for k in zero:
            trials = []
            for v in probe:
                x0 = theta.copy()
                x0[k] = v
                trials.append((crit.value(x0), v))
            for v in (0.05, 0.3, 1.0):
                trials.append((math.inf, v * max(1.0, float(np.abs(theta).max()))))
            trials.sort(key=lambda t: t[0])
            for _, v in trials[:1] + trials[-3:]:
                x0 = theta.copy()
                x0[k] = v
                cand, fc = run(x0)
                if better(fc, f):
                    theta, f, moved = cand, fc, True
                    break
            if moved:
                break
        if not moved:
            break
    # A diagonal entry the optimiser leaves at ~1e-20 is a boundary estimate: put it at exactly 0
    # when that does not raise the criterion, so that a singular fit shows |corr| = 1 exactly.
    f0 = crit.value(theta)
    for i in np.flatnonzero(crit.diag & (theta > 0) & (theta < 1e-8)):
        trial = theta.copy()
        trial[i] = 0.0
        if crit.value(trial) <= f0 + 1e-12 * max(1.0, abs(f0)):
            theta = trial
    return theta


def _lower_factor(M: np.ndarray) -> np.ndarray:
    """The lower-triangular factor with a non-negative diagonal of M M' (QR of M')."""
    R = np.linalg.qr(M.T, mode="r")
    L = R.T.copy()
    signs = np.where(np.diag(L) < 0.0, -1.0, 1.0)
    return L * signs[None, :]


def estimate_lmm(
    stats: MixedStats, block_sizes, method: str = "reml", *, names=None
) -> LMMComponents:
    """Maximise the (restricted) likelihood over theta; everything else is in closed form.

    The optimiser works on the standardized cross-products (``stats.std``); every estimate is
    then mapped back to the data's own scale (:class:`~bayeshrink.lmm.design.Standardization`).
    """
    method = str(method).lower()
    if method not in ("reml", "ml"):
        raise MethodError(
            f"`method` must be 'reml' or 'ml' for a mixed model; got {method!r}. (The "
            "DerSimonian-Laird estimator is for group estimates with known SEs: bs.fit_summary.)"
        )
    std = stats.std if stats.std is not None else stats
    crit = ProfiledCriterion(std, block_sizes, method)
    n_theta = len(crit.rows)
    if n_theta == 1:
        a = std.A[:, 0, 0]
        theta = np.array([_minimise_scalar(crit, 1.0 / float(np.median(a[a > 0])))])
    else:
        theta = _minimise_vector(crit)
    L, Minv, U, H, beta, r2, value = crit.parts(theta)
    _, grad = crit.value_and_grad(theta)
    projected = np.where(crit.diag & (theta <= 0) & (grad > 0), 0.0, grad)
    grad_norm = float(np.max(np.abs(projected))) if n_theta else 0.0
    if grad_norm > 1e-3:
        k = int(np.argmax(np.abs(projected)))
        where = ""
        if names is not None:
            r, c = crit.rows[k], crit.cols[k]
            where = f" (the entry for {names[c]}" + ("" if r == c else f" x {names[r]}") + ")"
        warnings.warn(
            f"the optimiser stopped with a gradient of {grad_norm:.2g} in theta{where}; the "
            "estimates may not be at the optimum. Covariates are centred and scaled internally, "
            "so this points at the data (e.g. a term that is almost collinear with another).",
            ConvergenceWarning,
            stacklevel=3,
        )
    p, q = std.p, std.q
    sigma = math.sqrt(r2 / crit.dof)
    u = U[:, :, p] - U[:, :, :p] @ beta
    b = u @ L.T
    S = np.einsum("ik,jkl,ml->jim", L, Minv, L)
    Hinv = np.linalg.inv(H) if p else np.zeros((0, 0))
    boundary = bool(np.any(theta[crit.diag] < SINGULAR_TOL))
    theta_std = theta.copy()
    tr = stats.transform
    if tr is not None:  # back to the data's own scale
        sy = tr.y_scale
        sigma *= sy
        Gx_inv = np.linalg.inv(tr.Gx)
        Gz_inv = np.linalg.inv(tr.Gz)
        beta = Gx_inv @ (tr.beta0 + sy * beta)
        Hinv = Gx_inv @ Hinv @ Gx_inv.T
        H = tr.Gx.T @ H @ tr.Gx
        b = sy * b @ Gz_inv.T
        S = Gz_inv @ S @ Gz_inv.T
        M = Gz_inv @ L
        Lo = np.zeros_like(L)
        start = 0
        for size in block_sizes:
            sl = slice(start, start + size)
            Lo[sl, sl] = _lower_factor(M[sl, sl])
            start += size
        # a singular covariance stays exactly singular on the data's scale
        rank = int(np.sum(np.abs(np.diag(L)) > 0.0))
        if rank < q:
            d = np.abs(np.diag(Lo))
            for k in np.argsort(d)[: q - rank]:
                if d[k] <= 1e-12 * max(1.0, float(np.abs(Lo).max())):
                    Lo[k, k] = 0.0
        L = Lo
        theta = L[crit.rows, crit.cols]
        shift = 2.0 * crit.dof * math.log(sy)
        if method == "reml" and p:
            shift += 2.0 * float(np.sum(np.log(np.abs(np.diag(tr.Gx)))))
        value = value + shift
    return LMMComponents(
        method=method,
        theta=theta,
        Lambda=L,
        beta=beta,
        sigma=sigma,
        H=H,
        vcov_beta=sigma**2 * Hinv,
        criterion=float(value),
        b=b,
        S=S,
        boundary=boundary,
        n_obs=int(std.n.sum()),
        grad_norm=grad_norm,
        theta_std=theta_std,
    )
