r"""What ArviZ reads beside the posterior: pointwise log-likelihood, observed and constant data,
posterior and prior predictive draws.

The models keep their sufficient-statistics likelihood (a model costs O(groups) per gradient);
everything here is computed after sampling from the draws, with numpy, chain by chain.

The pointwise unit
------------------
* **Rows** (long data whose rows the model knows: ``data=`` given to
  :func:`~bayeshrink.hierarchical_model` / :func:`~bayeshrink.plugin_model`, or any fit with
  several grouping factors, which keeps its rows): one value per row,
  ``log N(y_i | x_i' beta + z_i' b_g(i), sigma^2)``, over the dimension ``obs`` (coordinate
  ``obs``: the data's row index; a coordinate named after each grouping column holds the row's
  level). ``observed_data`` holds the response under its column name, ``constant_data`` the
  covariates (the columns of X and Z, by term name) and the group label of every row.
* **Groups**, for summary data (estimates with known SEs): one value per group,
  ``log N(y_j | theta_j, se_j^2)``, over ``level``.
* **Groups**, for long data without the rows (a one-way or one-factor fit made from sufficient
  statistics, no ``data=``): the joint log-density of the group's rows given its effects, exact
  from the per-group statistics (so ``az.loo`` is leave-one-group-out), over ``level``.
  ``observed_data`` then holds the group means ``ybar`` (one-way) and the predictive draws are
  those of the group means.

Where a model integrated the group effects out, :func:`~bayeshrink.sample` has already drawn
them exactly from their conditional given each draw; the log-likelihood is then the density of
each row given those draws (the same as the textbook model's pointwise log-likelihood).
"""

from __future__ import annotations

import math
import uuid
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ColumnError, DataError, DataTypeError
from ..posterior import GROUP_DIM

__all__ = [
    "OBS_DIM",
    "Rows",
    "add_workflow_groups",
    "model_of",
    "rows_of",
    "sample_posterior_predictive",
    "sample_prior_predictive",
]

OBS_DIM = "obs"
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True, eq=False)
class Factor:
    """One grouping factor on the rows: its name, labels, the level of each row and Z."""

    name: str
    labels: pd.Index
    codes: np.ndarray  # (N,)
    Z: np.ndarray  # (N, q)
    terms: tuple[str, ...]
    #: positions of this factor's levels and terms in the model's ``b`` (several factors)
    level_pos: np.ndarray | None = None
    term_pos: list | None = None


@dataclass(frozen=True, eq=False)
class Rows:
    """The rows of a model's data: response, fixed-effects columns, one :class:`Factor` each."""

    response: str
    y: np.ndarray
    X: np.ndarray
    fixed_names: tuple[str, ...]
    factors: tuple[Factor, ...]
    index: np.ndarray = field(repr=False)

    @property
    def n(self) -> int:
        return len(self.y)


# --------------------------------------------------------------------------- the layout


@dataclass(frozen=True)
class EffectLayout:
    """Where the effects of several grouping factors sit in ``b`` and ``coef`` (``level`` x
    ``term``): ``levels`` are "factor:label" (factors in the fit's order), ``factor_of`` and
    ``label_of`` their factor and own label; ``terms`` is every factor's terms, in first-seen
    order; ``offset[f]`` the first position of factor f in ``level`` and ``term_pos[f]`` the
    positions of its terms in ``term``. A cell of a factor without that term is 0."""

    levels: list
    factor_of: list
    label_of: list
    terms: list
    offset: dict
    term_pos: dict

    def coords(self) -> dict:
        """The model's coords (PyMC takes index coordinates only)."""
        return {GROUP_DIM: self.levels, "term": self.terms}

    def label(self, ds: xr.Dataset) -> xr.Dataset:
        """``ds`` with the coordinates ``factor`` and ``label`` on ``level``."""
        if GROUP_DIM not in ds.dims:
            return ds
        return ds.assign_coords(
            factor=(GROUP_DIM, self.factor_of), label=(GROUP_DIM, self.label_of)
        )


def effect_layout(fit, factors=None) -> EffectLayout:
    """The :class:`EffectLayout` of a fit with several grouping factors (``factors``: objects
    with ``name``, ``labels`` and ``terms``; the fit's own by default)."""
    levels, factor_of, label_of, terms, offset, term_pos = [], [], [], [], {}, {}
    for e in fit.components.factors if factors is None else factors:
        offset[e.name] = len(levels)
        labels = [str(v) for v in e.labels]
        levels += [f"{e.name}:{v}" for v in labels]
        factor_of += [e.name] * len(labels)
        label_of += labels
        for t in e.terms:
            if t not in terms:
                terms.append(t)
        term_pos[e.name] = [terms.index(t) for t in e.terms]
    return EffectLayout(levels, factor_of, label_of, terms, offset, term_pos)


# --------------------------------------------------------------------------- the rows


def _fit_kind(fit) -> str:
    name = type(fit).__name__
    return {"ShrinkageFit": "one-way", "MultiFit": "several-factor"}.get(name, "mixed")


def rows_of(fit, data=None) -> Rows | None:
    """The rows of ``fit``'s data: from ``data`` (the frame the fit was made from), or from the
    fit itself where it keeps them (several grouping factors); None when neither has them (or
    for summary data, whose unit is the group)."""
    kind = _fit_kind(fit)
    if kind == "several-factor":
        d = fit.design
        lay = effect_layout(fit)
        factors = tuple(
            Factor(
                f.name,
                pd.Index([str(v) for v in f.labels]),
                f.codes,
                f.Z,
                tuple(f.terms),
                lay.offset[f.name] + np.arange(len(f.labels)),
                [lay.terms.index(t) for t in f.terms],
            )
            for f in d.factors
        )
        return Rows(
            fit.response if hasattr(fit, "response") else d.spec.response,
            np.asarray(d.y, float),
            np.asarray(d.X, float),
            tuple(d.fixed_names),
            factors,
            np.arange(len(d.y)),
        )
    if data is None:
        return None
    if kind == "one-way" and fit.data_kind != "long":
        raise DataError(
            "`data` must be None for a fit of summary data (estimates with known SEs): the "
            f"pointwise unit is then the group; got a {type(data).__name__}. Leave `data` out."
        )
    from ..frames import as_frame

    df = as_frame(data)
    if kind == "one-way":
        response, group = fit.stats.response, fit.groups.name
        need = [response, group]
    else:
        response, group = fit.response, fit.group
        need = [response, group]
    absent = [c for c in need if c not in df.columns]
    if absent:
        raise ColumnError(
            f"`data` must be the rows the fit was made from, with the columns {need}; missing "
            f"{absent}. Pass the same frame as to bs.fit."
        )
    y_all = pd.to_numeric(df[response], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(y_all) & df[group].notna().to_numpy()
    if kind == "one-way":
        X = np.ones((len(df), 1))
        Z = X
        fixed, terms = ("Intercept",), ("Intercept",)
    else:
        enc = fit.design.encoder
        if enc is None:
            raise DataError(
                "`data` cannot be encoded: this fit keeps no formula encoder (it was made from "
                "cross-products). Fit it with bs.fit(data, formula=...) first."
            )
        sub = df.loc[keep]
        X_k, Z_k = enc.evaluate(sub)
        X = np.full((len(df), X_k.shape[1]), np.nan)
        Z = np.full((len(df), Z_k.shape[1]), np.nan)
        X[keep], Z[keep] = X_k, Z_k
        fixed, terms = tuple(fit.fixed_terms), tuple(fit.random_terms)
    keep &= np.isfinite(X).all(axis=1) & np.isfinite(Z).all(axis=1)
    labels = fit.groups
    codes_all = labels.get_indexer(df[group])
    if (codes_all[keep] < 0).any():
        raise DataError(
            f"`data` must be the rows the fit was made from; some rows have a {group!r} the fit "
            "does not know. Pass the same frame as to bs.fit."
        )
    codes = codes_all[keep]
    n_fit = np.asarray(fit.stats.n if kind == "one-way" else fit.design.stats.n, dtype=float)
    counts = np.bincount(codes, minlength=len(labels)).astype(float)
    if not np.array_equal(counts, n_fit):
        raise DataError(
            f"`data` must be the rows the fit was made from; its {int(keep.sum())} usable rows "
            f"do not fall into the fit's groups as the fit's {int(n_fit.sum())} rows do. Pass "
            "the same frame as to bs.fit."
        )
    return Rows(
        str(response),
        y_all[keep],
        X[keep],
        fixed,
        (Factor(str(group), pd.Index([str(v) for v in labels]), codes, Z[keep], terms),),
        np.asarray(df.index)[keep],
    )


# --------------------------------------------------------------------------- model registry

_MODELS: dict[str, object] = {}


def remember(idata, model) -> None:
    """Link ``idata`` to ``model`` (for :func:`sample_posterior_predictive`), for as long as
    ``idata`` lives."""
    key = uuid.uuid4().hex
    _MODELS[key] = model
    idata.attrs["bayeshrink_model_id"] = key
    weakref.finalize(idata, _MODELS.pop, key, None)


def remembered(idata):
    """The model ``idata`` remembers, or None."""
    attrs = getattr(idata, "attrs", None) or {}
    return _MODELS.get(attrs.get("bayeshrink_model_id", ""))


def model_of(idata, model=None):
    """The model ``idata`` was sampled from: ``model`` if given, else the one it remembers."""
    if model is not None:
        return model
    attrs = getattr(idata, "attrs", None) or {}
    found = _MODELS.get(attrs.get("bayeshrink_model_id", ""))
    if found is None:
        raise DataError(
            "`draws` must come from bs.sample (which remembers the model) or be given with "
            "their model; these draws have no model"
            + (" (sampled elsewhere, copied or reloaded)." if attrs else ".")
            + " Pass it: bs.sample_posterior_predictive(draws, model=model)."
        )
    return found


# --------------------------------------------------------------------------- draws -> means


def _chains(ds: xr.Dataset):
    return range(int(ds.sizes.get("chain", 1)))


def _values(ds, name, c, default=None):
    if name in ds:
        v = ds[name]
        return np.asarray(v.isel(chain=c).values if "chain" in v.dims else v.values, float)
    return default


def _effects(ds, f: Factor, c) -> np.ndarray:
    """(draw, levels, terms) random deviations b of one factor in chain ``c``."""
    b = _values(ds, "b", c)
    if f.level_pos is not None:
        b = b[:, f.level_pos][:, :, f.term_pos]
    return b


def _beta(ds, fit, c, n_draw):
    beta = _values(ds, "beta", c)
    if beta is None:
        if _fit_kind(fit) == "one-way":
            mu = _values(ds, "mu", c)
            return np.full((n_draw, 1), fit.mu) if mu is None else mu[:, None]
        return np.broadcast_to(fit.fixef.to_numpy(dtype=float), (n_draw, len(fit.fixef)))
    return beta


def _sigma(ds, fit, c, n_draw):
    sigma = _values(ds, "sigma", c)
    return np.full(n_draw, float(fit.sigma)) if sigma is None else sigma


def _n_draw(ds) -> int:
    return int(ds.sizes["draw"])


def _group_means(ds, fit, c) -> tuple[np.ndarray, np.ndarray]:
    """One-way, no rows: (draw, J) theta and (draw, J) SD of the group's mean (or estimate)."""
    theta = _values(ds, "theta", c)
    if fit.data_kind == "long":
        sigma = _sigma(ds, fit, c, theta.shape[0])
        se = sigma[:, None] / np.sqrt(np.asarray(fit.stats.n, float))[None, :]
    else:
        se = np.broadcast_to(fit.own_se()["Intercept"].to_numpy(dtype=float), theta.shape)
    return theta, se


def _mixed_group_loglik(ds, fit, c) -> np.ndarray:
    """Mixed fit, no rows: (draw, J) joint log-density of each group's rows, from the
    cross-products of [X | Z | y]: RSS_j = w' W_j'W_j w with w = (-beta, -b_j, 1)."""
    s = fit.design.stats
    sigma = _sigma(ds, fit, c, _n_draw(ds))
    n_draw = len(sigma)
    beta = np.array(_beta(ds, fit, c, n_draw), float)
    if s.intercept_col is not None:
        beta[:, s.intercept_col] -= s.y_shift
    b = _values(ds, "b", c)
    k = s.cross.shape[1]
    w = np.zeros((n_draw, fit.n_groups, k))
    w[:, :, s.y_idx] = 1.0
    for i, col in enumerate(s.x_idx):
        w[:, :, col] -= beta[:, i, None]
    for t, col in enumerate(s.z_idx):
        w[:, :, col] -= b[:, :, t]
    rss = np.einsum("djk,jkl,djl->dj", w, s.cross, w)
    n = np.asarray(s.n, float)[None, :]
    return -0.5 * n * (_LOG_2PI + 2 * np.log(sigma)[:, None]) - rss / (2 * sigma[:, None] ** 2)


def _stack(parts, ds, dims, coords) -> xr.DataArray:
    return xr.DataArray(
        np.stack(parts),
        dims=("chain", "draw", *dims),
        coords={"chain": ds["chain"].values, "draw": ds["draw"].values, **coords},
    )


def _obs_coords(rows: Rows) -> dict:
    coords = {OBS_DIM: rows.index}
    for f in rows.factors:
        coords[f.name] = (OBS_DIM, np.asarray(f.labels, dtype=str)[f.codes])
    return coords


def _level_coords(fit) -> dict:
    return {GROUP_DIM: [str(g) for g in fit.groups]}


def _chunk(n_draw: int, n_rows: int, width: int = 1) -> int:
    """Draws per chunk: about 4 million numbers of (draws x rows x width) temporaries."""
    return max(1, min(n_draw, 4_000_000 // max(n_rows * width, 1)))


def _row_mean(beta, effects, rows: Rows, sl: slice) -> np.ndarray:
    """(draws in ``sl``, N) means of the rows, x_i' beta + sum_f z_fi' b_f,l(i), from one
    chain's beta (draw, p) and each factor's effects (draw, levels, q)."""
    beta = beta[sl]
    eta = beta @ rows.X.T if rows.X.shape[1] else np.zeros((len(beta), rows.n))
    for f, b in zip(rows.factors, effects, strict=True):
        b = b[sl]
        for t in range(b.shape[2]):
            eta += b[:, f.codes, t] * f.Z[:, t]
    return eta


def _row_arrays(model, ds, rng, loglik: bool):
    """Per-row log-likelihood and predictive draws, written chain by chain into arrays made
    once (draws x rows numbers each: no list of chains to stack). The rows' means are made a
    chunk of draws at a time, and the compiled kernels (:mod:`bayeshrink.bayes.kernels`)
    write both groups in one pass over them; the one-way model reads theta[draw, group]
    directly. ``rng`` seeds the predictive draws: a stream per draw, so the same seed gives
    the same draws however the work is split."""
    from .kernels import kernels

    fit, rows = model.fit, model.rows
    n_chain, n_draw = int(ds.sizes.get("chain", 1)), _n_draw(ds)
    shape = (n_chain, n_draw, rows.n)
    ll = np.empty(shape) if loglik else None
    pp = np.empty(shape) if rng is not None else None
    seed = np.uint64(rng.integers(2**63)) if rng is not None else np.uint64(0)
    k = kernels()
    none = np.empty((0, 0))
    for c in _chains(ds):
        sigma = np.ascontiguousarray(_sigma(ds, fit, c, n_draw))
        if k is not None and _fit_kind(fit) == "one-way":
            theta = np.ascontiguousarray(_values(ds, "theta", c))
            k["oneway"](
                theta,
                rows.factors[0].codes,
                rows.y,
                sigma,
                seed,
                c * n_draw,
                none if ll is None else ll[c],
                none if pp is None else pp[c],
            )
            continue
        if _fit_kind(fit) == "one-way":
            theta = _values(ds, "theta", c)
        else:
            beta = _beta(ds, fit, c, n_draw)
            effects = [_effects(ds, f, c) for f in rows.factors]
        step = _chunk(n_draw, rows.n)
        for lo in range(0, n_draw, step):
            sl = slice(lo, min(lo + step, n_draw))
            if _fit_kind(fit) == "one-way":
                mean = np.take(theta[sl], rows.factors[0].codes, axis=1)
            else:
                mean = _row_mean(beta, effects, rows, sl)
            sd = sigma[sl]
            if k is not None:
                k["rows"](
                    mean,
                    rows.y,
                    sd,
                    seed,
                    c * n_draw + lo,
                    none if ll is None else ll[c, sl],
                    none if pp is None else pp[c, sl],
                )
                continue
            if pp is not None:  # pragma: no cover - without numba
                pp[c, sl] = mean + sd[:, None] * rng.standard_normal(mean.shape)
            if ll is not None:  # pragma: no cover - without numba
                r = (rows.y - mean) / sd[:, None]
                ll[c, sl] = -0.5 * r * r - np.log(sd)[:, None] - 0.5 * _LOG_2PI
    return ll, pp


def pointwise(
    model, ds, rng=None, loglik: bool = True
) -> tuple[str, xr.DataArray | None, xr.DataArray | None]:
    """(name, log-likelihood, predictive draws or None) of the draws ``ds`` under ``model``.

    With ``rng`` the predictive draws are made (one per draw and observation). A model with
    its own ``workflow`` hooks (a GLMM's: counts, not normal rows) computes them itself."""
    hooks = getattr(model, "workflow", None)
    if hooks is not None:
        return hooks.pointwise(model, ds, rng, loglik)
    fit, rows = model.fit, getattr(model, "rows", None)
    ll, pp = [], []
    if rows is not None:
        lla, ppa = _row_arrays(model, ds, rng, loglik)
        coords = {"chain": ds["chain"].values, "draw": ds["draw"].values, **_obs_coords(rows)}
        dims = ("chain", "draw", OBS_DIM)
        return (
            rows.response,
            None if lla is None else xr.DataArray(lla, dims=dims, coords=coords),
            None if ppa is None else xr.DataArray(ppa, dims=dims, coords=coords),
        )
    elif _fit_kind(fit) == "one-way":
        y = np.asarray(fit.stats.mean, float)
        long = fit.data_kind == "long"
        for c in _chains(ds):
            theta, se = _group_means(ds, fit, c)
            if long:
                sigma = _sigma(ds, fit, c, theta.shape[0])[:, None]
                n = np.asarray(fit.stats.n, float)[None, :]
                ssw = np.asarray(fit.stats.ssw, float)[None, :]
                rss = ssw + n * (y - theta) ** 2
                ll.append(-0.5 * n * (_LOG_2PI + 2 * np.log(sigma)) - rss / (2 * sigma**2))
            else:
                ll.append(-0.5 * (_LOG_2PI + ((y - theta) / se) ** 2) - np.log(se))
            if rng is not None:
                pp.append(theta + se * rng.standard_normal(theta.shape))
        dims, coords = (GROUP_DIM,), _level_coords(fit)
        name = "ybar" if long else fit.stats.response
    else:
        for c in _chains(ds):
            ll.append(_mixed_group_loglik(ds, fit, c))
        if rng is not None:
            raise DataError(
                "`model` must know the rows of its data to draw predictions for a mixed fit; "
                "this one was built without them. Build it with the rows: "
                "bs.hierarchical_model(fit, data=df) (the frame given to bs.fit)."
            )
        dims, coords, name = (GROUP_DIM,), _level_coords(fit), fit.response
    lla = _stack(ll, ds, dims, coords)
    ppa = _stack(pp, ds, dims, coords) if pp else None
    return name, lla, ppa


def observed(model) -> tuple[xr.Dataset, xr.Dataset]:
    """(observed_data, constant_data) of ``model``: the response under its name and the
    covariates and group labels of every row (or group)."""
    hooks = getattr(model, "workflow", None)
    if hooks is not None:
        return hooks.observed(model)
    fit, rows = model.fit, getattr(model, "rows", None)
    if rows is not None:
        coords = _obs_coords(rows)
        obs = xr.Dataset({rows.response: ((OBS_DIM,), rows.y)}, coords=coords)
        const = {}
        for j, name in enumerate(rows.fixed_names):
            const[name] = ((OBS_DIM,), rows.X[:, j])
        for f in rows.factors:
            for t, term in enumerate(f.terms):
                key = term if len(rows.factors) == 1 else f"{term}|{f.name}"
                if key not in const:
                    const[key] = ((OBS_DIM,), f.Z[:, t])
            const[f.name] = ((OBS_DIM,), np.asarray(f.labels, dtype=str)[f.codes])
        return obs, xr.Dataset(const, coords={OBS_DIM: rows.index})
    coords = _level_coords(fit)
    if _fit_kind(fit) == "one-way":
        long = fit.data_kind == "long"
        name = "ybar" if long else fit.stats.response
        obs = xr.Dataset({name: ((GROUP_DIM,), np.asarray(fit.stats.mean, float))}, coords=coords)
        extra = "n" if long else "se"
        vals = fit.stats.n if long else fit.own_se()["Intercept"].to_numpy(dtype=float)
        return obs, xr.Dataset({extra: ((GROUP_DIM,), np.asarray(vals, float))}, coords=coords)
    n = np.asarray(fit.design.stats.n, float)
    return xr.Dataset(coords=coords), xr.Dataset({"n": ((GROUP_DIM,), n)}, coords=coords)


def add_workflow_groups(idata, model):
    """Add ``log_likelihood``, ``observed_data`` and ``constant_data`` to draws of ``model``
    (:func:`~bayeshrink.sample` calls it); returns ``idata``."""
    post = idata["posterior"].to_dataset()
    layout = getattr(model, "layout", None)
    if layout is not None:  # several factors: each level's factor and label as coordinates
        post = layout.label(post)
        idata["posterior"] = post
    name, ll, _ = pointwise(model, post)
    obs, const = observed(model)
    idata["log_likelihood"] = xr.Dataset({name: ll})
    idata["observed_data"] = obs
    idata["constant_data"] = const
    return idata


def _rng(random_seed):
    if isinstance(random_seed, np.random.Generator):
        return random_seed
    return np.random.default_rng(random_seed)


def sample_posterior_predictive(draws, random_seed=None, *, model=None):
    """Posterior predictive draws of the response: one per posterior draw and observation.

    Adds a ``posterior_predictive`` group to ``draws`` (the DataTree from
    :func:`~bayeshrink.sample`) with the observed data's name, dims and coords, and returns it:
    for every draw, the rows' means given that draw's effects (x_i' beta + z_i' b_g(i)) plus
    normal noise with that draw's sigma (summary data: the known SEs). ``random_seed`` makes the
    draws reproducible. ``model`` is needed only for draws that do not come from bs.sample.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> schools = bs.load_dataset("eight_schools")
    >>> fit = bs.fit_summary(schools, estimate="y", se="sigma", group="school")
    >>> draws = bs.sample(bs.hierarchical_model(fit), draws=200, tune=200, chains=2,
    ...                   random_seed=1)  # doctest: +SKIP
    >>> bs.sample_posterior_predictive(draws, random_seed=2)["posterior_predictive"]["y"].shape
    ... # doctest: +SKIP
    (2, 200, 8)
    """
    try:
        post = draws["posterior"].to_dataset()
    except (TypeError, KeyError):
        raise DataTypeError(
            "`draws` must be the draws returned by bs.sample (an xarray DataTree with a "
            f"posterior group); got {type(draws).__name__}."
        ) from None
    model = model_of(draws, model)
    from .checks import check_model_draws

    check_model_draws(draws, model)
    name, _, pp = pointwise(model, post, _rng(random_seed), loglik=False)
    draws["posterior_predictive"] = xr.Dataset({name: pp})
    return draws


def sample_prior_predictive(model, draws: int = 500, random_seed=None):
    """Prior predictive draws: parameters from their priors, then the response given them.

    Returns a DataTree with ``prior`` (the parameters, and the group effects drawn from their
    prior where the model integrates them out), ``prior_predictive`` (the response, with the
    observed data's name, dims and coords) and ``observed_data``. Reproducible with
    ``random_seed``.
    """
    import warnings

    import pymc as pm

    from .checks import check_model, check_run

    check_model(model)
    check_run(draws, 0, 1, None)
    draws = int(draws)
    rng = _rng(random_seed)
    seeds = rng.integers(2**31, size=2)
    with warnings.catch_warnings():
        # the sufficient-statistics likelihood is a Potential, which prior draws ignore (as
        # they should: a prior draw does not look at the data)
        warnings.filterwarnings("ignore", message=".*Potential.*", category=UserWarning)
        prior = pm.sample_prior_predictive(
            draws=draws, model=model, random_seed=int(seeds[0]), compile_kwargs={"mode": "NUMBA"}
        )
    ds = prior["prior"].to_dataset()
    if getattr(model, "layout", None) is not None:
        ds = model.layout.label(ds)
    ds = _prior_effects(model, ds, np.random.default_rng(int(seeds[1])))
    name, _, pp = pointwise(model, ds, rng, loglik=False)
    obs, const = observed(model)
    return xr.DataTree.from_dict(
        {
            "prior": ds,
            "prior_predictive": xr.Dataset({name: pp}),
            "observed_data": obs,
            "constant_data": const,
        }
    )


def _prior_effects(model, ds: xr.Dataset, rng) -> xr.Dataset:
    """Group effects from their prior, where the model integrates them out."""
    if not getattr(model, "marginalized", False):
        return ds
    fit = model.fit
    shape = (ds.sizes["chain"], ds.sizes["draw"])
    coords = {"chain": ds["chain"].values, "draw": ds["draw"].values, **_level_coords(fit)}
    if _fit_kind(fit) == "one-way":
        mu, tau = ds["mu"].values[..., None], ds["tau"].values[..., None]
        theta = mu + tau * rng.standard_normal((*shape, fit.n_groups))
        da = xr.DataArray(theta, dims=("chain", "draw", GROUP_DIM), coords=coords)
        b = (theta - mu)[..., None]
        return ds.assign(
            theta=da,
            b=xr.DataArray(b, dims=(*da.dims, "term"), coords={**coords, "term": ["Intercept"]}),
        )
    L = ds["chol_re"].values  # (chain, draw, q, q)
    q = L.shape[-1]
    z = rng.standard_normal((*shape, fit.n_groups, q))
    b = np.einsum("cdik,cdjk->cdji", L, z)
    return ds.assign(
        b=xr.DataArray(
            b,
            dims=("chain", "draw", GROUP_DIM, "term"),
            coords={**coords, "term": list(fit.random_terms)},
        )
    )
