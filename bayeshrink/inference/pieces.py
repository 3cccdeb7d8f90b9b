"""What every fit supplies to the after-fit methods (:func:`fit_pieces`), and the helpers
they share: group matching, refits by another method, the sparse system of a several-factor
fit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..api import FitResult
from ..errors import (
    ColumnError,
    DataError,
    DataTypeError,
)

# =============================================================================== the hook


@dataclass(frozen=True, eq=False)
class FitPieces:
    """What every fit supplies to predict / confint / anova (see the module docstring).

    Built by :func:`fit_pieces` from the fit's public accessors (``fixef``, ``vcov``,
    ``cov_re``, ``sigma``, ``ranef()``, ``ranef_cov()`` / ``ranef_sd()``, ``n``, ``loglik``)
    plus three things only the fit knows: Z_j'X_j per group (``ZtX``, for the fixed effects'
    share of a group's prediction error), its cross-products and random-effects layout
    (``stats``, ``block_sizes``, for profiles and the bootstrap) and ``encoder`` (new rows to
    X and Z with the fit's formula).

    Per grouping factor the random effects are listed in ``factors``: ``{factor: (labels,
    terms)}``; the arrays below are for the single factor of a one-factor fit (``factor``). A
    fit with several grouping factors (``MultiFit``) gives a :class:`MultiPieces` instead: a
    row's prediction adds z_f'b_f over the factors, its variance uses the joint conditional
    covariance of those b_f from the fit's sparse mixed-model equations (:class:`MultiSystem`;
    crossed factors are correlated a posteriori) and, for a level not in the fit, that factor's
    ``cov_re``; the parameter names carry a ``|factor`` suffix per factor; nesting in ``anova``
    compares blocks factor by factor (``_blocks``).
    """

    fit: object
    method: str
    response: str
    factor: str
    labels: pd.Index
    fixed_names: tuple[str, ...]
    random_names: tuple[str, ...]
    block_sizes: tuple[int, ...]
    beta: np.ndarray  # (p,)
    vcov: np.ndarray  # (p, p)
    sigma: float
    cov_re: np.ndarray  # (q, q)
    b: np.ndarray  # (J, q) BLUPs of the deviations
    S: np.ndarray  # (J, q, q) Var(b_j | y) / sigma^2
    ZtX: np.ndarray  # (J, q, p)
    loglik: float
    n_obs: int
    n_theta: int
    stats: object  # lmm.design.MixedStats (None for summary data)
    encoder: object  # callable(DataFrame) -> (X, Z)

    @property
    def factors(self) -> dict[str, tuple[pd.Index, tuple[str, ...]]]:
        return {self.factor: (self.labels, self.random_names)}

    @property
    def n_params(self) -> int:
        return len(self.beta) + self.n_theta + 1


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
        cross=cross,
        n=n,
        x_idx=np.array([0]),
        z_idx=np.array([0]),
        y_shift=shift,
        intercept_col=0,
    )


def is_mixed(fit) -> bool:
    """A one-factor formula fit (MixedFit): it carries its per-group design."""
    return isinstance(fit, FitResult) and hasattr(fit, "design") and not is_multi(fit)


def check_long(fit, what: str) -> None:
    if getattr(fit, "data_kind", "long") == "summary":
        raise DataTypeError(
            f"`fit` must be fitted to long data (one row per observation) for {what}; got a fit "
            "to group estimates with known standard errors (bs.fit_summary). Those have no "
            "residual variance to predict with or resample."
        )


def fit_pieces(fit) -> FitPieces:
    """The bundle a fit supplies to the functions of this module (the one hook per fit class).

    A fit with several grouping factors (``MultiFit``) gives a :class:`MultiPieces`."""
    if is_multi(fit):
        return multi_pieces(fit)
    if is_mixed(fit):
        c = fit.components
        d = fit.design
        enc = d.encoder
        return FitPieces(
            fit=fit,
            method=fit.method,
            response=fit.response,
            factor=fit.group,
            labels=fit.groups,
            fixed_names=tuple(fit.fixed_terms),
            random_names=tuple(fit.random_terms),
            block_sizes=tuple(fit.block_sizes),
            beta=fit.fixef.to_numpy(dtype=float),
            vcov=fit.vcov.to_numpy(dtype=float),
            sigma=float(fit.sigma),
            cov_re=fit.cov_re().to_numpy(dtype=float),
            b=fit.ranef().to_numpy(dtype=float),
            S=fit.ranef_cov() / fit.sigma**2,
            ZtX=np.asarray(d.stats.B, float),
            loglik=float(fit.loglik),
            n_obs=int(fit.n_obs),
            n_theta=len(c.theta),
            stats=d.stats,
            encoder=None if enc is None else enc.evaluate,
        )
    if isinstance(fit, FitResult):  # the one-way fit
        long = fit.data_kind == "long"
        labels = fit.groups

        def encoder(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            one = np.ones((len(df), 1))
            return one, one

        return FitPieces(
            fit=fit,
            method=fit.method,
            response=fit.response,
            factor=str(labels.name) if labels.name is not None else "group",
            labels=labels,
            fixed_names=tuple(fit.fixed_terms),
            random_names=tuple(fit.random_terms),
            block_sizes=(1,),
            beta=fit.fixef.to_numpy(dtype=float),
            vcov=fit.vcov.to_numpy(dtype=float),
            sigma=float(fit.sigma) if long else math.nan,
            cov_re=fit.cov_re().to_numpy(dtype=float),
            b=fit.ranef().to_numpy(dtype=float),
            S=(fit.ranef_sd().to_numpy(dtype=float) ** 2 / fit.sigma**2)[:, :, None]
            if long
            else None,
            ZtX=np.asarray(fit.n, dtype=float)[:, None, None],
            loglik=float(fit.loglik),
            n_obs=int(fit.n_obs),
            n_theta=1,
            stats=_oneway_stats(fit.stats) if long else None,
            encoder=encoder,
        )
    raise DataTypeError(
        f"`fit` must be a fitted model (ShrinkageFit or MixedFit from bs.fit); got "
        f"{type(fit).__name__}. Fit it first, e.g. bs.fit(df, formula='y ~ x + (1 | g)')."
    )


def refit_by_method(fit, method: str):
    """The same model on the same data by another method ('ml' or 'reml')."""
    from ..estimate import estimate
    from ..lmm.estimate import estimate_lmm

    if is_multi(fit):
        from ..lmm.pls import fit_pls

        d = fit.design
        return type(fit)(d, fit_pls(d.y, d.X, list(d.factors), method))
    if is_mixed(fit):
        d = fit.design
        return type(fit)(d, estimate_lmm(d.stats, d.block_sizes, method))
    return type(fit)(fit.stats, estimate(fit.stats, method))


# =============================================================================== predict


def check_level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise DataError(
            f"`level` must be a probability strictly between 0 and 1; got {level!r}. "
            "E.g. level=0.95 for 95% intervals."
        )
    return float(level)


def match_groups(labels: pd.Index, values: pd.Series) -> np.ndarray:
    """Position of each row's group among the fit's labels, -1 for a level not in the fit.

    Labels match by value; where the fit's labels and the new column differ only in type (the
    fit read ``308`` as an integer, the new rows hold ``"308"``), by their text."""
    pos = labels.get_indexer(pd.Index(values))
    miss = (pos < 0) & values.notna().to_numpy()
    if miss.any():
        text = pd.Index([str(x) for x in labels])
        if text.is_unique:
            alt = text.get_indexer(pd.Index([str(x) for x in values[miss]]))
            pos[np.flatnonzero(miss)] = alt
    return pos


# =============================================================================== pooling


def factor_columns(fit, factor: str | None = None) -> tuple[str, tuple[str, ...]]:
    """A grouping factor's name and the data columns whose interaction it is (one column for a
    plain factor); ``factor`` may be left out when the fit has one."""
    if is_multi(fit):
        f = fit._factor(factor)
        comps = {b.factor: b.components for b in fit.design.spec.blocks}
        return f.name, tuple(comps[f.name])
    fit._check_factor(factor)
    name = fit.factors[0]
    return name, tuple(getattr(fit, "group_columns", None) or (fit.group,))


def level_values(fit, df: pd.DataFrame, factor: str | None = None) -> pd.Series:
    """Each row's level of one grouping factor, labelled as the fit labels it."""
    _, columns = factor_columns(fit, factor)
    if is_multi(fit):
        return factor_labels(df, columns)
    return group_values(fit, df, fit_pieces(fit).factor)


def response_values(fit, data) -> np.ndarray:
    """The response of ``fit`` evaluated on ``data`` (a transformation such as ``log(y)`` as in
    the formula)."""
    from ..frames import as_frame

    df = as_frame(data)
    name = fit.response
    if name in df.columns:
        return df[name].to_numpy(dtype=float)
    if not is_mixed(fit):
        raise ColumnError(f"`data` must have the response column {name!r}.")
    from formulae.matrices import DesignMatrices

    if fit.design.encoder is not None:
        df = fit.design.encoder.prepare(df)  # datetime covariates as the fit converted them
    dm = DesignMatrices(fit.design.spec.fixed, df, fit.design.spec.env())
    return np.asarray(dm.response.design_matrix, dtype=float).reshape(-1)


# =============================================================================== several factors


def is_multi(fit) -> bool:
    """A fit with one or more grouping factors from the blocked estimator (``MultiFit``): the
    fit that gives one-factor views (``factor_fit``). Judged by that method, not by importing
    the class, which imports this module."""
    return callable(getattr(fit, "factor_fit", None))


def group_values(fit, df: pd.DataFrame, factor: str) -> pd.Series:
    """Each row's level of a one-factor fit's grouping factor: the column, or for a factor
    spelled as an interaction ``(1 | a:b)`` the columns' values joined as lme4 labels them."""
    from ..frames import interaction_labels

    columns = getattr(fit, "group_columns", None)
    if factor in df.columns or columns is None:
        return df[factor]
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise ColumnError(
            f"`newdata` must have the columns of the grouping factor {factor!r} "
            f"({', '.join(map(repr, columns))}); got no {', '.join(map(repr, absent))}."
        )
    return interaction_labels(df, columns).where(df[list(columns)].notna().all(axis=1))


@dataclass(frozen=True, eq=False)
class FactorPieces:
    """One grouping factor of a several-factor fit: what predict and confint need of it."""

    name: str
    components: tuple[str, ...]  # the data columns whose interaction is the factor
    labels: pd.Index
    terms: tuple[str, ...]
    block_sizes: tuple[int, ...]
    cov_re: np.ndarray  # (q, q)
    b: np.ndarray  # (n_levels, q) conditional modes
    cond_cov: np.ndarray  # (n_levels, q, q) lme4's postVar (diagonal blocks of Var(b | y))
    widths: tuple[int, ...]  # columns of each of the factor's blocks in the encoder's Z


@dataclass(frozen=True, eq=False)
class MultiPieces:
    """:class:`FitPieces` for a fit with several grouping factors (``MultiFit``).

    The factors are in lme4's order (most levels first); the random effects are stacked factor by
    factor, level by level, term by term (lme4's ``getME(m, "b")`` order), and ``T`` holds each
    factor's relative covariance factor (T T' = cov_re / sigma^2), so Lambda = blockdiag(I (x) T).
    """

    fit: object
    method: str
    response: str
    fixed_names: tuple[str, ...]
    multi: tuple[FactorPieces, ...]
    block_order: tuple[tuple[str, int], ...]  # the encoder's blocks: (factor, width), in order
    beta: np.ndarray
    vcov: np.ndarray
    sigma: float
    loglik: float
    n_obs: int
    n_theta: int
    encoder: object

    @property
    def factors(self) -> dict[str, tuple[pd.Index, tuple[str, ...]]]:
        return {f.name: (f.labels, f.terms) for f in self.multi}

    @property
    def n_params(self) -> int:
        return len(self.beta) + self.n_theta + 1

    @property
    def random_names(self) -> tuple[str, ...]:
        return tuple(f"{t}|{f.name}" for f in self.multi for t in f.terms)


def multi_pieces(fit) -> MultiPieces:
    from ..lmm.estimate import theta_layout

    d = fit.design
    comps = {}
    for blk in d.spec.blocks:
        comps.setdefault(blk.factor, blk.components)
    block_order = []
    seen: dict[str, int] = {}
    data = {f.name: f for f in d.factors}
    for blk in d.spec.blocks:
        k = seen.get(blk.factor, 0)
        block_order.append((blk.factor, data[blk.factor].block_sizes[k]))
        seen[blk.factor] = k + 1
    multi = tuple(
        FactorPieces(
            name=e.name,
            components=tuple(comps[e.name]),
            labels=e.labels,
            terms=tuple(e.terms),
            block_sizes=tuple(e.block_sizes),
            cov_re=np.asarray(e.cov, float),
            b=np.asarray(e.b, float),
            cond_cov=np.asarray(e.cond_cov, float),
            widths=tuple(e.block_sizes),
        )
        for e in fit.components.factors
    )
    n_theta = sum(len(theta_layout(f.block_sizes)[0]) for f in multi)
    return MultiPieces(
        fit=fit,
        method=fit.method,
        response=fit.response,
        fixed_names=tuple(fit.fixed_terms),
        multi=multi,
        block_order=tuple(block_order),
        beta=fit.fixef.to_numpy(dtype=float),
        vcov=fit.vcov.to_numpy(dtype=float),
        sigma=float(fit.sigma),
        loglik=float(fit.loglik),
        n_obs=int(fit.n_obs),
        n_theta=n_theta,
        encoder=d.encoder,
    )


def rel_factor(cov: np.ndarray, sigma: float) -> np.ndarray:
    """T with T T' = cov / sigma^2 (lower triangular, zero columns where cov is singular)."""
    from ..lmm.blocks import psd_cholesky

    rel = cov / sigma**2
    return psd_cholesky(0.5 * (rel + rel.T))


class MultiSystem:
    """lme4's penalised least squares for a several-factor fit, on the data's scale.

    With A = Z Lambda (N x q, sparse) and M = A'A + I, for a given Lambda the conditional
    modes u and beta solve the mixed model equations; Var(u | y, beta) = sigma^2 M^-1 and,
    counting the fixed effects' uncertainty (Henderson), the prediction error covariance of
    (beta, u) is sigma^2 [[X'X, X'A], [A'X, M]]^-1. Used for the exact joint (cross-factor)
    posterior covariance of a row's random effects and for the profiled ML deviance.
    """

    def __init__(self, fit, y=None, X=None):
        import scipy.sparse as sp

        d = fit.design
        self.factors = list(d.factors)
        self.y = np.asarray(d.y if y is None else y, float)
        self.X = np.asarray(d.X if X is None else X, float).reshape(len(self.y), -1)
        self.N = len(self.y)
        self.off, q = [], 0
        for f in self.factors:
            self.off.append(q)
            q += f.n_levels * f.q
        self.q = q
        rows, cols, vals = [], [], []
        for f, o in zip(self.factors, self.off, strict=True):
            for t in range(f.q):
                rows.append(np.arange(self.N))
                cols.append(o + f.codes * f.q + t)
                vals.append(f.Z[:, t])
        self.Z = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.N, q),
        )
        self.sp = sp

    def lam(self, Ts) -> object:
        """Lambda = blockdiag over factors of I_{n_f} (x) T_f (sparse)."""
        sp = self.sp
        return sp.block_diag(
            [
                sp.kron(sp.identity(f.n_levels), sp.csr_matrix(T))
                for f, T in zip(self.factors, Ts, strict=True)
            ],
            format="csc",
        )

    def z_new(self, Zf: dict[str, np.ndarray], pos: dict[str, np.ndarray]):
        """Rows' Z in the fit's random-effects order; a row with an unknown level (pos -1) of a
        factor gets no column for it."""
        sp = self.sp
        rows, cols, vals = [], [], []
        for f, o in zip(self.factors, self.off, strict=True):
            z, ps = Zf[f.name], pos[f.name]
            ok = np.flatnonzero(ps >= 0)
            for t in range(f.q):
                rows.append(ok)
                cols.append(o + ps[ok] * f.q + t)
                vals.append(z[ok, t])
        n = len(next(iter(pos.values())))
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n, self.q),
        )

    def solve(self, Ts):
        """Factor M = Lambda'Z'Z Lambda + I at the T_f's and solve the PLS problem."""
        from scipy.sparse.linalg import splu

        sp = self.sp
        L = self.lam(Ts)
        A = (self.Z @ L).tocsc()
        M = (A.T @ A + sp.identity(self.q, format="csc")).tocsc()
        lu = splu(M, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
        logdet = float(np.sum(np.log(np.abs(lu.U.diagonal()))))
        X, y = self.X, self.y
        AtX = np.asarray(A.T @ X) if X.shape[1] else np.zeros((self.q, 0))
        Aty = np.asarray(A.T @ y).reshape(-1)
        RZX = lu.solve(AtX) if X.shape[1] else np.zeros((self.q, 0))
        cu = lu.solve(Aty)
        H = X.T @ X - AtX.T @ RZX
        beta = np.linalg.solve(H, X.T @ y - AtX.T @ cu) if X.shape[1] else np.zeros(0)
        u = cu - RZX @ beta
        r = y - X @ beta - A @ u
        r2 = float(r @ r + u @ u)
        return {
            "L": L,
            "A": A,
            "lu": lu,
            "logdet": logdet,
            "H": H,
            "RZX": RZX,
            "beta": beta,
            "u": u,
            "r2": r2,
        }

    def ml_deviance(self, Ts, sigma: float | None = None) -> float:
        """-2 log L (ML) at the relative factors ``Ts``: beta profiled out, sigma given or
        profiled (sigma^2 = r2 / N)."""
        st = self.solve(Ts)
        if sigma is None:
            return st["logdet"] + self.N * (1.0 + math.log(2.0 * math.pi * st["r2"] / self.N))
        s2 = sigma * sigma
        return st["logdet"] + st["r2"] / s2 + self.N * math.log(2.0 * math.pi * s2)


def split_z(p: MultiPieces, Z: np.ndarray) -> dict[str, np.ndarray]:
    """The encoder's Z (every block in the formula's order) as one matrix per factor, with its
    columns in the factor's term order."""
    parts: dict[str, list[np.ndarray]] = {}
    start = 0
    for name, width in p.block_order:
        parts.setdefault(name, []).append(Z[:, start : start + width])
        start += width
    return {k: np.hstack(v) for k, v in parts.items()}


def factor_labels(df: pd.DataFrame, comps: tuple[str, ...]) -> pd.Series:
    """A factor's level of each new row, labelled as the fit labels it (``c1:S01``)."""
    from ..frames import interaction_labels

    return interaction_labels(df, comps)
