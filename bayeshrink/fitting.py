"""Entry points: fit the one-way model to long data or to group estimates with known SEs."""

from __future__ import annotations

from .data import GroupStats, Missing, group_stats, summary_stats
from .estimate import estimate
from .results import ShrinkageFit

__all__ = ["fit", "fit_stats", "fit_summary"]


def fit(
    data,
    y: str,
    group: str,
    method: str = "reml",
    *,
    missing: Missing = "raise",
) -> ShrinkageFit:
    """Fit ``y ~ 1 + (1 | group)`` by REML or ML, exactly as lme4 does.

    Parameters
    ----------
    data : pandas.DataFrame or dict of columns
        Long data, one row per observation.
    y : str
        Numeric response column.
    group : str
        Grouping column; any hashable labels. Groups are sorted by label where possible.
    method : {"reml", "ml"}
        Restricted (default, lme4's default) or full maximum likelihood.
    missing : {"raise", "drop"}
        Rows with NaN/inf ``y`` or a missing group label raise an error by default;
        ``"drop"`` leaves them out with a :class:`~bayeshrink.errors.RowsDroppedWarning`.

    Returns
    -------
    ShrinkageFit
        Variance components as attributes and per-group results in ``.table()``.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> demo = bs.load_dataset("seed_demo")
    >>> fit = bs.fit(demo[demo["model"] == "2"], y="y", group="group")
    >>> round(fit.tau, 4), round(fit.sigma, 4)
    (6.3432, 4.8309)
    >>> fit.table()["blup"].round(3).tolist()
    [11.33, 13.143, 24.895, 12.343, 10.06]
    """
    return fit_stats(group_stats(data, y, group, missing=missing), method)


def fit_summary(
    data,
    estimate: str,
    se: str,
    group: str,
    method: str = "reml",
    *,
    n: str | None = None,
) -> ShrinkageFit:
    """Fit the normal-normal model to group estimates with known standard errors (metafor's rma).

    Parameters
    ----------
    data : pandas.DataFrame or dict of columns
        One row per group.
    estimate, se, group : str
        Columns holding each group's estimate, its standard error and its label.
    method : {"reml", "ml", "dl"}
        REML (default, metafor's default), ML, or the DerSimonian-Laird moment estimator.
    n : str, optional
        Column of group sizes, shown in the table (not used by the estimator).

    Examples
    --------
    >>> import bayeshrink as bs
    >>> schools = bs.load_dataset("eight_schools")
    >>> fit = bs.fit_summary(schools, estimate="y", se="sigma", group="school")
    >>> fit.boundary, round(fit.mu, 4), round(fit.mu_se, 4)
    (True, 7.6856, 4.0719)
    """
    return fit_stats(summary_stats(data, estimate, se, group, n=n), method)


def fit_stats(stats: GroupStats, method: str = "reml") -> ShrinkageFit:
    """Fit from precomputed per-group statistics (see :meth:`GroupStats.from_arrays`)."""
    return ShrinkageFit(stats, estimate(stats, method))
