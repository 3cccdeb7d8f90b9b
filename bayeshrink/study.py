r"""Simulation studies of estimators and intervals for the one-way model.

:func:`simulation_study` crosses *designs* (number of groups, group sizes, variance ratio
tau^2/sigma^2, normal or non-normal effects) with *estimators* of the group effects and
*interval methods* (:mod:`bayeshrink.intervals`), runs R replications of each design, and returns a
tidy table of mean squared error, coverage and mean width, each with its Monte Carlo standard
error, plus the share of boundary fits and the coverage on boundary and interior fits.

How it stays fast and reproducible:

* each replication draws only the sufficient statistics the model sees, from the same
  distributions as :func:`bayeshrink.simulate` draws rows (group means
  ybar_j = theta_j + sigma/sqrt(n_j) Z_j and SSW = sigma^2 chi^2_{N-J});
  ``rows=True`` draws rows with :func:`bayeshrink.simulate` instead (slower, for checking);
* replications are fitted and their intervals computed as a batch
  (:func:`bayeshrink.batchfit.fit_batch`), so an analytic method costs microseconds per
  replication;
* replication r of design d draws from its own stream, ``SeedSequence(random_seed)``'s d-th
  child's r-th child (``SeedSequence.spawn``), so the results depend neither on the engine, the
  number of workers nor the order in which chunks finish;
* chunks of replications run on the local cores (``concurrent.futures``) or on a Dask cluster.

The Monte Carlo SE of a coverage (or MSE, width) is the SD over replications of each
replication's average over groups, divided by sqrt(R): groups in one data set share their
estimated tau, so they are not independent, and this SE counts that.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .errors import DataError, DataTypeError, MethodError
from .intervals import METHODS, OneWayArrays, check_level, interval_arrays
from .simulate import EFFECTS, draw_effects

__all__ = ["ESTIMATORS", "Design", "simulation_study"]

ESTIMATORS = ("no-pooling", "blup-reml", "blup-ml", "james-stein", "full-bayes")
DEFAULT_ESTIMATORS = ("no-pooling", "blup-reml", "blup-ml", "james-stein")
DEFAULT_INTERVALS = {
    "no-pooling": ("no-pooling", {}),
    "cond": ("cond", {}),
    "pred": ("pred", {}),
    "morris": ("morris", {}),
    "kass-steffey": ("kass-steffey", {}),
    "bootstrap": ("bootstrap", {}),
    "robust": ("robust", {}),
    "robust-kurtosis": ("robust", {"kurtosis": True}),
}


@dataclass(frozen=True)
class Design:
    """One simulation design of the one-way model y_ij = theta_j + e_ij.

    Parameters
    ----------
    groups : int
        Number of groups J.
    size : int
        Observations per group (balanced), or their mean (unbalanced: a quarter of the groups
        each at 0.25, 0.75, 1.25 and 1.75 times ``size``, at least 2).
    ratio : float
        tau^2 / sigma^2, the variance ratio.
    effects : {"normal", "two-point", "sparse"}
        Distribution of the true effects (:data:`bayeshrink.simulate.EFFECTS`).
    balanced : bool
    sigma, mu : float
        Residual SD and mean of the effects.
    """

    groups: int = 5
    size: int = 5
    ratio: float = 0.04
    effects: str = "normal"
    balanced: bool = True
    sigma: float = 1.0
    mu: float = 0.0

    def __post_init__(self):
        if int(self.groups) != self.groups or self.groups < 3:
            raise DataError(f"`groups` must be an integer >= 3; got {self.groups!r}.")
        if int(self.size) != self.size or self.size < 2:
            raise DataError(f"`size` must be an integer >= 2; got {self.size!r}.")
        if not _finite(self.mu):
            raise DataError(f"`mu` must be a finite number; got {self.mu!r}.")
        if not (_finite(self.ratio) and self.ratio >= 0) or not (
            _finite(self.sigma) and self.sigma > 0
        ):
            raise DataError(
                f"`ratio` must be >= 0 and `sigma` > 0; got {self.ratio!r} and {self.sigma!r}."
            )
        if self.effects not in EFFECTS:
            raise DataError(
                f"`effects` must be one of {', '.join(map(repr, EFFECTS))}; got {self.effects!r}."
            )

    @property
    def sizes(self) -> np.ndarray:
        if self.balanced:
            return np.full(self.groups, int(self.size))
        levels = np.maximum(2, np.rint(self.size * np.array([0.25, 0.75, 1.25, 1.75])))
        return levels[np.arange(self.groups) % 4].astype(int)

    @property
    def tau(self) -> float:
        return self.sigma * math.sqrt(self.ratio)

    def label(self) -> str:
        kind = "" if self.balanced else ", unbalanced"
        return f"{self.groups} groups of {self.size}{kind}, ratio {self.ratio:g}, {self.effects}"


def _finite(x) -> bool:
    return (
        isinstance(x, (int, float, np.integer, np.floating))
        and not isinstance(x, bool)
        and math.isfinite(x)
    )


def _as_designs(designs) -> list[Design]:
    if isinstance(designs, (Design, Mapping)):
        designs = [designs]
    if isinstance(designs, str) or not hasattr(designs, "__iter__"):
        raise DataTypeError(
            f"`designs` must be a Design, a dict of Design's fields, or a list of them; got "
            f"{type(designs).__name__}. E.g. designs=[dict(groups=5, size=5, ratio=0.04)]."
        )
    out = []
    for d in designs:
        if isinstance(d, Design):
            out.append(d)
        elif isinstance(d, Mapping):
            out.append(Design(**d))
        else:
            raise DataError(
                f"`designs` must be Design objects or dicts of Design's fields; got "
                f"{type(d).__name__}. E.g. designs=[dict(groups=5, size=5, ratio=0.04)]."
            )
    if not out:
        raise DataError("`designs` must hold at least one design; got none.")
    return out


def _as_intervals(intervals) -> dict[str, tuple[str, dict]]:
    if intervals is None:
        return dict(DEFAULT_INTERVALS)
    if isinstance(intervals, str):
        intervals = [intervals]
    if isinstance(intervals, Mapping):
        items = intervals.items()
    else:
        items = [(name, DEFAULT_INTERVALS.get(name, (name, {}))) for name in intervals]
    out = {}
    for label, spec in items:
        method, options = (spec, {}) if isinstance(spec, str) else spec
        if method not in METHODS or method == "full":
            options_text = ", ".join(repr(m) for m in METHODS if m != "full")
            raise MethodError(
                f'interval methods must be among {options_text} ("full" comes with the '
                f"'full-bayes' estimator); got {method!r} for {label!r}."
            )
        out[str(label)] = (method, dict(options))
    return out


def _as_estimators(estimators) -> tuple[str, ...]:
    if estimators is None:
        return DEFAULT_ESTIMATORS
    if isinstance(estimators, str):
        estimators = [estimators]
    bad = [e for e in estimators if e not in ESTIMATORS]
    if bad:
        raise MethodError(
            f"`estimators` must be among {', '.join(map(repr, ESTIMATORS))}; got {bad}."
        )
    return tuple(estimators)


# --------------------------------------------------------------------------- one chunk


def _draw(design: Design, rng: np.random.Generator, rows: bool):
    """theta, group means and total SSW of one replication."""
    n = design.sizes
    if rows:
        from .data import group_stats
        from .simulate import simulate

        df = simulate(
            design.groups,
            n,
            mu=design.mu,
            sd_group=design.tau,
            sd_resid=design.sigma,
            seed=rng,
            effects=design.effects,
        )
        stats = group_stats(df, "y", "group")
        theta = df.groupby("group", sort=True)["theta"].first().to_numpy()
        return theta, stats.mean, float(stats.ssw.sum())
    theta = draw_effects(rng, design.groups, design.mu, design.tau, design.effects)
    ybar = theta + design.sigma / np.sqrt(n) * rng.standard_normal(design.groups)
    ssw = design.sigma**2 * rng.chisquare(n.sum() - design.groups)
    return theta, ybar, ssw


def _james_stein(y: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Positive-part James-Stein toward the precision-weighted mean (Efron & Morris 1973):
    mu_w + (1 - (k - 3) / sum((y - mu_w)^2 / s^2))_+ (y - mu_w); with equal s_j this is
    (1 - (k-3) s^2 / S)_+ shrinkage toward ybar."""
    k = y.shape[-1]
    w = 1.0 / se**2
    mu = (w * y).sum(-1, keepdims=True) / w.sum(-1, keepdims=True)
    q = ((y - mu) ** 2 * w).sum(-1, keepdims=True)
    return mu + np.maximum(0.0, 1.0 - (k - 3.0) / q) * (y - mu)


#: chains of every full-Bayes replication (standard practice: R-hat needs several)
FULL_BAYES_CHAINS = 4


def _full_bayes(design: Design, y, ssw, seqs, level, draws):
    """Posterior means and equal-tailed intervals from bs.hierarchical_model, per replication,
    on FULL_BAYES_CHAINS chains; and per replication whether the sampler diverged and whether
    it missed the convergence checks of :func:`bayeshrink.sample` (R-hat <= 1.01, ESS >= 100
    per chain)."""
    import logging
    import warnings

    from . import bayes
    from .data import GroupStats
    from .errors import DivergenceWarning, SamplerConvergenceWarning
    from .fitting import fit_stats
    from .intervals import theta_draws

    logging.getLogger("pymc").setLevel(logging.WARNING)  # no "NUTS: [...]" line per data set
    labels = [f"g{j + 1}" for j in range(design.groups)]
    means, los, his, diverged, unconverged = [], [], [], [], []
    for b, seq in enumerate(seqs):
        stats = GroupStats.from_arrays(
            labels=labels,
            mean=y[b],
            n=design.sizes,
            ssw=np.r_[ssw[b], np.zeros(design.groups - 1)],
        )
        fit = fit_stats(stats)
        seed = int(
            np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 1)).generate_state(1)[0]
        )
        with warnings.catch_warnings(record=True) as caught:
            # divergences and R-hat/ESS shortfalls of single replications are part of what
            # the study measures: counted, not shown; any other warning reaches the user
            warnings.simplefilter("always", DivergenceWarning)
            warnings.simplefilter("always", SamplerConvergenceWarning)
            idata = bayes.sample(
                bayes.hierarchical_model(fit),
                draws=draws,
                tune=draws,
                chains=FULL_BAYES_CHAINS,
                random_seed=seed,
                progressbar=False,
            )
        kinds = {w.category for w in caught}
        for w in caught:
            if w.category not in (DivergenceWarning, SamplerConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        diverged.append(DivergenceWarning in kinds)
        unconverged.append(SamplerConvergenceWarning in kinds)
        th = theta_draws(idata, labels)
        q = 0.5 * (1.0 - level)
        means.append(th.mean(0))
        lo, hi = np.quantile(th, [q, 1.0 - q], axis=0)
        los.append(lo)
        his.append(hi)
    return (
        np.array(means),
        np.array(los),
        np.array(his),
        np.array(diverged),
        np.array(unconverged),
    )


def _run_chunk(design: Design, estimators, intervals, seqs, level, n_boot, rows, fb_draws):
    """Simulate and score the replications seeded by ``seqs``; arrays over replications."""
    t_start = time.perf_counter()
    rngs = [np.random.default_rng(s) for s in seqs]
    drawn = [_draw(design, rng, rows) for rng in rngs]
    theta = np.array([d[0] for d in drawn])
    y = np.array([d[1] for d in drawn])
    ssw = np.array([d[2] for d in drawn])
    n = design.sizes.astype(float)
    reml = OneWayArrays.fit(y, n=n, ssw=ssw, method="reml")
    out: dict[str, np.ndarray] = {"boundary": reml.tau2 == 0.0}
    for name in estimators:
        if name == "no-pooling":
            est = y
        elif name == "blup-reml":
            est = reml.blup
        elif name == "blup-ml":
            est = OneWayArrays.fit(y, n=n, ssw=ssw, method="ml").blup
        elif name == "james-stein":
            est = _james_stein(y, reml.se)
        else:  # full-bayes: the posterior mean and, with it, the "full" interval
            est, lo, hi, diverged, unconverged = _full_bayes(design, y, ssw, seqs, level, fb_draws)
            out["full-bayes:diverged"] = diverged.astype(float)
            out["full-bayes:unconverged"] = unconverged.astype(float)
            out["interval:full:cover"] = ((lo <= theta) & (theta <= hi)).mean(-1)
            out["interval:full:width"] = (hi - lo).mean(-1)
            out["interval:full:sqerr"] = ((est - theta) ** 2).mean(-1)
        out[f"estimator:{name}:sqerr"] = ((est - theta) ** 2).mean(-1)
    for label, (method, options) in intervals.items():
        opts = dict(options)
        if method == "bootstrap":
            opts.setdefault("n_boot", n_boot)
            opts["random_seed"] = [
                np.random.default_rng(
                    np.random.SeedSequence(s.entropy, spawn_key=(*s.spawn_key, 0))
                )
                for s in seqs
            ]
            if len(seqs) == 1:
                opts["random_seed"] = opts["random_seed"][0]
        iv = interval_arrays(reml, method, level, **opts)
        out[f"interval:{label}:cover"] = ((iv["lo"] <= theta) & (theta <= iv["hi"])).mean(-1)
        out[f"interval:{label}:width"] = (iv["hi"] - iv["lo"]).mean(-1)
        out[f"interval:{label}:sqerr"] = ((iv["estimate"] - theta) ** 2).mean(-1)
    out["seconds"] = np.array([time.perf_counter() - t_start])
    return out


# --------------------------------------------------------------------------- engines


class _TextBar:
    """A minimal progress bar on stderr, for when tqdm is not installed."""

    def __init__(self, total: int, desc: str = "replications"):
        self.total, self.done, self.desc = total, 0, desc
        self._draw()

    def update(self, k: int) -> None:
        self.done += k
        self._draw()

    def _draw(self) -> None:
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        sys.stderr.write(
            f"\r{self.desc}: [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextBar(total)
    return tqdm(total=total, desc="replications", unit="rep")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run_local(tasks, workers: int, bar):
    results = [None] * len(tasks)
    if workers <= 1:
        for i, (args, size) in enumerate(tasks):
            results[i] = _run_chunk(*args)
            if bar is not None:
                bar.update(size)
        return results
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # fork where it is safe (a single-threaded parent, e.g. a script: no __main__ guard
    # needed); spawn from threaded parents such as a Jupyter kernel (fork would risk deadlocks)
    safe_fork = threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if safe_fork else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {
            pool.submit(_run_chunk, *args): (i, size) for i, (args, size) in enumerate(tasks)
        }
        for fut in as_completed(futures):
            i, size = futures[fut]
            results[i] = fut.result()
            if bar is not None:
                bar.update(size)
    return results


def _run_dask(tasks, client, bar):
    from distributed import as_completed

    futures = [client.submit(_run_chunk, *args, pure=False) for args, _ in tasks]
    index = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(tasks)
    for fut in as_completed(futures):
        i = index[fut.key]
        results[i] = fut.result()
        if bar is not None:
            bar.update(tasks[i][1])
    return results


# --------------------------------------------------------------------------- summary


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return float(x.mean()), se


def _summarise(design: Design, arrays: dict, names: list[tuple[str, str]]) -> list[dict]:
    boundary = arrays["boundary"]
    share, share_se = _mean_se(boundary.astype(float))
    rows = []
    base = {k: v for k, v in asdict(design).items()}
    base["design"] = design.label()
    for kind, name in names:
        row = {**base, "kind": kind, "name": name, "replications": len(boundary)}
        row["mse"], row["mse_se"] = _mean_se(arrays[f"{kind}:{name}:sqerr"])
        if kind == "interval":
            cover = arrays[f"interval:{name}:cover"]
            row["coverage"], row["coverage_se"] = _mean_se(cover)
            row["width"], row["width_se"] = _mean_se(arrays[f"interval:{name}:width"])
            row["coverage_boundary"], row["coverage_boundary_se"] = _mean_se(cover[boundary])
            row["coverage_interior"], row["coverage_interior_se"] = _mean_se(cover[~boundary])
        row["boundary_share"], row["boundary_share_se"] = share, share_se
        if "full-bayes:diverged" in arrays and name in ("full-bayes", "full"):
            for what in ("diverged", "unconverged"):
                row[f"{what}_share"], row[f"{what}_share_se"] = _mean_se(
                    arrays[f"full-bayes:{what}"]
                )
        rows.append(row)
    return rows


def simulation_study(
    designs,
    estimators: Sequence[str] | None = None,
    intervals=None,
    replications: int = 1000,
    random_seed: int | None = None,
    *,
    level: float = 0.95,
    n_boot: int = 200,
    engine: str = "local",
    workers: int | None = None,
    client=None,
    chunk_size: int | None = None,
    progress: bool = True,
    rows: bool = False,
    full_bayes_draws: int = 250,
) -> pd.DataFrame:
    """Monte Carlo study of estimators and intervals for the group effects.

    Parameters
    ----------
    designs : Design, dict, or a sequence of them
        E.g. ``[dict(groups=5, size=5, ratio=0.04), dict(groups=50, effects="two-point")]``
        (fields of :class:`Design`).
    estimators : sequence of str, optional
        Point estimators scored by mean squared error: ``"no-pooling"``, ``"blup-reml"``,
        ``"blup-ml"``, ``"james-stein"`` (the default four) and ``"full-bayes"`` (the posterior
        mean of ``bs.hierarchical_model``, sampled on 4 chains of ``full_bayes_draws`` draws:
        slow, seconds per replication; it adds the ``"full"`` interval, and its rows the share
        of replications whose sampler diverged or missed R-hat <= 1.01 / ESS >= 100 per chain:
        ``diverged_share``, ``unconverged_share``).
    intervals : sequence of str or dict, optional
        Interval methods of :mod:`bayeshrink.intervals` (built on the REML fit), as names or
        ``{label: (method, options)}``. Default: every method, with ``"robust-kurtosis"`` the robust
        EBCI with the kurtosis constraint.
    replications : int
        R, the number of simulated data sets per design.
    random_seed : int, optional
        Seed of the root ``SeedSequence``; replication r of design d uses its (d, r) child.
    level : float
        Interval level.
    n_boot : int
        Bootstrap replicates per data set for the ``"bootstrap"`` interval.
    engine : {"local", "dask"}
        Local processes (at most the available cores; ``workers=1`` runs in this process)
        or a Dask cluster (``client``, or the current ``distributed`` client).
    chunk_size : int, optional
        Replications per task (results do not depend on it).
    progress : bool
        Show a progress bar (tqdm when installed, else a text bar on stderr).
    rows : bool
        Simulate rows with :func:`bayeshrink.simulate` instead of sufficient statistics.

    Returns
    -------
    pandas.DataFrame
        One row per design and estimator or interval method: the design's fields, ``kind``
        ("estimator" or "interval"), ``name``, ``mse``, ``coverage``, ``width`` (mean interval
        length), each with ``_se`` (Monte Carlo SE), ``boundary_share`` (REML fits with
        tau_hat = 0) and ``coverage_boundary`` / ``coverage_interior``. ``attrs`` holds the
        wall time and the CPU seconds per replication of each design.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> res = bs.simulation_study(dict(groups=5, size=5, ratio=0.04),
    ...                           intervals=["cond", "kass-steffey"], replications=200,
    ...                           random_seed=1, progress=False, workers=1)
    >>> cols = ["name", "coverage", "coverage_se", "width"]
    >>> print(res.loc[res.kind == "interval", cols].round(3).to_string(index=False))
            name  coverage  coverage_se  width
            cond     0.463        0.032  0.537
    kass-steffey     0.950        0.008  1.309
    """
    design_list = _as_designs(designs)
    est = _as_estimators(estimators)
    ivs = _as_intervals(intervals)
    level = check_level(level)
    if isinstance(replications, bool) or int(replications) != replications or replications < 2:
        raise DataError(f"`replications` must be an integer >= 2; got {replications!r}.")
    if engine not in ("local", "dask"):
        raise MethodError(f"`engine` must be 'local' or 'dask'; got {engine!r}.")
    if client is not None:
        engine = "dask"
    if engine == "dask" and client is None:
        from distributed import get_client

        try:
            client = get_client()
        except ValueError as exc:
            raise MethodError(
                "engine='dask' must have a Dask client; got none running. Start one, e.g. "
                "`from distributed import Client; client = Client()`, and pass `client=client`."
            ) from exc
    R = int(replications)
    cores = available_cores()
    workers = cores if workers is None else max(1, min(int(workers), cores))
    if chunk_size is None:
        chunk_size = max(10, min(200, math.ceil(R / (2 * workers))))
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise MethodError(
            f"`chunk_size` must be a whole number of replications, at least 1; got "
            f"{chunk_size!r}. Leave it out to let the study choose."
        )
    root = np.random.SeedSequence(random_seed)
    tasks = []
    for d, (design, dseq) in enumerate(zip(design_list, root.spawn(len(design_list)), strict=True)):
        seqs = dseq.spawn(R)
        for start in range(0, R, chunk_size):
            chunk = seqs[start : start + chunk_size]
            args = (design, est, ivs, chunk, level, n_boot, rows, full_bayes_draws)
            tasks.append(((d, *args), len(chunk)))
    bar = _progress_bar(len(design_list) * R, progress)
    t0 = time.perf_counter()
    plain = [(args[1:], size) for args, size in tasks]
    try:
        if engine == "dask":
            results = _run_dask(plain, client, bar)
        else:
            results = _run_local(plain, workers if len(tasks) > 1 else 1, bar)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    names = [("estimator", e) for e in est]
    if "full-bayes" in est:
        names.append(("interval", "full"))
    names += [("interval", label) for label in ivs]
    out, cost = [], {}
    for d, design in enumerate(design_list):
        parts = [r for (args, _), r in zip(tasks, results, strict=True) if args[0] == d]
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        cost[design.label()] = float(arrays.pop("seconds").sum() / R)
        out.extend(_summarise(design, arrays, names))
    table = pd.DataFrame(out)
    table.attrs.update(
        {
            "wall_seconds": wall,
            "cpu_seconds_per_replication": cost,
            "replications": R,
            "random_seed": random_seed,
            "level": level,
            "engine": engine,
            "workers": workers,
        }
    )
    return table
