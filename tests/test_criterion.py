"""The blocked-Cholesky criterion reads the cross-product blocks alone.

Once :class:`~bayeshrink.lmm.blocks.PLSBlocks` exist, no evaluation of the profiled REML/ML
deviance or of its gradient touches the rows: here the factors are stripped of their rows
(``codes`` and ``Z`` None, as an engine hands them over) and the criterion is compared with a
dense evaluation straight from the rows,

    V = I + Z Lambda Lambda' Z',  log|V| = log|I + Lambda'Z'Z Lambda|,
    r'V^-1 r = r'r - r'Z Lambda M^-1 Lambda'Z'r,  beta = (X'V^-1 X)^-1 X'V^-1 y,

    ML:   log|V| + N (1 + log(2 pi r'V^-1 r / N))
    REML: log|V| + log|X'V^-1 X| + (N - p)(1 + log(2 pi r'V^-1 r / (N - p)))

(lme4's profiled deviance, Bates et al. 2015, eq. 34 and 41). Tolerance 1e-10 relative: both are
backward-stable evaluations of a number of order 1e2-1e4, so they agree to a few hundred ulps.

The analytic gradient is checked against central differences D(h) of the criterion. D(h) has
truncation error c h^2 and rounding error about eps |f| / h; with D(h/2) the truncation error of
D(h/2) is (D(h) - D(h/2)) / 3 to leading order, so the tolerance is
``|D(h) - D(h/2)| + 8 eps |f| / h`` (derived from the step, not tuned).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from conftest import load_ref
from test_multi import read

import bayeshrink as bs
from bayeshrink.lmm.blocks import row_blocks
from bayeshrink.lmm.estimate import theta_layout
from bayeshrink.lmm.multi import MultiDesign
from bayeshrink.lmm.pls import _Problem, fit_pls

CASES = [
    ("multi_penicillin_REML", "penicillin.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)",
     "reml"),
    ("multi_penicillin_ML", "penicillin.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)", "ml"),
    ("multi_pastes_nested_REML", "pastes.csv", "strength ~ 1 + (1 | batch/cask)", "reml"),
    ("multi_sim_crossed_REML", "multi_sim_crossed.csv", "y ~ x + (1 + x | subj) + (1 | item)",
     "reml"),
    ("multi_sim_crossed_ML", "multi_sim_crossed.csv", "y ~ x + (1 + x | subj) + (1 | item)", "ml"),
    ("multi_sim_crossed_blocks_REML", "multi_sim_crossed.csv",
     "y ~ x + (1 | subj) + (0 + x | subj) + (1 | item)", "reml"),
    ("multi_sim_nested_school_slopes_REML", "multi_sim_nested.csv",
     "y ~ x + (1 | school:class) + (1 + x | school)", "reml"),
    ("multi_scotssec_REML", "multi_scotssec.csv",
     "attain ~ verbal + sex + (1 | primary) + (1 | second)", "reml"),
]  # fmt: skip


def dense_deviance(design: MultiDesign, theta: np.ndarray, method: str) -> float:
    """lme4's profiled deviance at the data-scale ``theta``, from the rows, densely."""
    y, X = design.y, design.X
    N, p = X.shape
    Zs, lams = [], []
    o = 0
    for f in design.factors:
        rr, cc, _ = theta_layout(f.block_sizes)
        T = np.zeros((f.q, f.q))
        T[rr, cc] = theta[o : o + len(rr)]
        o += len(rr)
        Z = np.zeros((N, f.n_levels * f.q))
        for a in range(f.q):
            Z[np.arange(N), f.codes * f.q + a] = f.Z[:, a]
        Zs.append(Z)
        lams.append(np.kron(np.eye(f.n_levels), T))
    ZL = np.hstack(Zs) @ _block_diag(lams)
    M = np.eye(ZL.shape[1]) + ZL.T @ ZL
    L = np.linalg.cholesky(M)
    logdet_v = 2.0 * np.log(np.diag(L)).sum()

    def vinv(B):  # V^-1 B by Woodbury
        return B - ZL @ np.linalg.solve(M, ZL.T @ B)

    Vx, Vy = vinv(X), vinv(y)
    H = X.T @ Vx
    beta = np.linalg.solve(H, X.T @ Vy)
    r = y - X @ beta
    pwrss = float(r @ vinv(r))
    dof = N - p if method == "reml" else N
    crit = logdet_v + dof * (1.0 + math.log(2.0 * math.pi * pwrss / dof))
    if method == "reml":
        crit += np.linalg.slogdet(H)[1]
    return float(crit)


def _block_diag(mats):
    n = sum(m.shape[0] for m in mats)
    out = np.zeros((n, n))
    o = 0
    for m in mats:
        k = m.shape[0]
        out[o : o + k, o : o + k] = m
        o += k
    return out


def without_rows(design: MultiDesign):
    """The blocks of the design, and its factors with no rows left (codes and Z None)."""
    blocks = row_blocks(design.y, design.X, list(design.factors))
    factors = [dataclasses.replace(f, codes=None, Z=None) for f in design.factors]
    return blocks, factors


@pytest.mark.parametrize(("name", "csv", "formula", "method"), CASES, ids=[c[0] for c in CASES])
def test_criterion_from_blocks_alone_equals_the_dense_row_formula(name, csv, formula, method):
    design = MultiDesign.from_formula(read(csv), formula)
    blocks, factors = without_rows(design)
    theta_ref = np.asarray(load_ref(name)["theta"], float)
    rng = np.random.default_rng(1)
    # at lme4's optimum and at a point away from it (every entry moved by up to 30%)
    for theta in (theta_ref, theta_ref * (1.0 + 0.3 * rng.uniform(-1, 1, theta_ref.size))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.ConvergenceWarning)
            comp = fit_pls(None, None, factors, method, theta=theta, blocks=blocks)
        expected = dense_deviance(design, theta, method)
        np.testing.assert_allclose(comp.criterion, expected, rtol=1e-10)


@pytest.mark.parametrize(("name", "csv", "formula", "method"), CASES, ids=[c[0] for c in CASES])
def test_analytic_gradient_matches_central_differences(name, csv, formula, method):
    design = MultiDesign.from_formula(read(csv), formula)
    blocks, factors = without_rows(design)
    prob = _Problem(None, None, factors, method, blocks=blocks)
    theta_ref = np.asarray(load_ref(name)["theta"], float)
    rng = np.random.default_rng(2)
    # an interior point (no zero on a diagonal of T_f) away from the optimum, so that the
    # gradient is not ~0
    inside = np.where(theta_ref == 0.0, 0.1, theta_ref)
    theta = prob.to_internal(inside * (1.0 + 0.3 * rng.uniform(0.2, 1, theta_ref.size)))
    f, g = prob.value_and_grad(theta)
    eps = np.finfo(float).eps
    for i in range(theta.size):
        h = 1e-3 * max(abs(theta[i]), 1e-2)

        def central(step, i=i):
            tp, tm = theta.copy(), theta.copy()
            tp[i] += step
            tm[i] -= step
            return (prob.value(tp) - prob.value(tm)) / (2.0 * step)

        d1, d2 = central(h), central(h / 2)
        tol = abs(d1 - d2) + 8.0 * eps * abs(f) / (h / 2)
        assert abs(g[i] - d2) <= tol, (i, g[i], d2, tol)
