"""Generalized linear mixed models (binomial, Poisson) fitted exactly as lme4's ``glmer``.

``bs.fit(df, formula="cbind(incidence, size - incidence) ~ period + (1 | herd)",
family="binomial")`` returns a :class:`GlmmFit`. The estimator is in :mod:`.core` (PIRLS,
the Laplace and adaptive Gauss-Hermite deviances) and :mod:`.estimate` (the two-stage
optimisation), :mod:`.fit` makes the result; :mod:`.frame` reads the response forms and the
offset; :mod:`.inference` holds simulate, anova and confint (Wald, profile, bootstrap).
"""

from .fit import fit_glmm
from .results import GlmmFit

__all__ = ["GlmmFit", "fit_glmm"]
