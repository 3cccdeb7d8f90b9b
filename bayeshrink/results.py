"""The result of a one-way fit: variance components and one row of shrinkage results per group."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from . import shrinkage as _shr
from .data import GroupStats
from .estimate import VarianceComponents

__all__ = ["ShrinkageFit"]

TABLE_COLUMNS = (
    "n",
    "no_pooling",
    "se",
    "shrinkage",
    "blup",
    "cond_sd",
    "pred_sd",
    "complete_pooling",
)


def check_fit(fit, hint: str = "Fit the model first, e.g. `fit = bs.fit(df, y=..., group=...)`."):
    """Raise a clear error unless ``fit`` is a :class:`ShrinkageFit`; return it."""
    if not isinstance(fit, ShrinkageFit):
        from .errors import DataTypeError

        if type(fit).__name__ == "MixedFit":
            raise DataTypeError(
                "`fit` must be a one-way fit (ShrinkageFit) here; got a MixedFit from a formula. "
                "For one of its terms use the functions that take `term=` (plot_triplot, "
                "plot_shrinkage, plot_forest) or fit.table(term)."
            )
        raise DataTypeError(
            f"`fit` must be a ShrinkageFit from bs.fit or bs.fit_summary; got "
            f"{type(fit).__name__}. {hint}"
        )
    return fit


def _g(x: float, digits: int = 6) -> str:
    """Round for display only."""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return "nan" if not math.isfinite(x) else f"{x:.{digits}g}"


@dataclass(frozen=True, eq=False)
class ShrinkageFit:
    """A fitted one-way hierarchical normal model (see :mod:`bayeshrink.estimate`).

    Scalar results are attributes (``mu``, ``mu_se``, ``tau``, ``sigma``, ``boundary``,
    ``loglik``, ``method``); per-group results come from :meth:`table`, unrounded.
    """

    stats: GroupStats
    components: VarianceComponents

    # ------------------------------------------------------------------ scalars
    @property
    def method(self) -> str:
        return self.components.method

    @property
    def kind(self) -> str:
        """ "long" (one row per observation) or "summary" (estimates with known SEs)."""
        return self.stats.kind

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
        return math.sqrt(self.components.sigma2) if self.kind == "long" else math.nan

    @property
    def var_ratio(self) -> float:
        """tau^2 / sigma^2 for long data; NaN for summary data (there is no single sigma)."""
        return self.tau2 / self.sigma2 if self.kind == "long" else math.nan

    @property
    def boundary(self) -> bool:
        """True when tau is estimated as exactly 0 (a boundary, or "singular", fit)."""
        return self.components.boundary

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML: restricted) at the optimum, as lme4's / metafor's logLik."""
        return self.components.loglik

    @property
    def n_groups(self) -> int:
        return self.stats.n_groups

    @property
    def n_obs(self) -> int:
        return self.stats.n_obs

    @property
    def groups(self) -> pd.Index:
        return self.stats.labels

    # ------------------------------------------------------------------ per group
    @cached_property
    def se(self) -> np.ndarray:
        """Sampling SE of each group's own estimate: sigma / sqrt(n_j), or the given se_j."""
        if self.kind == "long":
            return np.sqrt(self.sigma2 / self.stats.n)
        return self.stats.se

    @cached_property
    def shrinkage(self) -> np.ndarray:
        return _shr.shrinkage_factor(self.se, self.tau2)

    @cached_property
    def blup(self) -> np.ndarray:
        return _shr.blup(self.stats.mean, self.mu, self.shrinkage)

    @cached_property
    def cond_sd(self) -> np.ndarray:
        return _shr.cond_sd(self.se, self.shrinkage)

    @cached_property
    def pred_sd(self) -> np.ndarray:
        return _shr.pred_sd(self.se, self.shrinkage, self.mu_se)

    @cached_property
    def complete_pooling(self) -> float:
        weights = self.stats.n if self.kind == "long" else 1.0 / self.stats.se**2
        return _shr.complete_pooling(self.stats.mean, weights)

    def table(self) -> pd.DataFrame:
        """One row per group, raw unrounded numbers, indexed by the group labels.

        Columns: ``n``, ``no_pooling``, ``se``, ``shrinkage``, ``blup``, ``cond_sd``,
        ``pred_sd``, ``complete_pooling`` (see the glossary in :mod:`bayeshrink.estimate`).
        """
        return pd.DataFrame(
            {
                "n": self.stats.n,
                "no_pooling": self.stats.mean,
                "se": self.se,
                "shrinkage": self.shrinkage,
                "blup": self.blup,
                "cond_sd": self.cond_sd,
                "pred_sd": self.pred_sd,
                "complete_pooling": np.full(self.n_groups, self.complete_pooling),
            },
            index=self.stats.labels.copy(),
        )

    # ------------------------------------------------------------------ lme4's names
    # The one-way model is the formula y ~ 1 + (1 | group); these give it the accessors of
    # :class:`bayeshrink.lmm.MixedFit`, so code written for either works on both.
    fixed_terms = ("Intercept",)
    random_terms = ("Intercept",)

    @property
    def fixef(self) -> pd.Series:
        """lme4's ``fixef()``: the one fixed effect, mu."""
        return pd.Series([self.mu], index=list(self.fixed_terms), name="fixef")

    @property
    def fixef_se(self) -> pd.Series:
        return pd.Series([self.mu_se], index=list(self.fixed_terms))

    @property
    def cov_re(self) -> pd.DataFrame:
        """lme4's ``VarCorr()``: the 1 x 1 random-effects covariance, tau^2."""
        return pd.DataFrame([[self.tau2]], index=list(self.random_terms), columns=["Intercept"])

    def _term_frame(self, values) -> pd.DataFrame:
        return pd.DataFrame({"Intercept": values}, index=self.stats.labels.copy())

    def ranef(self) -> pd.DataFrame:
        """lme4's ``ranef()``: each group's deviation blup - mu."""
        return self._term_frame(self.blup - self.mu)

    def coef(self) -> pd.DataFrame:
        """lme4's ``coef()``: each group's BLUP."""
        return self._term_frame(self.blup)

    def ranef_sd(self) -> pd.DataFrame:
        """lme4's ``ranef(condVar = TRUE)`` SDs: cond_sd."""
        return self._term_frame(self.cond_sd)

    # ------------------------------------------------------------------ display
    def explanation(self) -> str:
        """A few sentences on what the estimates mean for shrinkage."""
        if self.boundary:
            return (
                "Boundary (singular) fit: tau is estimated as exactly 0. The group estimates vary "
                "no more than their sampling noise explains, so there is no evidence of "
                "between-group variation; the plug-in prior N(mu, tau^2) is a point mass at mu "
                "and every group is pooled completely to mu (shrinkage 1, BLUP = mu). A full "
                "Bayesian model, which averages over tau instead of fixing it at 0, keeps some "
                "partial pooling."
            )
        b = self.shrinkage
        lo, hi = int(np.argmin(b)), int(np.argmax(b))
        ratio = (
            f"variance ratio tau^2/sigma^2 = {_g(self.var_ratio, 4)}; "
            if self.kind == "long"
            else ""
        )
        head = (
            f"Partial pooling: {ratio}each group moves the fraction B_j = se_j^2 / (se_j^2 + "
            "tau^2) of the way from its own estimate to mu"
        )
        if np.ptp(b) <= 1e-12 * b.max():
            return f"{head}; every group has the same se_j here, so B_j = {_g(b[0], 3)} for all."
        return (
            f"{head}, from {_g(b[lo], 3)} ({self.groups[lo]!s}) to {_g(b[hi], 3)} "
            f"({self.groups[hi]!s}). Groups with less data (larger se_j) are pulled further."
        )

    def _component_lines(self) -> list[tuple[str, str]]:
        rows = [
            ("method", self.method.upper()),
            ("groups", str(self.n_groups)),
        ]
        if self.kind == "long":
            rows.append(("observations", str(self.n_obs)))
        rows += [
            ("mu", f"{_g(self.mu)}  (se {_g(self.mu_se, 4)})"),
            ("tau", _g(self.tau)),
        ]
        if self.kind == "long":
            rows += [
                ("sigma", _g(self.sigma)),
                ("tau^2/sigma^2", _g(self.var_ratio, 4)),
            ]
        else:
            rows.append(("se_j range", f"{_g(self.se.min(), 4)} .. {_g(self.se.max(), 4)}"))
        rows += [
            ("boundary", "yes (tau = 0, singular fit)" if self.boundary else "no"),
            ("log-likelihood", _g(self.loglik, 8)),
        ]
        return rows

    def _display_table(self) -> pd.DataFrame:
        t = self.table()
        if self.kind == "summary" and t["n"].isna().all():
            t = t.drop(columns="n")
        return t.drop(columns="complete_pooling")

    def summary(self) -> str:
        """Variance components, boundary state, explanation and the per-group table (rounded)."""
        title = (
            f"One-way hierarchical normal model, {self.stats.response} by "
            f"{self.groups.name or 'group'} ({'long' if self.kind == 'long' else 'summary'} data)"
        )
        width = max(len(k) for k, _ in self._component_lines())
        lines = [title, "-" * len(title)]
        lines += [f"{k:<{width}}  {v}" for k, v in self._component_lines()]
        lines += [f"complete pooling mean: {_g(self.complete_pooling)}", ""]
        lines += [self.explanation(), ""]
        lines.append(self._display_table().to_string(float_format=lambda v: _g(v, 6)))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (
            f"<ShrinkageFit {self.method.upper()} {self.kind}: {self.n_groups} groups, "
            f"mu={_g(self.mu)}, tau={_g(self.tau)}, sigma={_g(self.sigma)}, "
            f"boundary={self.boundary}>"
        )

    def _repr_html_(self) -> str:
        comps = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in self._component_lines()
        )
        table = self._display_table().to_html(float_format=lambda v: _g(v, 6))
        return (
            "<div><strong>One-way hierarchical normal model</strong>"
            f"<table>{comps}</table><p>{html.escape(self.explanation())}</p>{table}</div>"
        )

    def to_dict(self) -> dict:
        """Plain-Python results (for JSON): components and one record per group."""
        t = self.table()
        groups = []
        for label, row in t.iterrows():
            rec = {"group": label.item() if hasattr(label, "item") else label}
            for col in TABLE_COLUMNS:
                v = row[col]
                rec[col] = None if (isinstance(v, float) and math.isnan(v)) else float(v)
            if self.kind == "long":
                rec["n"] = int(row["n"])
            groups.append(rec)
        return {
            "kind": self.kind,
            "method": self.method,
            "response": self.stats.response,
            "group": self.groups.name,
            "n_groups": self.n_groups,
            "n_obs": self.n_obs,
            "mu": self.mu,
            "mu_se": self.mu_se,
            "tau": self.tau,
            "tau2": self.tau2,
            "sigma": None if self.kind == "summary" else self.sigma,
            "var_ratio": None if self.kind == "summary" else self.var_ratio,
            "boundary": self.boundary,
            "loglik": self.loglik,
            "groups": groups,
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
