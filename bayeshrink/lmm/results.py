"""MixedFit: a fitted mixed model with covariates and correlated random terms, named as in lme4.

The Bayesian reading carries over term by term. Group j's random effects b_j have the plug-in
prior N(0, cov_re) and, given the fixed effects, a likelihood centred at the group's own
least-squares fit (``own_fit()``, lme4's ``lmList`` when every covariate has a random slope)
with covariance sigma^2 (Z_j'Z_j)^-1. Their product is the normal posterior with mean
``ranef()`` (the BLUPs) and SDs ``ranef_sd()``; ``coef()`` adds the fixed effects back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ..api import FitResult
from ..display import fmt, group_tables, group_tables_text
from ..inference import InferenceMixin
from .design import Design
from .estimate import LMMComponents

__all__ = ["MixedFit"]


@dataclass(frozen=True, eq=False)
class MixedFit(FitResult, InferenceMixin):
    """A linear mixed model fitted by REML or ML, with lme4's names.

    Attributes
    ----------
    fixef, fixef_se : pandas.Series
        Fixed effects and their standard errors, by term.
    sigma : float
        Residual SD.
    cov_re, corr_re : pandas.DataFrame
        Covariance and correlation matrices of the random effects (term x term), lme4's VarCorr.
    boundary : bool
        A singular fit: some direction of the random-effects covariance is estimated at zero
        (a variance at 0 or a correlation at +-1), as lme4's ``isSingular()``, judged on the
        centred and scaled columns the estimator works with, so a covariate's units do not
        change the verdict.

    Methods ``ranef()``, ``coef()``, ``ranef_sd()`` return one row per group and one column per
    random term; ``table(term)`` gives the per-group picture for one term.
    """

    design: Design = field(repr=False)
    components: LMMComponents = field(repr=False)

    # ----------------------------------------------------------------- model description
    @property
    def formula(self) -> str:
        return self.design.spec.formula

    @property
    def method(self) -> str:
        return self.components.method

    @property
    def response(self) -> str:
        return self.design.spec.response

    @property
    def group(self) -> str:
        return self.design.spec.group

    @property
    def fixed_terms(self) -> list[str]:
        return list(self.design.fixed_names)

    @property
    def random_terms(self) -> list[str]:
        return list(self.design.random_names)

    @property
    def groups(self) -> pd.Index:
        return self.design.labels

    @property
    def n(self) -> np.ndarray:
        return np.asarray(self.design.stats.n).astype(np.int64)

    @property
    def block_sizes(self) -> tuple[int, ...]:
        return tuple(self.design.block_sizes)

    @property
    def n_groups(self) -> int:
        return len(self.design.labels)

    @property
    def n_obs(self) -> int:
        return self.components.n_obs

    # ----------------------------------------------------------------- estimates
    @cached_property
    def fixef(self) -> pd.Series:
        return pd.Series(self.components.beta, index=self.fixed_terms, name="fixef")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects, lme4's ``vcov()``."""
        names = self.fixed_terms
        return pd.DataFrame(self.components.vcov_beta, index=names, columns=names)

    @property
    def sigma(self) -> float:
        return self.components.sigma

    @property
    def theta(self) -> np.ndarray:
        """lme4's ``getME(m, "theta")``: the relative covariance factor's free entries."""
        return self.components.theta.copy()

    @cached_property
    def cov_re(self) -> pd.DataFrame:
        names = self.random_terms
        return pd.DataFrame(self.components.cov_re, index=names, columns=names)

    @property
    def boundary(self) -> bool:
        return self.components.boundary

    @property
    def loglik(self) -> float:
        return self.components.loglik

    @property
    def criterion(self) -> float:
        """-2 log-likelihood (ML) or the REML criterion, as lme4 reports it."""
        return self.components.criterion

    # ----------------------------------------------------------------- per-group results
    def ranef(self) -> pd.DataFrame:
        """The BLUPs (conditional modes) of the deviations b_j: group x term, lme4's ``ranef()``."""
        return self._frame(self.components.b)

    def ranef_sd(self) -> pd.DataFrame:
        """Conditional SDs of the deviations (lme4's ``ranef(condVar = TRUE)``): group x term."""
        S = self.components.S
        return self._frame(self.sigma * np.sqrt(np.diagonal(S, axis1=1, axis2=2)))

    def ranef_cov(self) -> np.ndarray:
        """Conditional covariance matrices Var(b_j | y): array of shape (groups, terms, terms)."""
        return self.sigma**2 * self.components.S

    def pred_sd(self) -> pd.DataFrame:
        """SDs of coef() counting the uncertainty of the fixed effects too: group x term.

        The posterior SD of each group's coefficient when the fixed effects get a flat prior
        instead of being plugged in (Henderson's equivalence; the one-way model's ``pred_sd``):
        Var = sigma^2 S_j + K_j vcov(beta) K_j', with K_j = E - S_j Z_j'X_j, where E picks
        each random term's fixed effect. lme4 has no counterpart.
        """
        s = self.design.stats
        S = self.components.S
        K = self.fixed_of_random[None, :, :] - S @ s.B
        V = self.sigma**2 * S + K @ self.components.vcov_beta @ np.transpose(K, (0, 2, 1))
        return self._frame(np.sqrt(np.diagonal(V, axis1=1, axis2=2)))

    @cached_property
    def fixed_of_random(self) -> np.ndarray:
        """E (terms x fixed terms): E[k, i] = 1 when random term k has fixed effect i, so that
        ``E @ beta`` is the population value of each random term (0 for a random-only term)."""
        E = np.zeros((len(self.random_terms), len(self.fixed_terms)))
        for k, t in enumerate(self.random_terms):
            if t in self.fixed_terms:
                E[k, self.fixed_terms.index(t)] = 1.0
        return E

    @cached_property
    def _beta_z(self) -> np.ndarray:
        """The fixed effect behind each random term (0 where the term has no fixed part)."""
        return self.fixed_of_random @ self.components.beta

    def coef(self) -> pd.DataFrame:
        """Fixed plus random effects per group, lme4's ``coef()``: every fixed term, then any
        random-only terms; a column without a random part repeats its fixed effect."""
        out = pd.DataFrame(
            np.tile(self.fixef.to_numpy(), (self.n_groups, 1)),
            index=self.groups,
            columns=self.fixed_terms,
        )
        b = self.ranef()
        for t in self.random_terms:
            out[t] = (out[t] if t in out else 0.0) + b[t]
        return out

    @cached_property
    def _own(self) -> tuple[np.ndarray, np.ndarray]:
        """Each group's own least-squares fit of its random terms (given the fixed effects of
        the other terms) and its covariance / sigma^2; NaN where Z_j'Z_j is singular."""
        s = self.design.stats
        A = s.A
        q = s.q
        own = np.full((self.n_groups, q), np.nan)
        cov = np.full((self.n_groups, q, q), np.nan)
        ok = s.z_full_rank
        if ok.any():
            inv = np.linalg.inv(A[ok])
            cov[ok] = inv
            own[ok] = np.einsum("jkl,jl->jk", inv, self._e()[ok])
        return own, cov

    def _e(self) -> np.ndarray:
        """Z_j'(y_j - X_j beta) on the data's own scale."""
        s = self.design.stats
        beta = self.components.beta.copy()
        if s.intercept_col is not None:
            beta[s.intercept_col] -= s.y_shift  # c holds Z'(y - shift)
        return s.c - np.einsum("jqp,p->jq", s.B, beta)

    def own_fit(self) -> pd.DataFrame:
        """No pooling: each group's own least-squares coefficients for the random terms, with the
        other fixed effects held at their estimates (lme4's ``lmList`` when every fixed term has
        a random part). NaN for a group whose data cannot estimate all its terms."""
        own, _ = self._own
        return self._frame(self._beta_z + own)

    def own_se(self) -> pd.DataFrame:
        """Standard errors of ``own_fit()`` (the likelihood's spread, given sigma)."""
        _, cov = self._own
        return self._frame(self.sigma * np.sqrt(np.diagonal(cov, axis1=1, axis2=2)))

    def shrinkage(self) -> pd.DataFrame:
        """Per term, the weight on the population value: 1 - (S_j Z_j'Z_j)_kk.

        The BLUP is ``beta + S_j Z_j'Z_j (own - beta)``; with one term this is the scalar
        shrinkage factor B_j of the one-way model. With several it is a matrix, and its diagonal
        (shown here) is how much of a term's own deviation is kept when the others do not move.
        """
        SA = np.einsum("jkl,jlm->jkm", self.components.S, self.design.stats.A)
        return self._frame(1.0 - np.diagonal(SA, axis1=1, axis2=2))

    # ----------------------------------------------------------------- display
    def explanation(self) -> str:
        if self.boundary:
            return (
                "Boundary (singular) fit: the estimated random-effects covariance is singular "
                "(a variance at 0 or a correlation at +-1). Along that direction every group "
                "is pulled all the way to the population value. The data are consistent with "
                "such a covariance, which is not evidence for it; a full Bayesian model "
                "(bs.hierarchical_model) keeps partial pooling there."
            )
        return (
            "Each group's BLUPs (coef) are the posterior means under the plug-in prior "
            "N(fixef, cov_re) combined with the group's own likelihood; see table(term)."
        )

    def _random_lines(self) -> list[str]:
        terms = self.random_terms
        width = max(len(t) for t in terms)
        lines = [f"Random effects ({self.group}, {self.n_groups} levels):"]
        corr = self.corr_re.to_numpy()
        for i, t in enumerate(terms):
            cors = " ".join(f"{corr[i, k]:6.3f}" for k in range(i))
            lines.append(f"  {t:<{width}}  SD {fmt(self.sd_re[t], 5):>10}  {cors}")
        lines.append(f"  {'Residual':<{width}}  SD {fmt(self.sigma, 5):>10}")
        return lines

    def _fixed_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"estimate": self.fixef, "se": self.fixef_se, "t": self.fixef / self.fixef_se}
        )

    def intervals(self, level: float = 0.95, method: str = "morris", **options) -> pd.DataFrame:
        """Group-effect intervals (Morris, Kass-Steffey, bootstrap, ...) are for one-way fits so
        far; a formula fit refuses clearly instead of lacking the method."""
        from ..errors import MethodError

        raise MethodError(
            f"`intervals` must be called on a one-way fit (bs.fit(df, y=..., group=...)); got "
            f"a formula fit ({self.formula!r}), for which they are not implemented. Use "
            "fit.predict(newdata, interval='confidence') for each group's mean, "
            "fit.ranef_sd() for conditional SDs, or fit.confint() for the parameters."
        )

    def summary(self) -> str:
        crit = "REML criterion" if self.method == "reml" else "-2 log-likelihood"
        lines = [
            f"Linear mixed model fit by {self.method.upper()}: {self.formula}",
            f"{crit} {self.criterion:.4f}; {self.n_obs} observations in {self.n_groups} groups",
            *self._random_lines(),
            "Fixed effects:",
            self._fixed_table().to_string(float_format=lambda v: fmt(v, 5)),
            self.explanation(),
            "",
            group_tables_text(group_tables(self)),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"MixedFit({self.formula!r}, method={self.method!r}, groups={self.n_groups}, "
            f"sigma={fmt(self.sigma, 5)}, boundary={self.boundary})"
        )

    def _html_parts(self):
        lines = [
            ("method", self.method.upper()),
            ("groups", str(self.n_groups)),
            ("observations", str(self.n_obs)),
            *(
                (f"fixef {k}", f"{fmt(v)}  (se {fmt(se, 4)})")
                for (k, v), se in zip(self.fixef.items(), self.fixef_se, strict=True)
            ),
            *((f"SD {k}", fmt(v)) for k, v in self.sd_re.items()),
            ("sigma", fmt(self.sigma)),
            ("boundary", "yes (singular fit)" if self.boundary else "no"),
            ("log-likelihood", fmt(self.loglik, 8)),
        ]
        return (
            f"Linear mixed model: {self.formula}",
            lines,
            self.explanation(),
            group_tables(self),
        )

    def _extra_dict(self) -> dict:
        return {"theta": self.theta.tolist()}
