"""Simulated one-way data: the worked example's generator, generalized.

The worked example draws J groups with true effects theta_j ~ N(mu, tau^2) and n_j
observations y_ij ~ N(theta_j, sigma^2) (tau the between-group SD, sigma the within-group SD).
:func:`simulate` does the same for any number of groups,
any group sizes (equal or given per group) and any variance ratio, and returns the true effects
beside the data so that estimators can be scored against them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = ["EFFECTS", "draw_effects", "simulate"]

#: distributions of the true effects, each with mean mu and SD sd_group:
#: "normal"; "two-point" (mu +- sd, half each: kurtosis 1); "sparse" (two-point, 10% of the
#: groups at mu + 3 sd and 90% at mu - sd/3: skewed, kurtosis 8.1)
EFFECTS = ("normal", "two-point", "sparse")


def draw_effects(rng: np.random.Generator, size: int, mu: float, sd: float, effects: str):
    """Draw ``size`` true group effects with mean ``mu`` and SD ``sd`` (see :data:`EFFECTS`)."""
    if effects == "normal":
        return rng.normal(mu, sd, size=size)
    if effects == "two-point":
        return mu + sd * np.where(rng.random(size) < 0.5, -1.0, 1.0)
    if effects == "sparse":
        return mu + sd * np.where(rng.random(size) < 0.1, 3.0, -1.0 / 3.0)
    raise DataError(
        f"`effects` must be one of {', '.join(repr(e) for e in EFFECTS)}; got {effects!r}."
    )


def simulate(
    n_groups: int = 5,
    n_per_group: int | Sequence[int] = 5,
    *,
    mu: float = 16.0,
    sd_group: float = 1.0,
    sd_resid: float = 5.0,
    seed=None,
    effects: str = "normal",
) -> pd.DataFrame:
    """Draw long data from the one-way hierarchical normal model.

    Parameters
    ----------
    n_groups : int
        Number of groups J (at least 2).
    n_per_group : int or sequence of int
        Observations per group: one size for all, or one per group.
    mu, sd_group, sd_resid : float
        Population mean, between-group SD (tau) and residual SD (sigma); the variance ratio is
        ``sd_group**2 / sd_resid**2``.
    seed : int or numpy Generator, optional
    effects : {"normal", "two-point", "sparse"}
        Distribution of the true effects, each with mean ``mu`` and SD ``sd_group`` (see
        :data:`EFFECTS`); the model's own is "normal", the others test robustness to it.

    Returns
    -------
    pandas.DataFrame
        Columns ``group`` (labels g01, g02, ...), ``y``, and ``theta`` (the group's true effect).
        ``attrs`` records the arguments.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> df = bs.simulate(n_groups=4, n_per_group=[2, 3, 4, 5], sd_group=5, seed=1)
    >>> df.groupby("group").size().tolist()
    [2, 3, 4, 5]
    """
    if (
        isinstance(n_groups, bool)
        or not isinstance(n_groups, (int, np.integer, float, np.floating))
        or not np.isfinite(n_groups)
        or int(n_groups) != n_groups
        or n_groups < 2
    ):
        raise DataError(f"`n_groups` must be an integer >= 2; got {n_groups!r}.")
    sizes_in = np.asarray(n_per_group)
    if sizes_in.ndim > 1 or not (
        np.issubdtype(sizes_in.dtype, np.integer) or np.issubdtype(sizes_in.dtype, np.floating)
    ):
        raise DataError(
            f"`n_per_group` must be one whole number or a list of {int(n_groups)}; got "
            f"{n_per_group!r}."
        )
    if sizes_in.ndim and len(sizes_in) != n_groups:
        raise DataError(
            f"`n_per_group` must be one size or {n_groups} sizes; got {len(sizes_in)} sizes."
        )
    if not np.all(np.isfinite(sizes_in)) or np.any(sizes_in != np.round(sizes_in)):
        raise DataError(
            f"`n_per_group` must hold whole numbers; got {n_per_group!r}. Round the sizes first."
        )
    sizes = np.broadcast_to(sizes_in, (int(n_groups),)).astype(int)
    if (sizes < 1).any():
        raise DataError(f"`n_per_group` must be >= 1; got {sizes.min()}.")
    for name, value in (("mu", mu), ("sd_group", sd_group), ("sd_resid", sd_resid)):
        if not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
            raise DataError(f"`{name}` must be a finite number; got {value!r}.")
    if sd_group < 0 or sd_resid <= 0:
        raise DataError(
            f"`sd_group` must be >= 0 and `sd_resid` > 0; got {sd_group} and {sd_resid}."
        )
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"`seed` must be a non-negative integer, a numpy Generator or None; got {seed!r}."
        ) from exc
    width = len(str(int(n_groups)))
    labels = np.array([f"g{j + 1:0{width}d}" for j in range(int(n_groups))])
    theta = draw_effects(rng, int(n_groups), mu, sd_group, effects)
    g = np.repeat(np.arange(int(n_groups)), sizes)
    y = rng.normal(theta[g], sd_resid)
    df = pd.DataFrame({"group": labels[g], "y": y, "theta": theta[g]})
    df.attrs.update(
        {
            "mu": mu,
            "sd_group": sd_group,
            "sd_resid": sd_resid,
            "n_groups": int(n_groups),
            "effects": effects,
        }
    )
    return df
