"""The one result API that every fit of long data answers, whatever its formula.

``bs.fit(df, formula="y ~ 1 + (1 | g)")`` gives a :class:`~bayeshrink.ShrinkageFit` (the
exact one-parameter solver) and ``bs.fit(df, formula="y ~ x + (1 | g)")`` a
:class:`~bayeshrink.MixedFit`; both subclass :class:`FitResult` and answer, with the same types:

==================  ===========================================================================
``fixef``           fixed effects (Series by fixed term); lme4 ``fixef()``
``fixef_se``        their standard errors (Series)
``vcov``            their covariance (DataFrame); lme4 ``vcov()``
``sigma``           residual SD (float; NaN for summary data with known standard errors)
``boundary``        singular fit (bool), lme4's ``isSingular()`` rule: a diagonal entry of the
                    relative covariance factor below 1e-4
``loglik``          (restricted) log-likelihood at the optimum (float)
``ranef()``         BLUPs of the deviations b_j (DataFrame, group x random term)
``coef()``          fixed + random effects per group (DataFrame, group x term); lme4 ``coef()``
``ranef_sd()``      conditional SDs of b_j (DataFrame); lme4 ``ranef(condVar = TRUE)``
``shrinkage()``     weight on the population value per group and term (DataFrame)
``pred_sd()``       SD of ``coef()`` counting the uncertainty of the fixed effects (DataFrame)
``own_fit()``       no pooling: each group's own estimate of each term (DataFrame)
``own_se()``        its standard error (DataFrame)
``varcorr()``       lme4's ``as.data.frame(VarCorr(m))``: columns grp, var1, var2, vcov, sdcor
``table(term)``     one term's per-group picture (DataFrame, the same columns for every fit)
==================  ===========================================================================

plus ``groups``, ``n_groups``, ``n_obs``, ``method``, ``response``, ``group``, ``fixed_terms``,
``random_terms``, ``cov_re``, ``sd_re``, ``data_kind`` ("long" or "summary"), ``summary()``,
``to_dict()`` and ``_repr_html_()``; and, from :mod:`bayeshrink.inference`, lme4's after-fit
API: ``predict()``, ``confint()``, ``aic``, ``bic``, ``deviance``, ``n_params``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .display import html_report, plain, records
from .errors import ColumnError, DataError

__all__ = ["TABLE_COLUMNS", "FitResult"]

#: The columns of ``fit.table(term)``, for every fit.
TABLE_COLUMNS = (
    "n",
    "no_pooling",
    "se",
    "shrinkage",
    "blup",
    "cond_sd",
    "pred_sd",
    "prior_mean",
    "prior_sd",
)

SINGULAR_TOL = 1e-4  # lme4's isSingular(): a diagonal of Lambda below this is on the boundary


# ---------------------------------------------------------------- arguments of the after-fit API
def lme4_term(t: str) -> str:
    """A term as lme4 names it: the intercept is ``(Intercept)``."""
    return "(Intercept)" if t == "Intercept" else t


def check_level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise DataError(
            f"`level` must be a probability strictly between 0 and 1; got {level!r}. "
            "E.g. level=0.95 for 95% intervals."
        )
    return float(level)


def check_count(value, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise DataError(
            f"`{name}` must be an integer >= {least}; got {value!r}. E.g. {name}="
            f"{100 if name == 'nsim' else 500}."
        )
    return int(value)


class FitResult:
    """Base class of every fit: the shared accessors, written once (see the module docstring).

    Subclasses provide ``groups``, ``group``, ``response``, ``fixed_terms``, ``random_terms``,
    ``fixef``, ``vcov``, ``cov_re``, ``sigma``, ``n`` (group sizes), ``block_sizes``, the
    per-group arrays through :meth:`_term_arrays`, ``summary()`` and ``_summary_lines()``.
    """

    data_kind = "long"

    # ----------------------------------------------------------------- grouping factors
    @property
    def factors(self) -> list[str]:
        """The grouping factors, as lme4 names them (``names(ranef(m))``): one here."""
        return [str(self.group)]

    def _check_factor(self, factor) -> None:
        """``factor=`` names the one grouping factor, or is left out."""
        if factor is not None and factor not in self.factors:
            raise ColumnError(
                f"`factor` must be one of the grouping factors {self.factors}; got {factor!r}. "
                "Leave it out (the fit has one grouping factor)."
            )

    # ----------------------------------------------------------------- scalars and matrices
    @property
    def fixef_se(self) -> pd.Series:
        """Standard errors of the fixed effects, by term."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=list(self.fixed_terms))

    def cov_re(self, factor: str | None = None) -> pd.DataFrame:
        """lme4's ``VarCorr(m)[[factor]]``: the covariance of one factor's random effects (term
        x term); ``factor`` may be left out when the fit has one grouping factor."""
        self._check_factor(factor)
        return self._cov_re()

    def sd_re(self, factor: str | None = None) -> pd.Series:
        """SDs of one factor's random terms (the square roots of ``cov_re(factor)``'s diagonal)."""
        cov = self.cov_re(factor)
        return pd.Series(np.sqrt(np.diag(cov.to_numpy())), index=list(cov.index))

    def corr_re(self, factor: str | None = None) -> pd.DataFrame:
        """Correlations of one factor's random terms (1 on the diagonal; NaN beside a zero SD)."""
        cov = self.cov_re(factor)
        sd = np.sqrt(np.diag(cov.to_numpy()))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov.to_numpy() / np.outer(sd, sd)
        np.fill_diagonal(corr, 1.0)
        return pd.DataFrame(corr, index=cov.index, columns=cov.columns)

    # ----------------------------------------------------------------- per group, per factor
    def ranef(self, factor: str | None = None) -> pd.DataFrame:
        """lme4's ``ranef()``: the conditional modes (BLUPs) of the deviations b_j, level x term."""
        self._check_factor(factor)
        return self._ranef()

    def coef(self, factor: str | None = None) -> pd.DataFrame:
        """lme4's ``coef()``: fixed plus random effects per level (level x term)."""
        self._check_factor(factor)
        return self._coef()

    def ranef_sd(self, factor: str | None = None) -> pd.DataFrame:
        """lme4's ``ranef(condVar = TRUE)`` SDs: conditional SDs of b_j, level x term."""
        self._check_factor(factor)
        return self._ranef_sd()

    def ranef_cov(self, factor: str | None = None) -> np.ndarray:
        """Conditional covariances Var(b_j | y), lme4's ``postVar``: (levels, terms, terms)."""
        self._check_factor(factor)
        return self._ranef_cov()

    def _ranef_cov(self) -> np.ndarray:
        sd = self._ranef_sd().to_numpy(dtype=float)
        return sd[:, :, None] * np.eye(sd.shape[1])[None, :, :] * sd[:, None, :]

    def shrinkage(self, factor: str | None = None) -> pd.DataFrame:
        """Per level and term, the weight on the population value (see :meth:`table`)."""
        self._check_factor(factor)
        return self._shrinkage_frame()

    def pred_sd(self, factor: str | None = None) -> pd.DataFrame:
        """SDs of ``coef()`` counting the uncertainty of the fixed effects too."""
        self._check_factor(factor)
        return self._pred_sd_frame()

    def own_fit(self, factor: str | None = None) -> pd.DataFrame:
        """No pooling: each level's own estimate of its random terms."""
        self._check_factor(factor)
        return self._own_fit()

    def own_se(self, factor: str | None = None) -> pd.DataFrame:
        """Standard errors of ``own_fit()``."""
        self._check_factor(factor)
        return self._own_se()

    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))``: one row per variance and covariance, then the
        Residual. ``grp`` is the grouping factor (lme4 appends ``.1``, ``.2`` to further
        independent blocks on it); ``var2`` is None on variance rows and ``var1``/``var2`` on the
        Residual row, as lme4's NA; ``sdcor`` is the SD, or the correlation on covariance rows.
        Summary data (known standard errors) have no Residual row."""
        cov, corr = self.cov_re().to_numpy(), self.corr_re().to_numpy()
        terms = list(self.random_terms)
        rows = []
        start = 0
        for k, size in enumerate(self.block_sizes):
            grp = str(self.group) if k == 0 else f"{self.group}.{k}"
            idx = range(start, start + size)
            for i in idx:
                rows.append((grp, terms[i], None, cov[i, i], float(np.sqrt(cov[i, i]))))
            for a in idx:
                for b in idx:
                    if b > a:
                        rows.append((grp, terms[a], terms[b], cov[a, b], corr[a, b]))
            start += size
        if self.data_kind == "long":
            rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        cols = list(zip(*rows, strict=True))
        return pd.DataFrame(
            {
                "grp": pd.Series(cols[0], dtype=object),
                "var1": pd.Series(cols[1], dtype=object),
                "var2": pd.Series(cols[2], dtype=object),
                "vcov": np.asarray(cols[3], dtype=float),
                "sdcor": np.asarray(cols[4], dtype=float),
            }
        )

    # ----------------------------------------------------------------- per group
    def _frame(self, values) -> pd.DataFrame:
        values = np.asarray(values, dtype=float)
        if values.ndim == 1:
            values = values[:, None]
        return pd.DataFrame(values, index=self.groups.copy(), columns=list(self.random_terms))

    def _term(self, term) -> str:
        terms = list(self.random_terms)
        if term is None:
            return terms[0]
        if term not in terms:
            raise ColumnError(f"`term` must be one of the random terms {terms}; got {term!r}.")
        return term

    def table(self, term: str | None = None, factor: str | None = None) -> pd.DataFrame:
        """One random term's per-group picture (default the first, usually the intercept),
        raw unrounded numbers indexed by the group labels: n, no_pooling (the group's own
        estimate), se (its standard error), shrinkage, blup (``coef()``), cond_sd
        (``ranef_sd()``), pred_sd, and the plug-in prior's mean and SD (prior_mean, prior_sd).

        With one random term, blup = prior_mean + (1 - shrinkage) (no_pooling - prior_mean):
        each group moves the fraction B_j = se_j^2 / (se_j^2 + tau^2) of the way to the
        population value. With several correlated terms (e.g. intercept and slope) that is no
        longer true per term. The BLUP vector is fixef + (I - B_j)(own_j - fixef) with a matrix
        B_j; ``shrinkage`` is its diagonal, the fraction a term would move if the group's other
        terms sat at their population values. The off-diagonal part lets a term borrow from the
        others, through the correlation of the group's own estimates (an uncentred covariate)
        or the prior correlation, so a slope can move *away* from its population value (lme4's
        sleepstudy: subjects 309 and 310). Centring the covariate changes how the move splits
        into these two parts, and the diagonal, but not the BLUPs: the model is the same.
        :func:`bayeshrink.plot_shrinkage_2d` draws the 2-D move.
        """
        self._check_factor(factor)
        term = self._term(term)
        k = list(self.random_terms).index(term)
        out = pd.DataFrame(
            {
                "n": self.n,
                "no_pooling": self.own_fit()[term].to_numpy(),
                "se": self.own_se()[term].to_numpy(),
                "shrinkage": self.shrinkage()[term].to_numpy(),
                "blup": self.coef()[term].to_numpy(),
                "cond_sd": self.ranef_sd()[term].to_numpy(),
                "pred_sd": self.pred_sd()[term].to_numpy(),
            },
            index=self.groups.copy(),
        )
        out["prior_mean"] = float(self._prior_means()[k])
        out["prior_sd"] = float(self.sd_re().iloc[k])
        return out

    def _prior_means(self) -> np.ndarray:
        """The population value of each random term: its fixed effect, 0 without one."""
        fixef = self.fixef
        return np.array([float(fixef.get(t, 0.0)) for t in self.random_terms])

    # ----------------------------------------------------------------- intervals
    def intervals(
        self,
        level: float = 0.95,
        method: str = "morris",
        *,
        term: str | None = None,
        factor: str | None = None,
        **options,
    ) -> pd.DataFrame:
        """Intervals for each level's effect theta_j of one scalar random term, one row per
        level (indexed as :meth:`table`): ``estimate``, ``lo``, ``hi``, ``half_width`` and the
        method's extras.

        Parameters
        ----------
        level : float
            Coverage level in (0, 1).
        method : str
            ``"cond"`` (BLUP +- z cond_sd), ``"pred"`` (+- z pred_sd), ``"no-pooling"``,
            ``"morris"`` (Morris 1983; the default: in notebook 5's simulation study its
            coverage stays closest to nominal across few and many groups, small and large
            variance ratios; it needs 4 or more groups), ``"kass-steffey"`` (Kass & Steffey
            1989), ``"bootstrap"`` (Laird & Louis 1987; options ``n_boot``, ``random_seed``),
            ``"robust"`` (Armstrong, Kolesar & Plagborg-Moller 2022; options ``kurtosis``,
            ``weights``) or ``"full"`` (quantiles of full-Bayes ``draws``). Each method's
            formula and source are in :mod:`bayeshrink.intervals`.
        term, factor : str, optional
            The random term and its grouping factor; ``factor`` may be left out when the fit has
            one. The term must be the only random term of its factor (a scalar term).

        For a one-way fit the methods work on the fit's data (group means, n_j, the within-group
        sum of squares). For a formula fit they work on the term's conditional one-way problem
        (:func:`bayeshrink.intervals.term_arrays`): each level's own estimate (``no_pooling``)
        with its SE treated as known, the term's fixed effect and variance as mu and tau^2, and
        sigma and the other terms held at their estimates; so ``morris``, ``kass-steffey`` and
        ``bootstrap`` count the uncertainty of mu and tau^2 (as for summary data with known
        SEs), not that of sigma or of the other factors' variances.

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

        return interval_table(self, level=level, method=method, term=term, factor=factor, **options)

    # ----------------------------------------------------------------- display
    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return html_report(*self._html_parts())

    def to_dict(self) -> dict:
        """Plain Python numbers and lists, for JSON; the same keys for every fit.

        ``groups`` is the list of group labels; ``table`` holds ``table(term)`` per random term
        as {term: {column: [values]}}; ``coef``, ``ranef``, ``ranef_sd`` are {term: [values]};
        ``varcorr`` is ``varcorr()`` as {column: [values]}. NaN becomes None.
        """
        return {
            "data_kind": self.data_kind,
            "formula": self.formula,
            "method": self.method,
            "response": self.response,
            "group": plain(self.group),
            "n_groups": self.n_groups,
            "n_obs": self.n_obs,
            "fixef": {k: float(v) for k, v in self.fixef.items()},
            "fixef_se": {k: float(v) for k, v in self.fixef_se.items()},
            "sigma": plain(self.sigma),
            "random_terms": list(self.random_terms),
            "factors": self.factors,
            "cov_re": self.cov_re().to_numpy().tolist(),
            "varcorr": records(self.varcorr()),
            "boundary": bool(self.boundary),
            "loglik": float(self.loglik),
            "groups": [plain(g) for g in self.groups],
            "coef": records(self.coef()),
            "ranef": records(self.ranef()),
            "ranef_sd": records(self.ranef_sd()),
            "table": {t: records(self.table(t)) for t in self.random_terms},
            **self._extra_dict(),
        }

    def _extra_dict(self) -> dict:
        return {}
