"""Sampling a bayeshrink model with NUTS (nutpie or PyMC), checking for divergences and, as
PyMC does for its own sampler, for convergence (R-hat and ESS)."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings

import numpy as np
import pymc as pm

from ..errors import DivergenceWarning, MethodError
from ..posterior import count_divergences
from .checks import check_model, check_run, tag_draws, warn_convergence
from .workflow import add_workflow_groups, remember

__all__ = ["default_sampler", "sample"]


def _interactive() -> bool:
    if "PYTEST_CURRENT_TEST" in os.environ or os.environ.get("CI"):
        return False
    if os.environ.get("BAYESHRINK_PROGRESSBAR") == "0":  # set by bs.notebook_setup()
        return False
    if "ipykernel" in sys.modules:  # PyMC's notebook progress bar needs ipywidgets
        return importlib.util.find_spec("ipywidgets") is not None
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def default_sampler() -> str:
    """'nutpie' where it is installed (PyMC's default then), else PyMC's own NUTS."""
    return "nutpie" if importlib.util.find_spec("nutpie") is not None else "pymc"


def sample(
    model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    *,
    progressbar: bool | None = None,
    sampler: str | None = None,
    target_accept: float | None = None,
    **kwargs,
):
    """Sample a model from :func:`plugin_model` or :func:`hierarchical_model` with NUTS.

    Uses nutpie where installed and PyMC's NUTS otherwise (``sampler="pymc"`` forces it).
    The progress bar shows in interactive use and never under pytest or CI; ``random_seed``
    makes runs reproducible (for the same compiled model and cache state). Returns the
    ``xarray.DataTree`` of ``pm.sample``. Divergent transitions raise a
    :class:`~bayeshrink.DivergenceWarning` that says how many.

    ``target_accept`` for hierarchical models defaults to 0.99 below 20 groups and 0.95 above:
    with few groups the posterior of tau is weakly identified (a sharp peak near 0 and a long
    tail), and at the sampler's default of 0.8 the 5- and 6-group examples showed a few
    divergences per run; at 0.95 about one run in 20 still had one, at 0.99 none in 30. The
    model costs O(groups), so the smaller steps are cheap. Plug-in models are Gaussian and keep
    the sampler's default.

    Bad run sizes (``draws`` < 4, ``chains`` < 1, ``tune`` < 0) and anything but a model are
    refused. After sampling, PyMC's convergence rules are applied whichever sampler ran (PyMC
    skips them for nutpie): R-hat above 1.01 or bulk/tail ESS below 100 per chain raise a
    :class:`~bayeshrink.SamplerConvergenceWarning` naming the worst quantities. The draws
    remember which model of which fit they come from (``idata.attrs``), so that
    :func:`~bayeshrink.compare` can refuse draws of another fit.
    """
    check_model(model)
    check_run(draws, tune, chains, target_accept)
    draws, tune, chains = int(draws), int(tune), int(chains)
    start = getattr(model, "start", None)
    if start and "initvals" not in kwargs:
        # an explicit start for the LKJ factors: nutpie (0.16) cannot build their default
        # initial point (a scan) and fails with "bad initial gradient" without it
        kwargs["initvals"] = dict(start)
    sampler = sampler or default_sampler()
    if sampler == "pymc":
        # numba, as nutpie uses: PyTensor's C backend needs a BLAS it often cannot find
        kwargs.setdefault("compile_kwargs", {"mode": "NUMBA"})
    if sampler not in ("nutpie", "pymc"):
        raise MethodError(f"`sampler` must be 'nutpie' or 'pymc'; got {sampler!r}.")
    if progressbar is None:
        progressbar = _interactive()
    if target_accept is None and getattr(model, "kind", "") == "hierarchical":
        target_accept = 0.99 if model.fit.n_groups < 20 else 0.95
    if target_accept is not None:
        kwargs["target_accept"] = target_accept
    hints = getattr(model, "nutpie_kwargs", None)
    if sampler == "nutpie" and hints:
        # a model's own tuning hints (several crossed factors: a low-rank mass matrix)
        kwargs["nuts"] = {**hints, **kwargs.get("nuts", {})}
    with warnings.catch_warnings():
        # PyMC's own chatter about small sample sizes is for its users' defaults, not ours
        warnings.filterwarnings("ignore", message=".*number of samples is too small.*")
        # PyTensor's C backend compiles PyMC's initial-point function (of an LKJ prior, a scan)
        # and says it found no BLAS; sampling itself runs on numba, so nothing is slowed
        warnings.filterwarnings(
            "ignore", message="PyTensor could not link to a BLAS", category=UserWarning
        )
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=min(chains, os.cpu_count() or 1),
            random_seed=random_seed,
            progressbar=progressbar,
            nuts_sampler=sampler,
            model=model,
            **kwargs,
        )
    # the effects of a marginalized model: exact draws given each posterior draw, seeded from
    # the run
    effect_seed = None if random_seed is None else np.random.SeedSequence([random_seed, 1])
    if hasattr(model, "add_effects"):
        idata = model.add_effects(idata, effect_seed)
    tag_draws(idata, model)  # which model of which fit: compare() checks it
    if getattr(model, "fit", None) is not None:
        # what ArviZ reads: pointwise log-likelihood, observed and constant data (from the
        # draws, after sampling), and the model for sample_posterior_predictive
        add_workflow_groups(idata, model)
        remember(idata, model)
    n_div = count_divergences(idata)
    if n_div:
        warnings.warn(
            f"{n_div} divergent transitions in {chains * draws} draws: the posterior may be "
            "biased. Try `target_accept=0.99`, `marginalize=True` or the other parametrization.",
            DivergenceWarning,
            stacklevel=2,
        )
    warn_convergence(idata, model, stacklevel=3)
    return idata
