"""lme4's ``confint``: Wald, profile and parametric-bootstrap intervals."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..api import check_level, lme4_term
from ..errors import (
    ColumnError,
    MethodError,
)
from .bootstrap import bootstrap
from .model import check_long, model_of
from .profile import Profile, estimates


def _check_method(method) -> str:
    m = str(method).lower() if isinstance(method, str) else method
    if m not in ("wald", "profile", "bootstrap", "boot"):
        raise MethodError(
            f"`method` must be 'wald', 'profile' or 'bootstrap'; got {method!r}. 'wald' is "
            "quick (fixed effects only), 'profile' inverts the likelihood-ratio test, "
            "'bootstrap' resamples from the fitted model."
        )
    return "bootstrap" if m == "boot" else m


def confint(
    fit,
    parm: str | list[str] | None = None,
    level: float = 0.95,
    method: Literal["wald", "profile", "bootstrap"] = "wald",
    *,
    n_boot: int = 500,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """Confidence intervals for the fixed effects and the variance parameters, as lme4's
    ``confint(m, oldNames = FALSE)``.

    Parameters
    ----------
    fit : ShrinkageFit, MixedFit or MultiFit
    parm : str or list of str, optional
        Parameters to report (default all): lme4's names, ``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sigma``, ``(Intercept)``, ``Days``; the fit's own
        names of the fixed effects (``Intercept``) are accepted too.
    level : float
        Coverage, in (0, 1).
    method : {"wald", "profile", "bootstrap"}
        ``"wald"``: estimate +- z se for the fixed effects; NaN for the variance parameters, as
        lme4 (a normal approximation is poor for an SD). ``"profile"``: the likelihood-ratio
        interval, lme4's ``profile``: for each parameter the signed square root of the rise in
        the ML deviance when it is fixed and all the others are re-optimised, solved for +-z by
        root finding (lme4 interpolates the profile with splines, so the two agree to ~1e-4).
        The deviance is the model's own (:class:`~bayeshrink.inference.profile.Profile`): for
        one grouping factor on the estimator's centred and scaled columns, so the units of a
        covariate do not change the intervals; with several, that of the sparse mixed-model
        equations.
        As in lme4, the profile is of the likelihood, so a REML fit is refitted by ML for it. An
        SD estimated at 0 gets the lower bound 0 (the interval is one-sided); a correlation
        whose profile stays below z up to +-1 gets the bound +-1. ``"bootstrap"``: the
        parametric bootstrap (lme4's ``bootMer``), percentile intervals from ``n_boot`` fits to
        responses simulated from the fitted model, reproducible with ``random_seed``. The
        simulation draws each group's cross-products exactly from their distribution, so it
        costs O(groups) per draw, not O(rows). With several grouping factors the responses are
        simulated row by row (every factor's random effects redrawn) and refitted on the fit's
        own design (:func:`bayeshrink.inference.bootstrap`).
    n_boot : int
        Bootstrap replications (method="bootstrap").
    random_seed : int, optional
        Seed of the bootstrap's generator (``numpy.random.default_rng``).

    Returns
    -------
    pandas.DataFrame
        One row per parameter, columns ``estimate``, ``lo``, ``hi`` (the bounds at
        (1 - level) / 2 and (1 + level) / 2); ``attrs`` hold ``level`` and ``method``.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> sleep = bs.load_dataset("sleepstudy")
    >>> m = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    >>> m.confint()[["lo", "hi"]].round(3)
                                       lo       hi
    sd_(Intercept)|Subject            NaN      NaN
    cor_Days.(Intercept)|Subject      NaN      NaN
    sd_Days|Subject                   NaN      NaN
    sigma                             NaN      NaN
    (Intercept)                   238.029  264.781
    Days                            7.438   13.497
    """
    from scipy import stats

    from ..glmm.results import GlmmFit

    if isinstance(fit, GlmmFit):
        from ..glmm.inference import confint as glmm_confint

        return glmm_confint(fit, parm, level, method, n_boot=n_boot, random_seed=random_seed)
    method = _check_method(method)
    level = check_level(level)
    p = model_of(fit)
    est = estimates(p)
    names = list(est.index)
    if parm is None:
        chosen = names
    else:
        wanted = [parm] if isinstance(parm, str) else list(parm)
        chosen = []
        for w in wanted:
            w2 = lme4_term(w) if w not in names else w
            if w2 not in names:
                raise ColumnError(
                    f"`parm` must name parameters of the fit; got {w!r}. Parameters are: "
                    f"{', '.join(map(repr, names))}."
                )
            chosen.append(w2)
    n_var = len(names) - len(p.fixed_names)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    lo = pd.Series(np.nan, index=names)
    hi = pd.Series(np.nan, index=names)
    if method == "wald":
        se = np.sqrt(np.diag(p.vcov))
        lo.iloc[n_var:] = p.beta - z * se
        hi.iloc[n_var:] = p.beta + z * se
    elif method == "profile":
        check_long(fit, "profile intervals")
        prof = Profile(fit)
        for name in chosen:
            k = names.index(name)
            if k < n_var:
                a, b = prof.interval(k, "var", z)
            else:
                a, b = prof.interval(k - n_var, "fixed", z)
            lo[name], hi[name] = a, b
    else:
        check_long(fit, "bootstrap intervals")
        draws = bootstrap(fit, n_boot=n_boot, random_seed=random_seed)
        q = draws.quantile([0.5 - level / 2.0, 0.5 + level / 2.0])
        lo[:] = q.iloc[0].to_numpy()
        hi[:] = q.iloc[1].to_numpy()
    out = pd.DataFrame({"estimate": est, "lo": lo, "hi": hi}).loc[chosen]
    out.attrs.update(level=level, method=method)
    return out
