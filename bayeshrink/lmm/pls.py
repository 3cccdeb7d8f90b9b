r"""REML and ML for linear mixed models with several grouping factors, crossed or nested.

The model (lme4's, Bates et al. 2015, J. Stat. Softw. 67(1))::

    y = X beta + Z b + e,   b = Lambda u,   u ~ N(0, sigma^2 I),   e ~ N(0, sigma^2 I)

Z = [Z_1 | ... | Z_F] has one block of columns per grouping factor f (n_f levels, q_f terms per
level); Lambda is block diagonal with Lambda_f = I_{n_f} (x) T_f, T_f lower triangular (itself
block diagonal when the formula has several parenthesised blocks on the factor). ``theta`` holds
the free entries of the T_f, factor by factor in lme4's order, exactly ``getME(m, "theta")``.

Penalised least squares. For fixed theta, u and beta minimise
``r2 = ||y - X beta - Z Lambda u||^2 + ||u||^2`` and, with M = Lambda' Z'Z Lambda + I,

    ML:    -2 l = log|M| + N (1 + log(2 pi r2 / N))
    REML:  -2 l = log|M| + log|H| + (N - p)(1 + log(2 pi r2 / (N - p))),  H = X' V^-1 X

(V = I + Z Lambda Lambda' Z', the marginal covariance over sigma^2).

The blocked factor of M. The factors are ordered so that the one with most random effects comes
first; its block M_11 of M is block diagonal (one q_1 x q_1 block per level, a diagonal when the
factor has one term) and is factored level by level. Eliminating it leaves the Schur complement
``S = M_rr - M_r1 M_11^-1 M_1r`` of the remaining factors, which is dense and small (InstEval:
1,142 x 1,142 for 2,972 students eliminated) and is factored by LAPACK. This is MixedModels.jl's
blocked Cholesky with its first block diagonal; fill-in is confined to S, whose size is the
random effects of all factors but the largest.

Numerics that make the answer independent of the data's units:

* X, y and the random-slope columns are centred and scaled internally (only scaled where
  centring would change the model: no intercept, or a block without an intercept), and every
  estimate is mapped back exactly. Centring a slope inside an unstructured block with an
  intercept is a reparametrisation of the same model (Sigma_b maps by a congruence).
* Once the blocks exist (:class:`PLSBlocks`, from rows or from an engine) nothing reads the
  rows again: r2 = y'y - beta'X'y - u'Lambda'Z'y from the penalised normal equations (y is
  centred and of unit scale, so y'y = N and the subtraction loses at most log10(N sy^2 /
  (N sigma^2)) digits), and Z'r = Z'y - Z'X beta - Z'Z b for the gradient.
* The criterion is even in every diagonal entry of T_f, so theta_kk = 0 is always a stationary
  point. A boundary estimate is accepted only after restarts from inside do not find a lower
  criterion; the boundary flag is lme4's ``isSingular()`` on the data-scale theta.

Gradient. With P = M^-1 Lambda' Z'Z = (I - M^-1) Lambda^-1 (T_f invertible), the derivative of
log|M| in T_f is 2 sum_l ((I - Minv_l) T_f^-1)', where Minv_l are the diagonal blocks of M^-1: for
the first factor M_11,l^-1 + F_l' S^-1 F_l with F = M_r1 M_11^-1 (a sparse product and a trace
against S^-1), for the others blocks of S^-1. The derivative of r2 is -2 sum_l (Z'r)_l u_l' (the
envelope theorem), that of log|H| is -2 sum_l Y_l H^-1 U_l' with Y = Z' V^-1 X and
U = M^-1 Lambda' Z'X. At theta_f = 0 for a one-term factor the derivative is exactly 0 (the
criterion is even there); only a many-term factor whose T_f is singular is differentiated by
central differences of the criterion.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp

from ..api import SINGULAR_TOL
from ..errors import ConvergenceWarning, DataError, MethodError
from .blocks import (
    PLSBlocks,
    block_diag,
    dense_enough,
    elimination_order,
    gram,
    psd_cholesky,
    row_blocks,
)
from .estimate import theta_layout
from .optimize import optimise

__all__ = ["FactorData", "MultiComponents", "PLSBlocks", "fit_pls", "row_blocks"]

#: Largest Schur complement (random effects of all factors but the first) factored densely.
MAX_DENSE = 12_000


@dataclass(frozen=True, eq=False)
class FactorData:
    """One grouping factor: the level of every row and the factor's random-effect columns.

    ``name`` and ``labels`` are lme4's (``cask:batch``, ``a:A``); ``Z`` holds the term columns
    on the data's scale (rows x q); ``block_sizes`` splits the terms into independent blocks.
    """

    name: str
    codes: np.ndarray  # (N,) integer level of each row, 0..n_levels-1
    labels: pd.Index
    Z: np.ndarray  # (N, q)
    terms: tuple[str, ...]
    block_sizes: tuple[int, ...]

    @property
    def n_levels(self) -> int:
        return len(self.labels)

    @property
    def q(self) -> int:
        return len(self.terms)


@dataclass(frozen=True, eq=False)
class FactorEstimate:
    """One factor's estimates on the data's scale."""

    name: str
    labels: pd.Index
    terms: tuple[str, ...]
    block_sizes: tuple[int, ...]
    cov: np.ndarray  # (q, q) covariance of the random effects, lme4's VarCorr block
    b: np.ndarray  # (n_levels, q) conditional modes
    cond_cov: np.ndarray  # (n_levels, q, q) conditional covariances, lme4's postVar
    n: np.ndarray  # (n_levels,) rows per level
    # prediction-error covariance of b counting the fixed effects' uncertainty (Henderson):
    # Var(b_hat - b) per level (n, q, q) and Cov(beta_hat, b_hat - b) per level (n, p, q)
    err_cov: np.ndarray | None = None
    beta_err_cov: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class MultiComponents:
    """The estimates at the optimum. Names follow lme4; arrays are on the data's scale."""

    method: str
    theta: np.ndarray  # lme4's getME(m, "theta")
    beta: np.ndarray
    vcov_beta: np.ndarray
    sigma: float
    criterion: float  # REML criterion or -2 log-likelihood, as lme4
    factors: tuple[FactorEstimate, ...]  # in lme4's order (most levels first)
    boundary: bool
    n_obs: int
    grad_norm: float
    n_evals: int = 0
    info: dict = field(default_factory=dict)

    @property
    def loglik(self) -> float:
        return -0.5 * self.criterion


# ---------------------------------------------------------------------------- the problem
class _Problem:
    """Cross-products on the internal scale and the criterion with its gradient."""

    def __init__(self, y, X, factors: list[FactorData], method: str, blocks=None):
        """From the rows (``y``, ``X`` and each factor's codes and Z), reduced here to their
        :class:`PLSBlocks`, or from ``blocks`` (the cross-products on the internal scale; ``y``
        and ``X`` None). The rows are not kept: every evaluation reads the blocks alone."""
        self.method = method
        if blocks is None:
            blocks = row_blocks(y, X, factors)
        N = blocks.N
        self.N = N
        self.p = blocks.XtX.shape[0]
        self.A, self.icpt, self.my, self.sy = blocks.A, blocks.icpt, blocks.my, blocks.sy
        self.Az = list(blocks.Az)
        self.yty = blocks.yty
        self.dof = float(N - self.p) if method == "reml" else float(N)

        # ---- factors: lme4's order (most levels first, stable) is the order of theta; the
        # elimination order puts the factor with most random effects first.
        self.factors = factors
        F = len(factors)
        self.first_term_ones = list(blocks.first_term_ones)
        self.tmpl = [theta_layout(f.block_sizes) for f in factors]
        counts = [len(t[0]) for t in self.tmpl]
        self.theta_off = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        self.n_theta = int(self.theta_off[-1])
        self.diag = np.concatenate([t[2] for t in self.tmpl]) if F else np.zeros(0, bool)
        # for each theta entry, the entries below it in the same column of its factor's T_f:
        # flipping the sign of a column whose diagonal is 0 leaves Lambda Lambda' unchanged
        self.below: dict[int, np.ndarray] = {}
        for k in range(F):
            rr, cc, _ = self.tmpl[k]
            o = int(self.theta_off[k])
            for t in range(len(rr)):
                self.below[o + t] = o + np.flatnonzero((cc == cc[t]) & (rr > rr[t]))
        dims = [f.n_levels * f.q for f in factors]
        self.order = elimination_order(factors)
        first = self.order[0]
        self.first = first
        self.rest = self.order[1:]
        offs = {}
        o = 0
        for k in self.order:
            offs[k] = o
            o += dims[k]
        self.off = offs
        self.qtot = o
        self.n1q1 = dims[first]
        self.r = self.qtot - self.n1q1
        if self.r > MAX_DENSE:
            raise DataError(
                f"the grouping factors other than {factors[first].name!r} have {self.r} random "
                f"effects together; their Schur complement is factored densely, which is limited "
                f"to {MAX_DENSE}. Fit fewer levels in the smaller factors, or use lme4 for this "
                "design."
            )

        ZtZ = blocks.ZtZ
        self.ZtZ = ZtZ
        self.ZtX, self.Zty = blocks.ZtX, blocks.Zty
        self.XtX, self.Xty = blocks.XtX, blocks.Xty
        f1 = factors[first]
        q1 = f1.q
        self.q1 = q1
        self.A11 = blocks.A11  # the first factor's per-level blocks of Z'Z
        n1 = self.n1q1
        self.Ar1 = ZtZ[n1:, :n1].tocsr()
        self.Arr = ZtZ[n1:, n1:].toarray()
        # a dense crossing (every subject sees most items): M_r1 and G are kept dense and the
        # products with Lambda and L1 are batched per level (BLAS), not sparse products
        self.ar1_dense = (
            self.Ar1.toarray().reshape(self.r, f1.n_levels, q1)
            if self.r and dense_enough(self.Ar1)
            else None
        )
        self.level_n = list(blocks.level_n)

        # ---- Lambda of the remaining factors as a sparse pattern filled from theta
        lr, lc, lk = [], [], []
        for k in self.rest:
            f = factors[k]
            rr, cc, _ = self.tmpl[k]
            base = offs[k] - n1 + np.arange(f.n_levels)[:, None] * f.q
            lr.append((base + rr[None, :]).ravel())
            lc.append((base + cc[None, :]).ravel())
            shape = (f.n_levels, len(rr))
            lk.append(np.broadcast_to(self.theta_off[k] + np.arange(len(rr)), shape).ravel())
        if self.rest:
            lr, lc, lk = np.concatenate(lr), np.concatenate(lc), np.concatenate(lk)
            pattern = sp.csr_matrix(
                (np.arange(1, len(lr) + 1, dtype=float), (lr, lc)), shape=(self.r, self.r)
            )
            self.lam_r_pattern = pattern
            self.lam_r_map = lk[pattern.data.astype(int) - 1]
        # one term per factor everywhere (the common crossed/nested case): Lambda is diagonal and
        # every product with it is a scaling of a fixed sparsity pattern
        self.scalar = all(f.q == 1 for f in factors)
        if self.scalar:
            diag_idx = np.empty(self.qtot, dtype=int)
            for k in range(F):
                diag_idx[offs[k] : offs[k] + dims[k]] = self.theta_off[k]
            self.diag_idx = diag_idx
            if self.r:
                self.ar1_row = np.repeat(np.arange(self.r), np.diff(self.Ar1.indptr))
                self._pairs = self._level_pairs()
        self.n_evals = 0

    def _level_pairs(self):
        """For a one-term first factor: M_r1 M_11^-1 M_1r = sum_l w_l a_l a_l' with a_l the
        column of Lambda_r'Z_r'Z_1 for level l and w_l = t^2 / (t^2 A11_l + 1), which depends on
        the level only through its A11_l. So the pairs (i >= j) of remaining effects that share
        a level are summed once, here, per position (i, j) and per distinct value of A11_l:
        ``C`` (positions x values) times the per-value weights is the whole product, a sparse
        matrix-vector product over the distinct positions (InstEval: 142,330 positions and 86
        values of A11 for 1.8 million pairs). None when there are too many pairs (a dense
        crossing: BLAS on G is used instead)."""
        C = self.Ar1.tocsc()
        counts = np.diff(C.indptr)
        if int(np.sum(counts * (counts + 1) // 2)) > 8_000_000:
            return None
        rows_i, rows_j, vals, lev = [], [], [], []
        for k in np.unique(counts):
            if k == 0:
                continue
            cols = np.flatnonzero(counts == k)
            starts = C.indptr[cols]
            idx = starts[:, None] + np.arange(k)[None, :]  # (ncols, k)
            rr = C.indices[idx]
            vv = C.data[idx]
            ii, jj = np.tril_indices(k)
            rows_i.append(rr[:, ii].ravel())
            rows_j.append(rr[:, jj].ravel())
            vals.append((vv[:, ii] * vv[:, jj]).ravel())
            lev.append(np.repeat(cols, len(ii)))
        i = np.concatenate(rows_i)
        j = np.concatenate(rows_j)
        hi, lo = np.maximum(i, j), np.minimum(i, j)
        del i, j
        prod = np.concatenate(vals)
        lev = np.concatenate(lev)
        small = np.int32 if self.r * self.r < 2**31 else np.int64
        flat = (hi * self.r + lo).astype(small)
        del hi, lo
        if self.r * self.r <= 1 << 22:  # a mark per entry of S: no sort of the pairs
            seen = np.zeros(self.r * self.r, dtype=bool)
            seen[flat] = True
            pos = np.flatnonzero(seen).astype(small)
            index = np.cumsum(seen, dtype=small) - 1
            inv = index[flat]
            del seen, index
        else:
            pos, inv = np.unique(flat, return_inverse=True)
        del flat
        uhi, ulo = pos // self.r, pos % self.r
        values, cls = np.unique(self.A11[:, 0, 0], return_inverse=True)
        # C column by column (a stable counting sort of the pairs by their value of A11); a
        # position repeated within a column is summed by the product itself
        kind = np.int16 if len(values) < 1 << 15 else np.int64
        pc = cls[lev].astype(kind)
        order = np.argsort(pc, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(pc, minlength=len(values)))])
        Cmat = sp.csc_matrix(
            (prod[order], inv[order], indptr.astype(small)), shape=(len(pos), len(values))
        )
        return {
            "C": Cmat,  # (positions, values of A11): sum of a_il a_jl over the levels
            "a11": values,  # the distinct A11_l
            "flat": pos,  # (hi, lo) in a C-ordered r x r array
            "flat_f": (ulo * self.r + uhi).astype(small),  # the same entry, Fortran order
            "hi": uhi,
            "lo": ulo,
            "mult": np.where(uhi == ulo, 1.0, 2.0),  # off-diagonal positions count twice
            # pair by pair, for the per-level conditional variances at the end
            "inv": inv.astype(small),
            "lev": lev.astype(small),
            "prod": prod,
        }

    # ------------------------------------------------------------------ pieces
    def T(self, theta, k) -> np.ndarray:
        f = self.factors[k]
        rr, cc, _ = self.tmpl[k]
        Tm = np.zeros((f.q, f.q))
        Tm[rr, cc] = theta[self.theta_off[k] : self.theta_off[k + 1]]
        return Tm

    def start(self) -> np.ndarray:
        """lme4's start (Lambda = I) except for a factor's intercept, which starts at the one-way
        ANOVA moment estimate of its SD / sigma from the least-squares residuals (the factor
        alone), floored at 0.1: InstEval's optimum is (0.28, 0.44, 0.07), far from 1."""
        theta = np.where(self.diag, 1.0, 0.0)
        return self._start_from_blocks(theta)

    def _start_from_blocks(self, theta):
        """start() from the cross-products: the same moments, sums over levels instead of rows."""
        N, p = self.N, self.p
        beta = np.linalg.lstsq(self.XtX, self.Xty, rcond=None)[0] if p else np.zeros(0)
        rr = self.yty - 2.0 * beta @ self.Xty + beta @ self.XtX @ beta  # sum of r^2
        zr = self.Zty - self.ZtX @ beta  # Z'r
        for k, f in enumerate(self.factors):
            J = f.n_levels
            if not self.first_term_ones[k] or J < 2 or N <= J:
                continue
            n = self.level_n[k].astype(float)
            idx = self.off[k] + np.arange(J) * f.q
            sums = zr[idx]
            rbar = float(sums.sum()) / N
            means = sums / np.maximum(n, 1.0)
            msw = (rr - float(np.sum(n * means * means))) / (N - J)
            msb = float(np.sum(n * (means - rbar) ** 2)) / (J - 1)
            n0 = (N - float(np.sum(n * n)) / N) / (J - 1)
            if msw <= 0 or n0 <= 0:
                continue
            ratio = max(msb - msw, 0.0) / n0 / msw
            theta[self.theta_off[k]] = math.sqrt(max(ratio, 0.01))
        return theta

    def lam_r(self, theta):
        if not self.rest:
            return sp.csr_matrix((0, 0))
        L = self.lam_r_pattern.copy()
        L.data = theta[self.lam_r_map].astype(float)
        return L

    def lam_full(self, theta):
        """Lambda (qtot x qtot) as a sparse matrix, in elimination order."""
        if self.scalar:
            return sp.diags(theta[self.diag_idx], format="csr")
        T1 = self.T(theta, self.first)
        n1 = self.factors[self.first].n_levels
        L1 = block_diag(np.broadcast_to(T1, (n1, *T1.shape)))
        return sp.block_diag([L1, self.lam_r(theta)], format="csr")

    def factor(self, theta):
        """Blocked Cholesky of M = Lambda'Z'Z Lambda + I."""
        q1 = self.q1
        T1 = self.T(theta, self.first)
        M11 = np.einsum("ba,lbc,cd->lad", T1, self.A11, T1) + np.eye(q1)
        L1 = np.linalg.cholesky(M11)  # (n1, q1, q1)
        n1 = self.factors[self.first].n_levels
        eye = np.broadcast_to(np.eye(q1), L1.shape)
        L1inv = np.linalg.solve(L1, eye)  # (n1, q1, q1)
        logdet = 2.0 * float(np.log(np.diagonal(L1, axis1=1, axis2=2)).sum())
        out = {"T1": T1, "L1": L1, "L1inv": L1inv, "theta": theta}
        if self.r and self.scalar:
            lr = theta[self.diag_idx[self.n1q1 :]]
            Ar1 = self.Ar1
            col_scale = T1[0, 0] / L1[:, 0, 0]
            G = sp.csr_matrix(
                (Ar1.data * lr[self.ar1_row] * col_scale[Ar1.indices], Ar1.indices, Ar1.indptr),
                shape=Ar1.shape,
            )
            S = self.Arr * np.outer(lr, lr)
            S[np.diag_indices(self.r)] += 1.0
            pairs = self._pairs
            if pairs is None:
                S -= gram(G)
            else:  # lower triangle only: the Cholesky reads nothing else
                t2 = T1[0, 0] ** 2
                B = pairs["C"] @ (t2 / (t2 * pairs["a11"] + 1.0))
                S.ravel()[pairs["flat"]] -= B * lr[pairs["hi"]] * lr[pairs["lo"]]
            Lr = self._chol(S)
            logdet += 2.0 * float(np.log(np.diag(Lr)).sum())
            out.update(G=G, Lr=Lr)
        elif self.r and self.ar1_dense is not None:
            lam_r = self.lam_r(theta)
            r = self.r
            A = np.asarray(lam_r.T @ self.ar1_dense.reshape(r, -1)).reshape(r, n1, q1)
            Mr1 = A @ T1  # Lambda_r' A_r1 Lambda_1, level by level
            # Mr1 L1^-T, level by level, as one batched matmul over the levels
            G = np.matmul(Mr1.transpose(1, 0, 2), L1inv.transpose(0, 2, 1))
            G = np.ascontiguousarray(G.transpose(1, 0, 2)).reshape(r, n1 * q1)
            Mrr = np.asarray(lam_r.T @ (lam_r.T @ self.Arr.T).T) + np.eye(r)
            S = Mrr - G @ G.T
            Lr = self._chol(S)
            logdet += 2.0 * float(np.log(np.diag(Lr)).sum())
            out.update(G=G, Lr=Lr)
        elif self.r:
            lam_r = self.lam_r(theta)
            lam1 = block_diag(np.broadcast_to(T1, (n1, *T1.shape)))
            Mr1 = (lam_r.T @ self.Ar1 @ lam1).tocsr()
            L1invT_bd = block_diag(np.transpose(L1inv, (0, 2, 1)))
            G = (Mr1 @ L1invT_bd).tocsr()  # Mr1 L1^-T
            Mrr = np.asarray(lam_r.T @ (lam_r.T @ self.Arr.T).T) + np.eye(self.r)
            S = Mrr - gram(G)
            Lr = self._chol(S)
            logdet += 2.0 * float(np.log(np.diag(Lr)).sum())
            out.update(G=G, Lr=Lr)
        out["logdet"] = logdet
        return out

    def _chol(self, S):
        """Lower Cholesky factor of the Schur complement (symmetric positive definite: it is a
        Schur complement of I + Lambda'Z'Z Lambda, whose eigenvalues are >= 1)."""
        try:
            return sla.cholesky(S, lower=True, check_finite=False, overwrite_a=True)
        except np.linalg.LinAlgError:
            S = np.tril(S) + np.tril(S, -1).T + 1e-12 * np.eye(self.r)
            return sla.cholesky(S, lower=True, check_finite=False)

    def solve(self, fac, B):
        """M^-1 B for B (qtot x k) with the blocked factor."""
        q1 = self.q1
        n1 = self.factors[self.first].n_levels
        k = B.shape[1]
        B1 = B[: self.n1q1].reshape(n1, q1, k)
        y1 = fac["L1inv"] @ B1  # L1^-1 b1
        if self.r:
            G, Lr = fac["G"], fac["Lr"]
            yr = sla.solve_triangular(
                Lr, B[self.n1q1 :] - G @ y1.reshape(-1, k), lower=True, check_finite=False
            )
            xr = sla.solve_triangular(Lr, yr, lower=True, trans="T", check_finite=False)
            y1 = y1 - (G.T @ xr).reshape(n1, q1, k)
        else:
            xr = np.zeros((0, k))
        x1 = np.transpose(fac["L1inv"], (0, 2, 1)) @ y1
        return np.vstack([x1.reshape(-1, k), xr])

    def evaluate(self, theta, want_grad: bool = False):
        # the optimiser, the polish and the final summaries ask for the same theta repeatedly
        theta = np.asarray(theta, float)
        last = getattr(self, "_last", None)
        if last is not None and np.array_equal(last[0], theta):
            if not want_grad:
                return last[1], last[2]
            if last[3] is not None:
                return last[1], last[2], last[3]
            grad = self._gradient(theta, last[2])
            self._last = (last[0], last[1], last[2], grad)
            return last[1], last[2], grad
        out = self._evaluate(theta, want_grad)
        self._last = (theta.copy(), out[0], out[1], out[2] if want_grad else None)
        return out

    def _evaluate(self, theta, want_grad: bool = False):
        self.n_evals += 1
        p = self.p
        fac = self.factor(theta)
        lam = self.lam_full(theta)
        c = lam.T @ np.column_stack([self.ZtX, self.Zty])  # Lambda'Z'[X y]
        U = self.solve(fac, c)
        if p:
            H = self.XtX - c[:, :p].T @ U[:, :p]
            H = 0.5 * (H + H.T)
            Hc = sla.cho_factor(H, lower=True, check_finite=False)
            beta = sla.cho_solve(Hc, self.Xty - c[:, :p].T @ U[:, p], check_finite=False)
            logdet_H = 2.0 * float(np.log(np.diag(Hc[0])).sum())
            u = U[:, p] - U[:, :p] @ beta
        else:
            H = np.zeros((0, 0))
            beta = np.zeros(0)
            logdet_H = 0.0
            u = U[:, 0]
        b = lam @ u
        # the penalised normal equations: r2 = y'y - beta'X'y - u'Lambda'Z'y (MixedModels.jl
        # reads the same number as the square of the last diagonal entry of the blocked
        # Cholesky of the system augmented by y)
        r2 = float(self.yty - beta @ self.Xty - u @ c[:, p])
        r2 = max(r2, np.finfo(float).tiny)
        crit = fac["logdet"] + self.dof * (1.0 + math.log(2.0 * math.pi * r2 / self.dof))
        if self.method == "reml":
            crit += logdet_H
        state = dict(fac=fac, lam=lam, U=U, H=H, beta=beta, u=u, b=b, r2=r2)
        if not want_grad:
            return crit, state
        return crit, state, self._gradient(theta, state)

    # ------------------------------------------------------------------ gradient
    def _F(self, fac):
        """F = M_r1 M_11^-1 = G L1^-1 (r x n1q1; dense when G is)."""
        G = fac["G"]
        if isinstance(G, np.ndarray):
            n1, q1 = self.factors[self.first].n_levels, self.q1
            G3 = G.reshape(self.r, n1, q1)
            F = np.matmul(G3.transpose(1, 0, 2), fac["L1inv"])  # (n1, r, q1)
            return np.ascontiguousarray(F.transpose(1, 0, 2)).reshape(self.r, n1 * q1)
        if self.q1 == 1:
            d = fac["L1inv"][:, 0, 0]
            return sp.csr_matrix((G.data * d[G.indices], G.indices, G.indptr), shape=G.shape)
        return (G @ block_diag(fac["L1inv"])).tocsr()

    def _pick(self, Sinv):
        """The lower-triangle entries of S^-1 at the positions of the level pairs."""
        pr = self._pairs
        if Sinv.flags.f_contiguous:  # LAPACK's own layout: no copy of S^-1
            return Sinv.ravel(order="F")[pr["flat_f"]]
        return np.ascontiguousarray(Sinv).ravel()[pr["flat"]]

    def _minv_blocks_sum(self, theta, fac, Sinv):
        """sum over levels of the diagonal blocks of M^-1, per factor (q_f x q_f)."""
        out = {}
        q1 = self.q1
        L1inv = fac["L1inv"]
        s1 = np.einsum("lba,lbc->ac", L1inv, L1inv)  # sum_l M11_l^-1
        if self.r and self.scalar and self._pairs is not None:
            # tr(S^-1 F F') with F = M_r1 M_11^-1: (F F')_ij = lr_i lr_j sum_l a_il a_jl w_l
            pr = self._pairs
            lr = theta[self.diag_idx[self.n1q1 :]]
            t2 = self.T(theta, self.first)[0, 0] ** 2
            w = t2 / (t2 * pr["a11"] + 1.0) ** 2  # t^2 / M_11,l^2, per value of A11_l
            terms = (pr["C"] @ w) * pr["mult"] * lr[pr["hi"]] * lr[pr["lo"]]
            s1[0, 0] += float(np.dot(self._pick(Sinv), terms))
        elif self.r:
            n1 = self.factors[self.first].n_levels
            Fm = self._F(fac)  # Mr1 M11^-1
            if isinstance(Fm, np.ndarray) or dense_enough(Fm):
                Fd = Fm if isinstance(Fm, np.ndarray) else Fm.toarray()
                Sfull = Sinv + np.tril(Sinv, -1).T
                for a in range(q1):
                    SF = Sfull @ Fd[:, a::q1]
                    for bb in range(a, q1):
                        v = float(np.sum(SF * Fd[:, bb::q1]))
                        s1[a, bb] += v
                        if bb != a:
                            s1[bb, a] += v
                Fm = None
            Fm = Fm.tocsc() if Fm is not None else None
            for a in range(q1 if Fm is not None else 0):
                Fa = Fm[:, a::q1] if q1 > 1 else Fm
                for bb in range(a, q1):
                    Fb = Fm[:, bb::q1] if q1 > 1 else Fm
                    prod = (Fa @ Fb.T).tocoo()
                    # Sinv holds the lower triangle of S^-1 (symmetric): read (i, j) as (max, min)
                    hi = np.maximum(prod.row, prod.col)
                    lo = np.minimum(prod.row, prod.col)
                    v = float(np.sum(Sinv[hi, lo] * prod.data))
                    s1[a, bb] += v
                    if bb != a:
                        s1[bb, a] += v
            del n1
        out[self.first] = s1
        for k in self.rest:
            f = self.factors[k]
            o = self.off[k] - self.n1q1
            blk = np.zeros((f.q, f.q))
            idx = o + np.arange(f.n_levels) * f.q
            for a in range(f.q):
                for bb in range(f.q):
                    blk[a, bb] = Sinv[idx + max(a, bb), idx + min(a, bb)].sum()
            out[k] = blk
        return out

    def _gradient(self, theta, st):
        p = self.p
        fac, U, u, H = st["fac"], st["U"], st["u"], st["H"]
        Sinv = None
        if self.r:
            Lr = fac["Lr"]
            Sinv, _ = sla.lapack.dpotri(Lr, lower=1)  # lower triangle of S^-1 (upper is 0)
            fac["Sinv_lower"] = Sinv  # kept for the conditional variances at the optimum
        minv_sum = self._minv_blocks_sum(theta, fac, Sinv)
        # Z'r = Z'y - Z'X beta - Z'Z b
        Ztr = self.Zty - self.ZtX @ st["beta"] - np.asarray(self.ZtZ @ st["b"]).ravel()
        if p and self.method == "reml":
            lamUX = st["lam"] @ U[:, :p]
            Y = self.ZtX - self.ZtZ @ lamUX  # Z'V^-1 X
            Hinv = np.linalg.inv(H)
        grad = np.zeros(self.n_theta)
        fd_factors = []
        for k, f in enumerate(self.factors):
            o, q, n = self.off[k], f.q, f.n_levels
            rr, cc, _ = self.tmpl[k]
            Tm = self.T(theta, k)
            ul = u[o : o + n * q].reshape(n, q)
            zr = Ztr[o : o + n * q].reshape(n, q)
            gT = -2.0 * (self.dof / st["r2"]) * (zr.T @ ul)  # d r2 term
            if p and self.method == "reml":
                Yl = Y[o : o + n * q].reshape(n, q, p)
                Ul = U[o : o + n * q, :p].reshape(n, q, p)
                gT -= 2.0 * np.einsum("lai,ij,lbj->ab", Yl, Hinv, Ul)
            dT = np.diag(Tm)
            if np.all(dT > 0):
                Pm = (n * np.eye(q) - minv_sum[k]) @ np.linalg.inv(Tm)
                gT += 2.0 * Pm.T
            elif q == 1:
                gT[:] = 0.0  # the criterion is even in theta_f: its derivative at 0 is 0
            else:
                fd_factors.append(k)
            grad[self.theta_off[k] : self.theta_off[k + 1]] = gT[rr, cc]
        for k in fd_factors:
            sl = range(self.theta_off[k], self.theta_off[k + 1])
            for i in sl:
                h = 1e-6 * max(1.0, abs(theta[i]))
                tp, tm = theta.copy(), theta.copy()
                tp[i] += h
                tm[i] -= h
                if self.diag[i] and tm[i] < 0:
                    tm[i] = theta[i]
                    grad[i] = (self.evaluate(tp)[0] - self.evaluate(tm)[0]) / h
                else:
                    grad[i] = (self.evaluate(tp)[0] - self.evaluate(tm)[0]) / (2 * h)
        return grad

    def value_and_grad(self, theta):
        crit, _, g = self.evaluate(np.asarray(theta, float), want_grad=True)
        return crit, g

    def value(self, theta) -> float:
        return self.evaluate(np.asarray(theta, float))[0]

    def to_internal(self, theta: np.ndarray) -> np.ndarray:
        """Data-scale theta (lme4's) to the internal scale: Lambda_s Lambda_s' = Az T T' Az'."""
        out = []
        for k, f in enumerate(self.factors):
            rr, cc, _ = self.tmpl[k]
            Tm = np.zeros((f.q, f.q))
            Tm[rr, cc] = theta[self.theta_off[k] : self.theta_off[k + 1]]
            rel = self.Az[k] @ Tm @ Tm.T @ self.Az[k].T
            start = 0
            Ts = np.zeros((f.q, f.q))
            for size in f.block_sizes:
                sl = slice(start, start + size)
                Ts[sl, sl] = psd_cholesky(0.5 * (rel[sl, sl] + rel[sl, sl].T))
                start += size
            out.append(Ts[rr, cc])
        return np.concatenate(out) if out else np.zeros(0)

    # ------------------------------------------------------------------ conditional variances
    def minv_blocks(self, fac):
        """Per factor, the diagonal blocks of M^-1 for every level: (n_f, q_f, q_f)."""
        out = {}
        q1 = self.q1
        L1inv = fac["L1inv"]
        blocks1 = np.einsum("lba,lbc->lac", L1inv, L1inv)
        if self.r:
            Lr = fac["Lr"]
            inv = fac.get("Sinv_lower")
            if inv is None:
                inv, _ = sla.lapack.dpotri(Lr, lower=1)
            n1 = self.factors[self.first].n_levels
            if self.scalar and self._pairs is not None:
                # F_l'S^-1 F_l = t^2 / M_11,l^2 sum over the level's pairs (i, j) of
                # a_il a_jl lr_i lr_j (S^-1)_ij: a gather and a bincount, no dense product
                pr = self._pairs
                theta = fac["theta"]
                lr = theta[self.diag_idx[self.n1q1 :]]
                g = self._pick(inv) * pr["mult"] * lr[pr["hi"]] * lr[pr["lo"]]
                per = np.bincount(pr["lev"], pr["prod"] * g[pr["inv"]], minlength=n1)
                blocks1[:, 0, 0] += (fac["T1"][0, 0] * L1inv[:, 0, 0] ** 2) ** 2 * per
            Sinv = np.tril(inv) + np.tril(inv, -1).T
            Fm = None if self.scalar and self._pairs is not None else self._F(fac)
            if Fm is None:
                pass
            elif isinstance(Fm, np.ndarray):
                P = Fm.T @ Sinv  # n1q1 x r
                FmT = Fm.T
                for a in range(q1):
                    for bb in range(q1):
                        blocks1[:, a, bb] += np.sum(P[a::q1] * FmT[bb::q1], axis=1)
            else:
                Fm = Fm.tocsc()
                P = np.asarray(Fm.T @ Sinv)  # n1q1 x r
                FmT = Fm.T.tocsr()
                for a in range(q1):
                    Pa = P[a::q1]
                    for bb in range(q1):
                        Fb = FmT[bb::q1]
                        v = np.asarray(Fb.multiply(Pa).sum(axis=1)).reshape(n1)
                        blocks1[:, a, bb] += v
            for k in self.rest:
                f = self.factors[k]
                o = self.off[k] - self.n1q1
                idx = o + np.arange(f.n_levels) * f.q
                blk = np.empty((f.n_levels, f.q, f.q))
                for a in range(f.q):
                    for bb in range(f.q):
                        blk[:, a, bb] = Sinv[idx + a, idx + bb]
                out[k] = blk
        out[self.first] = blocks1
        return out


# ---------------------------------------------------------------------------- entry point
def fit_pls(
    y: np.ndarray,
    X: np.ndarray,
    factors: list[FactorData],
    method: str = "reml",
    *,
    theta: np.ndarray | None = None,
    blocks: PLSBlocks | None = None,
) -> MultiComponents:
    """Fit ``y = X beta + sum_f Z_f b_f + e`` by REML or ML (lme4's profiled criterion).

    ``factors`` in lme4's order (most levels first). Returns the estimates on the data's scale.
    ``theta`` (data scale, lme4's layout): evaluate everything at this theta instead of
    optimising, as lme4 does with ``start = theta`` and no optimiser steps.
    ``blocks``: the cross-products (:class:`PLSBlocks`, e.g. from :func:`row_blocks` or an
    engine) instead of the rows; ``y`` and ``X`` are then ignored and may be None.
    """
    method = str(method).lower()
    if method not in ("reml", "ml"):
        raise MethodError(f"`method` must be 'reml' or 'ml' for a mixed model; got {method!r}.")
    if blocks is None:
        y = np.asarray(y, dtype=float)
        X = np.asarray(X, dtype=float).reshape(len(y), -1)
    prob = _Problem(y, X, list(factors), method, blocks=blocks)
    theta_s = optimise(prob) if theta is None else prob.to_internal(np.asarray(theta, float))
    crit_s, st, grad = prob.evaluate(theta_s, want_grad=True)
    projected = np.where(prob.diag & (theta_s <= 0) & (grad >= 0), 0.0, grad)
    grad_norm = float(np.max(np.abs(projected))) if prob.n_theta else 0.0
    if grad_norm > 1e-3:
        warnings.warn(
            f"the optimiser stopped with a gradient of {grad_norm:.2g} in theta; the estimates "
            "may not be at the optimum.",
            ConvergenceWarning,
            stacklevel=3,
        )
    p, sy = prob.p, prob.sy
    sigma_s = math.sqrt(st["r2"] / prob.dof)
    sigma = sigma_s * sy
    # fixed effects back to the data's scale: X = Xs A
    Ainv = np.linalg.inv(prob.A) if p else np.zeros((0, 0))
    beta = sy * (Ainv @ st["beta"]) if p else np.zeros(0)
    if prob.icpt is not None:
        beta[prob.icpt] += prob.my
    if p:
        vcov_s = sigma_s**2 * np.linalg.inv(st["H"])
        vcov = sy**2 * Ainv @ vcov_s @ Ainv.T
        vcov = 0.5 * (vcov + vcov.T)
    else:
        vcov = np.zeros((0, 0))
    crit = crit_s + prob.dof * 2.0 * math.log(sy)
    if method == "reml" and p:
        crit += 2.0 * float(np.log(np.abs(np.diag(prob.A))).sum())  # det A: triangular-like
    # random effects back to the data's scale: Z_f = Zs_f Az_f, b = Az^-1 b_s
    minv = prob.minv_blocks(st["fac"])
    # Henderson: with W_l = T_f (M^-1 Lambda'Z'X)_l, Var(b_hat_l - b_l) = sigma^2 (T Minv_l T' +
    # W_l H^-1 W_l') and Cov(beta_hat, b_hat_l - b_l) = -sigma^2 H^-1 W_l' (internal scale)
    Hinv_s = np.linalg.inv(st["H"]) if p else np.zeros((0, 0))
    UX = st["U"][:, :p]
    ests, thetas = [], []
    for k, f in enumerate(prob.factors):
        Tm = prob.T(theta_s, k)
        Azi = np.linalg.inv(prob.Az[k])
        o, q, n = prob.off[k], f.q, f.n_levels
        b_s = st["b"][o : o + n * q].reshape(n, q)
        b = sy * b_s @ Azi.T
        cc_s = np.einsum("ab,lbc,dc->lad", Tm, minv[k], Tm)
        cond_cov = sigma**2 * np.einsum("ab,lbc,dc->lad", Azi, cc_s, Azi)
        if p:
            W = Tm[None, :, :] @ UX[o : o + n * q].reshape(n, q, p)  # (n, q, p)
            err_s = cc_s + W @ Hinv_s @ np.transpose(W, (0, 2, 1))
            err_cov = sigma**2 * np.einsum("ab,lbc,dc->lad", Azi, err_s, Azi)
            cross_s = -(Hinv_s @ np.transpose(W, (0, 2, 1)))  # (n, p, q)
            beta_err_cov = sigma**2 * (Ainv @ cross_s @ Azi.T)
        else:
            err_cov, beta_err_cov = cond_cov, np.zeros((n, 0, q))
        rel = Azi @ Tm @ Tm.T @ Azi.T  # Sigma_b / sigma^2 on the data's scale
        cov = sigma**2 * rel
        # theta on the data's scale: the Cholesky factor of each block of rel
        th = []
        start = 0
        for size in f.block_sizes:
            sl = slice(start, start + size)
            Lb = psd_cholesky(0.5 * (rel[sl, sl] + rel[sl, sl].T))
            for c in range(size):
                for r in range(c, size):
                    th.append(Lb[r, c])
            start += size
        thetas.extend(th)
        ests.append(
            FactorEstimate(
                name=f.name,
                labels=f.labels,
                terms=f.terms,
                block_sizes=f.block_sizes,
                cov=cov,
                b=b,
                cond_cov=cond_cov,
                n=prob.level_n[k].astype(float),
                err_cov=err_cov,
                beta_err_cov=beta_err_cov,
            )
        )
    theta = np.asarray(thetas, float)
    boundary = bool(np.any(theta[prob.diag] < SINGULAR_TOL)) if prob.n_theta else False
    return MultiComponents(
        method=method,
        theta=theta,
        beta=beta,
        vcov_beta=vcov,
        sigma=sigma,
        criterion=float(crit),
        factors=tuple(ests),
        boundary=boundary,
        n_obs=prob.N,
        grad_norm=grad_norm,
        n_evals=prob.n_evals,
        info={"theta_internal": theta_s, "schur_size": prob.r, "first_factor": prob.first},
    )
