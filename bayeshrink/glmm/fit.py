"""Fit a GLMM as lme4's ``glmer`` does (:func:`fit_glmm`): the design (:mod:`.frame`), the
estimator (:mod:`.estimate`) and the result (:class:`~.results.GlmmFit`)."""

from __future__ import annotations

import numpy as np

from ..errors import MethodError
from ..frames import Missing
from .estimate import estimate, one_thread
from .family import get_family
from .frame import glmm_design

__all__ = ["fit_design", "fit_glmm"]


def fit_glmm(
    data,
    formula: str,
    family: str = "binomial",
    link: str | None = None,
    nagq: int = 1,
    weights=None,
    missing: Missing = "raise",
):
    """The GLMM fit behind ``bs.fit(..., family=...)``; see :func:`bayeshrink.fit`."""
    with one_thread():
        return _fit_glmm(data, formula, family, link, nagq, weights, missing)


def _fit_glmm(data, formula, family, link, nagq, weights, missing):
    fam = get_family(family, link)
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or not 0 <= nagq <= 100:
        raise MethodError(
            f"`nagq` must be an integer from 0 to 100 (lme4's nAGQ: 1 Laplace, > 1 adaptive "
            f"Gauss-Hermite, 0 the fast fit); got {nagq!r}."
        )
    nagq = int(nagq)
    des = glmm_design(data, formula, fam, weights=weights, missing=missing)
    if nagq > 1 and (len(des.factors) > 1 or des.factors[0].q > 1):
        what = (
            f"{len(des.factors)} grouping factors"
            if len(des.factors) > 1
            else f"the vector term ({', '.join(des.factors[0].terms)} | {des.factors[0].name})"
        )
        raise MethodError(
            f"`nagq` > 1 (adaptive Gauss-Hermite) needs a single scalar random term such as "
            f"(1 | g); got nagq={nagq} with {what}. Use nagq=1 (Laplace), as lme4 requires."
        )
    return fit_design(des, fam, nagq)


def fit_design(des, fam, nagq: int):
    """The :class:`~.results.GlmmFit` of an evaluated design."""
    from .results import GlmmFit

    e = estimate(des, fam, nagq)
    out = GlmmFit._from_core(
        des,
        e.core,
        fam,
        nagq,
        e.theta_s,
        e.beta_s,
        e.u,
        e.dev,
        e.A,
        e.zscale,
        e.vcov_s,
        e.hess,
        e.info,
    )
    # the estimator's coordinates, for refits started from this fit
    out._theta_s, out._beta_s = e.theta_s, e.beta_s
    return out
