"""Bound-constrained minimisation of a smooth deviance, with or without its analytic gradient.

L-BFGS-B, then Newton steps on a Hessian (which also serves the Wald covariance, as lme4's
``optinfo$derivs``). Without a gradient both come from central differences of the deviance;
with one, the Hessian is the central difference of the gradient (2 d evaluations instead of
2 d^2 + 1, and free of the deviance's rounding divided by h^2).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

__all__ = ["fd_gradient", "fd_hessian", "gd_hessian", "minimize"]


def fd_gradient(fun, x, lower, h=1e-5, forward=False):
    g = np.empty(len(x))
    f0 = None
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h
        if forward or x[i] - h < lower[i]:
            f0 = fun(x) if f0 is None else f0
            g[i] = (fun(x + e) - f0) / h
        else:
            g[i] = (fun(x + e) - fun(x - e)) / (2 * h)
    return g


def fd_hessian(fun, x, free, h=1e-4):
    """Central-difference Hessian over the free coordinates (others left 0)."""
    d = len(x)
    H = np.zeros((d, d))
    f0 = fun(x)
    idx = np.flatnonzero(free)
    fp, fm = {}, {}
    for i in idx:
        e = np.zeros(d)
        e[i] = h
        fp[i], fm[i] = fun(x + e), fun(x - e)
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h**2
    for a, i in enumerate(idx):
        for j in idx[a + 1 :]:
            ei = np.zeros(d)
            ej = np.zeros(d)
            ei[i] = h
            ej[j] = h
            v = (fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)) / (
                4 * h * h
            )
            H[i, j] = H[j, i] = v
    return H


def gd_hessian(grad, x, lower, free, h=1e-5):
    """The Hessian over the free coordinates as central differences of ``grad`` (forward at a
    lower bound), symmetrised; other rows and columns 0."""
    d = len(x)
    H = np.zeros((d, d))
    idx = np.flatnonzero(free)
    for i in idx:
        e = np.zeros(d)
        e[i] = h
        if x[i] - h < lower[i]:
            H[:, i] = (grad(x + e) - grad(x)) / h
        else:
            H[:, i] = (grad(x + e) - grad(x - e)) / (2 * h)
    mask = np.zeros(d, dtype=bool)
    mask[idx] = True
    H[~mask, :] = 0.0
    return 0.5 * (H + H.T)


def _probe_zero(f, x, lower, values=(0.05, 0.2, 0.5, 1.0)):
    """A point below ``f(x)`` with one coordinate at a lower bound of 0 moved off it, or None."""
    at_zero = np.flatnonzero((lower == 0.0) & (x <= 1e-12))
    if not len(at_zero):
        return None
    f0 = f(x)
    best, fbest = None, f0 - 1e-9 * (1.0 + abs(f0))
    for i in at_zero:
        for v in values:
            y = x.copy()
            y[i] = v
            fy = f(y)
            if fy < fbest:
                best, fbest = y, fy
    return best


def minimize(fun, x0, lower, *, grad=None, newton=True, quasi=True, max_newton=12, ftol=1e-13):
    """Minimise ``fun`` over ``x >= lower`` (``grad`` its gradient, if known). Returns
    (x, f, H, info)."""
    x = np.maximum(np.asarray(x0, dtype=float), lower)
    lower = np.asarray(lower, dtype=float)
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    n_eval = [0]

    def f(z):
        n_eval[0] += 1
        return fun(z)

    if grad is None:

        def gradient(z):
            return fd_gradient(f, z, lower)

        def hessian(z, free):
            return fd_hessian(f, z, free)

        def quasi_jac(z):
            return fd_gradient(f, z, lower, h=1e-6, forward=True)
    else:

        def gradient(z):
            return np.asarray(grad(z), dtype=float)

        def hessian(z, free):
            def g(w):
                n_eval[0] += 1
                return gradient(w)

            return gd_hessian(g, z, lower, free)

        quasi_jac = gradient

    if quasi:
        res = optimize.minimize(
            f,
            x,
            jac=quasi_jac,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 500, "ftol": ftol, "gtol": 1e-7},
        )
        x = np.maximum(res.x, lower)
        # a diagonal entry of theta (lower bound 0) at 0 is a stationary point of an even
        # function (the deviance depends on theta_jj through theta_jj^2 there): its gradient is
        # exactly 0 even when the deviance falls away from it. Probe it, and restart if so
        best = _probe_zero(f, x, lower)
        if best is not None:
            res = optimize.minimize(
                f,
                best,
                jac=quasi_jac,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 500, "ftol": ftol, "gtol": 1e-7},
            )
            x = np.maximum(res.x, lower)
    fx = f(x)
    H = None
    steps = 0
    if newton:
        # Newton steps; the finite-difference Hessian is computed once and kept while the steps
        # are accepted in full (it barely changes near the optimum), then once more at the end
        H_at = None
        free_at = None
        last = np.inf
        for steps in range(1, max_newton + 1):  # noqa: B007
            g = gradient(x)
            free = ~((x <= lower + 1e-12) & (g > 0))
            if H is None or free_at is None or not np.array_equal(free, free_at):
                H, H_at, free_at = hessian(x, free), x.copy(), free
            Hf = H[np.ix_(free, free)]
            try:
                w, V = np.linalg.eigh(Hf)
            except np.linalg.LinAlgError:
                break
            w = np.maximum(w, 1e-8 * max(1.0, np.max(np.abs(w), initial=1.0)))
            step = np.zeros(len(x))
            step[free] = -(V @ ((V.T @ g[free]) / w))
            # a step below 1e-7 in the problem's unit-scale coordinates (1e-7 of a
            # standard error for beta), or one that would gain less than the deviance's own
            # noise: the point is the optimum
            gain = -0.5 * float(g[free] @ step[free])
            if np.max(np.abs(step), initial=0.0) < 1e-7 or gain < 1e-14:
                break
            t = 1.0
            for _ in range(30):
                xn = np.maximum(x + t * step, lower)
                fn = f(xn)
                if fn <= fx:
                    break
                t *= 0.5
            else:
                break
            if fn == fx:
                break
            size = np.max(np.abs(step), initial=0.0)
            if t < 1.0 or size > 0.5 * last:
                H = None  # a damped or slowly shrinking step: recompute the Hessian
            last = size
            x, fx = xn, fn
        if H is None or H_at is None or not np.array_equal(H_at, x):
            g = gradient(x)
            free = ~((x <= lower + 1e-12) & (g > 0))
            H = hessian(x, free)
    return x, fx, H, {"n_eval": n_eval[0], "newton_steps": steps}
