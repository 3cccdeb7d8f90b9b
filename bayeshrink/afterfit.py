r"""lme4's row-level after-fit methods for every fit: ``fitted()``, ``resid()``, ``simulate()``.

Every fit is the model y = X beta + sum_f Z_f b_f + e, b_f ~ N(0, cov_re(f)) level by level,
e ~ N(0, sigma^2 I). What these methods need of a fit is its rows in that form
(:func:`model_rows`): X, and per grouping factor the level of every row and its Z columns.

* A fit with several grouping factors keeps its rows (its design), so ``data`` may be left out,
  as in lme4.
* The one-factor fits (one-way and formula) keep per-group cross-products, not rows: ``data`` (the
  frame that was fitted, or new rows) is evaluated with the fit's formula (its encoding,
  categorical levels and stateful transforms as in the fit).

``fitted()`` is lme4's ``fitted(m)``, X beta_hat + Z b_hat (the conditional modes); ``resid()``
is lme4's ``residuals(m)`` (response minus fitted); ``simulate(nsim, seed)`` is lme4's
``simulate(m, nsim, seed)`` with ``use.u = FALSE``: new responses from the fitted model with the
random effects redrawn, b*_f ~ N(0, cov_re(f)) for every level (the levels of ``data``'s rows,
so new levels are simply new draws) and e* ~ N(0, sigma^2 I), the fixed effects at beta_hat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = ["ModelRows", "fitted", "model_rows", "resid", "simulate"]


@dataclass(frozen=True, eq=False)
class ModelRows:
    """A fit's model on rows: ``X`` (N x p); per factor ``codes`` (N,) with the row's level among
    ``labels`` (-1 for a level the fit has not seen), ``Z`` (N x q); the response ``y`` when the
    rows hold it (None otherwise) and the rows' index."""

    index: pd.Index
    X: np.ndarray
    factors: tuple[str, ...]
    codes: tuple[np.ndarray, ...]
    row_labels: tuple[pd.Index, ...]  # each row's level label (for draws over new levels too)
    Z: tuple[np.ndarray, ...]
    y: np.ndarray | None


def _check_long(fit, what: str) -> None:
    from .inference import _check_long as check

    check(fit, what)


def model_rows(fit, data=None) -> ModelRows:
    """The rows of ``fit``'s model: its own design (several factors, ``data`` None) or ``data``
    evaluated with the fit's formula."""
    from .frames import as_frame
    from .inference import (
        _factor_labels,
        _is_multi,
        _match_groups,
        _multi_pieces,
        _split_z,
        fit_pieces,
        group_values,
        response_values,
    )

    if _is_multi(fit):
        if data is None:
            d = fit.design
            by_name = {f.name: f for f in d.factors}
            names = tuple(fit.factors)
            fs = [by_name[n] for n in names]
            return ModelRows(
                index=pd.RangeIndex(len(d.y)),
                X=d.X,
                factors=names,
                codes=tuple(np.asarray(f.codes) for f in fs),
                row_labels=tuple(pd.Index(f.labels[f.codes]) for f in fs),
                Z=tuple(f.Z for f in fs),
                y=d.y,
            )
        df = as_frame(data)
        p = _multi_pieces(fit)
        comps = tuple(dict.fromkeys(c for f in p.multi for c in f.components))
        p.encoder.check_columns(df, extra=comps)
        X, Zall = p.encoder.evaluate(df)
        Zf = _split_z(p, Zall)
        codes, labels = [], []
        for f in p.multi:
            vals = _factor_labels(df, f.components)
            codes.append(_match_groups(f.labels, vals))
            labels.append(pd.Index(vals))
        return ModelRows(
            index=df.index,
            X=X,
            factors=tuple(f.name for f in p.multi),
            codes=tuple(codes),
            row_labels=tuple(labels),
            Z=tuple(Zf[f.name] for f in p.multi),
            y=_response_or_none(fit, df, response_values),
        )
    if data is None:
        raise DataError(
            "`data` must be given for a one-factor fit: it keeps per-group cross-products, not "
            "its rows. Pass the data frame you fitted (or new rows with the formula's columns)."
        )
    df = as_frame(data)
    pieces = fit_pieces(fit)
    factor = pieces.factor
    columns = getattr(fit, "group_columns", None) or (factor,)
    design = getattr(fit, "design", None)
    if design is not None and design.encoder is not None:
        design.encoder.check_columns(df, extra=tuple(columns))
    elif not set(columns) <= set(df.columns) and factor not in df.columns:
        raise DataError(
            f"`data` must have the grouping column {factor!r}; got columns "
            f"{', '.join(map(repr, map(str, df.columns[:20])))}."
        )
    X, Z = pieces.encoder(df)
    vals = group_values(fit, df, factor)
    return ModelRows(
        index=df.index,
        X=np.asarray(X, float),
        factors=(factor,),
        codes=(_match_groups(pieces.labels, vals),),
        row_labels=(pd.Index(vals),),
        Z=(np.asarray(Z, float),),
        y=_response_or_none(fit, df, response_values),
    )


def _response_or_none(fit, df, response_values):
    try:
        return np.asarray(response_values(fit, df), float)
    except Exception:  # rows without the response: fitted() and simulate() do not need it
        return None


def _per_factor(fit, accessor: str, name: str):
    """``fit.<accessor>(name)``; a one-factor fit's one factor need not be named."""
    method = getattr(fit, accessor)
    return method() if len(fit.factors) == 1 else method(name)


def _known_levels(fit, rows: ModelRows) -> None:
    for name, codes, labels in zip(rows.factors, rows.codes, rows.row_labels, strict=True):
        new = codes < 0
        if new.any():
            shown = ", ".join(repr(v) for v in pd.unique(labels[new])[:5])
            raise DataError(
                f"`data` must hold levels of {name!r} seen in the fit for fitted values and "
                f"residuals; got new level(s) {shown}. Use fit.predict(newdata, "
                "allow_new_levels=True) for new levels."
            )


def fitted(fit, data=None) -> pd.Series:
    """lme4's ``fitted(m)``: X beta_hat + Z b_hat for every row (see the module docstring)."""
    _check_long(fit, "fitted values")
    rows = model_rows(fit, data)
    _known_levels(fit, rows)
    mean = rows.X @ fit.fixef.to_numpy(dtype=float)
    for name, codes, Z in zip(rows.factors, rows.codes, rows.Z, strict=True):
        b = _per_factor(fit, "ranef", name).to_numpy(dtype=float)
        mean = mean + np.einsum("iq,iq->i", Z, b[codes])
    return pd.Series(mean, index=rows.index, name="fitted")


def resid(fit, data=None) -> pd.Series:
    """lme4's ``residuals(m)`` (type "response"): the response minus :func:`fitted`."""
    _check_long(fit, "residuals")
    rows = model_rows(fit, data)
    if rows.y is None:
        raise DataError(
            f"`data` must hold the response {fit.response!r} for residuals; it does not."
        )
    return pd.Series(rows.y - fitted(fit, data).to_numpy(), index=rows.index, name="resid")


def _psd_root(cov: np.ndarray) -> np.ndarray:
    """R with R R' = cov for a positive semi-definite cov (a zero direction draws 0)."""
    lam, U = np.linalg.eigh(0.5 * (cov + cov.T))
    return U * np.sqrt(np.clip(lam, 0.0, None))[None, :]


def check_nsim(nsim, name: str = "nsim") -> int:
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise DataError(f"`{name}` must be an integer >= 1; got {nsim!r}. E.g. {name}=100.")
    return int(nsim)


def simulate(fit, nsim: int = 1, seed=None, data=None) -> pd.DataFrame:
    """lme4's ``simulate(m, nsim, seed)``: ``nsim`` new responses from the fitted model, random
    effects redrawn (see the module docstring). One column per simulation, ``sim_1`` ...,
    indexed as the rows (``data``'s index, or 0..N-1 for a fit's own rows)."""
    nsim = check_nsim(nsim)
    _check_long(fit, "simulate")
    rows = model_rows(fit, data)
    rng = np.random.default_rng(seed)
    N = len(rows.index)
    mean = rows.X @ fit.fixef.to_numpy(dtype=float)
    out = np.repeat(mean[:, None], nsim, axis=1)
    for name, labels, Z in zip(rows.factors, rows.row_labels, rows.Z, strict=True):
        codes, uniques = pd.factorize(labels)
        root = _psd_root(_per_factor(fit, "cov_re", name).to_numpy(dtype=float))
        q = root.shape[0]
        b = rng.standard_normal((nsim, len(uniques), q)) @ root.T  # (nsim, levels, q)
        ok = codes >= 0
        contrib = np.zeros((N, nsim))
        contrib[ok] = np.einsum("iq,siq->is", Z[ok], b[:, codes[ok], :])
        out += contrib
    out += fit.sigma * rng.standard_normal((N, nsim))
    return pd.DataFrame(out, index=rows.index, columns=[f"sim_{k + 1}" for k in range(nsim)])


class DenseRefit:
    """The profiled REML/ML criterion of a several-factor design for new responses, from its
    cross-products (lme4's penalised least squares, dense): what the bootstrap refits.

    Z'Z, Z'X and X'X are built once from the fit's design; a new response needs only Z'y, X'y
    and y'y. For relative factors Lambda(theta) (lme4's theta layout, factor by factor) with
    L L' = Lambda'Z'Z Lambda + I, c_u = L^-1 Lambda'Z'y and R_ZX = L^-1 Lambda'Z'X:
    H = X'X - R_ZX'R_ZX, beta = H^-1 (X'y - R_ZX'c_u), r^2 = y'y - c_u'c_u - (X'y - R_ZX'c_u)'beta,
    and -2 log L = log|L L'| + N (1 + log(2 pi r^2 / N)) (ML), or with log|H| added and N - p
    for N (REML). The same criterion as :func:`bayeshrink.lmm.pls.fit_pls`, for designs whose
    random effects fit a dense q x q matrix."""

    def __init__(self, fit):
        from .inference import _MultiSystem
        from .lmm.estimate import theta_layout

        system = _MultiSystem(fit)
        self.method = fit.method
        by_name = {f.name: f for f in fit.design.factors}
        self.factors = [by_name[n] for n in fit.factors]
        if [f.name for f in system.factors] != fit.factors:  # pragma: no cover - one order
            raise RuntimeError("the design's factors are not in the fit's order")
        Z = system.Z
        self.Z = Z
        self.X = system.X
        self.N, self.p = self.X.shape
        self.ZtZ = np.asarray((Z.T @ Z).todense())
        self.ZtX = np.asarray(Z.T @ self.X)
        self.XtX = self.X.T @ self.X
        self.layout = [theta_layout(f.block_sizes) for f in self.factors]
        self.diag = np.concatenate([lay[2] for lay in self.layout])
        self.theta_hat = np.asarray(fit.theta, float)
        self.scalar = all(f.q == 1 for f in self.factors)
        self.levels = np.array([f.n_levels for f in self.factors])

    def lam(self, theta: np.ndarray) -> np.ndarray:
        blocks, i = [], 0
        for f, (rr, cc, _) in zip(self.factors, self.layout, strict=True):
            T = np.zeros((f.q, f.q))
            T[rr, cc] = theta[i : i + len(rr)]
            i += len(rr)
            blocks.append(np.kron(np.eye(f.n_levels), T))
        from scipy.linalg import block_diag

        return block_diag(*blocks)

    def parts(self, theta, Zty, Xty, yty):
        from scipy.linalg import solve_triangular

        if self.scalar:  # every term scalar: Lambda is diagonal
            d = np.repeat(theta, self.levels)
            M = self.ZtZ * d[:, None] * d[None, :]
            M[np.diag_indices_from(M)] += 1.0
            LZy, LZX = d * Zty, d[:, None] * self.ZtX
        else:
            lam = self.lam(theta)
            M = lam.T @ self.ZtZ @ lam + np.eye(len(lam))
            LZy, LZX = lam.T @ Zty, lam.T @ self.ZtX
        L = np.linalg.cholesky(M)
        cu = solve_triangular(L, LZy, lower=True)
        RZX = solve_triangular(L, LZX, lower=True)
        H = self.XtX - RZX.T @ RZX
        rhs = Xty - RZX.T @ cu
        beta = np.linalg.solve(H, rhs) if self.p else np.zeros(0)
        r2 = float(yty - cu @ cu - rhs @ beta)
        return L, H, beta, r2

    def criterion(self, theta, Zty, Xty, yty) -> float:
        try:
            L, H, _, r2 = self.parts(theta, Zty, Xty, yty)
        except np.linalg.LinAlgError:
            return 1e300
        if not r2 > 0:
            return 1e300
        dev = 2.0 * float(np.log(np.diag(L)).sum())
        n = self.N
        if self.method == "reml":
            dev += float(np.linalg.slogdet(H)[1]) if self.p else 0.0
            n = self.N - self.p
        return dev + n * (1.0 + np.log(2.0 * np.pi * r2 / n))

    def refit(self, y: np.ndarray):
        """beta, sigma and each factor's covariance (in the fit's factor order) for response y."""
        from scipy import optimize

        Zty = np.asarray(self.Z.T @ y).reshape(-1)
        Xty = self.X.T @ y
        yty = float(y @ y)

        def f(theta):
            return self.criterion(theta, Zty, Xty, yty)

        bounds = [(0.0, None) if d else (None, None) for d in self.diag]
        opts = {"ftol": 1e-11, "gtol": 1e-5, "maxiter": 200}
        best = optimize.minimize(f, self.theta_hat, method="L-BFGS-B", bounds=bounds, options=opts)
        zero = self.diag & (best.x <= 1e-6)
        for v in (0.1, 0.5, 1.0) if zero.any() else ():
            x0 = best.x.copy()
            x0[zero] = v
            res = optimize.minimize(f, x0, method="L-BFGS-B", bounds=bounds, options=opts)
            if res.fun < best.fun:
                best = res
        theta = best.x
        _, _, beta, r2 = self.parts(theta, Zty, Xty, yty)
        sigma = float(np.sqrt(r2 / (self.N - (self.p if self.method == "reml" else 0))))
        covs, i = [], 0
        for f_, (rr, cc, _) in zip(self.factors, self.layout, strict=True):
            T = np.zeros((f_.q, f_.q))
            T[rr, cc] = theta[i : i + len(rr)]
            i += len(rr)
            covs.append(sigma**2 * T @ T.T)
        return beta, sigma, covs


#: Largest number of random effects the bootstrap refits with the dense criterion
MAX_DENSE_REFIT = 3000


def bootstrap_multi(fit, n_boot: int, random_seed=None) -> pd.DataFrame:
    """Parametric bootstrap of a fit with several grouping factors (lme4's ``bootMer``):
    ``n_boot`` responses from :func:`simulate` (random effects redrawn), each refitted by the
    fit's method on the fit's own design (X and every factor's Z and levels are reused; only
    y changes). One row per replicate, the parameters of ``confint`` as columns.

    A refit whose optimiser stops short (a :class:`~bayeshrink.errors.ConvergenceWarning`)
    is kept, as bootMer keeps it; one warning at the end says how many there were."""
    import warnings

    from .errors import ConvergenceWarning
    from .inference import _estimates, _multi_phi, _multi_pieces
    from .lmm.pls import fit_pls

    p = _multi_pieces(fit)
    d = fit.design
    names = _estimates(p).index
    sims = simulate(fit, n_boot, random_seed).to_numpy()
    order = [f.name for f in p.multi]
    rows, stalled = [], 0
    if sum(f.n_levels * f.q for f in d.factors) <= MAX_DENSE_REFIT:
        dense = DenseRefit(fit)
        for k in range(n_boot):
            beta, sigma, covs = dense.refit(sims[:, k])
            rows.append(np.r_[_multi_phi(p, covs, sigma), beta])
        out = pd.DataFrame(rows, columns=names)
        out.attrs.update(n_boot=n_boot, random_seed=random_seed)
        return out
    for k in range(n_boot):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            comp = fit_pls(sims[:, k], d.X, list(d.factors), fit.method)
        stalled += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        by_name = {e.name: e for e in comp.factors}
        phi = _multi_phi(p, [by_name[n].cov for n in order], comp.sigma)
        rows.append(np.r_[phi, comp.beta])
    if stalled:
        warnings.warn(
            f"{stalled} of {n_boot} bootstrap refits stopped with a gradient above 1e-3 and were "
            "kept (as lme4's bootMer keeps them).",
            ConvergenceWarning,
            stacklevel=3,
        )
    out = pd.DataFrame(rows, columns=names)
    out.attrs.update(n_boot=n_boot, random_seed=random_seed)
    return out
