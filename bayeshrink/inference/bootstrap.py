"""The parametric bootstrap (lme4's ``bootMer``): simulate from the fitted model and refit."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..errors import (
    ConvergenceWarning,
    DataError,
)
from .pieces import MultiPieces, MultiSystem, check_long, fit_pieces, multi_pieces
from .profile import Scale, chol_psd, estimates, minimize, multi_phi, phi_from, theta_from_phi
from .rows import simulate


def refit_from_stats(stats, block_sizes, method: str, theta0: np.ndarray):
    """Fit the model to cross-products by REML or ML, started at ``theta0`` (the bootstrap's
    refits: started at the fitted theta they converge in a few steps). Returns beta, sigma and
    the random-effects covariance in the units of ``stats`` (its y column as it is: a shift of y
    is left in the intercept; see :class:`Scale` for the map to the data's scale).

    The estimator's criterion is reached only here and in :func:`ml_deviance_function` /
    :func:`profiled_ml_criterion`."""
    from ..lmm.estimate import ProfiledCriterion, theta_layout

    crit = ProfiledCriterion(stats, block_sizes, method)
    diag = theta_layout(block_sizes)[2]

    def f(theta):
        try:
            return crit.value_and_grad(theta)
        except np.linalg.LinAlgError:
            return 1e300, np.zeros(len(theta))

    bnds = [(0.0, None) if d else (None, None) for d in diag]
    best = minimize(f, theta0, bnds, jac=True)
    for _ in range(2):  # SDs left at 0: restart from inside (the criterion is even there)
        zero = diag & (best.x <= 1e-6)
        if not zero.any():
            break
        improved = False
        for v in (0.02, 0.1, 0.5, 1.0):
            x0 = best.x.copy()
            x0[zero] = v
            res = minimize(f, x0, bnds, jac=True)
            if res.fun < best.fun - 1e-12 * abs(best.fun):
                best, improved = res, True
        if not improved:
            break
    L, _, _, _, beta, r2, _ = crit.parts(best.x)
    sigma = math.sqrt(r2 / crit.dof)
    return beta, sigma, sigma**2 * L @ L.T


def bootstrap(fit, n_boot: int = 500, random_seed: int | None = None) -> pd.DataFrame:
    """Parametric bootstrap of a fit (lme4's ``bootMer``): ``n_boot`` refits to responses drawn
    from the fitted model; one row per replicate, the parameters of :func:`confint` as columns.

    Each group's cross-products with the simulated response are drawn exactly from their joint
    distribution (normal for D_j'y, a chi-square for the residual part of y'y), which is what a
    refit to simulated rows would see.
    """
    from ..lmm.design import MixedStats

    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise DataError(f"`n_boot` must be an integer >= 2; got {n_boot!r}. E.g. n_boot=500.")
    p = fit_pieces(fit)
    check_long(fit, "the bootstrap")
    if isinstance(p, MultiPieces):
        return bootstrap_multi(fit, n_boot, random_seed)
    sc = Scale.of(p.stats)
    s: MixedStats = sc.std  # simulate and refit on the estimator's standardized columns
    beta_s, cov_s, sigma_s = sc.to_std(p.beta, p.cov_re, p.sigma)
    rng = np.random.default_rng(random_seed)
    k = s.cross.shape[1] - 1  # columns of D = [X | Z-only]
    DtD = s.cross[:, :k, :k]
    lam, U = np.linalg.eigh(DtD)
    tol = 1e-10 * np.maximum(lam.max(axis=1, keepdims=True), 1e-300)
    lam = np.where(lam > tol, lam, 0.0)
    rank = (lam > 0).sum(axis=1)
    root = U * np.sqrt(lam)[:, None, :]  # D'D = root root'
    J = len(s.n)
    q = len(p.random_names)
    chol_re = chol_psd(cov_s)
    theta0 = theta_from_phi(p, phi_from(p, p.cov_re, p.sigma), sc.Gz)
    if chol_re is None or theta0 is None:  # pragma: no cover - cov_re is PSD by construction
        raise DataError("the fitted random-effects covariance is not positive semi-definite.")
    est0 = estimates(p)
    rows = []
    for _ in range(n_boot):
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
        st = MixedStats(
            cross=cross,
            n=s.n,
            x_idx=s.x_idx,
            z_idx=s.z_idx,
            y_shift=0.0,
            intercept_col=s.intercept_col,
        )
        b_s, sig_s, c_s = refit_from_stats(st, p.block_sizes, p.method, theta0)
        beta, cov_re, sigma = sc.from_std(b_s, c_s, sig_s)
        rows.append(np.r_[phi_from(p, cov_re, sigma), beta])
    out = pd.DataFrame(rows, columns=est0.index)
    out.attrs.update(n_boot=n_boot, random_seed=random_seed)
    return out


class DenseRefit:
    """The profiled REML/ML criterion of a several-factor design for new responses, from its
    cross-products (lme4's penalised least squares, dense): what the bootstrap refits.

    Z'Z, Z'X and X'X are built once from the fit's design; a new response needs only Z'y, X'y
    and y'y. For relative factors Lambda(theta) (lme4's theta layout, factor by factor) with
    L L' = Lambda'Z'Z Lambda + I, c_u = L^-1 Lambda'Z'y and R_ZX = L^-1 Lambda'Z'X:
    H = X'X - R_ZX'R_ZX, beta = H^-1 (X'y - R_ZX'c_u), r^2 = y'y - c_u'c_u - (X'y - R_ZX'c_u)'beta,
    and -2 log L = log|L L'| + N (1 + log(2 pi r^2 / N)) (ML), or with log|H| added and N - p
    for N (REML). The same criterion as :func:`bayeshrink.lmm.pls.fit_pls`, for designs whose
    random effects fit a dense q x q matrix."""

    def __init__(self, fit):
        from ..lmm.estimate import theta_layout

        system = MultiSystem(fit)
        self.method = fit.method
        by_name = {f.name: f for f in fit.design.factors}
        self.factors = [by_name[n] for n in fit.factors]
        if [f.name for f in system.factors] != fit.factors:  # pragma: no cover - one order
            raise RuntimeError("the design's factors are not in the fit's order")
        Z = system.Z
        self.Z = Z
        self.X = system.X
        self.N, self.p = self.X.shape
        self.ZtZ = np.asarray((Z.T @ Z).todense())
        self.ZtX = np.asarray(Z.T @ self.X)
        self.XtX = self.X.T @ self.X
        self.layout = [theta_layout(f.block_sizes) for f in self.factors]
        self.diag = np.concatenate([lay[2] for lay in self.layout])
        self.theta_hat = np.asarray(fit.theta, float)
        self.scalar = all(f.q == 1 for f in self.factors)
        self.levels = np.array([f.n_levels for f in self.factors])

    def lam(self, theta: np.ndarray) -> np.ndarray:
        blocks, i = [], 0
        for f, (rr, cc, _) in zip(self.factors, self.layout, strict=True):
            T = np.zeros((f.q, f.q))
            T[rr, cc] = theta[i : i + len(rr)]
            i += len(rr)
            blocks.append(np.kron(np.eye(f.n_levels), T))
        from scipy.linalg import block_diag

        return block_diag(*blocks)

    def parts(self, theta, Zty, Xty, yty):
        from scipy.linalg import solve_triangular

        if self.scalar:  # every term scalar: Lambda is diagonal
            d = np.repeat(theta, self.levels)
            M = self.ZtZ * d[:, None] * d[None, :]
            M[np.diag_indices_from(M)] += 1.0
            LZy, LZX = d * Zty, d[:, None] * self.ZtX
        else:
            lam = self.lam(theta)
            M = lam.T @ self.ZtZ @ lam + np.eye(len(lam))
            LZy, LZX = lam.T @ Zty, lam.T @ self.ZtX
        L = np.linalg.cholesky(M)
        cu = solve_triangular(L, LZy, lower=True)
        RZX = solve_triangular(L, LZX, lower=True)
        H = self.XtX - RZX.T @ RZX
        rhs = Xty - RZX.T @ cu
        beta = np.linalg.solve(H, rhs) if self.p else np.zeros(0)
        r2 = float(yty - cu @ cu - rhs @ beta)
        return L, H, beta, r2

    def criterion(self, theta, Zty, Xty, yty) -> float:
        try:
            L, H, _, r2 = self.parts(theta, Zty, Xty, yty)
        except np.linalg.LinAlgError:
            return 1e300
        if not r2 > 0:
            return 1e300
        dev = 2.0 * float(np.log(np.diag(L)).sum())
        n = self.N
        if self.method == "reml":
            dev += float(np.linalg.slogdet(H)[1]) if self.p else 0.0
            n = self.N - self.p
        return dev + n * (1.0 + np.log(2.0 * np.pi * r2 / n))

    def refit(self, y: np.ndarray):
        """beta, sigma and each factor's covariance (in the fit's factor order) for response y."""
        from scipy import optimize

        Zty = np.asarray(self.Z.T @ y).reshape(-1)
        Xty = self.X.T @ y
        yty = float(y @ y)

        def f(theta):
            return self.criterion(theta, Zty, Xty, yty)

        bounds = [(0.0, None) if d else (None, None) for d in self.diag]
        opts = {"ftol": 1e-11, "gtol": 1e-5, "maxiter": 200}
        best = optimize.minimize(f, self.theta_hat, method="L-BFGS-B", bounds=bounds, options=opts)
        zero = self.diag & (best.x <= 1e-6)
        for v in (0.1, 0.5, 1.0) if zero.any() else ():
            x0 = best.x.copy()
            x0[zero] = v
            res = optimize.minimize(f, x0, method="L-BFGS-B", bounds=bounds, options=opts)
            if res.fun < best.fun:
                best = res
        theta = best.x
        _, _, beta, r2 = self.parts(theta, Zty, Xty, yty)
        sigma = float(np.sqrt(r2 / (self.N - (self.p if self.method == "reml" else 0))))
        covs, i = [], 0
        for f_, (rr, cc, _) in zip(self.factors, self.layout, strict=True):
            T = np.zeros((f_.q, f_.q))
            T[rr, cc] = theta[i : i + len(rr)]
            i += len(rr)
            covs.append(sigma**2 * T @ T.T)
        return beta, sigma, covs


#: Largest number of random effects the bootstrap refits with the dense criterion
MAX_DENSE_REFIT = 3000


def bootstrap_multi(fit, n_boot: int, random_seed=None) -> pd.DataFrame:
    """Parametric bootstrap of a fit with several grouping factors (lme4's ``bootMer``):
    ``n_boot`` responses from :func:`simulate` (random effects redrawn), each refitted by the
    fit's method on the fit's own design (X and every factor's Z and levels are reused; only
    y changes). One row per replicate, the parameters of ``confint`` as columns.

    A refit whose optimiser stops short (a :class:`~bayeshrink.errors.ConvergenceWarning`)
    is kept, as bootMer keeps it; one warning at the end says how many there were."""

    from ..lmm.pls import fit_pls

    p = multi_pieces(fit)
    d = fit.design
    names = estimates(p).index
    sims = simulate(fit, n_boot, random_seed).to_numpy()
    order = [f.name for f in p.multi]
    rows, stalled = [], 0
    if sum(f.n_levels * f.q for f in d.factors) <= MAX_DENSE_REFIT:
        dense = DenseRefit(fit)
        for k in range(n_boot):
            beta, sigma, covs = dense.refit(sims[:, k])
            rows.append(np.r_[multi_phi(p, covs, sigma), beta])
        out = pd.DataFrame(rows, columns=names)
        out.attrs.update(n_boot=n_boot, random_seed=random_seed)
        return out
    for k in range(n_boot):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            comp = fit_pls(sims[:, k], d.X, list(d.factors), fit.method)
        stalled += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        by_name = {e.name: e for e in comp.factors}
        phi = multi_phi(p, [by_name[n].cov for n in order], comp.sigma)
        rows.append(np.r_[phi, comp.beta])
    if stalled:
        warnings.warn(
            f"{stalled} of {n_boot} bootstrap refits stopped with a gradient above 1e-3 and were "
            "kept (as lme4's bootMer keeps them).",
            ConvergenceWarning,
            stacklevel=3,
        )
    out = pd.DataFrame(rows, columns=names)
    out.attrs.update(n_boot=n_boot, random_seed=random_seed)
    return out
