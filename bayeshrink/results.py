"""The result of a one-way fit: variance components and one row of shrinkage results per group.

The one-way model is the formula ``y ~ 1 + (1 | group)``: :class:`ShrinkageFit` answers the
common API of :class:`bayeshrink.api.FitResult` (``fixef``, ``coef()``, ``shrinkage()``, ...,
DataFrames with one column, ``Intercept``) and keeps the textbook names ``mu``, ``tau``,
``mu_se``, ``sigma2``, ``tau2``, ``var_ratio`` as conveniences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from . import shrinkage as _shr
from .api import SINGULAR_TOL, FitResult
from .data import GroupStats
from .display import fmt, table_text
from .estimate import VarianceComponents
from .inference import InferenceMixin

__all__ = ["ShrinkageFit"]


@dataclass(frozen=True, eq=False)
class ShrinkageFit(FitResult, InferenceMixin):
    """A fitted one-way hierarchical normal model (see :mod:`bayeshrink.estimate`).

    Scalar results are attributes (``mu``, ``mu_se``, ``tau``, ``sigma``, ``boundary``,
    ``loglik``, ``method``); per-group results come from :meth:`table` and the accessors of
    :class:`bayeshrink.api.FitResult`, unrounded.
    """

    stats: GroupStats
    components: VarianceComponents

    fixed_terms = ("Intercept",)
    random_terms = ("Intercept",)
    block_sizes = (1,)

    # ------------------------------------------------------------------ description
    @property
    def method(self) -> str:
        return self.components.method

    @property
    def data_kind(self) -> str:
        """ "long" (one row per observation) or "summary" (estimates with known SEs)."""
        return self.stats.data_kind

    @property
    def response(self) -> str:
        return self.stats.response

    @property
    def group(self):
        """Name of the grouping column."""
        return self.stats.labels.name

    @property
    def formula(self) -> str:
        return f"{self.response} ~ 1 + (1 | {self.group or 'group'})"

    @property
    def n(self) -> np.ndarray:
        """Group sizes (NaN for summary data unless sizes were given)."""
        return self.stats.n

    @property
    def n_groups(self) -> int:
        return self.stats.n_groups

    @property
    def n_obs(self) -> int:
        return self.stats.n_obs

    @property
    def groups(self) -> pd.Index:
        return self.stats.labels

    # ------------------------------------------------------------------ scalars
    @property
    def mu(self) -> float:
        return self.components.mu

    @property
    def mu_se(self) -> float:
        return self.components.mu_se

    @property
    def tau2(self) -> float:
        return self.components.tau2

    @property
    def tau(self) -> float:
        return math.sqrt(self.components.tau2)

    @property
    def sigma2(self) -> float:
        return self.components.sigma2

    @property
    def sigma(self) -> float:
        """Residual SD; NaN for summary data, whose standard errors are given."""
        return math.sqrt(self.components.sigma2) if self.data_kind == "long" else math.nan

    @property
    def var_ratio(self) -> float:
        """tau^2 / sigma^2 for long data; NaN for summary data (there is no single sigma)."""
        return self.tau2 / self.sigma2 if self.data_kind == "long" else math.nan

    @property
    def boundary(self) -> bool:
        """A boundary ("singular") fit, by lme4's ``isSingular()`` rule: tau / sigma < 1e-4
        (the relative covariance factor's one entry). For summary data, which have no sigma,
        it is tau == 0 (metafor's boundary)."""
        if self.data_kind == "long":
            return bool(self.tau < SINGULAR_TOL * self.sigma)
        return bool(self.components.boundary)

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML: restricted) at the optimum, as lme4's / metafor's logLik."""
        return self.components.loglik

    @property
    def fixef(self) -> pd.Series:
        """lme4's ``fixef()``: the one fixed effect, mu."""
        return pd.Series([self.mu], index=list(self.fixed_terms), name="fixef")

    @property
    def vcov(self) -> pd.DataFrame:
        """lme4's ``vcov()``: the 1 x 1 covariance of mu, mu_se^2."""
        return pd.DataFrame([[self.mu_se**2]], index=["Intercept"], columns=["Intercept"])

    @property
    def cov_re(self) -> pd.DataFrame:
        """lme4's ``VarCorr()``: the 1 x 1 random-effects covariance, tau^2."""
        return pd.DataFrame([[self.tau2]], index=["Intercept"], columns=["Intercept"])

    # ------------------------------------------------------------------ per group (arrays)
    @cached_property
    def _se(self) -> np.ndarray:
        """Sampling SE of each group's own estimate: sigma / sqrt(n_j), or the given se_j."""
        if self.data_kind == "long":
            return np.sqrt(self.sigma2 / self.stats.n)
        return self.stats.se

    @cached_property
    def _shrinkage(self) -> np.ndarray:
        return _shr.shrinkage_factor(self._se, self.tau2)

    @cached_property
    def _blup(self) -> np.ndarray:
        return _shr.blup(self.stats.mean, self.mu, self._shrinkage)

    @cached_property
    def _cond_sd(self) -> np.ndarray:
        return _shr.cond_sd(self._se, self._shrinkage)

    @cached_property
    def _pred_sd(self) -> np.ndarray:
        return _shr.pred_sd(self._se, self._shrinkage, self.mu_se)

    @cached_property
    def complete_pooling(self) -> float:
        """The estimate that ignores groups: the grand mean (long data) or the fixed-effect
        meta-analysis mean (summary data)."""
        weights = self.stats.n if self.data_kind == "long" else 1.0 / self.stats.se**2
        return _shr.complete_pooling(self.stats.mean, weights)

    # ------------------------------------------------------------------ the common API
    def own_fit(self) -> pd.DataFrame:
        """No pooling: each group's own estimate (its mean, or the given estimate)."""
        return self._frame(self.stats.mean)

    def own_se(self) -> pd.DataFrame:
        """Sampling SE of ``own_fit()``: sigma / sqrt(n_j), or the given se_j."""
        return self._frame(self._se)

    def shrinkage(self) -> pd.DataFrame:
        """B_j = se_j^2 / (se_j^2 + tau^2): the fraction of the way to mu."""
        return self._frame(self._shrinkage)

    def ranef(self) -> pd.DataFrame:
        """lme4's ``ranef()``: each group's deviation blup - mu."""
        return self._frame(self._blup - self.mu)

    def coef(self) -> pd.DataFrame:
        """lme4's ``coef()``: each group's BLUP."""
        return self._frame(self._blup)

    def ranef_sd(self) -> pd.DataFrame:
        """lme4's ``ranef(condVar = TRUE)`` SDs: cond_sd = sqrt((1 - B_j) se_j^2)."""
        return self._frame(self._cond_sd)

    def pred_sd(self) -> pd.DataFrame:
        """Prediction-error SD counting the uncertainty of mu (metafor's ``blup()`` se)."""
        return self._frame(self._pred_sd)

    # ------------------------------------------------------------------ display
    def explanation(self) -> str:
        """A few sentences on what the estimates mean for shrinkage."""
        if self.boundary:
            return (
                "Boundary (singular) fit: tau is estimated as exactly 0. The group estimates vary "
                "no more than their sampling noise explains: the data are consistent with tau = 0 "
                "(which is not evidence that tau = 0; a small tau > 0 fits almost as well). The "
                "plug-in prior N(mu, tau^2) is then a point mass at mu "
                "and every group is pooled completely to mu (shrinkage 1, BLUP = mu). A full "
                "Bayesian model, which averages over tau instead of fixing it at 0, keeps some "
                "partial pooling."
            )
        b = self._shrinkage
        lo, hi = int(np.argmin(b)), int(np.argmax(b))
        ratio = (
            f"variance ratio tau^2/sigma^2 = {fmt(self.var_ratio, 4)}; "
            if self.data_kind == "long"
            else ""
        )
        head = (
            f"Partial pooling: {ratio}each group moves the fraction B_j = se_j^2 / (se_j^2 + "
            "tau^2) of the way from its own estimate to mu"
        )
        if np.ptp(b) <= 1e-12 * b.max():
            return f"{head}; every group has the same se_j here, so B_j = {fmt(b[0], 3)} for all."
        return (
            f"{head}, from {fmt(b[lo], 3)} ({self.groups[lo]!s}) to {fmt(b[hi], 3)} "
            f"({self.groups[hi]!s}). Groups with less data (larger se_j) are pulled further."
        )

    def _component_lines(self) -> list[tuple[str, str]]:
        rows = [
            ("method", self.method.upper()),
            ("groups", str(self.n_groups)),
        ]
        if self.data_kind == "long":
            rows.append(("observations", str(self.n_obs)))
        rows += [
            ("mu", f"{fmt(self.mu)}  (se {fmt(self.mu_se, 4)})"),
            ("tau", fmt(self.tau)),
        ]
        if self.data_kind == "long":
            rows += [
                ("sigma", fmt(self.sigma)),
                ("tau^2/sigma^2", fmt(self.var_ratio, 4)),
            ]
        else:
            rows.append(("se_j range", f"{fmt(self._se.min(), 4)} .. {fmt(self._se.max(), 4)}"))
        rows += [
            ("boundary", "yes (tau = 0, singular fit)" if self.boundary else "no"),
            ("log-likelihood", fmt(self.loglik, 8)),
        ]
        return rows

    def _display_table(self) -> pd.DataFrame:
        t = self.table()
        if self.data_kind == "summary" and t["n"].isna().all():
            t = t.drop(columns="n")
        return t.drop(columns=["prior_mean", "prior_sd"])

    def summary(self) -> str:
        """Variance components, boundary state, explanation and the per-group table (rounded)."""
        title = (
            f"One-way hierarchical normal model, {self.stats.response} by "
            f"{self.groups.name or 'group'} ({self.data_kind} data)"
        )
        width = max(len(k) for k, _ in self._component_lines())
        lines = [title, "-" * len(title)]
        lines += [f"{k:<{width}}  {v}" for k, v in self._component_lines()]
        lines += [f"complete pooling mean: {fmt(self.complete_pooling)}", ""]
        lines += [self.explanation(), ""]
        lines.append(table_text(self._display_table(), "groups", "fit.table()"))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<ShrinkageFit {self.method.upper()} {self.data_kind}: {self.n_groups} groups, "
            f"mu={fmt(self.mu)}, tau={fmt(self.tau)}, sigma={fmt(self.sigma)}, "
            f"boundary={self.boundary}>"
        )

    def _html_parts(self):
        return (
            "One-way hierarchical normal model",
            self._component_lines(),
            self.explanation(),
            self._display_table(),
        )

    def _extra_dict(self) -> dict:
        long = self.data_kind == "long"
        return {
            "mu": self.mu,
            "mu_se": self.mu_se,
            "tau": self.tau,
            "tau2": self.tau2,
            "var_ratio": self.var_ratio if long else None,
            "complete_pooling": self.complete_pooling,
        }

    # ------------------------------------------------------------------ intervals
    def intervals(self, level: float = 0.95, method: str = "morris", **options) -> pd.DataFrame:
        """Intervals for each group's effect theta_j, one row per group (indexed as
        :meth:`table`): ``estimate``, ``lo``, ``hi``, ``half_width`` and the method's extras.

        Parameters
        ----------
        level : float
            Coverage level in (0, 1).
        method : str
            ``"cond"`` (BLUP +- z cond_sd), ``"pred"`` (+- z pred_sd), ``"no-pooling"``,
            ``"morris"`` (Morris 1983; the default: in notebook 5's simulation study its
            coverage stays closest to nominal across few and many groups, small and large
            variance ratios; it needs 4 or more groups), ``"kass-steffey"`` (Kass & Steffey
            1989),
            ``"bootstrap"`` (Laird & Louis 1987; options ``n_boot``, ``random_seed``),
            ``"robust"`` (Armstrong, Kolesar & Plagborg-Moller 2022; options ``kurtosis``,
            ``weights``) or ``"full"`` (quantiles of full-Bayes ``draws``). Each method's
            formula and source are in :mod:`bayeshrink.intervals`.

        Examples
        --------
        >>> import bayeshrink as bs
        >>> demo = bs.load_dataset("seed_demo")
        >>> fit = bs.fit(demo[demo["model"] == "2"], y="y", group="group")
        >>> fit.intervals(method="pred")[["estimate", "lo", "hi"]].round(3).head(2)
               estimate     lo      hi
        group
        g1       11.330  7.275  15.384
        g2       13.143  9.089  17.198
        """
        from .intervals import interval_table

        return interval_table(self, level=level, method=method, **options)
