"""Formulas with several grouping factors, crossed or nested, and their fit with lme4's names.

``(1 | a) + (1 | b)`` (crossed), ``(1 + x | a) + (1 | b)``, ``(1 | a/b)`` (lme4's
``(1 | a) + (1 | b:a)``), ``(1 | a:b)`` and several blocks on one factor. The factors are named
and their levels labelled as lme4 does: the inner factor of ``(1 | school/class)`` is
``class:school`` and class c1 of school S01 is ``c1:S01``. The estimator is
:mod:`bayeshrink.lmm.pls`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ..api import FitResult
from ..display import fmt, group_tables, group_tables_text
from ..errors import ColumnError, DataError, FormulaError, RepeatedLabelsWarning
from ..formula import FormulaSpec, ModelFrame, model_frame, parse_formula
from ..frames import Missing
from ..inference import InferenceMixin
from .design import check_fixed_rank
from .pls import FactorData, MultiComponents, fit_pls

__all__ = [
    "FactorFit",
    "MultiDesign",
    "MultiFit",
    "MultiSpec",
    "fit_multi",
    "needs_multi",
    "parse_multi",
]


#: one spec type for every formula (the names several-factor code has used)
MultiSpec = FormulaSpec
parse_multi = parse_formula


def needs_multi(formula: str) -> bool:
    """Does ``formula`` group by more than one factor, or by an interaction / nesting? (Those
    go to this estimator; one plain grouping column keeps the per-group cross-product path.)"""
    try:
        spec = parse_formula(formula)
    except FormulaError:
        return False  # the caller parses again and gives the error message
    return spec.several_factors


def check_effect_count(factors, n_obs: int) -> None:
    """The normal model's residual needs more rows than any factor has random effects."""
    for f in factors:
        if f.n_levels * f.q >= n_obs:
            raise DataError(
                f"there are more random effects for {f.name!r} ({f.q} terms x {f.n_levels} "
                f"levels = {f.q * f.n_levels}) than observations ({n_obs}); the variance "
                "components cannot be told apart from the residual. Use fewer random terms "
                "or a coarser grouping."
            )


@dataclass(frozen=True, eq=False)
class MultiDesign:
    """The evaluated model: response, fixed-effects matrix and one FactorData per factor."""

    spec: MultiSpec
    y: np.ndarray
    X: np.ndarray
    fixed_names: tuple[str, ...]
    factors: tuple[FactorData, ...]  # lme4's order: most levels first
    n_dropped: int = 0
    # new rows -> (X, Z of every block in the formula's order): formula.newdata.RowEncoder
    encoder: object = field(default=None, repr=False)
    # the fit's summed offset() terms, row by row (None without one); ``y`` is the response
    # minus the offset, what the terms model
    offset: np.ndarray | None = field(default=None, repr=False)
    # the cross-products (lmm.blocks.PLSBlocks) of a fit computed inside an engine, whose rows
    # (y, X, each factor's codes and Z) stayed there (engines_blocks.RowsInEngine); else None
    blocks: object = field(default=None, repr=False)

    @classmethod
    def from_formula(
        cls, data, formula: str, missing: Missing = "raise", *, spec: FormulaSpec | None = None
    ) -> MultiDesign:
        spec = spec if spec is not None else parse_formula(formula)
        return cls.from_frame(model_frame(data, spec, missing))

    @classmethod
    def from_engine(cls, data, formula: str, missing: Missing = "raise") -> MultiDesign:
        """The design of an engine frame (polars, DuckDB, Dask, Spark): the cross-product
        blocks computed there (:func:`bayeshrink.engines_blocks.engine_multi_blocks`) and the
        formula's encoder; the rows stay in the engine (``y``, ``X`` and each factor's
        ``codes`` and ``Z`` are :class:`~bayeshrink.engines_blocks.RowsInEngine`, which say so
        when a method needs them)."""
        from ..engines_blocks import engine_multi_blocks

        spec = parse_formula(formula)
        blocks, factors, ec = engine_multi_blocks(data, spec, missing)
        check_fixed_rank(blocks.XtX, list(ec.fixed_names))  # centred when there is an intercept
        check_effect_count(factors, blocks.N)
        check_dense_cap(factors)
        no_rows = factors[0].codes
        return cls(
            spec=spec,
            y=no_rows,
            X=no_rows,
            fixed_names=tuple(ec.fixed_names),
            factors=tuple(factors),
            n_dropped=ec.n_bad,
            encoder=ec.enc,
            offset=no_rows if ec.offset_exprs else None,
            blocks=blocks,
        )

    @classmethod
    def from_frame(cls, frame: ModelFrame) -> MultiDesign:
        """One FactorData per grouping factor of an evaluated formula."""
        spec = frame.spec
        # one FactorData per distinct factor; its blocks in the order of the formula
        per_factor: dict[str, list[tuple[np.ndarray, tuple[str, ...]]]] = {}
        for blk, Z, names in zip(spec.blocks, frame.blocks, frame.block_names, strict=True):
            per_factor.setdefault(blk.factor, []).append((Z, names))
        factors = []
        for name, parts in per_factor.items():
            codes, labels = frame.factor(name, text=True)
            factors.append(
                FactorData(
                    name=name,
                    codes=codes,
                    labels=labels,
                    Z=np.hstack([p[0] for p in parts]),
                    terms=tuple(t for p in parts for t in p[1]),
                    block_sizes=tuple(p[0].shape[1] for p in parts),
                )
            )
        # lme4 orders the random-effects terms by number of levels, most first (stable)
        factors.sort(key=lambda f: -f.n_levels)
        design = cls(
            spec=spec,
            y=frame.working_response,
            X=frame.X,
            fixed_names=frame.fixed_names,
            factors=tuple(factors),
            n_dropped=frame.n_dropped,
            encoder=frame.encoder,
            offset=frame.offset,
        )
        design._check(frame.data)
        return design

    def _check(self, df: pd.DataFrame) -> None:
        """Designs lme4 refuses or silently misreads: :meth:`check_terms` (every mixed model)
        and, for the normal model, random effects that outnumber the rows."""
        self.check_terms()
        check_effect_count(self.factors, len(self.y))

    def check_terms(self) -> None:
        """The checks of every mixed model, normal or not (GLMMs call this alone): the fixed
        effects of full rank, every grouping factor with two levels or more, and the warning for
        labels that restart within another factor."""
        if self.X.shape[1]:
            # centred when there is an intercept, so a covariate far from 0 (x + 1e6) is not
            # mistaken for a multiple of the intercept
            ones = np.all(self.X == 1.0, axis=0)
            Xc = self.X - np.where(ones, 0.0, self.X.mean(axis=0)) if ones.any() else self.X
            check_fixed_rank(Xc.T @ Xc, list(self.fixed_names))
        for f in self.factors:
            if f.n_levels < 2:
                raise DataError(
                    f"the grouping factor {f.name!r} must have at least 2 levels; got "
                    f"{f.n_levels} ({f.labels[0]!r}). A variance between levels cannot be "
                    f"estimated from one level: drop (... | {f.name}) from the formula."
                )
        check_dense_cap(list(self.factors))
        # Class labels that repeat across the levels of another factor: (1 | class) treats
        # class c1 of every school as one class. Data alone cannot tell that from a crossed
        # design with missing cells, so the warning is for the pattern labels-within-parent
        # leave: every level of the parent holds the first k labels of the child (c1..ck),
        # while some parent holds fewer than all of them.
        singles = [f for f in self.factors if ":" not in f.name]
        for f in singles:
            for g in singles:
                if g is f:
                    continue
                if _labels_restart_per_parent(f.codes, g.codes, f.n_levels, g.n_levels):
                    warnings.warn(
                        f"the labels of {f.name!r} restart within every level of {g.name!r} "
                        f"(each {g.name} holds {f.name} {f.labels[0]!r}, {f.labels[1]!r}, ...); "
                        f"(1 | {f.name}) treats {f.name} {f.labels[0]!r} of every {g.name} as "
                        f"one level. If {f.name} is nested in {g.name}, write "
                        f"(1 | {g.name}/{f.name}); if the design is crossed, ignore this warning.",
                        RepeatedLabelsWarning,
                        stacklevel=5,
                    )


def check_dense_cap(factors) -> None:
    """The criterion eliminates the factor with most random effects first, level by level, and
    factors the rest (their Schur complement) densely: at most ``lmm.pls.MAX_DENSE`` random
    effects together. Say which factors exceed it, with their levels, and what to do."""
    from .blocks import elimination_order
    from .pls import MAX_DENSE

    order = elimination_order(factors)
    rest = [factors[k] for k in order[1:]]
    total = sum(f.n_levels * f.q for f in rest)
    if total <= MAX_DENSE:
        return
    first = factors[order[0]]
    parts = ", ".join(
        f"{f.name!r} {f.n_levels} levels x {f.q} term{'s' if f.q > 1 else ''}" for f in rest
    )
    raise DataError(
        f"the grouping factors after {first.name!r} ({first.n_levels} levels, eliminated level by "
        f"level) must have at most {MAX_DENSE} random effects together, because their Schur "
        f"complement is factored as one dense matrix; got {total}: {parts}. Coarsen "
        f"{repr(rest[0].name) if len(rest) == 1 else 'those factors'} (merge rare levels), drop "
        "random slopes on it, or fit this design with lme4 or MixedModels.jl (sparse Cholesky)."
    )


def _labels_restart_per_parent(child: np.ndarray, parent: np.ndarray, nc: int, npar: int) -> bool:
    """Does every parent level hold exactly the child levels 0..k-1 (k varying), with some
    parent holding fewer than all nc? (Child codes follow the sorted labels.)"""
    if nc < 2 or npar < 2:
        return False
    seen = np.zeros((npar, nc), dtype=bool)
    seen[parent, child] = True
    k = seen.sum(axis=1)
    prefix = np.arange(nc)[None, :] < k[:, None]
    return bool(np.array_equal(seen, prefix) and (k < nc).any() and (k > 1).all())


# ---------------------------------------------------------------------------- one factor's view
class FactorFit(FitResult):
    """One grouping factor of a :class:`MultiFit`, answering the one result API
    (:class:`~bayeshrink.api.FitResult`) as a one-factor fit would: ``groups`` are the factor's
    levels, ``random_terms`` its terms, ``table(term)``, ``coef()``, ``ranef()`` ... its rows;
    ``varcorr()`` its rows and the residual. The fixed effects, sigma, log-likelihood and
    boundary flag are the whole fit's. What the plots and the CLI read, for one factor."""

    def __init__(self, parent: MultiFit, factor: str):
        self._parent = parent
        self._e = parent._factor(factor)

    formula = property(lambda self: self._parent.formula)
    method = property(lambda self: self._parent.method)
    response = property(lambda self: self._parent.response)
    group = property(lambda self: self._e.name)
    fixed_terms = property(lambda self: self._parent.fixed_terms)
    random_terms = property(lambda self: list(self._e.terms))
    groups = property(lambda self: pd.Index(self._e.labels, name=self._e.name))
    n = property(lambda self: self._e.n.astype(int))
    block_sizes = property(lambda self: tuple(self._e.block_sizes))
    n_groups = property(lambda self: len(self._e.labels))
    n_obs = property(lambda self: self._parent.n_obs)
    fixef = property(lambda self: self._parent.fixef)
    vcov = property(lambda self: self._parent.vcov)
    sigma = property(lambda self: self._parent.sigma)
    boundary = property(lambda self: self._parent.boundary)
    loglik = property(lambda self: self._parent.loglik)

    def _cov_re(self) -> pd.DataFrame:
        return self._parent.cov_re(self._e.name)

    def _ranef(self) -> pd.DataFrame:
        return self._parent.ranef(self._e.name)

    def _ranef_sd(self) -> pd.DataFrame:
        return self._parent.ranef_sd(self._e.name)

    def _ranef_cov(self) -> np.ndarray:
        return self._parent.ranef_cov(self._e.name)

    def _coef(self) -> pd.DataFrame:
        return self._parent.coef(self._e.name)

    def _own_fit(self) -> pd.DataFrame:
        return self._parent.own_fit(self._e.name)

    def _own_se(self) -> pd.DataFrame:
        return self._parent.own_se(self._e.name)

    def _shrinkage_frame(self) -> pd.DataFrame:
        return self._parent.shrinkage(self._e.name)

    def _pred_sd_frame(self) -> pd.DataFrame:
        return self._parent.pred_sd(self._e.name)

    def summary(self) -> str:
        """The whole fit's components, then this factor's per-level tables (bounded)."""
        tables = group_tables(self)  # this view's table() has no factor argument
        return "\n".join(
            [
                f"Grouping factor {self._e.name} of:",
                *self._parent._summary_head(),
                "",
                group_tables_text(tables, "levels"),
            ]
        )

    def __repr__(self) -> str:
        return f"FactorFit({self._e.name!r} of {self._parent!r})"

    def _html_parts(self):
        lines = [
            ("factor", f"{self._e.name} ({self.n_groups} levels)"),
            ("method", self.method.upper()),
            ("observations", str(self.n_obs)),
            *((f"SD {k}", fmt(v)) for k, v in self.sd_re().items()),
            ("sigma", fmt(self.sigma)),
            ("boundary", "yes (singular fit)" if self.boundary else "no"),
        ]
        return (
            f"Grouping factor {self._e.name} of {self.formula}",
            lines,
            "no_pooling is the likelihood each level's data imply once the other factors are "
            "integrated out, so prior x likelihood = posterior level by level.",
            group_tables(self),
            "levels",
        )


# ---------------------------------------------------------------------------- the fit
@dataclass(frozen=True, eq=False)
class MultiFit(FitResult, InferenceMixin):
    """A linear mixed model with one or more grouping factors, with lme4's names.

    It answers the one result API of :class:`~bayeshrink.api.FitResult` with the same
    signatures: ``factors`` lists the grouping factors as lme4 names them (most levels first);
    ``ranef(factor)``, ``ranef_sd(factor)``, ``ranef_cov(factor)``, ``coef(factor)``,
    ``cov_re(factor)``, ``sd_re(factor)``, ``corr_re(factor)`` and ``table(term, factor)`` give
    one factor's levels; the factor may be left out when there is one.
    """

    design: MultiDesign
    components: MultiComponents

    @property
    def formula(self) -> str:
        return self.design.spec.formula

    @property
    def method(self) -> str:
        return self.components.method

    @property
    def factors(self) -> list[str]:
        return [f.name for f in self.components.factors]

    @property
    def fixed_terms(self) -> list[str]:
        return list(self.design.fixed_names)

    @property
    def response(self) -> str:
        return self.design.spec.response

    def factor_fit(self, factor: str | None = None) -> FactorFit:
        """One factor as a one-factor fit (the one result API): what plots read."""
        return FactorFit(self, self._factor(factor).name)

    @property
    def n_groups(self) -> int:
        """Levels of the factor with fewest levels: the one whose variance the data pin down
        least (what a sampler's step size has to respect)."""
        return min(len(e.labels) for e in self.components.factors)

    @property
    def n_obs(self) -> int:
        return self.components.n_obs

    @cached_property
    def fixef(self) -> pd.Series:
        return pd.Series(self.components.beta, index=self.fixed_terms, name="fixef")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        names = self.fixed_terms
        return pd.DataFrame(self.components.vcov_beta, index=names, columns=names)

    @cached_property
    def fixef_se(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.components.vcov_beta)), index=self.fixed_terms)

    @property
    def sigma(self) -> float:
        return self.components.sigma

    @property
    def theta(self) -> np.ndarray:
        return self.components.theta.copy()

    @property
    def loglik(self) -> float:
        return self.components.loglik

    @property
    def criterion(self) -> float:
        return self.components.criterion

    @property
    def boundary(self) -> bool:
        """lme4's ``isSingular()``: some factor's covariance is estimated singular."""
        return self.components.boundary

    data_kind = "long"

    @property
    def n_params(self) -> int:
        """lme4's ``attr(logLik(m), "df")``: fixed effects + theta + sigma."""
        return len(self.fixed_terms) + len(self.theta) + 1

    def information(self) -> dict[str, float]:
        """lme4's ``logLik``, ``AIC``, ``BIC`` (log of the number of observations) and
        ``deviance`` (``REMLcrit`` for a REML fit)."""
        ll, k = float(self.loglik), self.n_params
        return {
            "loglik": ll,
            "n_params": k,
            "aic": -2.0 * ll + 2.0 * k,
            "bic": -2.0 * ll + k * np.log(self.n_obs),
            "deviance": float(self.criterion),
        }

    def _factor(self, factor: str | None):
        ests = self.components.factors
        if factor is None:
            if len(ests) == 1:
                return ests[0]
            raise ColumnError(
                f"`factor` must name one of the grouping factors {self.factors} when the model "
                "has several; got None. Pass e.g. factor="
                f"{self.factors[0]!r}."
            )
        for e in ests:
            if e.name == factor:
                return e
        raise ColumnError(
            f"`factor` must be one of the grouping factors {self.factors}; got {factor!r}."
        )

    def cov_re(self, factor: str | None = None) -> pd.DataFrame:
        """lme4's ``VarCorr(m)[[factor]]``: one factor's random-effects covariance."""
        e = self._factor(factor)
        return pd.DataFrame(e.cov, index=list(e.terms), columns=list(e.terms))

    def ranef(self, factor: str | None = None) -> pd.DataFrame:
        """Conditional modes of one factor's random effects: level x term, lme4's ``ranef()``."""
        e = self._factor(factor)
        return pd.DataFrame(e.b, index=e.labels, columns=list(e.terms))

    def ranef_sd(self, factor: str | None = None) -> pd.DataFrame:
        """Conditional SDs (lme4's ``ranef(condVar = TRUE)``): level x term."""
        e = self._factor(factor)
        sd = np.sqrt(np.diagonal(e.cond_cov, axis1=1, axis2=2))
        return pd.DataFrame(sd, index=e.labels, columns=list(e.terms))

    def ranef_cov(self, factor: str | None = None) -> np.ndarray:
        """Conditional covariances of one factor's levels (lme4's ``postVar``): (levels, terms,
        terms). Levels of different crossed factors are correlated a posteriori too; those
        covariances are in :meth:`fitted`'s joint system, not here."""
        return np.array(self._factor(factor).cond_cov, dtype=float)

    def coef(self, factor: str | None = None) -> pd.DataFrame:
        """Fixed plus the factor's random effects, lme4's ``coef()``."""
        e = self._factor(factor)
        out = pd.DataFrame(
            np.tile(self.fixef.to_numpy(), (len(e.labels), 1)),
            index=e.labels,
            columns=self.fixed_terms,
        )
        b = self.ranef(e.name)
        for t in e.terms:
            out[t] = (out[t] if t in out else 0.0) + b[t]
        return out

    def _E(self, e) -> np.ndarray:
        """E (terms x fixed terms): 1 where a random term has a fixed effect of the same name."""
        E = np.zeros((len(e.terms), len(self.fixed_terms)))
        for k, t in enumerate(e.terms):
            if t in self.fixed_terms:
                E[k, self.fixed_terms.index(t)] = 1.0
        return E

    def _frame(self, e, values) -> pd.DataFrame:
        return pd.DataFrame(values, index=e.labels, columns=list(e.terms))

    @cached_property
    def _own(self) -> dict:
        """Per factor and level: the level's own estimate of its terms (no pooling), its
        covariance / sigma^2, and the shrinkage weights.

        The own estimate is the likelihood of b_l implied by the fit: the normal whose product
        with the prior N(0, cov_re) is the level's conditional distribution N(ranef, ranef_cov),
        precision ranef_cov^-1 - cov_re^-1. Prior x likelihood = posterior then holds exactly for
        every level, and with one factor it is the level's own least-squares fit given the fixed
        effects (the one-factor fit's own_fit). With several factors it counts the other
        factors' uncertainty (a batch of casks: its mean, with the casks' variance in its SE).
        The shrinkage weights are diag(ranef_cov cov_re^-1).

        Where cov_re is singular (a boundary fit) there is no such likelihood; the own estimate
        is then the level's least-squares fit with the other factors held at their BLUPs, and
        the weights 1 - diag(S_l Z_l'Z_l), S_l = T (T'Z_l'Z_l T + I)^-1 T'. Either way
        blup = prior_mean + (1 - shrinkage)(no_pooling - prior_mean) for a one-term factor."""
        from .blocks import psd_cholesky

        d = self.design
        comps = {e.name: e for e in self.components.factors}
        sums = self._level_sums()
        out = {}
        for f in d.factors:
            e = comps[f.name]
            n, q = f.n_levels, f.q
            A, c = sums[f.name]
            sv = np.linalg.svd(A, compute_uv=False)
            ok = sv[:, -1] > sv[:, 0] * 1e-10 * q
            own = np.full((n, q), np.nan)
            cov = np.full((n, q, q), np.nan)
            if ok.any():
                inv = np.linalg.inv(A[ok])
                cov[ok] = inv
                own[ok] = np.einsum("lab,lb->la", inv, c[ok])
            rel = e.cov / self.sigma**2 if self.sigma > 0 else np.zeros_like(e.cov)
            T = np.zeros_like(rel)
            start = 0
            for size in f.block_sizes:
                sl = slice(start, start + size)
                T[sl, sl] = psd_cholesky(0.5 * (rel[sl, sl] + rel[sl, sl].T))
                start += size
            inner = np.linalg.inv(T.T @ A @ T + np.eye(q))
            S = T @ inner @ T.T
            shrink = 1.0 - np.diagonal(S @ A, axis1=1, axis2=2)
            ev = np.linalg.eigvalsh(e.cov) if q else np.zeros(0)
            if q and ev[0] > 1e-10 * max(ev[-1], np.finfo(float).tiny):
                # the likelihood implied by prior x likelihood = posterior, level by level
                Cinv = np.linalg.inv(e.cond_cov)
                Sinv = np.linalg.inv(e.cov)
                Lk = Cinv - Sinv[None, :, :]
                Lk = 0.5 * (Lk + np.transpose(Lk, (0, 2, 1)))
                lev = np.linalg.eigvalsh(Lk)
                ok = lev[:, 0] > 1e-10 * np.abs(lev).max(axis=1)
                own = np.full((n, q), np.nan)
                cov = np.full((n, q, q), np.nan)
                if ok.any():
                    Lk_inv = np.linalg.inv(Lk[ok])
                    own[ok] = np.einsum("lab,lbc,lc->la", Lk_inv, Cinv[ok], e.b[ok])
                    cov[ok] = Lk_inv / self.sigma**2
                shrink = np.diagonal(e.cond_cov @ Sinv, axis1=1, axis2=2)
            out[f.name] = {"own": own, "cov": cov, "shrink": shrink}
        return out

    def _level_sums(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per factor and level, Z_l'Z_l (n, q, q) and Z_l'r (n, q) on the data's scale, r the
        response minus the fixed effects and the other factors' conditional modes: from the
        rows, or for an engine fit from its blocks (Z = Zs (I x Az), y = my + sy ys,
        X = Xs A, so Z_l'r = Az'(my Zs_l'1 + sy Zs_l'ys - Zs_l'Xs A beta - sum_g Zs_l'Zs_g u_g)
        with u_g = Az_g b_g level by level, the factor's own term added back)."""
        d = self.design
        comps = {e.name: e for e in self.components.factors}
        out = {}
        if d.blocks is None:
            fitted = d.X @ self.components.beta if d.X.shape[1] else np.zeros(len(d.y))
            parts = {f.name: (f.Z * comps[f.name].b[f.codes]).sum(axis=1) for f in d.factors}
            resid = d.y - fitted - sum(parts.values())
            for f in d.factors:
                r = resid + parts[f.name]
                n, q = f.n_levels, f.q
                A = np.empty((n, q, q))
                c = np.empty((n, q))
                for a in range(q):
                    c[:, a] = np.bincount(f.codes, weights=f.Z[:, a] * r, minlength=n)
                    for b in range(a, q):
                        v = np.bincount(f.codes, weights=f.Z[:, a] * f.Z[:, b], minlength=n)
                        A[:, a, b] = A[:, b, a] = v
                out[f.name] = (A, c)
            return out
        from .blocks import elimination_order

        bl = d.blocks
        factors = list(d.factors)
        offs, o = {}, 0
        for k in elimination_order(factors):
            offs[k] = o
            o += factors[k].n_levels * factors[k].q
        u = np.zeros(o)
        for k, f in enumerate(factors):
            u[offs[k] : offs[k] + f.n_levels * f.q] = (comps[f.name].b @ bl.Az[k].T).ravel()
        beta = self.components.beta
        zr = bl.sy * bl.Zty - bl.ZtZ @ u
        if beta.size:
            zr = zr - bl.ZtX @ (bl.A @ beta)
        if bl.icpt is not None:
            zr = zr + bl.my * bl.ZtX[:, bl.icpt]  # Zs'1: the intercept column of Xs is 1
        for k, f in enumerate(factors):
            n, q = f.n_levels, f.q
            idx = offs[k] + np.arange(n * q).reshape(n, q)
            D = np.empty((n, q, q))  # the levels' own blocks of Z'Z
            for a in range(q):
                for b in range(q):
                    D[:, a, b] = np.asarray(bl.ZtZ[idx[:, a], idx[:, b]]).ravel()
            own = zr[idx] + np.einsum("lab,lb->la", D, u[idx])
            Az = bl.Az[k]
            out[f.name] = (np.einsum("ba,lbc,cd->lad", Az, D, Az), own @ Az)
        return out

    def own_fit(self, factor: str | None = None) -> pd.DataFrame:
        """No pooling: each level's own estimate of its coefficients (the term's fixed effect
        plus the deviation the level's data imply; see ``_own``). NaN for a level whose data
        cannot estimate all its terms."""
        e = self._factor(factor)
        beta_z = self._E(e) @ self.components.beta
        return self._frame(e, beta_z[None, :] + self._own[e.name]["own"])

    def own_se(self, factor: str | None = None) -> pd.DataFrame:
        """Standard errors of ``own_fit()`` (the implied likelihood's SDs)."""
        e = self._factor(factor)
        cov = self._own[e.name]["cov"]
        return self._frame(e, self.sigma * np.sqrt(np.diagonal(cov, axis1=1, axis2=2)))

    def shrinkage(self, factor: str | None = None) -> pd.DataFrame:
        """Per level and term, the weight on the prior mean, diag(ranef_cov cov_re^-1) (see
        ``_own``). With one term, blup = prior_mean + (1 - shrinkage)(no_pooling - prior_mean)
        exactly."""
        e = self._factor(factor)
        return self._frame(e, self._own[e.name]["shrink"])

    def pred_sd(self, factor: str | None = None) -> pd.DataFrame:
        """SDs of ``coef()`` counting the uncertainty of the fixed effects too (Henderson's
        prediction-error variance of E beta + b): Var = E V_beta E' + Var(b_hat - b) + E C + C'E',
        C = Cov(beta_hat, b_hat - b)."""
        e = self._factor(factor)
        E = self._E(e)
        V = e.err_cov + E @ self.components.vcov_beta @ E.T
        EC = E[None, :, :] @ e.beta_err_cov  # (n, q, q)
        V = V + EC + np.transpose(EC, (0, 2, 1))
        return self._frame(e, np.sqrt(np.diagonal(V, axis1=1, axis2=2)))

    def table(self, term: str | None = None, factor: str | None = None) -> pd.DataFrame:
        """One term of one factor, per level, with the columns of every fit's ``table()``:
        n, no_pooling (own fit given the other factors), se, shrinkage, blup (coef), cond_sd,
        pred_sd, prior_mean, prior_sd."""
        e = self._factor(factor)
        term = e.terms[0] if term is None else term
        if term not in e.terms:
            raise ColumnError(
                f"`term` must be one of the random terms of {e.name} {list(e.terms)}; got {term!r}."
            )
        k = e.terms.index(term)
        prior_mean = float(self.fixef[term]) if term in self.fixef else 0.0
        return pd.DataFrame(
            {
                "n": e.n.astype(int),
                "no_pooling": self.own_fit(e.name)[term].to_numpy(),
                "se": self.own_se(e.name)[term].to_numpy(),
                "shrinkage": self.shrinkage(e.name)[term].to_numpy(),
                "blup": prior_mean + e.b[:, k],
                "cond_sd": np.sqrt(e.cond_cov[:, k, k]),
                "pred_sd": self.pred_sd(e.name)[term].to_numpy(),
                "prior_mean": prior_mean,
                "prior_sd": np.sqrt(e.cov[k, k]),
            },
            index=e.labels,
        )

    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor."""
        rows = []
        for e in self.components.factors:
            start = 0
            for bi, size in enumerate(e.block_sizes):
                grp = e.name if bi == 0 else f"{e.name}.{bi}"
                sl = list(range(start, start + size))
                for i in sl:
                    rows.append((grp, e.terms[i], None, e.cov[i, i], np.sqrt(e.cov[i, i])))
                for ai, i in enumerate(sl):
                    for j in sl[ai + 1 :]:
                        c = e.cov[i, j]
                        d = np.sqrt(e.cov[i, i] * e.cov[j, j])
                        rows.append((grp, e.terms[i], e.terms[j], c, c / d if d > 0 else np.nan))
                start += size
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        out = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        # lme4's NA: None in an object column (pandas would turn an all-None column into NaN)
        for c in ("var1", "var2"):
            out[c] = pd.Series([r[1 if c == "var1" else 2] for r in rows], dtype=object)
        return out

    def summary(self) -> str:
        """Variance components and fixed effects as lme4 prints them, then each factor's
        per-level tables (bounded like a pandas repr; ``table(factor=...)`` has every row)."""
        tables = [
            group_tables_text(group_tables(self.factor_fit(f), factor=f), "levels")
            for f in self.factors
        ]
        return "\n".join([*self._summary_head(), "", *tables])

    def _summary_head(self) -> list[str]:
        crit = "REML criterion" if self.method == "reml" else "-2 log-likelihood"
        vc = self.varcorr()
        fe = pd.DataFrame(
            {"estimate": self.fixef, "se": self.fixef_se, "t": self.fixef / self.fixef_se}
        )
        levels = ", ".join(f"{e.name} {len(e.labels)}" for e in self.components.factors)
        lines = [
            f"Linear mixed model fit by {self.method.upper()}: {self.formula}",
            f"{crit} {self.criterion:.4f}; {self.n_obs} observations; levels: {levels}",
            "Random effects:",
            vc.to_string(index=False, float_format=lambda v: f"{v:.5g}"),
            "Fixed effects:",
            fe.to_string(float_format=lambda v: f"{v:.5g}"),
        ]
        if self.boundary:
            lines.append("boundary (singular) fit: see help('isSingular') in lme4")
        return lines

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(self.summary())}</pre>"

    def to_dict(self) -> dict:
        """Plain Python numbers and lists, for JSON."""
        return {
            "formula": self.formula,
            "method": self.method,
            "factors": self.factors,
            "fixef": {k: float(v) for k, v in self.fixef.items()},
            "fixef_se": {k: float(v) for k, v in self.fixef_se.items()},
            "sigma": float(self.sigma),
            "theta": self.theta.tolist(),
            "varcorr": [
                {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
                for row in self.varcorr().to_dict("records")
            ],
            "boundary": self.boundary,
            "loglik": float(self.loglik),
            "ranef": {
                f: {
                    "levels": [str(v) for v in self.ranef(f).index],
                    "values": {k: v.tolist() for k, v in self.ranef(f).items()},
                    "sd": {k: v.tolist() for k, v in self.ranef_sd(f).items()},
                }
                for f in self.factors
            },
        }

    def __repr__(self) -> str:
        return (
            f"MultiFit({self.formula!r}, method={self.method!r}, factors={self.factors}, "
            f"sigma={self.sigma:.5g}, boundary={self.boundary})"
        )


def fit_multi(data, formula: str, method: str = "reml", *, missing: Missing = "raise") -> MultiFit:
    """Fit a linear mixed model with one or more grouping factors by REML or ML.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> from bayeshrink.lmm.multi import fit_multi
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "y": [1.0, 2.1, 2.9, 4.2, 1.2, 2.0, 3.1, 3.9, 0.8, 2.2, 3.0, 4.1],
    ...     "a": list("pppqqqrrrsss"), "b": list("xyzxyzxyzxyz")})
    >>> m = fit_multi(df, "y ~ 1 + (1 | a) + (1 | b)")
    >>> m.factors
    ['a', 'b']
    """
    from ..frames import is_engine_frame

    if is_engine_frame(data):  # polars, DuckDB, Dask, Spark: the blocks come from the engine
        design = MultiDesign.from_engine(data, formula, missing)
        return MultiFit(
            design, fit_pls(None, None, list(design.factors), method, blocks=design.blocks)
        )
    design = MultiDesign.from_formula(data, formula, missing=missing)
    comp = fit_pls(design.y, design.X, list(design.factors), method)
    return MultiFit(design, comp)
