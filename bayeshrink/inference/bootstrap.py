"""The parametric bootstrap (lme4's ``bootMer``): simulate from the fitted model and refit,
through the model's ``backend.responses`` and ``backend.refit`` (:mod:`.model`)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..api import check_count
from ..errors import ConvergenceWarning, DataError
from .backends import refit_from_stats
from .model import check_long, model_of
from .profile import estimates, phi_from, theta_from_phi

__all__ = ["bootstrap", "refit_from_stats"]


def bootstrap(fit, n_boot: int = 500, random_seed: int | None = None) -> pd.DataFrame:
    """Parametric bootstrap of a fit (lme4's ``bootMer``): ``n_boot`` refits to responses drawn
    from the fitted model (every random effect redrawn), by the fit's method; one row per
    replicate, the parameters of :func:`confint` as columns.

    One grouping factor: each group's cross-products with the simulated response are drawn
    exactly from their joint distribution (normal for D_j'y, a chi-square for the residual part
    of y'y), which is what a refit to simulated rows would see, at O(groups) a replicate.
    Several factors: responses simulated row by row on the fit's own design and refitted there
    (X and every factor's Z are reused; only y changes). A refit whose optimiser stops short
    is kept, as bootMer keeps it; one :class:`~bayeshrink.errors.ConvergenceWarning` at the end
    says how many there were.
    """
    n_boot = check_count(n_boot, "n_boot", 2)
    check_long(fit, "the bootstrap")
    p = model_of(fit)
    sc = p.backend.scale
    phi_hat = phi_from(p, [t.cov_re for t in p.terms], p.sigma)
    theta0 = theta_from_phi(p, phi_hat, sc.Gz)
    if theta0 is None:  # pragma: no cover - cov_re is PSD by construction
        raise DataError("the fitted random-effects covariance is not positive semi-definite.")
    rng = np.random.default_rng(random_seed)
    rows, stalled = [], 0
    for response in p.backend.responses(p, rng, n_boot):
        r = p.backend.refit(p, response, theta0)
        stalled += not r.converged
        rows.append(np.r_[phi_from(p, r.covs, r.sigma), r.beta])
    if stalled:
        warnings.warn(
            f"{stalled} of {n_boot} bootstrap refits stopped with a gradient above 1e-3 and were "
            "kept (as lme4's bootMer keeps them).",
            ConvergenceWarning,
            stacklevel=3,
        )
    out = pd.DataFrame(rows, columns=estimates(p).index)
    out.attrs.update(n_boot=n_boot, random_seed=random_seed)
    return out
