"""Checks around sampling: run sizes, whose draws these are, convergence.

Draws returned by :func:`bayeshrink.sample` carry, in the DataTree's root ``attrs``, what they
were sampled from: ``bayeshrink_model`` ("plugin" or "hierarchical"), ``bayeshrink_fit_kind``
("one-way" or "mixed"), ``bayeshrink_pooling`` ("partial", "none" or "complete"), and
fingerprints of the fit (``bayeshrink_fit``: data and estimates;
``bayeshrink_data``: data only). :func:`check_draws` compares them with the fit they are
compared against, so draws of another fit's model are refused even when the group labels
match. Draws without these attrs (``pm.sample`` called directly) are matched by labels only.

With nutpie as the sampler PyMC runs no convergence checks; :func:`warn_convergence` applies
PyMC's own rules (R-hat above 1.01; bulk or tail ESS below 100 per chain) to every free
variable and to ``theta``/``coef``, with arviz-stats' rank-normalized split R-hat and ESS
(:func:`bayeshrink.posterior.convergence_table`).
"""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np

from ..errors import DataError, DataTypeError, SamplerConvergenceWarning
from ..posterior import convergence_table

__all__ = [
    "aligned_posterior",
    "check_draws",
    "check_model",
    "check_model_draws",
    "check_run",
    "fingerprint",
    "merge_posterior",
    "tag_draws",
    "warn_convergence",
]

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
MIN_DRAWS = 4


def _whole(value) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, np.integer, float, np.floating))
        and math.isfinite(value)
        and int(value) == value
    )


def check_run(draws, tune, chains, target_accept) -> None:
    """Refuse run sizes PyMC would fail on, or turn into an empty or meaningless result."""
    if not _whole(draws) or draws < MIN_DRAWS:
        raise DataError(
            f"`draws` must be a whole number of at least {MIN_DRAWS} (draws per chain, after "
            f"tuning; R-hat and Monte Carlo SEs need several); got {draws!r}. The default 1000 "
            "gives reliable diagnostics."
        )
    if not _whole(tune) or tune < 0:
        raise DataError(
            f"`tune` must be a whole number of at least 0 (tuning steps per chain); got {tune!r}."
        )
    if not _whole(chains) or chains < 1:
        raise DataError(
            f"`chains` must be a whole number of at least 1; got {chains!r}. Use 4 (the "
            "default): R-hat compares chains."
        )
    if target_accept is not None and not (
        isinstance(target_accept, (int, float, np.integer, np.floating))
        and 0.0 < float(target_accept) < 1.0
    ):
        raise DataError(
            f"`target_accept` must lie strictly between 0 and 1 (the sampler's target acceptance "
            f"rate); got {target_accept!r}. Values such as 0.9 or 0.99 make smaller steps."
        )


def check_model(model) -> None:
    """``model`` must be a PyMC model (from :func:`plugin_model` / :func:`hierarchical_model`)."""
    import pymc as pm

    if isinstance(model, pm.Model):
        return
    name = type(model).__name__
    hint = (
        " Build the model first: bs.sample(bs.plugin_model(fit)) or "
        "bs.sample(bs.hierarchical_model(fit))."
        if name in ("ShrinkageFit", "MixedFit")
        else ""
    )
    raise DataTypeError(
        f"`model` must be a model from bs.plugin_model or bs.hierarchical_model (a pm.Model); "
        f"got {name}.{hint}"
    )


# --------------------------------------------------------------------------- whose draws


def _fit_kind(fit) -> str:
    name = type(fit).__name__
    return {"ShrinkageFit": "one-way", "MultiFit": "several-factor", "GlmmFit": "glmm"}.get(
        name, "mixed"
    )


def fingerprint(fit, estimates: bool = True) -> str:
    """A short hash of the fit's data (and, with ``estimates``, of its estimates).

    The data are the per-group statistics the models are built from (one-way: labels, means,
    sizes, sums of squares or standard errors; mixed: labels and cross-products), so two fits
    of the same data agree and fits of different data do not, whatever their labels.
    """
    h = hashlib.blake2b(digest_size=12)

    def add(x):
        if isinstance(x, np.ndarray):
            h.update(np.ascontiguousarray(x, dtype=float).tobytes())
        else:
            h.update(repr(x).encode())

    if _fit_kind(fit) == "one-way":
        st = fit.stats
        add(st.data_kind)
        add([str(g) for g in st.labels])
        for arr in (st.mean, st.n, st.ssw, st.se):
            if arr is not None:
                add(np.asarray(arr, dtype=float))
        if estimates:
            add((fit.method, fit.mu, fit.tau2, fit.sigma2))
    elif _fit_kind(fit) == "glmm":
        d = fit._design
        add((fit.formula, fit.family, fit.link))
        for arr in (d.y, d.wt, d.offset, d.X):
            add(np.asarray(arr, dtype=float))
        for f in fit._factors:
            add((f.name, [str(g) for g in f.labels]))
            add(np.asarray(f.codes, dtype=float))
            add(np.asarray(f.Z, dtype=float))
        if estimates:
            add((fit.method, fit.nagq))
            add(np.asarray(fit.fixef, dtype=float))
            add(np.asarray(fit.theta, dtype=float))
    elif _fit_kind(fit) == "several-factor":
        d = fit.design
        add(fit.formula)
        add(np.asarray(d.y, dtype=float))
        add(np.asarray(d.X, dtype=float))
        for f in d.factors:
            add((f.name, [str(g) for g in f.labels]))
            add(np.asarray(f.codes, dtype=float))
            add(np.asarray(f.Z, dtype=float))
        if estimates:
            add((fit.method, float(fit.sigma)))
            add(np.asarray(fit.fixef, dtype=float))
            add(np.asarray(fit.theta, dtype=float))
    else:
        add(fit.formula)
        add([str(g) for g in fit.groups])
        add(np.asarray(fit.design.stats.cross, dtype=float))
        if estimates:
            add((fit.method, float(fit.sigma)))
            add(np.asarray(fit.fixef, dtype=float))
            add(np.asarray(fit.cov_re(), dtype=float))
    return h.hexdigest()


def tag_draws(idata, model) -> None:
    """Record in ``idata.attrs`` which model of which fit the draws come from."""
    fit = getattr(model, "fit", None)
    kind = getattr(model, "kind", "")
    if fit is None or not kind:
        return
    idata.attrs["bayeshrink_model"] = kind
    idata.attrs["bayeshrink_fit_kind"] = _fit_kind(fit)
    idata.attrs["bayeshrink_data"] = fingerprint(fit, estimates=False)
    idata.attrs["bayeshrink_fit"] = fingerprint(fit, estimates=True)
    idata.attrs["bayeshrink_pooling"] = getattr(model, "pooling", "partial")


_KIND_NAMES = {"plugin": "the plug-in model", "hierarchical": "the hierarchical model"}
_POOLING_NAMES = {
    "none": "each group's own (no pooling)",
    "complete": "the population's (complete pooling, b = 0)",
}


def check_draws(idata, tag: str, fit) -> None:
    """``idata`` given as ``plugin=``/``full=`` must be draws of that model of this fit."""
    try:
        idata["posterior"]
    except (TypeError, KeyError):
        raise DataTypeError(
            f"`{tag}` must be the draws returned by bs.sample (an xarray DataTree with a "
            f"posterior group); got {type(idata).__name__}"
            f"{' without a posterior' if isinstance(idata, dict) else ''}."
        ) from None
    attrs = getattr(idata, "attrs", {}) or {}
    if "bayeshrink_model" not in attrs:
        return  # not from bs.sample: the caller checks labels
    want_kind = "plugin" if tag == "plugin" else "hierarchical"
    model = "bs.plugin_model(fit)" if tag == "plugin" else "bs.hierarchical_model(fit)"
    got_fit_kind = attrs.get("bayeshrink_fit_kind")
    if got_fit_kind != _fit_kind(fit):
        raise DataError(
            f"`{tag}` must be sampled from a model of this fit (a {_fit_kind(fit)} fit); got "
            f"draws of a {got_fit_kind} model. Sample bs.sample({model}) for this fit."
        )
    pooling = attrs.get("bayeshrink_pooling", "partial")
    if pooling != "partial":
        raise DataError(
            f"`{tag}` must be draws of {_KIND_NAMES[want_kind]} (partial pooling); got draws of "
            f"the pooling={pooling!r} model, bs.hierarchical_model(fit, pooling={pooling!r}), "
            f"whose group coefficients are {_POOLING_NAMES.get(pooling, 'not pooled partially')}"
            f", not the mixed model's. Sample bs.sample({model}) for `{tag}=`; compare the "
            "pooling models through their own draws' posterior instead."
        )
    if attrs["bayeshrink_model"] != want_kind:
        raise DataError(
            f"`{tag}` must be draws of {_KIND_NAMES[want_kind]}; got draws of "
            f"{_KIND_NAMES.get(attrs['bayeshrink_model'], attrs['bayeshrink_model'])}. Pass them "
            f"as `{'full' if tag == 'plugin' else 'plugin'}=`, or sample bs.sample({model})."
        )
    key, ours = (
        ("bayeshrink_fit", fingerprint(fit, True))
        if tag == "plugin"
        else ("bayeshrink_data", fingerprint(fit, False))
    )
    if attrs.get(key) != ours:
        what = "data and estimates" if tag == "plugin" else "data"
        raise DataError(
            f"`{tag}` must be sampled from a model of this fit; these draws come from a model "
            f"of another fit (its {what} differ, though the group labels may match). Sample "
            f"bs.sample({model}) for this fit."
        )


# --------------------------------------------------------------------------- convergence


def diagnosed_vars(idata, model=None) -> list[str]:
    """The free variables and the group effects (theta or coef). The standardized effects z
    are left to theta/coef, which carry them (theta = mu + tau z): on a boundary fit theta is
    pinned and z is a free variable that nothing depends on."""
    post = idata["posterior"]
    # theta where there is one (a one-way model's coef holds the same draws), else coef
    effects = [v for v in ("theta", "coef") if v in post.data_vars][:1]
    names = []
    if model is not None:
        names = [v.name for v in getattr(model, "free_RVs", [])]
        if effects:
            names = [n for n in names if n != "z"]
    names += effects
    return [v for v in dict.fromkeys(names) if v in post.data_vars]


def worst(da, largest: bool) -> tuple[float, str]:
    """The worst value of a diagnostic and where it is (e.g. "theta[g3]")."""
    values = np.asarray(da.values, dtype=float)
    if values.size == 0 or not np.isfinite(values).any():
        return math.nan, ""
    flat = np.where(np.isfinite(values), values, -np.inf if largest else np.inf)
    i = int(np.argmax(flat) if largest else np.argmin(flat))
    where = ""
    if values.ndim:
        idx = np.unravel_index(i, values.shape)
        labels = [
            str(da[d].values[k]) if d in da.coords else str(k)
            for d, k in zip(da.dims, idx, strict=True)
        ]
        where = "[" + ", ".join(labels) + "]"
    return float(values.ravel()[i]), where


def warn_convergence(idata, model=None, stacklevel: int = 3) -> None:
    """Warn, as PyMC does for its own sampler, when R-hat > 1.01 or ESS < 100 per chain.

    For a marginalized model only the sampled variables are diagnosed, as PyMC does: its
    group effects are exact independent draws from their conditional given each draw, so
    they have converged when the variables they are drawn from have (``bs.check`` still
    reports them)."""
    post = idata["posterior"]
    chains = int(post.sizes.get("chain", 1))
    names = diagnosed_vars(idata, model)
    if getattr(model, "marginalized", False):
        free = {v.name for v in getattr(model, "free_RVs", [])}
        names = [n for n in names if n in free]
    if not names:
        return
    diag = convergence_table(idata, names)
    problems = []
    if chains > 1:
        rhat = max(((*worst(diag["rhat"][v], True), v) for v in names), key=_key_max)
        if rhat[0] > RHAT_MAX:
            problems.append(f"R-hat of {rhat[2]}{rhat[1]} is {rhat[0]:.3f} (above {RHAT_MAX})")
    need = ESS_PER_CHAIN_MIN * chains
    for kind in ("ess_bulk", "ess_tail"):
        low = min(((*worst(diag[kind][v], False), v) for v in names), key=_key_min)
        if low[0] < need:
            problems.append(
                f"{kind.replace('_', ' ').replace('ess', 'ESS')} of {low[2]}{low[1]} is "
                f"{low[0]:.0f} (below {ESS_PER_CHAIN_MIN} per chain x {chains} = {need})"
            )
    if problems:
        warnings.warn(
            "the chains have not converged: "
            + "; ".join(problems)
            + ". Estimates and their Monte Carlo SEs are unreliable: sample longer (more tune "
            "and draws), or use the non-centered or marginalized model.",
            SamplerConvergenceWarning,
            stacklevel=stacklevel,
        )


def _key_max(t):
    return t[0] if math.isfinite(t[0]) else -math.inf


def _key_min(t):
    return t[0] if math.isfinite(t[0]) else math.inf


def check_model_draws(idata, model) -> None:
    """``idata`` given with ``model`` must be draws of that model's fit and kind."""
    attrs = getattr(idata, "attrs", {}) or {}
    fit = getattr(model, "fit", None)
    if fit is None or "bayeshrink_model" not in attrs:
        return
    if attrs.get("bayeshrink_fit_kind") != _fit_kind(fit) or attrs.get(
        "bayeshrink_data"
    ) != fingerprint(fit, estimates=False):
        raise DataError(
            "`draws` must be sampled from this model's fit; these draws come from a model of "
            f"another fit (a {attrs.get('bayeshrink_fit_kind')} fit with other data). Pass the "
            "draws of bs.sample(model), or the model they were sampled from."
        )
    pooling = getattr(model, "pooling", "partial")
    if attrs.get("bayeshrink_pooling", "partial") != pooling:
        raise DataError(
            f"`draws` must be draws of this model (pooling={pooling!r}); got draws of the "
            f"pooling={attrs.get('bayeshrink_pooling')!r} model of the same fit. Pass the model "
            "they were sampled from."
        )
    if attrs["bayeshrink_model"] != getattr(model, "kind", None):
        raise DataError(
            f"`draws` must be draws of {_KIND_NAMES.get(model.kind, model.kind)}; got draws of "
            f"{_KIND_NAMES.get(attrs['bayeshrink_model'], attrs['bayeshrink_model'])}. Pass the "
            "model they were sampled from."
        )


def aligned_posterior(tag: str, idata, keys, prob: float, var: str = "coef"):
    """The posterior table of ``var`` (over ``level`` x ``term``: mean, sd, lo, hi, mcse,
    rhat, ess_bulk, ess_tail) at ``keys``, the (level, term) pairs as the posterior names
    them, in their order. Draws lacking one are refused: they are of another fit."""
    import pandas as pd

    from ..errors import BayeshrinkError
    from ..posterior import term_posterior_table

    post = term_posterior_table(idata, var, prob)
    post.index = pd.MultiIndex.from_arrays(
        [[str(g) for g in post.index.get_level_values(0)], post.index.get_level_values(1)]
    )
    want = pd.MultiIndex.from_tuples([(str(a), b) for a, b in keys])
    missing = want.difference(post.index)
    if len(missing):
        raise BayeshrinkError(
            f"`{tag}` must be sampled from a model of this fit; it lacks {list(missing)[:3]}."
        )
    return post.loc[want]


def merge_posterior(out, tag: str, idata, keys, prob: float, var: str = "coef") -> None:
    """Add the posterior columns of ``var`` from ``idata`` to the comparison table ``out``
    (:func:`bayeshrink.posterior.add_posterior_columns`: {tag}_mean, _sd, _lo and _hi, _mcse,
    _rhat, _ess_bulk, _ess_tail, and plugin_gap_mcse against ``out["blup"]``); ``keys`` as
    :func:`aligned_posterior`. The one merge of every fit's ``compare``."""
    from ..posterior import add_posterior_columns

    post = aligned_posterior(tag, idata, keys, prob, var)
    post.index = out.index
    add_posterior_columns(out, tag, post)
