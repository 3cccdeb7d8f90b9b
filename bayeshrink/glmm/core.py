"""The numerical core of the GLMM fits: PIRLS for the conditional modes and lme4's deviances.

The model, with spherical random effects ``u ~ N(0, I)`` and ``b = Lambda(theta) u``::

    eta = offset + X beta + Z Lambda u,    y_i | u ~ binomial / Poisson with mean g^{-1}(eta_i)

For given ``(theta, beta)`` the conditional mode ``u_hat`` maximises
``log p(y | u) - |u|^2 / 2``; PIRLS finds it by Fisher scoring with step-halving on the
penalised deviance. With ``W`` the IRLS weights ``wt (dmu/deta)^2 / V(mu)`` at ``u_hat`` and
``L L' = Lambda' Z' W Z Lambda + I``, lme4's Laplace deviance is::

    -2 log p(y | u_hat) + |u_hat|^2 + log det(L L')

(the IRLS, i.e. expected, weights also for a non-canonical link such as probit, as lme4 does;
glmmTMB uses the observed Hessian there). Adaptive Gauss-Hermite quadrature (one scalar random
term) centres the nodes at ``u_hat`` and scales them by ``1 / L_jj``.

Two layouts of ``Lambda' Z' W Z Lambda``: one grouping factor gives one small block per group
(solved for all groups at once, and step-halved per group, since the penalised deviance is a sum
over groups); several factors give a dense ``q x q`` system (Cholesky).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..errors import PirlsConvergenceError as PirlsError
from .family import Family

__all__ = ["Factor", "GlmmCore", "PirlsError"]


class Factor:
    """One grouping factor on the estimator's (scaled) columns."""

    def __init__(self, codes, Z, n_levels, block_sizes):
        self.codes = np.asarray(codes, dtype=np.intp)
        self.Z = np.asarray(Z, dtype=float)
        self.J = int(n_levels)
        self.k = self.Z.shape[1]
        self.block_sizes = tuple(block_sizes)

    @property
    def n_theta(self) -> int:
        return sum(s * (s + 1) // 2 for s in self.block_sizes)

    def T(self, theta) -> np.ndarray:
        """The k x k lower-triangular relative factor (block diagonal over the blocks), from
        lme4's layout: each block's lower triangle, column by column."""
        T = np.zeros((self.k, self.k))
        pos = start = 0
        for s in self.block_sizes:
            for c in range(s):
                for r in range(c, s):
                    T[start + r, start + c] = theta[pos]
                    pos += 1
            start += s
        return T

    def theta_lower(self) -> list[float]:
        out = []
        for s in self.block_sizes:
            for c in range(s):
                for r in range(c, s):
                    out.append(0.0 if r == c else -np.inf)
        return out

    def theta_start(self) -> list[float]:
        out = []
        for s in self.block_sizes:
            for c in range(s):
                for r in range(c, s):
                    out.append(1.0 if r == c else 0.0)
        return out


def _bincount_cols(codes, values, J):
    """Per-group sums of the columns of ``values`` (n x c) -> (J, c)."""
    return np.stack(
        [np.bincount(codes, weights=values[:, c], minlength=J) for c in range(values.shape[1])],
        axis=1,
    )


class GlmmCore:
    """PIRLS, the Laplace and AGQ deviances, and the conditional covariances, for fixed data.

    ``y`` (proportions for binomial), prior weights ``wt`` (trials), ``offset``, the fixed-effects
    matrix ``X`` and the factors, all on the estimator's scale.
    """

    def __init__(self, y, wt, offset, X, factors: list[Factor], family: Family):
        self.y = np.asarray(y, dtype=float)
        self.wt = np.asarray(wt, dtype=float)
        self.offset = np.asarray(offset, dtype=float)
        self.X = np.asarray(X, dtype=float)
        self.factors = list(factors)
        self.family = family
        self.n, self.p = self.X.shape
        self.one = len(self.factors) == 1
        self.q = sum(f.J * f.k for f in self.factors)
        self.const = family.loglik_constant(self.y, self.wt)
        self._theta = None
        # PIRLS stops after a full step below tol. For a canonical link the step is Newton's,
        # so the error after a step of 1e-7 is of order 1e-14; Fisher scoring for another link
        # converges linearly and needs the step itself to be small
        self.tol = 1e-7 if family.canonical else 1e-10

    # ------------------------------------------------------------------ theta
    @property
    def n_theta(self) -> int:
        return sum(f.n_theta for f in self.factors)

    def split_theta(self, theta):
        out, pos = [], 0
        for f in self.factors:
            out.append(np.asarray(theta[pos : pos + f.n_theta], dtype=float))
            pos += f.n_theta
        return out

    def set_theta(self, theta) -> None:
        theta = np.asarray(theta, dtype=float)
        if self._theta is not None and np.array_equal(theta, self._theta):
            return
        self._theta = theta.copy()
        self._cache = None
        self.Ts = [f.T(t) for f, t in zip(self.factors, self.split_theta(theta), strict=True)]
        if self.one:
            f = self.factors[0]
            self.m = f.Z @ self.Ts[0]  # (n, k): row i's coefficients on u_{codes[i]}
        else:
            blocks = []
            for f, T in zip(self.factors, self.Ts, strict=True):
                m = f.Z @ T
                rows = np.repeat(np.arange(self.n), f.k)
                cols = (f.codes[:, None] * f.k + np.arange(f.k)[None, :]).ravel()
                blocks.append(sp.csr_matrix((m.ravel(), (rows, cols)), shape=(self.n, f.J * f.k)))
            self.M = sp.hstack(blocks, format="csr")
            self.Mt = self.M.T.tocsr()
            f0 = self.factors[0]
            self.m0 = f0.Z @ self.Ts[0]
            self.M1t = blocks[0].T.tocsr()
            self.M2 = sp.hstack(blocks[1:], format="csr")

    def carry_u(self, u, theta_from):
        """A start for the modes at the current theta from the modes ``u`` at ``theta_from``:
        the same random effects ``b = Lambda u`` (they move much less with theta than u does
        when the groups carry information), where the new factor is invertible."""
        u = np.array(u, dtype=float)
        pos = 0
        for f, t_old, T_new in zip(
            self.factors, self.split_theta(theta_from), self.Ts, strict=True
        ):
            size = f.J * f.k
            d = np.abs(np.diag(T_new))
            if d.min() > 1e-6 * max(1.0, d.max()):
                U = u[pos : pos + size].reshape(f.J, f.k)
                T_old = f.T(t_old)
                if f.k == 1:
                    u[pos : pos + size] = U[:, 0] * (T_old[0, 0] / T_new[0, 0])
                else:
                    u[pos : pos + size] = np.linalg.solve(T_new, T_old @ U.T).T.ravel()
            pos += size
        return u

    # ------------------------------------------------------------------ pieces
    def _re_eta(self, u):
        if self.one:
            f = self.factors[0]
            uu = u.reshape(f.J, f.k)
            if f.k == 1:
                return self.m[:, 0] * uu[f.codes, 0]
            return np.einsum("ik,ik->i", self.m, uu[f.codes])
        return self.M @ u

    def _moments(self, eta):
        # mu, the score of eta and the IRLS (expected) weights
        return self.family.irls(self.y, eta, self.wt)

    def _dev_rows(self, eta):
        """-2 x the mu-dependent part of log p(y_i | eta_i)."""
        if self.family.canonical:
            return -2.0 * self.family.kernel_eta(self.y, eta, self.wt)
        mu = self.family.link.linkinv(eta)
        return -2.0 * self.family.loglik_kernel(self.y, mu, self.wt)

    def _blocks(self, r, W, u):
        """One factor: per-group gradient g (J, k) and information H (J, k, k)."""
        f = self.factors[0]
        m = self.m
        if f.k == 1:
            g = np.bincount(f.codes, weights=r * m[:, 0], minlength=f.J) - u.reshape(-1)
            H = np.bincount(f.codes, weights=W * m[:, 0] ** 2, minlength=f.J) + 1.0
            return g[:, None], H[:, None, None]
        g = _bincount_cols(f.codes, r[:, None] * m, f.J) - u.reshape(f.J, f.k)
        outer = (W[:, None, None] * m[:, :, None] * m[:, None, :]).reshape(self.n, -1)
        H = _bincount_cols(f.codes, outer, f.J).reshape(f.J, f.k, f.k) + np.eye(f.k)
        return g, H

    def _dense(self, r, W, u, X=None):
        """Several factors: the gradient and the blocked system (the first factor's blocks,
        then the Schur complement of the others, and of X's columns for the joint step)."""
        g = self.Mt @ r - u
        return g, _Blocked(self, W, X)

    # ------------------------------------------------------------------ PIRLS (u only)
    def pirls_u(self, beta, u0=None, max_iter=200):
        """The conditional modes for fixed (theta, beta): returns u (flat, factor-major)."""
        base = self.offset + self.X @ beta
        u = np.zeros(self.q) if u0 is None else np.array(u0, dtype=float)
        if self.one:
            return self._pirls_u_blocks(base, u, max_iter)
        return self._pirls_u_dense(base, u, max_iter)

    def _pirls_u_blocks(self, base, u, max_iter):
        f = self.factors[0]
        codes, J, k = f.codes, f.J, f.k
        fam, y, wt = self.family, self.y, self.wt
        U = u.reshape(J, k).copy()
        eta = base + self._re_eta(U.ravel())
        dev, r, W = fam.eval_eta(y, eta, wt)
        pd = np.bincount(codes, weights=dev, minlength=J) + (U * U).sum(axis=1)
        for _ in range(max_iter):
            g, H = self._blocks(r, W, U)
            if k == 1:
                delta = g / H[:, :, 0]
            else:
                delta = np.linalg.solve(H, g[:, :, None])[:, :, 0]
            step = np.ones(J)
            active = np.ones(J, dtype=bool)
            for _half in range(40):
                Unew = U + step[:, None] * delta
                eta_new = base + self._re_eta(Unew.ravel())
                dev, r, W = fam.eval_eta(y, eta_new, wt)
                pd_new = np.bincount(codes, weights=dev, minlength=J) + (Unew * Unew).sum(axis=1)
                worse = active & (pd_new > pd + 1e-10 * (1.0 + np.abs(pd)))
                if not worse.any():
                    break
                step[worse] *= 0.5
                active = worse
            else:
                raise PirlsError("step-halving did not decrease the penalised deviance")
            U, eta, pd = Unew, eta_new, pd_new
            if np.max(np.abs(step[:, None] * delta)) < self.tol:
                out = U.ravel()
                # the state at the modes, for laplace() without another pass over the rows
                self._cache = (base, out.copy(), float(dev.sum()), self._blocks(r, W, U)[1])
                self._mode_rows = (eta_new, r, W)
                return out
        raise PirlsError(f"no convergence in {max_iter} iterations")

    def _pirls_u_dense(self, base, u, max_iter):
        eta = base + self.M @ u
        pd = self._dev_rows(eta).sum() + u @ u
        for _ in range(max_iter):
            _, r, W = self._moments(eta)
            g, H = self._dense(r, W, u)
            delta = H.solve(g)
            step = 1.0
            for _half in range(40):
                unew = u + step * delta
                eta_new = base + self.M @ unew
                pd_new = self._dev_rows(eta_new).sum() + unew @ unew
                if pd_new <= pd + 1e-10 * (1.0 + abs(pd)):
                    break
                step *= 0.5
            else:
                raise PirlsError("step-halving did not decrease the penalised deviance")
            u, eta, pd = unew, eta_new, pd_new
            if np.max(np.abs(step * delta)) < self.tol:
                return u
        raise PirlsError(f"no convergence in {max_iter} iterations")

    # ------------------------------------------------------------------ PIRLS (beta and u)
    def pirls_joint(self, beta0, u0=None, max_iter=200):
        """lme4's nAGQ = 0 step: beta and u together by penalised IRLS. Returns (beta, u, S)
        with S the Schur complement of the fixed effects (lme4's RX'RX) at the solution."""
        beta = np.array(beta0, dtype=float)
        u = np.zeros(self.q) if u0 is None else np.array(u0, dtype=float)

        fam = self.family

        def pdev(b, uu):
            eta = self.offset + self.X @ b + self._re_eta(uu)
            dev, r, W = fam.eval_eta(self.y, eta, self.wt)
            dsum = float(dev.sum())
            return dsum + uu @ uu, r, W, eta, dsum

        pd, r, W, eta, dsum = pdev(beta, u)
        for _ in range(max_iter):
            db, du, S = self._joint_step(r, W, u)
            step = 1.0
            for _half in range(40):
                bn, un = beta + step * db, u + step * du
                pd_new, r_new, W_new, eta_new, dsum_new = pdev(bn, un)
                if pd_new <= pd + 1e-10 * (1.0 + abs(pd)):
                    break
                step *= 0.5
            else:
                raise PirlsError("step-halving did not decrease the penalised deviance")
            beta, u, pd, r, W, eta, dsum = bn, un, pd_new, r_new, W_new, eta_new, dsum_new
            size = max(
                np.max(np.abs(step * db), initial=0.0), np.max(np.abs(step * du), initial=0.0)
            )
            if size < self.tol:
                S = self._joint_step(r, W, u)[2]
                if self.one:
                    # the state at the modes, as pirls_u leaves it
                    base = self.offset + self.X @ beta
                    self._cache = (base, u.copy(), dsum, self._blocks(r, W, u)[1])
                    self._mode_rows = (eta, r, W)
                return beta, u, S
        raise PirlsError(f"no convergence in {max_iter} iterations")

    def _joint_step(self, r, W, u):
        X = self.X
        gb = X.T @ r
        XtWX = X.T @ (W[:, None] * X)
        if self.one:
            f = self.factors[0]
            g, H = self._blocks(r, W, u)
            # C_j = sum_i W_i m_i x_i' (J, k, p)
            wm = W[:, None] * self.m
            C = np.stack(
                [_bincount_cols(f.codes, wm[:, a : a + 1] * X, f.J) for a in range(f.k)], axis=1
            )
            Hinv = np.linalg.inv(H)
            HiC = Hinv @ C  # (J, k, p)
            Hig = (Hinv @ g[:, :, None])[:, :, 0]
            S = XtWX - np.einsum("jkp,jkq->pq", C, HiC)
            rhs = gb - np.einsum("jkp,jk->p", C, Hig)
            db = np.linalg.solve(S, rhs)
            du = Hig - np.einsum("jkp,p->jk", HiC, db)
            return db, du.ravel(), S
        g, sys = self._dense(r, W, u, X)
        sol = sys.solve(np.concatenate([g, gb]))
        return sol[self.q :], sol[: self.q], sys.schur_beta()

    # ------------------------------------------------------------------ deviances
    def information(self, beta, u):
        """Per-group blocks (one factor) or the dense matrix of ``L L'`` at (beta, u)."""
        eta = self.offset + self.X @ beta + self._re_eta(u)
        _, r, W = self._moments(eta)
        if self.one:
            return self._blocks(r, W, u)[1]
        return self._dense(r, W, u)[1]

    def logdet(self, H) -> float:
        if self.one:
            if H.shape[1] == 1:
                return float(np.sum(np.log(H[:, 0, 0])))
            return float(np.sum(np.linalg.slogdet(H)[1]))
        return H.logdet()

    def minus2_cond_loglik(self, beta, u) -> float:
        eta = self.offset + self.X @ beta + self._re_eta(u)
        return float(self._dev_rows(eta).sum() - 2.0 * self.const)

    def laplace(self, beta, u) -> float:
        """lme4's Laplace deviance at (beta, u = the conditional modes)."""
        c = getattr(self, "_cache", None)
        if self.one and c is not None and np.array_equal(c[1], u):
            base = self.offset + self.X @ beta
            if np.array_equal(base, c[0]):
                return c[2] - 2.0 * self.const + float(u @ u) + self.logdet(c[3])
        H = self.information(beta, u)
        return self.minus2_cond_loglik(beta, u) + float(u @ u) + self.logdet(H)

    @property
    def has_gradient(self) -> bool:
        """Whether :meth:`laplace_gradient` applies: one factor with one scalar term and a
        canonical link (where the IRLS weights are the observed information)."""
        return self.one and self.factors[0].k == 1 and self.family.canonical

    def laplace_gradient(self, beta, u, profiled=False):
        """The gradient of :meth:`laplace` in (theta, beta) with u at its conditional modes
        (the state :meth:`pirls_u` just left). With ``m_i = theta z_i``,
        ``H_j = 1 + sum_i W_i m_i^2`` and ``W'`` the derivative of the weights in eta: the
        penalised deviance moves only through its explicit arguments (u is its minimiser), and
        ``d log H_j`` through eta, including ``du_j`` from the mode's equation
        ``sum_i r_i m_i = u_j`` differentiated (``dr_i/deta_i = -W_i`` for a canonical link).

        ``profiled=True``: (beta, u) are the joint solution of :meth:`pirls_joint` (the first
        stage's criterion, a function of theta alone); returns its total derivative in theta,
        adding ``g_beta . dbeta/dtheta`` from the joint system differentiated."""
        f = self.factors[0]
        codes, J = f.codes, f.J
        c = self._cache
        if (
            c is None
            or not np.array_equal(c[1], u)
            or not np.array_equal(c[0], self.offset + self.X @ beta)
        ):
            self.pirls_u(beta, u)
        _, r, W = self._mode_rows
        if self.family.name == "binomial":
            # mu from the score r = wt (y - mu); W = wt mu (1 - mu) is 0 where wt is
            mu = self.y - np.divide(r, self.wt, out=np.zeros_like(r), where=self.wt > 0)
            Wp = W * (1.0 - 2.0 * mu)
        else:
            Wp = W
        z = f.Z[:, 0]
        m = self.m[:, 0]
        uu = np.asarray(u, dtype=float)
        uj = uu[codes]
        H = self._cache[3][:, 0, 0]
        Hi = 1.0 / H
        Wm = W * m
        t = Wp * m * m
        q = t * Hi[codes]
        A = np.bincount(codes, weights=t * m, minlength=J) * Hi
        X = self.X
        Bx = _bincount_cols(codes, Wm[:, None] * X, J) if X.shape[1] else np.zeros((J, 0))
        res = q - 2.0 * r
        g_beta = X.T @ res - (A * Hi) @ Bx
        rz = np.bincount(codes, weights=r * z, minlength=J)
        wmz = np.bincount(codes, weights=Wm * z, minlength=J)
        du_t = (rz - uu * wmz) * Hi
        zu = z * uj
        g_theta = float(zu @ res + A @ du_t + 2.0 * np.sum(wmz * Hi))
        if profiled:
            if not X.shape[1]:
                return np.array([g_theta])
            S = X.T @ (W[:, None] * X) - Bx.T @ (Bx / H[:, None])
            b_u = rz - uu * wmz
            dbeta = np.linalg.solve(S, -X.T @ (W * zu) - Bx.T @ (b_u / H))
            return np.array([g_theta + g_beta @ dbeta])
        return np.array([g_theta]), g_beta

    def agq(self, beta, u, n_nodes: int) -> float:
        """-2 x the marginal log-likelihood by adaptive Gauss-Hermite quadrature (one factor,
        one scalar term): nodes at ``u_hat_j + z_k / L_jj``."""
        f = self.factors[0]
        z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
        H = self.information(beta, u)[:, 0, 0]
        sd = 1.0 / np.sqrt(H)
        base = self.offset + self.X @ beta
        m = self.m[:, 0]
        logs = np.empty((f.J, n_nodes))
        for kk in range(n_nodes):
            uk = u + sd * z[kk]
            eta = base + m * uk[f.codes]
            ll = -0.5 * np.bincount(f.codes, weights=self._dev_rows(eta), minlength=f.J)
            logs[:, kk] = np.log(w[kk]) + 0.5 * z[kk] ** 2 + ll - 0.5 * uk**2
        top = logs.max(axis=1)
        lm = top + np.log(np.exp(logs - top[:, None]).sum(axis=1))
        lm += np.log(sd) - 0.5 * np.log(2 * np.pi)
        return float(-2.0 * (lm.sum() + self.const))

    def cond_cov_u(self, beta, u):
        """Conditional covariance blocks of u per factor: list of (J, k, k)."""
        H = self.information(beta, u)
        if self.one:
            return [np.linalg.inv(H)]
        return H.cond_cov()


class _Blocked:
    """``[[D, B], [B', C]]``: D the first factor's block diagonal (``Lambda'Z'WZLambda + I``
    for it), C the other factors (+ I) and, for the joint step, X's columns (no penalty).
    Solved through the dense Schur complement ``S = C - B' D^-1 B`` (MixedModels.jl's blocked
    Cholesky: the first factor, usually the one with most levels, is never densified)."""

    def __init__(self, core: GlmmCore, W, X=None):
        f0 = core.factors[0]
        m0 = core.m0
        k0, J0 = f0.k, f0.J
        outer = (W[:, None, None] * m0[:, :, None] * m0[:, None, :]).reshape(core.n, -1)
        D = _bincount_cols(f0.codes, outer, J0).reshape(J0, k0, k0) + np.eye(k0)
        self.D = D
        self.factors = core.factors
        self.Dinv = np.linalg.inv(D)
        R = core.M2
        self.q1, self.q2 = J0 * k0, R.shape[1]
        if X is not None:
            R = sp.hstack([R, sp.csr_matrix(X)], format="csr")
        WR = sp.csr_matrix(R.multiply(W[:, None]))
        B = (core.M1t @ WR).tocsr()  # (q1, r)
        C = (R.T @ WR).toarray()
        C[np.arange(self.q2), np.arange(self.q2)] += 1.0
        Dinv_sp = sp.bsr_matrix(
            (self.Dinv, np.arange(J0), np.arange(J0 + 1)), shape=(self.q1, self.q1)
        )
        self.DinvB = (Dinv_sp @ B).tocsr()
        self.B = B
        S = C - (B.T @ self.DinvB).toarray()
        self.S = 0.5 * (S + S.T)
        self.cf = sla.cho_factor(self.S, lower=True)

    def solve(self, g):
        g1, g2 = g[: self.q1], g[self.q1 :]
        k0 = self.D.shape[1]
        y1 = (self.Dinv @ g1.reshape(-1, k0, 1)).reshape(-1)
        x2 = sla.cho_solve(self.cf, g2 - self.B.T @ y1)
        x1 = y1 - self.DinvB @ x2
        return np.concatenate([x1, x2])

    def logdet(self) -> float:
        return float(np.sum(np.linalg.slogdet(self.D)[1]) + 2 * np.sum(np.log(np.diag(self.cf[0]))))

    def schur_beta(self):
        """The fixed effects' Schur complement (lme4's RX'RX), from S's X block."""
        q2 = self.q2
        S = self.S
        return S[q2:, q2:] - S[q2:, :q2] @ np.linalg.solve(S[:q2, :q2], S[:q2, q2:])

    def cond_cov(self):
        """Diagonal blocks of the inverse, per factor (the conditional covariances of u)."""
        J0, k0 = self.D.shape[0], self.D.shape[1]
        Sinv = sla.cho_solve(self.cf, np.eye(self.S.shape[0]))
        P = self.DinvB.toarray()
        Q = (P @ Sinv).reshape(J0, k0, -1)
        out = [self.Dinv + np.einsum("jak,jbk->jab", Q, P.reshape(J0, k0, -1))]
        pos = 0
        for f in self.factors[1:]:
            blk = np.empty((f.J, f.k, f.k))
            for j in range(f.J):
                s = pos + j * f.k
                blk[j] = Sinv[s : s + f.k, s : s + f.k]
            out.append(blk)
            pos += f.J * f.k
        return out
