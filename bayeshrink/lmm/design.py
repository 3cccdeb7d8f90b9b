"""From an lme4-style formula and a data frame to per-group cross-products.

The formula is parsed and evaluated by :mod:`bayeshrink.formula` (one parser, one model frame):
each parenthesised block is one correlated set of random terms (an unstructured covariance
block); several blocks on the same grouping factor are independent of each other, as in lme4.
An ``offset()`` enters with coefficient 1: the cross-products are those of y minus the offset.

The model, for group j with n_j rows::

    y_j = X_j beta + Z_j b_j + e_j,    b_j ~ N(0, Sigma_b),    e_j ~ N(0, sigma^2 I)

Everything the estimator needs is the per-group cross-product matrix of ``W = [X | Z | y]``
(columns of Z already in X are not repeated): one ``bincount`` per pair of columns, so the cost
is linear in rows and the rows are never needed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula import FormulaSpec, ModelFrame, model_frame, parse_formula
from ..formula.parse import response_variables
from ..frames import Missing

__all__ = [
    "Design",
    "FormulaSpec",
    "MixedStats",
    "Standardization",
    "parse_formula",
    "response_variables",
    "standardize",
]


@dataclass(frozen=True, eq=False)
class MixedStats:
    """Per-group cross-products of ``[X | Z | y]``: all the data the estimator needs.

    ``cross[j]`` is ``W_j' W_j`` for group j; ``x_idx``/``z_idx`` say which columns of W are X
    and Z; the last column is y, shifted by ``y_shift`` when X has an intercept (the intercept
    estimate is shifted back), which keeps ``y'y`` free of cancellation.

    These are on the data's own scale. The estimator works on ``std``: the same cross-products of
    centred and scaled columns (see :class:`Standardization`), so that the units of a covariate
    never change the answer, only the numbers it is reported in.
    """

    cross: np.ndarray  # (J, k, k)
    n: np.ndarray  # (J,)
    x_idx: np.ndarray
    z_idx: np.ndarray
    y_shift: float
    intercept_col: int | None  # position of the intercept in X, if there is one
    std: MixedStats | None = None  # the standardized cross-products (None: these are they)
    transform: Standardization | None = None

    @property
    def p(self) -> int:
        return len(self.x_idx)

    @property
    def q(self) -> int:
        return len(self.z_idx)

    @cached_property
    def total(self) -> np.ndarray:
        return self.cross.sum(axis=0)

    @property
    def y_idx(self) -> int:
        return self.cross.shape[1] - 1

    @cached_property
    def A(self) -> np.ndarray:  # Z_j'Z_j
        return self.cross[:, self.z_idx][:, :, self.z_idx]

    @cached_property
    def B(self) -> np.ndarray:  # Z_j'X_j
        return self.cross[:, self.z_idx][:, :, self.x_idx]

    @cached_property
    def c(self) -> np.ndarray:  # Z_j'y_j
        return self.cross[:, self.z_idx, self.y_idx]

    @cached_property
    def z_full_rank(self) -> np.ndarray:
        """Per group: can Z_j estimate all q random terms on its own (Z_j'Z_j nonsingular)?

        Judged on the standardized columns, so that the units of a covariate do not matter."""
        A = self.std.A if self.std is not None else self.A
        sv = np.linalg.svd(A, compute_uv=False)
        return sv[:, -1] > sv[:, 0] * 1e-10 * self.q

    @cached_property
    def XtX(self) -> np.ndarray:
        return self.total[np.ix_(self.x_idx, self.x_idx)]

    @cached_property
    def Xty(self) -> np.ndarray:
        return self.total[self.x_idx, self.y_idx]

    @property
    def yty(self) -> float:
        return float(self.total[self.y_idx, self.y_idx])


@dataclass(frozen=True, eq=False)
class Standardization:
    """How the estimator's centred and scaled columns map to the data's own.

    With ``X_s`` and ``Z_s`` the standardized fixed and random design matrices::

        X = X_s G_x,    Z = Z_s G_z,    y = y_scale * y_s + X_s beta0

    ``G_x`` and ``G_z`` are identity but for each non-intercept column's SD on the diagonal and,
    where the intercept is in the same model part (X, or a random-effects block holding the
    intercept), its mean in the intercept's row. ``beta0`` is a least-squares fit of y on
    ``X_s`` (from the rows, refined once), so ``y_s`` holds residuals: the penalised residual sum of
    squares is then formed from numbers of its own size, not as a difference of large ones.
    Every estimate is mapped back exactly (glum does the same for GLMs): the fixed effects by
    ``G_x^-1``, the random effects and their covariance by ``G_z^-1``, sigma by ``y_scale``.
    """

    Gx: np.ndarray  # (p, p)
    Gz: np.ndarray  # (q, q), block diagonal
    beta0: np.ndarray  # (p,) in X_s units
    y_scale: float
    y_ss: float = np.nan  # sum of squares of y about its mean (about 0 without an intercept)


def _centre_scale(col: np.ndarray, centre: bool) -> tuple[float, float]:
    """Mean (two passes, or 0 when not centring) and RMS about it; scale 1 for a zero column."""
    m = 0.0
    if centre:
        m = float(col.mean())
        m += float((col - m).mean())
    d = col - m if centre else col
    s = float(np.sqrt(np.mean(d * d)))
    if not np.isfinite(s) or s == 0.0:
        s = 1.0
    return m, s


def standardize(
    X: np.ndarray, Z: np.ndarray, y: np.ndarray, block_sizes, intercept: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Standardization]:
    """Centred and scaled copies of X, Z and y, and the map back (:class:`Standardization`)."""
    p = X.shape[1]
    q = Z.shape[1]
    Xs = np.empty_like(X)
    Gx = np.eye(p)
    for i in range(p):
        if i == intercept:
            Xs[:, i] = 1.0
            continue
        m, s = _centre_scale(X[:, i], centre=intercept is not None)
        Xs[:, i] = (X[:, i] - m) / s
        Gx[i, i] = s
        if intercept is not None:
            Gx[intercept, i] = m
    Zs = np.empty_like(Z)
    Gz = np.eye(q)
    start = 0
    for size in block_sizes:
        block = range(start, start + size)
        ones = next((k for k in block if np.all(Z[:, k] == 1.0)), None)
        for k in block:
            if k == ones:
                Zs[:, k] = 1.0
                continue
            m, s = _centre_scale(Z[:, k], centre=ones is not None)
            Zs[:, k] = (Z[:, k] - m) / s
            Gz[k, k] = s
            if ones is not None:
                Gz[ones, k] = m
        start += size
    if p:
        # least squares on the standardized columns (well conditioned unless X is nearly rank
        # deficient, which the rank check reports), refined once from the residuals
        G = Xs.T @ Xs
        beta0 = np.linalg.lstsq(G, Xs.T @ y, rcond=None)[0]
        r = y - Xs @ beta0
        beta0 = beta0 + np.linalg.lstsq(G, Xs.T @ r, rcond=None)[0]
        r = y - Xs @ beta0
    else:
        beta0 = np.zeros(0)
        r = y
    _, y_scale = _centre_scale(r, centre=False)  # 1 when every residual is 0: see below
    m_y, _ = _centre_scale(y, centre=intercept is not None)
    y_ss = float(np.sum((y - m_y) ** 2))
    tr = Standardization(Gx=Gx, Gz=Gz, beta0=beta0, y_scale=y_scale, y_ss=y_ss)
    return Xs, Zs, r / y_scale, tr


def _shared_columns(X: np.ndarray, Z: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The columns of W = [X | Z] with each random-term column that equals a fixed column
    (Intercept, Days, ...) taken once; returns them and where each Z column is."""
    p, q = X.shape[1], Z.shape[1]
    cols = [X[:, i] for i in range(p)]
    z_idx = []
    for k in range(q):
        match = next((i for i in range(p) if np.array_equal(X[:, i], Z[:, k])), None)
        if match is None:
            cols.append(Z[:, k])
            match = len(cols) - 1
        z_idx.append(match)
    return cols, np.asarray(z_idx, dtype=int)


def group_crossproducts(W: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """``W_j' W_j`` for every group j, one weighted bincount per pair of columns."""
    k = W.shape[1]
    out = np.empty((n_groups, k, k))
    for a in range(k):
        wa = W[:, a]
        for b in range(a, k):
            s = np.bincount(codes, weights=wa * W[:, b], minlength=n_groups)
            out[:, a, b] = s
            out[:, b, a] = s
    return out


@dataclass(frozen=True, eq=False)
class Design:
    """The evaluated model: names, grouping, and the per-group statistics (rows are not kept)."""

    spec: FormulaSpec
    fixed_names: tuple[str, ...]
    random_names: tuple[str, ...]
    block_sizes: tuple[int, ...]
    labels: pd.Index
    stats: MixedStats
    n_dropped: int = 0
    # the formula's encoding (levels, stateful transforms) for new rows: fit.predict(newdata)
    encoder: object = field(default=None, repr=False)
    # the fit's summed offset() terms, row by row (None without one); y - offset was fitted
    offset: np.ndarray | None = field(default=None, repr=False)
    # with an offset: per group n, sum of y and sum of y^2 of the response itself (the
    # cross-products hold y - offset), so that anova can tell the same response apart
    response_moments: tuple | None = field(default=None, repr=False)

    @classmethod
    def from_formula(
        cls, data, formula: str, missing: Missing = "raise", *, spec: FormulaSpec | None = None
    ) -> Design:
        spec = spec if spec is not None else parse_formula(formula)
        if spec.several_factors:
            names = spec.factor_names
            raise FormulaError(
                f"`formula` may have one grouping factor here; got {len(names)} "
                f"({', '.join(names)}). Fit it with bs.fit(data, formula=...), which fits "
                "crossed and nested factors (bayeshrink.lmm.multi)."
            )
        frame = model_frame(data, spec, missing, subject="the variables of `formula`")
        return cls.from_frame(frame)

    @classmethod
    def from_frame(cls, frame: ModelFrame) -> Design:
        """The per-group statistics of an evaluated formula with one grouping factor."""
        spec = frame.spec
        codes, labels = frame.factor(spec.group)
        if len(labels) < 2:
            raise DataError(
                f"the data must hold at least 2 levels of {spec.group!r} to estimate the "
                f"random-effects variances; got 1 level ({labels[0]!r}). With one group there is "
                "nothing to pool: fit an ordinary regression (e.g. statsmodels' ols) instead."
            )
        Z = np.hstack(frame.blocks)
        random_names = [n for names in frame.block_names for n in names]
        block_sizes = [len(names) for names in frame.block_names]
        design = cls._build(
            spec,
            frame.X,
            Z,
            frame.working_response,
            codes,
            labels,
            list(frame.fixed_names),
            random_names,
            block_sizes,
            frame.n_dropped,
        )
        _check_residual_variation(design.stats, spec.response)
        moments = None
        if frame.offset is not None:
            J = len(labels)
            moments = (
                design.stats.n,
                np.bincount(codes, weights=frame.y, minlength=J),
                np.bincount(codes, weights=frame.y * frame.y, minlength=J),
            )
        return replace(design, encoder=frame.encoder, offset=frame.offset, response_moments=moments)

    @classmethod
    def _build(
        cls, spec, X, Z, y, codes, labels, fixed_names, random_names, block_sizes, n_dropped=0
    ):
        n_obs, p = X.shape
        J = len(labels)
        intercept = next((i for i in range(p) if np.all(X[:, i] == 1.0)), None)
        Xs, Zs, ys, tr = standardize(X, Z, y, block_sizes, intercept)
        std_cols, z_std = _shared_columns(Xs, Zs)
        cross_std = group_crossproducts(np.column_stack([*std_cols, ys]), codes, J)
        n = np.bincount(codes, minlength=J).astype(float)
        std = MixedStats(
            cross=cross_std,
            n=n,
            x_idx=np.arange(p),
            z_idx=z_std,
            y_shift=0.0,
            intercept_col=intercept,
        )
        _, z_idx = _shared_columns(X, Z)
        shift = float(np.median(y)) if intercept is not None else 0.0
        stats = stats_from_std(std, tr, z_idx, shift)
        check_fixed_rank(std.XtX, fixed_names)
        _check_random_support(stats, n_obs, J, random_names, spec.group)
        return cls(
            spec=spec,
            fixed_names=tuple(fixed_names),
            random_names=tuple(random_names),
            block_sizes=tuple(block_sizes),
            labels=labels,
            stats=stats,
            n_dropped=n_dropped,
        )


def stats_from_std(std: MixedStats, tr: Standardization, z_idx, shift: float) -> MixedStats:
    """The cross-products on the data's own scale from the standardized ones (``std``).

    ``z_idx`` says which data-scale column each random term is (a term equal to a fixed column
    is that column); y is shifted by ``shift`` when X has an intercept. W = W_s G: each original
    column is a combination of standardized ones (for results and the PyMC models)."""
    p, q = std.p, std.q
    z_std = std.z_idx
    intercept = std.intercept_col
    k_std = std.cross.shape[1] - 1
    k = max(int(np.max(z_idx)) + 1 if q else 0, p)
    G = np.zeros((k_std + 1, k + 1))
    G[:p, :p] = tr.Gx
    for j in range(q):  # a column shared with X may be written through Z's map
        G[:, z_idx[j]] = 0.0
        G[z_std, z_idx[j]] = tr.Gz[:, j]
    G[-1, -1] = tr.y_scale
    G[:p, -1] = tr.beta0
    if intercept is not None:
        G[intercept, -1] -= shift
    cross = np.einsum("ak,jab,bl->jkl", G, std.cross, G, optimize=True)
    return MixedStats(
        cross=cross,
        n=std.n,
        x_idx=np.arange(p),
        z_idx=np.asarray(z_idx, dtype=int),
        y_shift=shift,
        intercept_col=intercept,
        std=std,
        transform=tr,
    )


def check_fixed_rank(G: np.ndarray, names: list[str]) -> None:
    """Rank-deficient fixed effects: say which columns are aliased with earlier ones.

    ``G`` is X'X (the cross-products already hold it)."""
    if G.shape[0] == 0:
        return
    scale = np.sqrt(np.diag(G))
    scale[scale == 0] = 1.0
    G = G / np.outer(scale, scale)
    aliased: list[int] = []
    for k in range(G.shape[0]):
        kept = [i for i in range(k) if i not in aliased] + [k]
        s = np.linalg.svd(G[np.ix_(kept, kept)], compute_uv=False)
        if s[-1] <= s[0] * 1e-10 * len(s):
            aliased.append(k)
    if aliased:
        names_bad = [names[k] for k in aliased]
        raise DataError(
            f"the fixed effects are rank deficient: {', '.join(map(repr, names_bad))} "
            f"{'is' if len(names_bad) == 1 else 'are'} a linear combination of the columns before "
            "(or constant). Remove the redundant term from the formula; lme4 would drop it "
            "silently, bayeshrink does not."
        )


#: A response reproduced to within this many units of rounding (relative to its spread) counts
#: as reproduced exactly: its residual variance is rounding noise, not data.
ROUNDING_MULTIPLE = 1e4


def _check_residual_variation(stats: MixedStats, response: str) -> None:
    """Refuse a response that the terms reproduce exactly (sigma^2 = 0, no maximum).

    The closest the model can come to y is the fit with the fixed effects shared and every
    group's random-effect coefficients free (tau -> infinity): y on [X, Z_j per group]. Its
    residual sum of squares comes from the standardized cross-products (y there holds the
    residuals of a least-squares fit on X, so nothing large is subtracted): each group's [X y]
    block is reduced by its own Z_j (a Schur complement), the reduced blocks are summed, then
    reduced by X. When what is left is rounding, ``ROUNDING_MULTIPLE`` machine epsilons of y's
    spread or less, sigma^2 = 0.
    """
    tr = stats.transform
    std = stats.std if stats.std is not None else stats
    if tr is None:
        return
    if not tr.y_ss > 0:
        raise DataError(
            f"the response {response!r} must vary; every value is the same. There is nothing "
            "to model: check the column (or the filter that produced the data)."
        )
    cross = std.cross
    k = std.y_idx
    xy = np.append(std.x_idx, k)
    z = std.z_idx
    Gzz = cross[:, z][:, :, z]
    Gzxy = cross[:, z][:, :, xy]
    reduced = cross[:, xy][:, :, xy] - np.einsum(
        "jza,jzw,jwb->jab", Gzxy, np.linalg.pinv(Gzz, rcond=1e-12, hermitian=True), Gzxy
    )
    R = reduced.sum(axis=0)
    p = len(std.x_idx)
    rss = float(R[p, p])
    if p:
        rss -= float(R[p, :p] @ np.linalg.pinv(R[:p, :p], rcond=1e-12, hermitian=True) @ R[:p, p])
    rss *= tr.y_scale**2
    if rss <= (ROUNDING_MULTIPLE * np.finfo(float).eps) ** 2 * tr.y_ss:
        raise DataError(
            f"the response {response!r} must vary around the model; the formula's terms "
            "reproduce it exactly (e.g. y = 2x + 1), so the residual variance sigma^2 is 0 and "
            "the model is degenerate. Check that the response is not computed from the "
            "covariates, or leave out the terms that reproduce it."
        )


def _check_random_support(stats: MixedStats, n_obs: int, J: int, names: list[str], group: str):
    q = stats.q
    if n_obs <= q * J:
        raise DataError(
            f"there are more random effects ({q} terms x {J} levels of {group} = {q * J}) than "
            f"observations ({n_obs}); the variance components cannot be told apart from the "
            "residual. Use fewer random terms, e.g. (1 | g), or more data per group."
        )
    if q > 1:
        if not stats.z_full_rank.any():
            raise DataError(
                f"no level of {group} has data that can separate its {q} random terms "
                f"({', '.join(names)}): within every group their columns are linearly dependent "
                "(e.g. a covariate that is constant within groups). Keep such a covariate in the "
                "fixed part only, e.g. 'y ~ x + (1 | g)'."
            )


# the checks every one-factor design runs, whether its cross-products come from rows or an engine
check_residual_variation = _check_residual_variation
check_random_support = _check_random_support
