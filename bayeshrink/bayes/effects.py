"""The random effects of a PyMC model, built from the fit's terms: every grouping factor's
levels and terms (an :class:`~bayeshrink.bayes.workflow.EffectLayout`) and a Cholesky factor
per factor give ``z`` (standard normal), ``b`` (level x term: each factor's block z_f L_f')
and ``coef`` (b plus the fixed effect of each term). The one-factor LMM, several-factor LMM
and GLMM models all build their effects here; only their likelihoods differ.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..posterior import GROUP_DIM, TERM_DIM

__all__ = ["coef", "effects", "fixed_of_random", "linear_part"]


def fixed_of_random(terms, fixed_terms) -> np.ndarray:
    """(terms, p): coef = b + E beta (the fixed effect of each random term, 0 where none)."""
    fixed_terms = list(fixed_terms)
    E = np.zeros((len(terms), len(fixed_terms)))
    for k, t in enumerate(terms):
        if t in fixed_terms:
            E[k, fixed_terms.index(t)] = 1.0
    return E


def effects(factors, lay, chols: dict, several: bool):
    """z (level x term, standard normal) and the deterministic b; ``factors``: objects with
    ``name`` and ``labels`` in the layout's order, ``chols``: L_f by factor name. With one
    factor b = z L'; with several each factor's rows and terms of b are its block z_f L_f' (0
    in the terms it lacks). Returns (b, each factor's (levels, q_f) block)."""
    z = pm.Normal("z", 0.0, 1.0, dims=(GROUP_DIM, TERM_DIM))
    if not several:
        (f,) = factors
        b = pm.Deterministic("b", pt.dot(z, chols[f.name].T), dims=(GROUP_DIM, TERM_DIM))
        return b, {f.name: b}
    b = pt.zeros((len(lay.levels), len(lay.terms)))
    blocks = {}
    for f in factors:
        rows = slice(lay.offset[f.name], lay.offset[f.name] + len(f.labels))
        cols = lay.term_pos[f.name]
        block = pt.dot(z[rows][:, cols], chols[f.name].T)
        for k, col in enumerate(cols):
            b = pt.set_subtensor(b[rows, col], block[:, k])
        blocks[f.name] = block
    return pm.Deterministic("b", b, dims=(GROUP_DIM, TERM_DIM)), blocks


def coef(b, E: np.ndarray, beta):
    """The deterministic coef = b + E beta over (level, term)."""
    return pm.Deterministic("coef", b + pt.dot(E, beta)[None, :], dims=(GROUP_DIM, TERM_DIM))


def linear_part(blocks: dict, rows):
    """sum_f z_fi' b_f,l(i) over ``rows``: (factor name, codes, Z) triples."""
    out = 0.0
    for name, codes, Z in rows:
        out = out + pt.sum(blocks[name][codes] * Z, axis=1)
    return out
