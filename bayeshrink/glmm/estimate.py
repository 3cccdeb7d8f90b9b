"""Estimate a GLMM as lme4's ``glmer`` does: PIRLS inside, the Laplace or AGQ deviance outside.

Two stages, as lme4: first the variance parameters ``theta`` alone with ``beta`` found by
PIRLS together with the random effects (lme4's ``nAGQ = 0`` fit, which ends here for
``nagq=0``); then ``(theta, beta)`` together on the Laplace (``nagq=1``) or adaptive
Gauss-Hermite deviance, started from the first stage. The columns of X are centred and scaled,
those of Z scaled, and ``beta`` is moved in the coordinates of its first-stage covariance, so
the optimiser sees a problem of unit scale whatever the units of the data; the estimates are
mapped back exactly.

:func:`estimate` works on an evaluated design (:func:`~.frame.glmm_design`) and returns the
estimator's numbers (:class:`Estimate`); :func:`bayeshrink.glmm.fit.fit_glmm` makes the result
from them, and the parametric bootstrap and the profiles (:mod:`.inference`) call
:func:`estimate` and :func:`build_core` directly.
"""

from __future__ import annotations

import numpy as np

from ..errors import PirlsConvergenceError, SeparationError
from .core import Factor, GlmmCore, PirlsError
from .optimize import minimize

__all__ = ["Estimate", "build_core", "estimate", "one_thread"]

#: Fit from per-group sufficient statistics where rows share (group, covariates, offset).
AGGREGATE = True

#: Unique rows of X (and 4x as many rows) above which the linear-programming check for
#: separation is skipped: on such data a separated design shows as diverging estimates.
MAX_SEPARATION_ROWS = 50_000


def _standardize_X(X):
    p = X.shape[1]
    icol = next((i for i in range(p) if np.all(X[:, i] == 1.0)), None)
    centre = np.zeros(p)
    scale = np.ones(p)
    for c in range(p):
        if c == icol:
            continue
        col = X[:, c]
        if icol is not None:
            centre[c] = col.mean()
        s = np.sqrt(np.mean((col - centre[c]) ** 2))
        scale[c] = s if s > 0 else 1.0
    Xs = (X - centre) / scale
    # beta = A beta_s
    A = np.diag(1.0 / scale)
    if icol is not None:
        A[icol, :] -= centre / scale
        A[icol, icol] = 1.0
    return Xs, A


def _check_separation(core: GlmmCore, names) -> None:
    """Konis's linear programme: is there a direction of beta that fits every 0/1 outcome at
    least as well (and one strictly better) without bound?"""
    from scipy.optimize import linprog

    y, wt, X = core.y, core.wt, core.X
    if len(y) > 4 * MAX_SEPARATION_ROWS:
        return
    use = wt > 0
    sign = np.where(y[use] >= 1, 1.0, np.where(y[use] <= 0, -1.0, 0.0))
    rows = np.column_stack([X[use], sign])
    rows = np.unique(rows, axis=0)
    if len(rows) > MAX_SEPARATION_ROWS or X.shape[1] == 0:
        return
    Xu, s = rows[:, :-1], rows[:, -1]
    one = s != 0
    A_ub = -(s[one, None] * Xu[one])
    A_eq = Xu[~one] if (~one).any() else None
    c = -(s[one, None] * Xu[one]).sum(axis=0)
    res = linprog(
        c,
        A_ub=A_ub,
        b_ub=np.zeros(len(A_ub)),
        A_eq=A_eq,
        b_eq=None if A_eq is None else np.zeros(len(A_eq)),
        bounds=[(-1, 1)] * X.shape[1],
        method="highs",
    )
    if res.status == 0 and -res.fun > 1e-7 * max(1.0, len(Xu)):
        terms = [n for n, v in zip(names, res.x, strict=True) if abs(v) > 1e-7]
        raise SeparationError(
            f"the fixed effects of `formula` must not separate the outcomes; the terms "
            f"{', '.join(map(repr, terms))} predict the 0/1 responses of every row they touch "
            "(complete or quasi-complete separation), so their maximum-likelihood estimates are "
            "infinite. Drop or merge the term (e.g. a level where every response is 0), or use "
            "a model with a prior on the fixed effects."
        )


def one_thread():
    """BLAS on one thread: the systems here are small (q x q up to a few thousand), where
    threads cost more than they give, and many times more on a loaded machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn / scipy
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _aggregate(des, Xs, factors, fam):
    """Sufficient statistics: with one scalar intercept term, rows with the same group, fixed
    covariates (and, for binomial, offset) enter the likelihood only through their successes
    and trials (Poisson: their count and summed exposure). Returns (core arrays, the
    log-likelihood constant to add back) or None when that would not shrink the data."""
    f = factors[0]
    if not AGGREGATE or len(factors) != 1 or f.k != 1 or not np.all(f.Z == 1.0):
        return None
    if fam.name == "poisson" and not np.all(des.wt == 1.0):
        return None
    n = len(des.y)
    if any(len(np.unique(Xs[:, c])) > n // 2 for c in range(Xs.shape[1])):
        return None  # a row-level continuous covariate: the cells are the rows
    cols = [f.codes.astype(float), Xs] + ([des.offset] if fam.name == "binomial" else [])
    keys = np.column_stack(cols)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    if len(uniq) > n // 2:
        return None
    m = len(uniq)
    p = Xs.shape[1]
    events = np.bincount(inv, weights=des.wt * des.y, minlength=m)
    if fam.name == "binomial":
        trials = np.bincount(inv, weights=des.wt, minlength=m)
        y = np.where(trials > 0, events / np.where(trials > 0, trials, 1.0), 0.0)
        wt, offset = trials, uniq[:, -1]
        extra = 0.0
    else:
        exposure = np.bincount(inv, weights=np.exp(des.offset), minlength=m)
        y, wt, offset = events, np.ones(m), np.log(exposure)
        # sum_i y_i o_i - Y log(sum_i exp(o_i)): the offsets' part the aggregate leaves out
        extra = float(des.y @ des.offset - y @ offset)
    full = fam.loglik_constant(des.y, des.wt) + extra
    agg = (y, wt, offset, uniq[:, 1 : 1 + p], uniq[:, 0].astype(np.intp))
    return agg, full


def build_core(des, fam):
    """The estimator's core for a design: X centred and scaled, Z scaled, and the rows replaced
    by per-cell sufficient statistics where that shrinks them. Returns (core, A, zscale) with
    ``beta = A beta_s`` and ``b = u T_s' / zscale``."""
    Xs, A = _standardize_X(des.X)
    zscale = []
    factors = []
    for fd in des.factors:
        d = np.sqrt(np.mean(fd.Z**2, axis=0))
        d[d == 0] = 1.0
        zscale.append(d)
        factors.append(Factor(fd.codes, fd.Z / d, fd.n_levels, fd.block_sizes))
    aggregated = _aggregate(des, Xs, factors, fam)
    if aggregated is None:
        core = GlmmCore(des.y, des.wt, des.offset, Xs, factors, fam)
    else:
        (y_a, wt_a, off_a, X_a, codes_a), const_full = aggregated
        f0 = factors[0]
        core = GlmmCore(
            y_a, wt_a, off_a, X_a, [Factor(codes_a, np.ones((len(y_a), 1)), f0.J, (1,))], fam
        )
        # the rows' log-likelihood differs from the aggregate's by a constant
        core.const = const_full
    return core, A, zscale


class Estimate:
    """The estimator's numbers: its ``core`` (at ``theta_s``), ``theta_s`` and ``beta_s`` on
    the scaled columns (``beta = A beta_s``, Z's columns divided by ``zscale``), the modes
    ``u``, the deviance ``dev``, ``vcov_s`` (scaled), the Hessian ``hess`` of the second stage
    and the optimiser's ``info``."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def estimate(des, fam, nagq: int, start=None, check_separation: bool = True) -> Estimate:
    """The two-stage fit of an evaluated design (:func:`~.frame.glmm_design`); ``start`` =
    (theta_s, beta_s) of an earlier fit on the same design (a parametric-bootstrap refit)
    starts both stages."""
    core, A, zscale = build_core(des, fam)
    factors = core.factors
    if check_separation and fam.name == "binomial":
        _check_separation(core, des.fixed_names)
    if check_separation and fam.name == "poisson" and not np.any(des.y[des.wt > 0] > 0):
        raise SeparationError(
            f"every count of the response {des.response!r} is 0: the intercept's "
            "maximum-likelihood estimate is -inf (the fitted rates go to 0 without bound), so "
            "there is no finite fit. Check the column, or use a model with a prior on the fixed "
            "effects (bs.hierarchical_model)."
        )
    p = core.p
    lower = np.array([lo for f in factors for lo in f.theta_lower()])
    theta0 = np.array([t for f in factors for t in f.theta_start()])

    def fail(exc, theta, beta):
        raise PirlsConvergenceError(
            f"PIRLS must find the conditional modes of the random effects; it failed ({exc}) at "
            f"theta={np.round(theta, 4).tolist()}, beta={np.round(beta, 4).tolist()} (scaled). "
            "Check for separation or extreme counts, or simplify the random effects."
        ) from exc

    # a plain GLM for the start (theta = 0), or the earlier fit's estimates
    state = {"beta": np.zeros(p), "u": np.zeros(core.q)}
    if start is not None:
        theta0 = np.maximum(np.asarray(start[0], dtype=float), lower)
        state["beta"] = np.asarray(start[1], dtype=float).copy()
    else:
        core.set_theta(np.zeros_like(theta0))
        try:
            state["beta"], _, _ = core.pirls_joint(state["beta"], state["u"])
        except PirlsError as exc:
            fail(exc, np.zeros_like(theta0), state["beta"])

    def dev0(theta):
        core.set_theta(theta)
        u0 = state["u"] if "theta" not in state else core.carry_u(state["u"], state["theta"])
        try:
            beta, u, S = core.pirls_joint(state["beta"], u0)
        except PirlsError as exc:
            fail(exc, theta, state["beta"])
        state.update(beta=beta, u=u, S=S, theta=np.array(theta, dtype=float))
        return core.laplace(beta, u)

    grad0 = None
    if core.has_gradient:

        def grad0(theta):
            if not np.array_equal(state.get("theta"), theta):
                dev0(theta)
            return core.laplace_gradient(state["beta"], state["u"], profiled=True)

    # a start for the second stage (nagq >= 1) need not be tight
    theta1, f1, _, info1 = minimize(
        dev0, theta0, lower, grad=grad0, newton=(nagq == 0), ftol=1e-13 if nagq == 0 else 1e-9
    )
    dev0(theta1)
    beta1, u1, S1 = state["beta"].copy(), state["u"].copy(), state["S"].copy()
    info = {"stage1": info1}
    if nagq == 0:
        theta_s, beta_s, u, dev = theta1, beta1, u1, f1
        vcov_s = np.linalg.inv(S1)
        hess = None
    else:
        R = np.linalg.cholesky(np.linalg.inv(S1)) if p else np.zeros((0, 0))
        nt = len(theta0)
        state["x"] = np.concatenate([theta1, np.zeros(p)])
        lower2 = np.concatenate([lower, np.full(p, -np.inf)])

        def dev1(x):
            theta, beta = x[:nt], beta1 + R @ x[nt:]
            core.set_theta(theta)
            u0 = core.carry_u(state["u"], state["x"][:nt])
            try:
                u = core.pirls_u(beta, u0)
            except PirlsError as exc:
                fail(exc, theta, beta)
            state["u"] = u
            state["x"] = np.array(x, dtype=float)
            return core.laplace(beta, u) if nagq == 1 else core.agq(beta, u, nagq)

        grad1 = None
        if nagq == 1 and core.has_gradient:

            def grad1(x):
                if not np.array_equal(state.get("x"), x):
                    dev1(x)
                g_theta, g_beta = core.laplace_gradient(beta1 + R @ x[nt:], state["u"])
                return np.concatenate([g_theta, R.T @ g_beta])

        x, dev, hess, info2 = minimize(
            dev1, np.concatenate([theta1, np.zeros(p)]), lower2, grad=grad1, quasi=False
        )
        info["stage2"] = info2
        dev1(x)
        theta_s, beta_s, u = x[:nt], beta1 + R @ x[nt:], state["u"].copy()
        # lme4's vcov: 2 x the fixed-effects block of the inverse Hessian of the deviance
        free = np.ones(len(x), dtype=bool)
        free[:nt] = ~((x[:nt] <= lower + 1e-12) & (np.diag(hess)[:nt] == 0))
        Hf = hess[np.ix_(free, free)]
        inv = np.zeros_like(hess)
        inv[np.ix_(free, free)] = np.linalg.inv(Hf)
        vcov_s = R @ (2.0 * inv[nt:, nt:]) @ R.T
        vcov_s = 0.5 * (vcov_s + vcov_s.T)
    core.set_theta(theta_s)
    return Estimate(
        core=core,
        A=A,
        zscale=zscale,
        theta_s=np.asarray(theta_s, dtype=float).copy(),
        beta_s=np.asarray(beta_s, dtype=float).copy(),
        u=u,
        dev=float(dev),
        vcov_s=vcov_s,
        hess=hess,
        info=info,
    )
