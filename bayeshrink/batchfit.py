r"""One-way REML/ML/DL fits of many data sets at once, from their sufficient statistics.

The same estimators as :func:`bayeshrink.estimate.estimate` (same criteria, same boundary rule),
vectorised over a leading batch axis, so that a parametric bootstrap or a simulation study fits
thousands of data sets in one pass of numpy instead of thousands of Python calls.

Inputs are arrays with a leading batch axis ``B`` and a group axis ``J``:

* long data: ``mean`` (B, J) group means, ``n`` (J,) or (B, J) group sizes, ``ssw`` (B,) the
  total within-group sum of squares;
* summary data: ``mean`` (B, J) estimates and ``se`` (J,) or (B, J) their known SEs.

The 1-D criterion in lambda = tau^2 / sigma^2 (long) or tau^2 (summary) is evaluated on the
logarithmic grid of :mod:`bayeshrink.estimate` for all data sets at once; the root of its
derivative is then bracketed around the best grid point and found by vectorised bisection to
machine precision. The rare data set whose bracket holds no clean sign change (or whose
criterion still falls at the end of the grid) is handed to the scalar solver, so every result
equals :func:`~bayeshrink.estimate.estimate`'s to ~1e-10 relative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import GroupStats
from .estimate import METHODS_LONG, METHODS_SUMMARY, check_method, estimate

__all__ = ["BatchComponents", "fit_batch"]

_GRID_UNIT = np.logspace(-8.0, 8.0, 49)


@dataclass(frozen=True)
class BatchComponents:
    """Estimated components of B one-way fits, each an array of shape (B,)."""

    method: str
    mu: np.ndarray
    mu_se: np.ndarray
    tau2: np.ndarray
    sigma2: np.ndarray
    boundary: np.ndarray


def _bracketed_root(grad, lo, hi, g_lo, g_hi, iterations: int = 200) -> np.ndarray:
    """Root of ``grad(x, rows)`` in [lo, hi] (g_lo < 0 < g_hi), rows independent.

    The Illinois variant of regula falsi (superlinear, the bracket always kept), with a
    bisection step whenever the secant point is not strictly inside; a row stops when its
    bracket or its step is a few ulps. Only the rows still moving are evaluated.
    """
    lo, hi, g_lo, g_hi = lo.copy(), hi.copy(), g_lo.copy(), g_hi.copy()
    x = 0.5 * (lo + hi)
    x_old = np.full(lo.shape, np.inf)
    side = np.zeros(lo.shape, dtype=np.int8)
    active = np.arange(lo.size)
    eps4 = 4.0 * np.finfo(float).eps
    for _ in range(iterations):
        a = active
        xa = hi[a] - g_hi[a] * (hi[a] - lo[a]) / (g_hi[a] - g_lo[a])
        xa = np.where((xa > lo[a]) & (xa < hi[a]), xa, 0.5 * (lo[a] + hi[a]))
        tiny = eps4 * np.maximum(xa, 1e-300)
        done = ((hi[a] - lo[a]) <= tiny) | (np.abs(xa - x_old[a]) <= tiny)
        x[a] = xa
        active = a[~done]
        if active.size == 0:
            break
        a, xa = active, x[active]
        x_old[a] = xa
        g = grad(xa, a)
        left = g < 0.0
        # Illinois: when the same end moves twice running, halve the other end's value
        g_hi[a] = np.where(left & (side[a] == -1), 0.5 * g_hi[a], g_hi[a])
        g_lo[a] = np.where(~left & (side[a] == 1), 0.5 * g_lo[a], g_lo[a])
        lo[a] = np.where(left, xa, lo[a])
        g_lo[a] = np.where(left, g, g_lo[a])
        hi[a] = np.where(left, hi[a], xa)
        g_hi[a] = np.where(left, g_hi[a], g)
        side[a] = np.where(left, -1, 1)
        active = a[g != 0.0]
    return x


def _solve(crit, grad, scale: float, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`bayeshrink.estimate._argmin_halfline`; returns (x, rows to redo)."""
    grid = np.concatenate([[0.0], scale * _GRID_UNIT])
    # the grid criterion in blocks of rows: (rows, G, J) temporaries stay small
    block = max(1, 2**16 // grid.size)
    values = np.concatenate(
        [
            crit(np.broadcast_to(grid, (len(r), grid.size)), r)
            for r in np.array_split(np.arange(n_rows), max(1, -(-n_rows // block)))
        ]
    )  # (B, G)
    i = np.nanargmin(values, axis=1)
    rows = np.arange(n_rows)
    redo = i == grid.size - 1  # still falling at the end of the grid: scalar solver
    lo = np.where(i == 0, 0.0, grid[np.maximum(i - 1, 0)])
    hi = np.where(i == 0, grid[1], grid[np.minimum(i + 1, grid.size - 1)])
    every = np.arange(n_rows)
    g0 = grad(np.zeros(n_rows), every)
    at_zero = (i == 0) & (g0 >= 0.0)
    g_lo, g_hi = grad(lo, every), grad(hi, every)
    clean = (g_lo < 0.0) & (g_hi > 0.0)
    redo |= ~at_zero & ~clean
    idx = np.flatnonzero(clean & ~at_zero)
    x = np.zeros(n_rows)
    x[idx] = _bracketed_root(lambda t, a: grad(t, idx[a]), lo[idx], hi[idx], g_lo[idx], g_hi[idx])
    best = crit(x[:, None], every)[:, 0]
    x = np.where(values[rows, 0] <= best, 0.0, x)
    return x, redo


def _per_row(values, n_rows: int, n_groups: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=float), (n_rows, n_groups))


def fit_batch(
    mean,
    *,
    n=None,
    ssw=None,
    se=None,
    method: str = "reml",
) -> BatchComponents:
    """Fit B one-way models at once (long data with ``n``/``ssw``, or summary data with ``se``).

    Parameters
    ----------
    mean : array (B, J)
        Group means (long data) or given estimates (summary data).
    n, ssw : arrays (J,) or (B, J), and (B,)
        Group sizes and total within-group sums of squares, for long data.
    se : array (J,) or (B, J)
        Known standard errors, for summary data.
    method : {"reml", "ml"} or, for summary data, also "dl"

    Returns
    -------
    BatchComponents
        ``mu``, ``mu_se``, ``tau2``, ``sigma2`` (NaN for summary data) and ``boundary``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayeshrink.batchfit import fit_batch
    >>> rng = np.random.default_rng(1)
    >>> means = rng.normal(0.0, 1.0, size=(3, 8))
    >>> fit_batch(means, se=np.ones(8)).tau2.shape
    (3,)
    """
    mean = np.atleast_2d(np.asarray(mean, dtype=float))
    n_rows, n_groups = mean.shape
    if se is None:
        method = check_method(method, METHODS_LONG, "long")
        return _fit_long(mean, _per_row(n, n_rows, n_groups), np.asarray(ssw, float), method)
    method = check_method(method, METHODS_SUMMARY, "summary")
    return _fit_summary(mean, _per_row(se, n_rows, n_groups) ** 2, method)


def _fit_long(mean: np.ndarray, n: np.ndarray, ssw: np.ndarray, method: str) -> BatchComponents:
    n_rows = mean.shape[0]
    N = n.sum(1)
    centre = (n * mean).sum(1) / N
    ybar = mean - centre[:, None]
    ssw = np.broadcast_to(ssw, (n_rows,))
    reml = method == "reml"
    dof = N - 1.0 if reml else N

    def parts(lam, rows=slice(None)):  # lam: (B, G) or (B,)
        lam = np.asarray(lam, dtype=float)
        lam2 = lam[:, :, None] if lam.ndim == 2 else lam[:, None, None]
        nr = n[rows][:, None, :]
        w = nr / (1.0 + nr * lam2)
        S = w.sum(-1)
        yb = ybar[rows][:, None, :]
        mu = (w * yb).sum(-1) / S
        r = yb - mu[..., None]
        Q = ssw[rows][:, None] + (w * r * r).sum(-1)
        return lam2, w, S, mu, r, Q

    def crit(lam, rows=slice(None)):
        lam2, _, S, _, _, Q = parts(lam, rows)
        value = dof[rows][:, None] * np.log(Q) + np.log1p(n[rows][:, None, :] * lam2).sum(-1)
        return value + np.log(S) if reml else value

    def grad(lam, rows=slice(None)):
        _, w, S, _, r, Q = parts(lam, rows)
        g = -dof[rows][:, None] * (w * w * r * r).sum(-1) / Q + S
        g = g - (w * w).sum(-1) / S if reml else g
        return g[:, 0]

    scale = 1.0 / float(np.median(n))
    lam, redo = _solve(crit, grad, scale, n_rows)
    for b in np.flatnonzero(redo):  # rare: the scalar solver, exactly as estimate() does it
        stats = GroupStats.from_arrays(
            labels=list(range(mean.shape[1])), mean=mean[b], n=n[b], ssw=ssw[b] * n[b] / n[b].sum()
        )
        vc = estimate(stats, method)
        lam[b] = vc.tau2 / vc.sigma2
    _, _, S, mu, _, Q = parts(lam)
    S, mu, Q = S[:, 0], mu[:, 0], Q[:, 0]
    sigma2 = Q / dof
    return BatchComponents(
        method=method,
        mu=mu + centre,
        mu_se=np.sqrt(sigma2 / S),
        tau2=lam * sigma2,
        sigma2=sigma2,
        boundary=lam == 0.0,
    )


def _fit_summary(mean: np.ndarray, s2: np.ndarray, method: str) -> BatchComponents:
    n_rows, k = mean.shape
    w0 = 1.0 / s2
    centre = (w0 * mean).sum(1) / w0.sum(1)
    y = mean - centre[:, None]
    reml = method == "reml"

    def parts(tau2, rows=slice(None)):
        t = np.asarray(tau2, dtype=float)
        t2 = t[:, :, None] if t.ndim == 2 else t[:, None, None]
        w = 1.0 / (t2 + s2[rows][:, None, :])
        S = w.sum(-1)
        yr = y[rows][:, None, :]
        mu = (w * yr).sum(-1) / S
        r = yr - mu[..., None]
        return w, S, mu, r

    def crit(tau2, rows=slice(None)):
        w, S, _, r = parts(tau2, rows)
        value = -np.log(w).sum(-1) + (w * r * r).sum(-1)
        return value + np.log(S) if reml else value

    def grad(tau2, rows=slice(None)):
        w, S, _, r = parts(tau2, rows)
        g = w.sum(-1) - (w * w * r * r).sum(-1)
        g = g - (w * w).sum(-1) / S if reml else g
        return g[:, 0]

    if method == "dl":
        q = (w0 * y * y).sum(1) - (w0 * y).sum(1) ** 2 / w0.sum(1)
        c = w0.sum(1) - (w0 * w0).sum(1) / w0.sum(1)
        tau2 = np.maximum(0.0, (q - (k - 1.0)) / c)
    else:
        tau2, redo = _solve(crit, grad, float(np.median(s2)), n_rows)
        for b in np.flatnonzero(redo):
            stats = GroupStats.from_arrays(labels=list(range(k)), mean=mean[b], se=np.sqrt(s2[b]))
            tau2[b] = estimate(stats, method).tau2
    _, S, mu, _ = parts(tau2)
    S, mu = S[:, 0], mu[:, 0]
    return BatchComponents(
        method=method,
        mu=mu + centre,
        mu_se=np.sqrt(1.0 / S),
        tau2=tau2,
        sigma2=np.full(n_rows, np.nan),
        boundary=tau2 == 0.0,
    )
