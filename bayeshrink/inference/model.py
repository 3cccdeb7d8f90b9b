r"""The small model API every after-fit method is written over, in the spirit of lme4's
``merMod`` (``R/modular.R``: a deviance function of theta, ``refit(y)``, ``simulate``, the
conditional covariance).

Every fit is the model y = X beta + offset + sum_f Z_f b_f + e, with b_f ~ N(0, cov_re(f)) level
by level and e ~ N(0, sigma^2 I). :func:`model_of` turns a fit into a :class:`ModelPieces`:

* ``terms``: one :class:`Term` per grouping factor (lme4's order, most levels first): its name,
  the data columns whose interaction it is, its levels, its random terms and their blocks (the
  theta layout), ``cov_re``, the conditional modes ``b`` and lme4's ``condVar`` blocks. A
  one-factor fit (one-way or formula) is simply the one-term case.
* ``fixed_names``, ``beta``, ``vcov``, ``sigma``, ``method``, ``response``, ``loglik``,
  ``n_obs``, ``n_theta``, ``data_kind``.
* ``term(factor)``: one term by name (``factor`` optional when there is one).
* ``rows(df, random=)``: new data evaluated with the fit's formula (:class:`ModelRows`: X, the
  offset, and per term the rows' Z and each row's level among the fit's, -1 for a new level);
  ``own_rows()``: the fit's own rows where it keeps them (None otherwise).
* ``cond_var(rows)``: the conditional covariance of the rows' random part at the estimates:
  per row Var(z'b | y) (the levels' *joint* posterior, cross-factor covariances included) and
  the rows' loadings K on beta (a row's prediction error is k'(beta_hat - beta) with
  k = x - K; Henderson's prediction error variance).
* ``simulate(rng, nsim, rows)``: new responses with every random effect redrawn.
* ``backend`` (:mod:`.backends`), the deviance and refit of the model:
  ``ml_parts(theta)`` -> (log|M|, r^2) with beta profiled out (lme4's ``devfun2`` pieces) and
  ``ml_criterion(theta)`` -> (ML criterion with sigma profiled out too, gradient or None), on
  the scale ``scale`` (:class:`~.backends.Scale`); ``with_fixed(j, value)``: the same model
  with beta_j held at ``value``; ``responses(rng, n)``: responses simulated from the fitted
  model in the form the backend refits, and ``refit(response, theta0)`` -> beta, sigma and
  each term's covariance (lme4's ``refit``).

A fit may supply its own pieces by a method ``model_pieces()`` (the one dispatch point); a
generalized linear mixed model can give the same terms, rows and simulate, and a backend whose
criterion is its Laplace deviance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..api import FitResult
from ..errors import ColumnError, DataTypeError


@dataclass(frozen=True, eq=False)
class Term:
    """One grouping factor of a fit: its levels, random terms, theta layout and estimates."""

    name: str
    components: tuple[str, ...]  # the data columns whose interaction is the factor
    labels: pd.Index
    terms: tuple[str, ...]
    block_sizes: tuple[int, ...]
    cov_re: np.ndarray  # (q, q)
    b: np.ndarray  # (n_levels, q) conditional modes
    cond_cov: np.ndarray | None  # (n_levels, q, q) lme4's condVar (None for summary data)

    @property
    def q(self) -> int:
        return len(self.terms)

    @property
    def n_theta(self) -> int:
        return sum(s * (s + 1) // 2 for s in self.block_sizes)

    def blocks(self):
        """(terms of each block) in order."""
        start = 0
        for size in self.block_sizes:
            yield self.terms[start : start + size]
            start += size

    def values(self, df: pd.DataFrame) -> pd.Series:
        """Each row's level, labelled as the fit labels it: the factor's column, or for an
        interaction ``(1 | a:b)`` the columns' values joined as lme4 labels them."""
        from ..frames import interaction_labels

        if self.name in df.columns:
            return df[self.name]
        absent = [c for c in self.components if c not in df.columns]
        if absent:
            raise ColumnError(
                f"`newdata` must have the grouping column {self.name!r}"
                + (
                    f" (the interaction of {', '.join(map(repr, self.components))})"
                    if len(self.components) > 1
                    else ""
                )
                + f"; got no {', '.join(map(repr, absent))}. Add it, or pass random=False for "
                "the population-level prediction."
            )
        cols = list(self.components)
        return interaction_labels(df, self.components).where(df[cols].notna().all(axis=1))

    def positions(self, values: pd.Series) -> np.ndarray:
        return match_groups(self.labels, values)


@dataclass(frozen=True, eq=False)
class ModelRows:
    """Rows in the model's form: ``X`` (N x p), ``offset``; per term ``Z`` (N x q), ``codes``
    (each row's level among the term's labels, -1 for a level not in the fit, or every row -1
    when the rows are evaluated without their random part) and ``labels`` (each row's level,
    so that new levels draw new effects); the response ``y`` when the rows hold it."""

    index: pd.Index
    X: np.ndarray
    offset: np.ndarray | float
    Z: tuple[np.ndarray, ...]
    codes: tuple[np.ndarray, ...]
    labels: tuple[pd.Index | None, ...]
    y: np.ndarray | None = None


class _OneWayEncoder:
    """The one-way model's formula ``y ~ 1 + (1 | g)`` on new rows."""

    def evaluate(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        one = np.ones((len(df), 1))
        return one, one

    def check_columns(self, df, extra=()) -> None:
        return None

    def offset(self, df) -> float:
        return 0.0


@dataclass(frozen=True, eq=False)
class ModelPieces:
    """What a fit supplies to the after-fit methods (see the module docstring)."""

    fit: object
    method: str
    response: str
    data_kind: str
    fixed_names: tuple[str, ...]
    terms: tuple[Term, ...]
    beta: np.ndarray
    vcov: np.ndarray
    sigma: float
    loglik: float
    n_obs: int
    encoder: object  # new rows -> (X, Z of every block in the formula's order), offset
    block_order: tuple[tuple[str, int], ...]  # the encoder's Z blocks: (term, width)
    backend: object = field(repr=False)

    # ------------------------------------------------------------------ description
    @property
    def n_theta(self) -> int:
        return sum(t.n_theta for t in self.terms)

    @property
    def n_params(self) -> int:
        return len(self.beta) + self.n_theta + 1

    @property
    def oneway(self) -> bool:
        """The one-way model ``y ~ 1 + (1 | g)`` of group statistics (no formula to evaluate)."""
        return isinstance(self.encoder, _OneWayEncoder)

    @property
    def block_sizes(self) -> tuple[int, ...]:
        """Every term's blocks in order: the layout of the stacked theta."""
        return tuple(s for t in self.terms for s in t.block_sizes)

    @property
    def random_names(self) -> tuple[str, ...]:
        return tuple(n for t in self.terms for n in t.terms)

    def term(self, factor: str | None = None) -> Term:
        """The term of grouping factor ``factor`` (which may be left out when there is one)."""
        by_name = {t.name: t for t in self.terms}
        if factor in by_name or (factor is None and len(by_name) == 1):
            return by_name.get(factor, self.terms[0])
        names = list(by_name)
        raise ColumnError(
            f"`factor` must be one of the grouping factors {names}; got {factor!r}."
            if factor is not None
            else f"`factor` must name one of the grouping factors {names} for a fit with "
            f"several; got None. Pass e.g. factor={names[0]!r}."
        )

    def fixed_of_random(self, term: Term) -> np.ndarray:
        """E (terms x fixed): 1 where a random term has a fixed effect of the same name, so that
        E beta is each random term's population value."""
        E = np.zeros((term.q, len(self.fixed_names)))
        for k, t in enumerate(term.terms):
            if t in self.fixed_names:
                E[k, self.fixed_names.index(t)] = 1.0
        return E

    # ------------------------------------------------------------------ rows
    def rows(
        self, df: pd.DataFrame, *, random: bool = True, only: Term | None = None, response=False
    ) -> ModelRows:
        """``df`` evaluated with the fit's formula; ``random=False`` leaves every level unknown
        (and needs no grouping column), ``only`` every level but those of one term."""
        chosen = [t for t in self.terms if only is None or t is only]
        comps = tuple(dict.fromkeys(c for t in chosen for c in t.components))
        self.encoder.check_columns(df, extra=comps if random else ())
        X, Zall = self.encoder.evaluate(df)
        parts: dict[str, list[np.ndarray]] = {}
        start = 0
        for name, width in self.block_order:
            parts.setdefault(name, []).append(Zall[:, start : start + width])
            start += width
        n = len(df)
        codes, labels = [], []
        for t in self.terms:
            if random and t in chosen:
                vals = t.values(df)
                codes.append(t.positions(vals))
                labels.append(pd.Index(vals))
            else:
                codes.append(np.full(n, -1))
                labels.append(None)
        return ModelRows(
            index=df.index,
            X=np.asarray(X, float).reshape(n, -1),
            offset=self.encoder.offset(df),
            Z=tuple(np.hstack(parts[t.name]).reshape(n, -1) for t in self.terms),
            codes=tuple(codes),
            labels=tuple(labels),
            y=response_values(self.fit, df, required=False) if response else None,
        )

    def own_rows(self) -> ModelRows | None:
        """The fit's own rows, where it keeps them (several factors)."""
        rows = self.backend.own_rows(self)
        return None if rows is None else ModelRows(**rows)

    def cond_var(self, rows: ModelRows) -> tuple[np.ndarray, np.ndarray]:
        """Per row Var(z'b | y) over the levels the fit has seen, and the loadings K on beta."""
        return self.backend.cond_var(self, rows)

    def simulate(self, rng: np.random.Generator, nsim: int, rows: ModelRows) -> np.ndarray:
        """``nsim`` responses for ``rows`` (N x nsim): the fixed part at beta_hat, each term's
        effects redrawn level by level from N(0, cov_re) (a level of the rows, seen by the fit
        or not), e ~ N(0, sigma^2)."""
        N = len(rows.index)
        out = np.repeat((rows.X @ self.beta + rows.offset)[:, None], nsim, axis=1)
        for t, labels, Z in zip(self.terms, rows.labels, rows.Z, strict=True):
            codes, uniques = pd.factorize(labels)
            lam, U = np.linalg.eigh(0.5 * (t.cov_re + t.cov_re.T))
            root = U * np.sqrt(np.clip(lam, 0.0, None))[None, :]  # a zero direction draws 0
            b = rng.standard_normal((nsim, len(uniques), t.q)) @ root.T
            ok = codes >= 0
            contrib = np.zeros((N, nsim))
            contrib[ok] = np.einsum("iq,siq->is", Z[ok], b[:, codes[ok], :])
            out += contrib
        return out + self.sigma * rng.standard_normal((N, nsim))


# =============================================================================== building


def model_of(fit) -> ModelPieces:
    """The :class:`ModelPieces` of a fit (the one hook per fit class)."""
    from .backends import GroupBackend, RowsBackend

    own = getattr(fit, "model_pieces", None)
    if callable(own):
        return own()
    if not isinstance(fit, FitResult):
        raise DataTypeError(
            f"`fit` must be a fitted model (ShrinkageFit, MixedFit or MultiFit from bs.fit); "
            f"got {type(fit).__name__}. Fit it first, e.g. bs.fit(df, formula='y ~ x + (1 | g)')."
        )
    long = fit.data_kind == "long"
    common = dict(
        fit=fit,
        method=fit.method,
        response=fit.response,
        data_kind=fit.data_kind,
        fixed_names=tuple(fit.fixed_terms),
        beta=fit.fixef.to_numpy(dtype=float),
        vcov=fit.vcov.to_numpy(dtype=float),
        sigma=float(fit.sigma) if long else math.nan,
        loglik=float(fit.loglik),
        n_obs=int(fit.n_obs),
    )
    if is_multi(fit):
        d = fit.design
        comps = {}
        for blk in d.spec.blocks:
            comps.setdefault(blk.factor, tuple(blk.components))
        by_name = {f.name: f for f in d.factors}
        seen: dict[str, int] = {}
        order = []
        for blk in d.spec.blocks:
            k = seen.get(blk.factor, 0)
            order.append((blk.factor, by_name[blk.factor].block_sizes[k]))
            seen[blk.factor] = k + 1
        terms = tuple(
            Term(
                name=e.name,
                components=comps[e.name],
                labels=e.labels,
                terms=tuple(e.terms),
                block_sizes=tuple(e.block_sizes),
                cov_re=np.asarray(e.cov, float),
                b=np.asarray(e.b, float),
                cond_cov=np.asarray(e.cond_cov, float),
            )
            for e in fit.components.factors
        )
        if [f.name for f in d.factors] != [t.name for t in terms]:  # pragma: no cover
            raise RuntimeError("the design's factors are not in the fit's order")
        return ModelPieces(
            **common,
            terms=terms,
            encoder=d.encoder,
            block_order=tuple(order),
            backend=RowsBackend(
                fit, tuple(s for t in terms for s in t.block_sizes), [t.q for t in terms]
            ),
        )
    name = str(fit.group)
    mixed = hasattr(fit, "design")
    if long:
        cond = fit.ranef_cov() if mixed else (fit.ranef_sd().to_numpy(float) ** 2)[:, :, None]
    term = Term(
        name=name,
        components=tuple(getattr(fit, "group_columns", None) or (name,)),
        labels=fit.groups,
        terms=tuple(fit.random_terms),
        block_sizes=tuple(fit.block_sizes) if mixed else (1,),
        cov_re=fit.cov_re().to_numpy(dtype=float),
        b=fit.ranef().to_numpy(dtype=float),
        cond_cov=np.asarray(cond, float) if long else None,
    )
    if mixed:
        stats, ZtX, enc = fit.design.stats, fit.design.stats.B, fit.design.encoder
    else:
        stats = _oneway_stats(fit.stats) if long else None
        ZtX, enc = np.asarray(fit.n, dtype=float)[:, None, None], _OneWayEncoder()
    return ModelPieces(
        **common,
        terms=(term,),
        encoder=enc,
        block_order=((name, term.q),),
        backend=GroupBackend(stats, np.asarray(ZtX, float), term.block_sizes),
    )


def _oneway_stats(gs):
    """Cross-products of W = [1 | y] per group from a one-way fit's n, mean and ssw."""
    from ..lmm.design import MixedStats

    n = gs.n.astype(float)
    shift = float(np.dot(n, gs.mean) / n.sum())
    d = gs.mean - shift
    cross = np.empty((len(n), 2, 2))
    cross[:, 0, 0] = n
    cross[:, 0, 1] = cross[:, 1, 0] = n * d
    cross[:, 1, 1] = gs.ssw + n * d * d
    return MixedStats(
        cross=cross, n=n, x_idx=np.array([0]), z_idx=np.array([0]), y_shift=shift, intercept_col=0
    )


# =============================================================================== helpers


def is_multi(fit) -> bool:
    """A fit from the blocked estimator (``MultiFit``), which keeps its rows: judged by its
    method ``factor_fit``, not by importing the class, which imports this module."""
    return callable(getattr(fit, "factor_fit", None))


def check_long(fit, what: str) -> None:
    if getattr(fit, "data_kind", "long") == "summary":
        raise DataTypeError(
            f"`fit` must be fitted to long data (one row per observation) for {what}; got a fit "
            "to group estimates with known standard errors (bs.fit_summary). Those have no "
            "residual variance to predict with or resample."
        )


def match_groups(labels: pd.Index, values: pd.Series) -> np.ndarray:
    """Position of each row's group among the fit's labels, -1 for a level not in the fit.

    Labels match by value; where the fit's labels and the new column differ only in type (the
    fit read ``308`` as an integer, the new rows hold ``"308"``), by their text."""
    pos = labels.get_indexer(pd.Index(values))
    miss = (pos < 0) & pd.Series(values).notna().to_numpy()
    if miss.any():
        text = pd.Index([str(x) for x in labels])
        if text.is_unique:
            alt = text.get_indexer(pd.Index([str(x) for x in np.asarray(values)[miss]]))
            pos[np.flatnonzero(miss)] = alt
    return pos


def refit_by_method(fit, method: str):
    """The same model on the same data by another method ('ml' or 'reml')."""
    from ..estimate import estimate
    from ..lmm.estimate import estimate_lmm

    if is_multi(fit):
        from ..lmm.pls import fit_pls

        d = fit.design
        return type(fit)(d, fit_pls(d.y, d.X, list(d.factors), method))
    if hasattr(fit, "design"):
        d = fit.design
        return type(fit)(d, estimate_lmm(d.stats, d.block_sizes, method))
    return type(fit)(fit.stats, estimate(fit.stats, method))


def factor_columns(fit, factor: str | None = None) -> tuple[str, tuple[str, ...]]:
    """A grouping factor's name and the data columns whose interaction it is (one column for a
    plain factor); ``factor`` may be left out when the fit has one."""
    t = model_of(fit).term(factor)
    return t.name, t.components


def level_values(fit, df: pd.DataFrame, factor: str | None = None) -> pd.Series:
    """Each row's level of one grouping factor, labelled as the fit labels it."""
    return model_of(fit).term(factor).values(df)


def response_values(fit, data, *, required: bool = True) -> np.ndarray | None:
    """The response of ``fit`` evaluated on ``data`` (a transformation such as ``log(y)`` as in
    the formula); with ``required=False`` None where ``data`` does not hold it."""
    from ..frames import as_frame

    df = as_frame(data)
    name = fit.response
    if name in df.columns:
        return df[name].to_numpy(dtype=float)
    design = getattr(fit, "design", None)
    spec = getattr(design, "spec", None)
    if spec is None:
        if required:
            raise ColumnError(f"`data` must have the response column {name!r}.")
        return None
    from formulae.matrices import DesignMatrices

    try:
        if design.encoder is not None:
            df = design.encoder.prepare(df)  # datetime covariates as the fit converted them
        dm = DesignMatrices(spec.fixed, df, spec.env())
        return np.asarray(dm.response.design_matrix, dtype=float).reshape(-1)
    except Exception:
        if required:
            raise
        return None  # rows without the response: fitted() and simulate() do not need it
