"""The cross-product blocks of a linear mixed model with one or more grouping factors.

Everything the penalised least-squares criterion (:mod:`bayeshrink.lmm.pls`) reads once the data
are reduced: X'X, X'y, y'y, Z'Z (sparse), Z'X, Z'y and the first eliminated factor's per-level
blocks of Z'Z, on an internal scale (X, y and the random-slope columns centred and scaled, with
the exact map back), built from rows here or computed by a dataframe engine
(:mod:`bayeshrink.engines_formula`). Also the small dense/sparse helpers the criterion shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = [
    "PLSBlocks",
    "block_diag",
    "dense_enough",
    "elimination_order",
    "gram",
    "is_const",
    "psd_cholesky",
    "row_blocks",
    "scale_fixed",
    "scale_random",
]


# ---------------------------------------------------------------------------- scaling
def is_const(col: np.ndarray) -> bool:
    return bool(np.all(col == col[0])) if len(col) else True


def scale_fixed(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, int | None]:
    """X = Xs @ A with the columns of Xs centred (when X has an intercept) and of unit scale."""
    p = X.shape[1]
    icpt = next((j for j in range(p) if np.all(X[:, j] == 1.0)), None)
    A = np.eye(p)
    Xs = np.empty_like(X)
    for j in range(p):
        col = X[:, j]
        if j == icpt:
            Xs[:, j] = 1.0
            continue
        c = 0.0
        if icpt is not None:
            c = float(col.mean())
            c = float(c + (col - c).mean())  # second pass removes the rounding of a large mean
        d = col - c
        s = float(np.sqrt(np.mean(d * d)))
        if not np.isfinite(s) or s == 0.0:
            s = 1.0
        Xs[:, j] = d / s
        A[j, j] = s
        if icpt is not None:
            A[icpt, j] = c
    return Xs, A, icpt


def scale_random(Z: np.ndarray, block_sizes) -> tuple[np.ndarray, np.ndarray]:
    """Z = Zs @ Az, Az block diagonal; a block with an intercept has its other columns centred."""
    q = Z.shape[1]
    Az = np.eye(q)
    Zs = np.empty_like(Z)
    start = 0
    for size in block_sizes:
        idx = list(range(start, start + size))
        icpt = next((j for j in idx if np.all(Z[:, j] == 1.0)), None)
        for j in idx:
            col = Z[:, j]
            if j == icpt:
                Zs[:, j] = 1.0
                continue
            c = 0.0
            if icpt is not None:
                c = float(col.mean())
                c = float(c + (col - c).mean())
            d = col - c
            s = float(np.sqrt(np.mean(d * d)))
            if not np.isfinite(s) or s == 0.0:
                s = 1.0
            Zs[:, j] = d / s
            Az[j, j] = s
            if icpt is not None:
                Az[icpt, j] = c
        start += size
    return Zs, Az


def psd_cholesky(S: np.ndarray) -> np.ndarray:
    """Lower-triangular L with L L' = S for a positive semi-definite S (zero columns where
    S is singular), as lme4's theta holds it."""
    q = S.shape[0]
    L = np.zeros_like(S)
    scale = max(float(np.max(np.abs(np.diag(S)))), np.finfo(float).tiny)
    for j in range(q):
        d = S[j, j] - L[j, :j] @ L[j, :j]
        if d <= 1e-14 * scale:
            continue
        L[j, j] = math.sqrt(d)
        for i in range(j + 1, q):
            L[i, j] = (S[i, j] - L[i, :j] @ L[j, :j]) / L[j, j]
    return L


def dense_enough(A) -> bool:
    """Is a sparse matrix full enough that BLAS on its dense copy beats sparse products?"""
    return A.nnz > 0.2 * A.shape[0] * A.shape[1]


def gram(G) -> np.ndarray:
    """G G' as a dense array: a sparse product when G is sparse, BLAS when it is not."""
    if dense_enough(G):
        Gd = G.toarray()
        return Gd @ Gd.T
    return (G @ G.T).toarray()


def block_diag(blocks: np.ndarray) -> sp.csr_matrix:
    """CSR matrix with the (n, q, q) ``blocks`` on its diagonal (built without a Python loop)."""
    n, q, _ = blocks.shape
    cols = (np.arange(n)[:, None, None] * q + np.arange(q)[None, None, :]).repeat(q, axis=1)
    indptr = np.arange(0, n * q * q + 1, q)
    return sp.csr_matrix((blocks.reshape(-1), cols.reshape(-1), indptr), shape=(n * q, n * q))


@dataclass(frozen=True, eq=False)
class PLSBlocks:
    """Everything the criterion needs, on the internal (centred and scaled) scale.

    ``ZtZ`` (sparse), ``ZtX``, ``Zty`` with Z's columns in elimination order
    (:func:`elimination_order`, factor by factor, level by level, term by term); ``A11`` the
    first eliminated factor's per-level blocks of Z'Z; ``level_n`` the rows per level of each
    factor; ``A``/``icpt``/``my``/``sy``/``Az`` the map back to the data's scale (X = Xs A,
    y = my + sy y_s, Z_f = Zs_f Az_f); ``first_term_ones`` whether each factor's first term is
    the intercept (for the start)."""

    N: int
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    ZtZ: sp.csr_matrix
    ZtX: np.ndarray
    Zty: np.ndarray
    A11: np.ndarray
    level_n: tuple
    A: np.ndarray
    icpt: int | None
    my: float
    sy: float
    Az: tuple
    first_term_ones: tuple


def elimination_order(factors) -> list[int]:
    """The factor with most random effects first (stable)."""
    dims = [f.n_levels * f.q for f in factors]
    return sorted(range(len(factors)), key=lambda k: -dims[k])


def row_blocks(y: np.ndarray, X: np.ndarray, factors) -> PLSBlocks:
    """The :class:`PLSBlocks` of rows (what an engine computes with GROUP BYs). The rows are not
    kept: everything the criterion evaluates afterwards is read from these blocks."""
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float).reshape(len(y), -1)
    N = len(y)
    Xs, A, icpt = scale_fixed(X)
    if icpt is not None:
        my = float(y.mean())
        my = float(my + (y - my).mean())
    else:
        my = 0.0
    yc = y - my
    sy = float(np.sqrt(np.mean(yc * yc)))
    if not np.isfinite(sy) or sy == 0.0:
        sy = 1.0
    ys = yc / sy
    Zs_all, Az_all = [], []
    for f in factors:
        Zs, Az = scale_random(f.Z, f.block_sizes)
        Zs_all.append(Zs)
        Az_all.append(Az)
    order = elimination_order(factors)
    offs, o = {}, 0
    for k in order:
        offs[k] = o
        o += factors[k].n_levels * factors[k].q
    rows, cols, vals = [], [], []
    ar = np.arange(N)
    for k, f in enumerate(factors):
        for a in range(f.q):
            rows.append(ar)
            cols.append(offs[k] + f.codes * f.q + a)
            vals.append(Zs_all[k][:, a])
    Z = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(N, o)
    )
    first = order[0]
    f1, Z1 = factors[first], Zs_all[first]
    A11 = np.empty((f1.n_levels, f1.q, f1.q))
    for a in range(f1.q):
        for b in range(a, f1.q):
            s = np.bincount(f1.codes, weights=Z1[:, a] * Z1[:, b], minlength=f1.n_levels)
            A11[:, a, b] = s
            A11[:, b, a] = s
    return PLSBlocks(
        N=N,
        XtX=Xs.T @ Xs,
        Xty=Xs.T @ ys,
        yty=float(ys @ ys),
        ZtZ=(Z.T @ Z).tocsr(),
        ZtX=np.asarray(Z.T @ Xs),
        Zty=np.asarray(Z.T @ ys),
        A11=A11,
        level_n=tuple(np.bincount(f.codes, minlength=f.n_levels) for f in factors),
        A=A,
        icpt=icpt,
        my=my,
        sy=sy,
        Az=tuple(Az_all),
        first_term_ones=tuple(bool(np.all(Zs[:, 0] == 1.0)) for Zs in Zs_all),
    )
