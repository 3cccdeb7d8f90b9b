r"""The two numerical backends of :class:`~.model.ModelPieces`: the deviance of theta, the
conditional covariance, simulated responses and refits (see :mod:`.model` for the API).

* :class:`GroupBackend`: one grouping factor, from per-group cross-products of
  [X | Z | y] (``MixedStats``; the one-way fit's are built from n, means and within-group sums
  of squares). The deviance is the estimator's (``ProfiledCriterion``, O(groups)) on its
  standardized cross-products (:class:`Scale` maps back), and a simulated response is a draw of
  each group's cross-products from their exact distribution.
* :class:`RowsBackend`: several grouping factors, from the fit's rows: lme4's penalised least
  squares on the sparse Z Lambda (:class:`MultiSystem`), responses simulated row by row and
  refitted with the dense criterion of :meth:`RowsBackend.dense_parts` (or, for many random
  effects, the estimator itself).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..errors import ConvergenceWarning


class Refit(NamedTuple):
    beta: np.ndarray
    sigma: float
    covs: list[np.ndarray]  # one per term, in the model's term order
    converged: bool = True


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


def theta_bounds(diag: np.ndarray) -> list[tuple[float | None, None]]:
    return [(0.0, None) if d else (None, None) for d in diag]


def score(res) -> float:
    """An optimisation result's value, infinite when it ended infeasible."""
    ok = (res.success or res.status in (0, 8, 9)) and float(res.fun) < 1e299
    return float(res.fun) if ok else math.inf


def best_of(f, starts, bounds, jac=None, constraints=()):
    """The best minimisation from the first start that ends feasible (or from all)."""
    best = None
    for x0 in starts:
        res = minimize(f, x0, bounds, jac=jac, constraints=constraints)
        if best is None or score(res) < score(best):
            best = res
        if np.isfinite(score(res)):
            break
    return best


def restart_zeros(f, best, bounds, zero, starts=(0.02, 0.1, 0.5), unit=1.0, jac=None, cons=()):
    """Entries ``zero`` (SDs left at 0) restarted from inside at ``starts`` x ``unit`` (the
    criterion is even there): the best result."""
    if not np.any(zero):
        return best
    for v in starts:
        x0 = best.x.copy()
        x0[zero] = v * np.broadcast_to(unit, x0.shape)[zero]
        res = minimize(f, x0, bounds, jac=jac, constraints=cons)
        if score(res) < score(best) - 1e-12 * abs(best.fun):
            best = res
    return best


def chol_psd(T: np.ndarray) -> np.ndarray | None:
    """Lower-triangular L with L L' = T for a positive semi-definite T (zero columns where T is
    singular); None when T is not positive semi-definite."""
    q = T.shape[0]
    L = np.zeros_like(T)
    scale = max(float(np.max(np.abs(np.diag(T)))), 1e-300) if q else 1.0
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


@dataclass(frozen=True, eq=False)
class Scale:
    """The estimator's centred and scaled cross-products and the map to the data's scale
    (``MixedStats.std`` / ``.transform``): W = W_s G with X = X_s Gx, Z = Z_s Gz and
    y = sy y_s + X_s beta0. Profiles and bootstrap refits work on the standardized
    cross-products, so they are right at any scale of the covariates, as the estimator is."""

    std: object  # MixedStats of the standardized columns (None for a rows backend)
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

    @classmethod
    def identity(cls, p: int, q: int) -> Scale:
        return cls(None, np.eye(p), np.eye(q), np.zeros(p), 1.0)

    def to_std(self, beta, cov_re, sigma):
        beta_s = (self.Gx @ beta - self.beta0) / self.sy
        return beta_s, self.Gz @ cov_re @ self.Gz.T / self.sy**2, sigma / self.sy

    def from_std(self, beta_s, cov_s, sigma_s):
        Gz_inv = np.linalg.inv(self.Gz)
        beta = np.linalg.solve(self.Gx, self.beta0 + self.sy * beta_s)
        return beta, self.sy**2 * Gz_inv @ cov_s @ Gz_inv.T, self.sy * sigma_s


# =============================================================================== one factor


def refit_from_stats(stats, block_sizes, method: str, theta0: np.ndarray):
    """Fit the model to cross-products by REML or ML, started at ``theta0`` (the bootstrap's
    refits: started at the fitted theta they converge in a few steps). Returns beta, sigma and
    the random-effects covariance in the units of ``stats`` (its y column as it is: a shift of y
    is left in the intercept; see :class:`Scale` for the map to the data's scale)."""
    from ..lmm.estimate import ProfiledCriterion, theta_layout

    crit = ProfiledCriterion(stats, block_sizes, method)
    diag = theta_layout(block_sizes)[2]

    def f(theta):
        try:
            return crit.value_and_grad(theta)
        except np.linalg.LinAlgError:
            return 1e300, np.zeros(len(theta))

    bnds = theta_bounds(diag)
    best = minimize(f, theta0, bnds, jac=True)
    for _ in range(2):
        zero = diag & (best.x <= 1e-6)
        again = restart_zeros(f, best, bnds, zero, (0.02, 0.1, 0.5, 1.0), jac=True)
        if again is best:
            break
        best = again
    L, _, _, _, beta, r2, _ = crit.parts(best.x)
    sigma = math.sqrt(r2 / crit.dof)
    return beta, sigma, sigma**2 * L @ L.T


class GroupBackend:
    """One grouping factor from per-group cross-products (see the module docstring)."""

    grad = True  # ml_criterion gives its gradient

    def __init__(self, stats, ZtX: np.ndarray, block_sizes: tuple[int, ...]):
        self.stats = stats  # MixedStats (None for summary data)
        self.ZtX = ZtX  # (J, q, p)
        self.block_sizes = block_sizes
        self._crit = None

    @property
    def scale(self) -> Scale:
        return Scale.of(self.stats)

    def own_rows(self, model):
        return None

    def cond_var(self, model, rows):
        (term,), (pos,), (Z,) = model.terms, rows.codes, rows.Z
        known = pos >= 0
        var = np.zeros(len(pos))
        K = np.zeros_like(rows.X)
        S = term.cond_cov[pos[known]] / model.sigma**2
        zk = Z[known]
        var[known] = model.sigma**2 * np.einsum("iq,iqr,ir->i", zk, S, zk)
        K[known] = np.einsum("iqp,iq->ip", self.ZtX[pos[known]], np.einsum("iqr,ir->iq", S, zk))
        return var, K

    def ols(self) -> np.ndarray:
        s = self.stats
        beta = np.linalg.solve(s.XtX, s.Xty)
        if s.intercept_col is not None:
            beta[s.intercept_col] += s.y_shift
        return beta

    # ---------------------------------------------------------------- the deviance
    def ml_parts(self, theta):
        """theta -> (log|M|, r2), beta profiled out (standardized scale): with sigma given the
        ML deviance is log|M| + r2 / sigma^2 + N log(2 pi sigma^2) (lme4's ``devfun2``)."""
        crit = self._ml()
        N = crit.N
        try:
            *_, r2, value = crit.parts(np.asarray(theta, float))
        except np.linalg.LinAlgError:  # far out, X'V^-1 X can be singular: not a candidate
            return math.inf, 1.0
        return value - N * (1.0 + math.log(2.0 * math.pi * r2 / N)), r2

    def _ml(self):
        from ..lmm.estimate import ProfiledCriterion

        if self._crit is None:
            self._crit = ProfiledCriterion(self.scale.std, self.block_sizes, "ml")
        return self._crit

    def ml_criterion(self, theta):
        """theta -> (ML criterion with beta and sigma profiled out, its gradient)."""
        try:
            return self._ml().value_and_grad(theta)
        except np.linalg.LinAlgError:
            return 1e300, np.zeros(len(theta))

    def with_fixed(self, j: int, value: float) -> GroupBackend:
        """The model with beta_j held at ``value``, as standardized cross-products: response
        y - value x_j, fixed columns all but x_j. With x_j = X_s g_j and y = sy y_s + X_s beta0:
        W' = [W_s (non-y) | X_s Gx[:, -j] | y_s + X_s (beta0 - value g_j) / sy]."""
        from ..lmm.design import MixedStats

        sc = self.scale
        st = sc.std
        k = st.cross.shape[1] - 1
        keep = np.array([x for x in range(len(st.x_idx)) if x != j], dtype=int)
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
        fixed = MixedStats(
            cross=cross,
            n=st.n,
            x_idx=np.arange(k, k + len(keep)),
            z_idx=st.z_idx,
            y_shift=0.0,
            intercept_col=None,
        )
        return GroupBackend(fixed, self.ZtX, self.block_sizes)

    # ---------------------------------------------------------------- the bootstrap
    def responses(self, model, rng: np.random.Generator, n: int):
        """Cross-products of simulated responses, drawn exactly from their joint distribution
        (normal for D_j'y, a chi-square for the residual part of y'y): what a refit to
        simulated rows would see. On the estimator's standardized columns."""
        from ..lmm.design import MixedStats

        sc = self.scale
        s = sc.std
        (term,) = model.terms
        beta_s, cov_s, sigma_s = sc.to_std(model.beta, term.cov_re, model.sigma)
        k = s.cross.shape[1] - 1  # columns of D = [X | Z-only]
        DtD = s.cross[:, :k, :k]
        lam, U = np.linalg.eigh(DtD)
        tol = 1e-10 * np.maximum(lam.max(axis=1, keepdims=True), 1e-300)
        lam = np.where(lam > tol, lam, 0.0)
        rank = (lam > 0).sum(axis=1)
        root = U * np.sqrt(lam)[:, None, :]  # D'D = root root'
        J, q = len(s.n), term.q
        chol_re = chol_psd(cov_s)
        for _ in range(n):
            b = rng.standard_normal((J, q)) @ chol_re.T if q else np.zeros((J, 0))
            gamma = np.zeros((J, k))
            gamma[:, s.x_idx] += beta_s
            np.add.at(gamma, (slice(None), s.z_idx), b)
            u = rng.standard_normal((J, k))
            De = sigma_s * np.einsum("jab,jb->ja", root, u)  # D'e, e ~ N(0, sigma^2 I)
            resid = sigma_s**2 * (
                np.einsum("ja,ja->j", u, u * (lam > 0))
                + rng.chisquare(np.maximum(s.n - rank, 1e-300)) * (s.n > rank)
            )
            Dg = np.einsum("jab,jb->ja", DtD, gamma)
            cross = s.cross.copy()
            cross[:, :k, k] = cross[:, k, :k] = Dg + De
            cross[:, k, k] = (
                np.einsum("ja,ja->j", gamma, Dg) + 2 * np.einsum("ja,ja->j", gamma, De) + resid
            )
            yield MixedStats(
                cross=cross,
                n=s.n,
                x_idx=s.x_idx,
                z_idx=s.z_idx,
                y_shift=0.0,
                intercept_col=s.intercept_col,
            )

    def refit(self, model, response, theta0) -> Refit:
        sc = self.scale
        b_s, sig_s, c_s = refit_from_stats(response, model.block_sizes, model.method, theta0)
        beta, cov, sigma = sc.from_std(b_s, c_s, sig_s)
        return Refit(beta, sigma, [cov])


# =============================================================================== several


def rel_factor(cov: np.ndarray, sigma: float) -> np.ndarray:
    """T with T T' = cov / sigma^2 (lower triangular, zero columns where cov is singular)."""
    from ..lmm.blocks import psd_cholesky

    rel = cov / sigma**2
    return psd_cholesky(0.5 * (rel + rel.T))


class MultiSystem:
    """lme4's penalised least squares for a several-factor fit, on the data's scale.

    With A = Z Lambda (N x q, sparse) and M = A'A + I, for a given Lambda the conditional
    modes u and beta solve the mixed model equations; Var(u | y, beta) = sigma^2 M^-1 and,
    counting the fixed effects' uncertainty (Henderson), the prediction error covariance of
    (beta, u) is sigma^2 [[X'X, X'A], [A'X, M]]^-1. Used for the exact joint (cross-factor)
    posterior covariance of a row's random effects and for the profiled ML deviance.
    """

    def __init__(self, fit, y=None, X=None):
        import scipy.sparse as sp

        d = fit.design
        self.factors = list(d.factors)
        self.y = np.asarray(d.y if y is None else y, float)
        self.X = np.asarray(d.X if X is None else X, float).reshape(len(self.y), -1)
        self.N = len(self.y)
        self.off, q = [], 0
        for f in self.factors:
            self.off.append(q)
            q += f.n_levels * f.q
        self.q = q
        self.sp = sp
        self.Z = self._z(
            [f.Z for f in self.factors], [np.asarray(f.codes) for f in self.factors], self.N
        )

    def _z(self, Zs, codes, n):
        rows, cols, vals = [], [], []
        for f, o, z, ps in zip(self.factors, self.off, Zs, codes, strict=True):
            ok = np.flatnonzero(ps >= 0)
            for t in range(f.q):
                rows.append(ok)
                cols.append(o + ps[ok] * f.q + t)
                vals.append(z[ok, t])
        return self.sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, self.q)
        )

    def lam(self, Ts) -> object:
        """Lambda = blockdiag over factors of I_{n_f} (x) T_f (sparse)."""
        sp = self.sp
        return sp.block_diag(
            [
                sp.kron(sp.identity(f.n_levels), sp.csr_matrix(T))
                for f, T in zip(self.factors, Ts, strict=True)
            ],
            format="csc",
        )

    def solve(self, Ts):
        """Factor M = Lambda'Z'Z Lambda + I at the T_f's and solve the PLS problem."""
        from scipy.sparse.linalg import splu

        sp = self.sp
        L = self.lam(Ts)
        A = (self.Z @ L).tocsc()
        M = (A.T @ A + sp.identity(self.q, format="csc")).tocsc()
        lu = splu(M, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
        logdet = float(np.sum(np.log(np.abs(lu.U.diagonal()))))
        X, y = self.X, self.y
        AtX = np.asarray(A.T @ X) if X.shape[1] else np.zeros((self.q, 0))
        Aty = np.asarray(A.T @ y).reshape(-1)
        RZX = lu.solve(AtX) if X.shape[1] else np.zeros((self.q, 0))
        cu = lu.solve(Aty)
        H = X.T @ X - AtX.T @ RZX
        beta = np.linalg.solve(H, X.T @ y - AtX.T @ cu) if X.shape[1] else np.zeros(0)
        u = cu - RZX @ beta
        r = y - X @ beta - A @ u
        r2 = float(r @ r + u @ u)
        return {"L": L, "A": A, "lu": lu, "logdet": logdet, "H": H, "RZX": RZX, "beta": beta,
                "u": u, "r2": r2}  # fmt: skip


class RowsBackend:
    """Several grouping factors, from the fit's rows (see the module docstring)."""

    grad = False  # ml_criterion by finite differences

    def __init__(self, fit, block_sizes: tuple[int, ...], qs: list[int], y=None, X=None):
        self.fit = fit
        self._yX = (y, X)
        self.block_sizes = block_sizes  # every term's blocks, in the model's term order
        self._q = qs  # each term's number of random terms
        self._dense = None

    @cached_property
    def system(self) -> MultiSystem:
        """The sparse system, built when first needed (predictions without intervals, fitted
        values and simulations do not need it)."""
        return MultiSystem(self.fit, *self._yX)

    @property
    def scale(self) -> Scale:
        X = self.fit.design.X if self._yX[1] is None else self._yX[1]
        return Scale.identity(np.shape(X)[1], sum(self._q))

    def own_rows(self, model) -> dict:
        """The fit's rows, as the fields of a :class:`~.model.ModelRows`."""
        d = self.fit.design
        by_name = {f.name: f for f in d.factors}
        fs = [by_name[t.name] for t in model.terms]
        off = 0.0 if d.offset is None else d.offset
        return dict(
            index=pd.RangeIndex(len(d.y)),
            X=d.X,
            offset=off,
            Z=tuple(f.Z for f in fs),
            codes=tuple(np.asarray(f.codes) for f in fs),
            labels=tuple(pd.Index(f.labels[f.codes]) for f in fs),
            y=d.y + off,
        )

    def cond_var(self, model, rows):
        """The observed levels' joint posterior, cross-factor covariances included (exact, from
        the sparse factor of the mixed-model equations at the estimates)."""
        system = self.system
        st = system.solve([rel_factor(t.cov_re, model.sigma) for t in model.terms])
        Zn = system._z(rows.Z, rows.codes, len(rows.index))
        w = (Zn @ st["L"]).toarray()  # rows' (Lambda'z)'
        Mw = st["lu"].solve(w.T)  # q x n
        var = model.sigma**2 * np.einsum("iq,qi->i", w, Mw)
        K = (st["RZX"].T @ w.T).T if rows.X.shape[1] else np.zeros_like(rows.X)
        return var, K

    def ols(self) -> np.ndarray:
        d = self.fit.design
        return np.linalg.lstsq(d.X, d.y, rcond=None)[0] if d.X.shape[1] else np.zeros(0)

    # ---------------------------------------------------------------- the deviance
    def _Ts(self, theta):
        q = sum(self._q)
        from ..lmm.estimate import theta_layout

        rr, cc, _ = theta_layout(self.block_sizes)
        L = np.zeros((q, q))
        L[rr, cc] = theta
        Ts, o = [], 0
        for k in self._q:
            Ts.append(L[o : o + k, o : o + k])
            o += k
        return Ts

    def ml_parts(self, theta):
        try:
            st = self.system.solve(self._Ts(np.asarray(theta, float)))
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            return math.inf, 1.0
        return st["logdet"], st["r2"]

    def ml_criterion(self, theta):
        logdet, r2 = self.ml_parts(theta)
        N = self.system.N
        if not np.isfinite(logdet) or not r2 > 0:
            return 1e300, None
        return logdet + N * (1.0 + math.log(2.0 * math.pi * r2 / N)), None

    def with_fixed(self, j: int, value: float) -> RowsBackend:
        X = self.system.X
        keep = [c for c in range(X.shape[1]) if c != j]
        y = self.system.y - X[:, j] * value
        return RowsBackend(self.fit, self.block_sizes, self._q, y=y, X=X[:, keep])

    # ---------------------------------------------------------------- the bootstrap
    def responses(self, model, rng: np.random.Generator, n: int):
        """Responses simulated row by row on the fit's own design (every factor redrawn)."""
        sims = model.simulate(rng, n, model.own_rows())
        off = self.fit.design.offset
        for k in range(n):
            yield sims[:, k] if off is None else sims[:, k] - off

    def refit(self, model, y, theta0=None) -> Refit:
        """The fit's method on its own design (X and every factor's Z reused; only y
        changes): the dense criterion of :meth:`dense_parts` where the random effects fit a
        dense matrix, the estimator otherwise. Started at the fitted theta."""
        d = self.fit.design
        if self.system.q > MAX_DENSE_REFIT:
            from ..lmm.pls import fit_pls

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                comp = fit_pls(y, d.X, list(d.factors), model.method)
            stalled = any(issubclass(w.category, ConvergenceWarning) for w in caught)
            by_name = {e.name: e for e in comp.factors}
            covs = [np.asarray(by_name[t.name].cov, float) for t in model.terms]
            return Refit(np.asarray(comp.beta, float), float(comp.sigma), covs, not stalled)
        from scipy import optimize

        Z, X = self.system.Z, self.system.X
        moments = (np.asarray(Z.T @ y).reshape(-1), X.T @ y, float(y @ y))
        N, p = X.shape
        n = N - p if model.method == "reml" else N

        def f(theta):
            try:
                L, H, _, r2 = self.dense_parts(theta, *moments)
            except np.linalg.LinAlgError:
                return 1e300
            if not r2 > 0:
                return 1e300
            dev = 2.0 * float(np.log(np.diag(L)).sum())
            if model.method == "reml" and p:
                dev += float(np.linalg.slogdet(H)[1])
            return dev + n * (1.0 + np.log(2.0 * np.pi * r2 / n))

        from ..lmm.estimate import theta_layout

        diag = theta_layout(self.block_sizes)[2]
        bounds = theta_bounds(diag)
        opts = {"ftol": 1e-11, "gtol": 1e-5, "maxiter": 200}
        theta_hat = np.asarray(self.fit.theta, float)
        best = optimize.minimize(f, theta_hat, method="L-BFGS-B", bounds=bounds, options=opts)
        zero = diag & (best.x <= 1e-6)
        for v in (0.1, 0.5, 1.0) if zero.any() else ():
            x0 = best.x.copy()
            x0[zero] = v
            res = optimize.minimize(f, x0, method="L-BFGS-B", bounds=bounds, options=opts)
            if res.fun < best.fun:
                best = res
        _, _, beta, r2 = self.dense_parts(best.x, *moments)
        sigma = float(np.sqrt(r2 / n))
        return Refit(beta, sigma, [sigma**2 * T @ T.T for T in self._Ts(best.x)])

    def dense_parts(self, theta, Zty, Xty, yty):
        """lme4's penalised least squares from cross-products (dense; Z'Z, Z'X and X'X built
        once, a response needs only Z'y, X'y and y'y). With L L' = Lambda'Z'Z Lambda + I,
        c_u = L^-1 Lambda'Z'y and R_ZX = L^-1 Lambda'Z'X: H = X'X - R_ZX'R_ZX,
        beta = H^-1 (X'y - R_ZX'c_u), r^2 = y'y - c_u'c_u - (X'y - R_ZX'c_u)'beta; -2 log L is
        log|L L'| + N (1 + log(2 pi r^2 / N)) (ML), or with log|H| added and N - p for N
        (REML), the criterion of :func:`bayeshrink.lmm.pls.fit_pls`."""
        from scipy.linalg import block_diag, solve_triangular

        if self._dense is None:
            Z, X = self.system.Z, self.system.X
            self._dense = (np.asarray((Z.T @ Z).todense()), np.asarray(Z.T @ X), X.T @ X)
        ZtZ, ZtX, XtX = self._dense
        factors = self.system.factors
        if all(f.q == 1 for f in factors):  # every term scalar: Lambda is diagonal
            d = np.repeat(theta, [f.n_levels for f in factors])
            M = ZtZ * d[:, None] * d[None, :]
            M[np.diag_indices_from(M)] += 1.0
            LZy, LZX = d * Zty, d[:, None] * ZtX
        else:
            Ts = zip(factors, self._Ts(theta), strict=True)
            lam = block_diag(*[np.kron(np.eye(f.n_levels), T) for f, T in Ts])
            M = lam.T @ ZtZ @ lam + np.eye(len(lam))
            LZy, LZX = lam.T @ Zty, lam.T @ ZtX
        L = np.linalg.cholesky(M)
        cu = solve_triangular(L, LZy, lower=True)
        RZX = solve_triangular(L, LZX, lower=True)
        H = XtX - RZX.T @ RZX
        rhs = Xty - RZX.T @ cu
        beta = np.linalg.solve(H, rhs) if len(rhs) else np.zeros(0)
        return L, H, beta, float(yty - cu @ cu - rhs @ beta)


#: Largest number of random effects the bootstrap refits with the dense criterion
MAX_DENSE_REFIT = 3000
