"""The random-effects covariance of a full model, one factor at a time: block by block, a
HalfNormal SD for a scalar term and ``pm.LKJCholeskyCov`` (LKJ(eta) correlations, HalfNormal
SDs) for a block of correlated terms, with the sampler's start for each LKJ factor.

Every full model (one-factor LMM, several factors, GLMM) builds its covariance here, so the
variables are named alike everywhere: ``sd_block<suffix>`` and ``chol_block<suffix>``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

__all__ = ["block_cholesky"]


def block_cholesky(block_sizes, scale, sd_start, eta: float, suffixes=None):
    """(q x q lower-triangular Cholesky factor tensor, sampler start values) of one factor.

    ``block_sizes``: the sizes of the factor's independent blocks (lme4's ``(x | g)`` terms);
    ``scale``: the HalfNormal scale of each term's SD; ``sd_start``: the fit's SDs, where each
    LKJ factor starts (diagonal, kept at least a tenth of the prior's scale off zero: nutpie
    0.16 cannot build the default initial point of an LKJ factor and stops with "bad initial
    gradient" without one); ``suffixes``: the name of each block's variables (default its
    position: ``sd_block0``, ``chol_block1``, ...).
    """
    scale = np.asarray(scale, float)
    sd_start = np.asarray(sd_start, float)
    q = int(sum(block_sizes))
    suffixes = [str(k) for k in range(len(block_sizes))] if suffixes is None else suffixes
    chol = pt.zeros((q, q))
    init: dict[str, np.ndarray] = {}
    start = 0
    for size, sfx in zip(block_sizes, suffixes, strict=True):
        sl = slice(start, start + size)
        if size == 1:
            sd = pm.HalfNormal(f"sd_block{sfx}", sigma=float(scale[start]))
            chol = pt.set_subtensor(chol[start, start], sd)
        else:
            sd0 = np.maximum(sd_start[sl], 0.1 * scale[sl])
            rows, cols = np.tril_indices(size)
            init[f"chol_block{sfx}"] = np.where(rows == cols, sd0[rows], 0.0)
            block, _, _ = pm.LKJCholeskyCov(
                f"chol_block{sfx}",
                n=size,
                eta=eta,
                sd_dist=pm.HalfNormal.dist(sigma=scale[sl], shape=size),
                compute_corr=True,
            )
            chol = pt.set_subtensor(chol[sl, sl], block)
        start += size
    return chol, init
