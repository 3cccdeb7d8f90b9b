"""Model plumbing shared by the one-way and mixed PyMC models: the model class and the priors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm

from ..errors import DataTypeError, MethodError

__all__ = [
    "POOLINGS",
    "PriorSpec",
    "ShrinkageModel",
    "check_mu",
    "check_pooling",
    "column_sd",
    "format_prior",
    "make_prior",
    "no_pooling_prior",
]


class ShrinkageModel(pm.Model):
    """A ``pm.Model`` that knows the fit it was built from and says what it is.

    ``str(model)`` starts with a plain-language description of the model; ``model.fit`` is the
    fit; ``model.kind`` is "plugin" or "hierarchical"; ``model.priors`` names the priors used;
    ``model.marginalized`` says whether the group effects were integrated out (they are then
    drawn after sampling by :meth:`add_effects`).
    """

    description: str = ""
    kind: str = ""
    fit = None
    priors: dict | None = None
    marginalized: bool = False
    #: sampler start values by variable name, used by :func:`sample` unless ``initvals`` is given
    start: dict | None = None
    #: draws the integrated-out group effects: f(model, idata, random_seed) -> idata
    effect_sampler = None
    #: extra keyword arguments for nutpie, used by :func:`sample` when nutpie samples
    nutpie_kwargs: dict | None = None
    #: the rows of the data (:class:`bayeshrink.bayes.workflow.Rows`) or None: the unit of the
    #: pointwise log-likelihood and of the predictive draws (rows, or groups without them)
    rows = None
    #: "partial" (the hierarchical model), "none" or "complete" (hierarchical_model's pooling)
    pooling: str = "partial"
    #: several factors: where each factor's effects sit in ``b`` (workflow.EffectLayout)
    layout = None

    def __str__(self) -> str:
        return f"{self.description}\n\n{self.str_repr()}"

    def add_effects(self, idata, random_seed=None):
        """Add exact draws of the group effects to a marginalized model's posterior."""
        if not self.marginalized or self.effect_sampler is None:
            return idata
        return self.effect_sampler(self, idata, random_seed)


@dataclass(frozen=True)
class PriorSpec:
    """A default prior: the PyMC distribution, its parameters, and why."""

    dist: str
    params: dict
    reason: str

    def __str__(self) -> str:
        return format_prior(self)


def column_sd(col: np.ndarray) -> float:
    """The SD of a design column for the data-scaled priors: 1 for a constant column (an
    intercept)."""
    if np.all(col == col[0]):
        return 1.0
    return float(np.std(col, ddof=1))


def format_prior(spec: PriorSpec) -> str:
    """``Dist(param=value, ...)`` with vectors printed as arrays."""
    parts = []
    for k, v in spec.params.items():
        arr = np.atleast_1d(v)
        parts.append(
            f"{k}={np.array2string(arr, precision=4)}" if arr.size > 1 else f"{k}={arr[0]:.4g}"
        )
    return f"{spec.dist}({', '.join(parts)})"


POOLINGS = ("partial", "none", "complete")


def check_pooling(pooling) -> str:
    """``pooling`` must be one of :data:`POOLINGS`."""
    if pooling not in POOLINGS:
        raise MethodError(
            f"`pooling` must be one of 'partial' (the hierarchical model), 'none' (every group "
            f"on its own) or 'complete' (one mean for all); got {pooling!r}."
        )
    return pooling


def no_pooling_prior(terms, fixed_terms, beta_mu, beta_sd, sd_scale):
    """(mean, sd) of every group's own coefficient of each random term under no pooling: the
    prior of the term's fixed effect, or Normal(0, the SD prior's scale) for a term without
    one; and the positions of the fixed effects that stay shared (those of no random term)."""
    mean, sd, own = [], [], set()
    for k, t in enumerate(terms):
        if t in fixed_terms:
            j = list(fixed_terms).index(t)
            mean.append(float(beta_mu[j]))
            sd.append(float(beta_sd[j]))
            own.add(j)
        else:
            mean.append(0.0)
            sd.append(float(sd_scale[k]))
    shared = [j for j in range(len(fixed_terms)) if j not in own]
    return np.array(mean), np.array(sd), shared


def check_mu(mu, what: str = "mu_hat") -> str:
    """``mu`` of a plug-in model must be 'fixed' or 'flat'."""
    if mu not in ("fixed", "flat"):
        raise MethodError(
            f"`mu` must be 'fixed' (plug in {what}) or 'flat' (a flat prior on the fixed "
            f"effects); got {mu!r}."
        )
    return mu


def make_prior(model, name: str, spec, default: PriorSpec):
    """Create the prior of ``name`` from a user override or the default."""
    positive = name not in ("mu", "beta")
    if spec is None:
        return getattr(pm, default.dist)(name, **default.params), str(default)
    if isinstance(spec, str):
        key = spec.lower()
        if key in ("flat", "uniform") and not positive:
            return pm.Flat(name), "Flat()"
        if key in ("flat", "uniform", "halfflat") and positive:
            return pm.HalfFlat(name), "HalfFlat() (uniform on (0, inf))"
        raise MethodError(
            f"`priors[{name!r}]` must be 'flat'/'uniform', a PyMC distribution made with "
            f"`.dist(...)`, or a function of the name that creates the variable; got {spec!r}."
        )
    if callable(spec) and not hasattr(spec, "owner"):
        return spec(name), getattr(spec, "__name__", "custom")
    if hasattr(spec, "owner"):  # an unregistered distribution, e.g. pm.HalfCauchy.dist(beta=5)
        op = spec.owner.op
        label = getattr(op, "_print_name", (None,))[0] or type(op).__name__
        return model.register_rv(spec, name), f"{label}(...)"
    raise DataTypeError(
        f"`priors[{name!r}]` must be a string shortcut, a `pm.<Dist>.dist(...)` variable or a "
        f"callable; got {type(spec).__name__}."
    )
