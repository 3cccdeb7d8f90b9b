"""Would a sparse Cholesky raise the 12,000-effect cap on the Schur complement? (lmm/pls.py)

    python benchmarks/bench_schur.py            # qdldl from PyPI if installed, scipy's splu

For a random crossing y ~ 1 + (1 | a) + (1 | b), rows spread over n_a levels of a and r of b,
theta = 1: M = Z'Z + I, the first factor a eliminated level by level (diagonal), and the Schur
complement S = M_bb - M_ba M_aa^-1 M_ab that the criterion factors densely. Prints S's density
and the time to factor it densely (numpy), with scipy's splu and with qdldl (AMD ordering).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp


def schur(n_a: int, r: int, rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n_a, rows), rng.integers(0, r, rows)
    Za = sp.csr_matrix((np.ones(rows), (np.arange(rows), a)), shape=(rows, n_a))
    Zb = sp.csr_matrix((np.ones(rows), (np.arange(rows), b)), shape=(rows, r))
    Daa = np.asarray(Za.sum(axis=0)).ravel() + 1.0
    Mba = (Zb.T @ Za).tocsr()
    Mbb = (Zb.T @ Zb).tocsr() + sp.identity(r, format="csr")
    return (Mbb - Mba @ sp.diags(1.0 / Daa) @ Mba.T).tocsc()


def timed(f, *args, **kwargs):
    t0 = time.perf_counter()
    f(*args, **kwargs)
    return time.perf_counter() - t0


def main() -> None:
    try:
        import qdldl
    except ImportError:
        qdldl = None
    from scipy.sparse.linalg import splu

    cases = [
        (20_000, 4_000, 200_000),
        (20_000, 12_000, 200_000),
        (100_000, 12_000, 200_000),
    ]
    for n_a, r, rows in cases:
        S = schur(n_a, r, rows)
        dens = S.nnz / r**2
        Sd = S.toarray()
        t_dense = timed(np.linalg.cholesky, Sd)
        t_splu = timed(splu, S, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
        upper = sp.triu(S, format="csc")
        t_q = timed(qdldl.Solver, upper) if qdldl else float("nan")
        print(
            f"a {n_a:>7,} levels, b {r:>6,}, rows {rows:>9,}: S density {dens:5.3f}; "
            f"dense Cholesky {t_dense:6.2f} s, splu {t_splu:7.2f} s, qdldl {t_q:7.2f} s"
        )


if __name__ == "__main__":
    main()
