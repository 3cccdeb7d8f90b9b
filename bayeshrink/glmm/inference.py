"""After a GLMM fit, as lme4 does it for ``glmer``: ``simulate``, ``anova`` and ``confint``.

- :func:`simulate`: lme4's ``simulate.merMod``: new random effects ``b ~ N(0, Sigma_hat)`` per
  simulation (``use_u=True``: the conditional modes kept), then binomial or Poisson responses
  at ``mu = g^{-1}(offset + X beta_hat + Z b)``.
- :func:`anova`: likelihood-ratio tests between nested GLMMs on the fits' log-likelihoods
  (Laplace, or AGQ's marginal log-likelihood), as lme4's ``anova(m0, m1)``.
- :func:`confint`: ``"wald"`` (fixed effects +- z se; NaN for the SDs, as lme4), ``"profile"``
  (the deviance profiled over each parameter, lme4's ``profile.merMod``: SDs of scalar random
  terms and fixed effects, on the SD scale) and ``"bootstrap"`` (parametric: :func:`simulate`,
  then each sample refitted from the fit's own estimates, lme4's ``bootMer``).

The profile works on the estimator's own deviance (:func:`~.estimate.build_core`: X centred and
scaled, Z scaled, the rows aggregated where that is exact), so it is the criterion the fit
minimised, and the bound at the fit's estimate is exactly 0.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd

from ..api import FitResult, check_count, check_level, lme4_term
from ..errors import (
    ColumnError,
    DataError,
    DataTypeError,
    MethodError,
    PirlsConvergenceError,
    RefitWarning,
    SeparationError,
)

__all__ = ["anova", "bootstrap", "confint", "parameter_names", "profile", "simulate"]


# =============================================================================== names
def parameter_names(fit) -> list[str]:
    """lme4's ``confint(oldNames = FALSE)`` names: per factor and block, each term's SD and
    then its correlations (``sd_(Intercept)|herd``, ``cor_x.(Intercept)|g``), then the fixed
    effects (the intercept written ``(Intercept)``)."""
    names = []
    for f in fit._factors:
        start = 0
        for size in f.block_sizes:
            terms = [lme4_term(t) for t in f.terms[start : start + size]]
            for c in range(size):
                names.append(f"sd_{terms[c]}|{f.name}")
                for r in range(c + 1, size):
                    names.append(f"cor_{terms[r]}.{terms[c]}|{f.name}")
            start += size
    return names + [lme4_term(t) for t in fit.fixed_terms]


def _variance_from(fit, e) -> np.ndarray:
    """The (sd, cor) parameters of an :class:`~.estimate.Estimate` on ``fit``'s layout."""
    Ts = [
        core_f.T(t) / d[:, None]
        for core_f, t, d in zip(
            e.core.factors, e.core.split_theta(e.theta_s), e.zscale, strict=True
        )
    ]
    return _variance_values(fit, Ts)


def _variance_values(fit, Ts=None) -> np.ndarray:
    out = []
    for i, f in enumerate(fit._factors):
        T = f.T if Ts is None else Ts[i]
        cov = T @ T.T
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        start = 0
        for size in f.block_sizes:
            for c in range(size):
                a = start + c
                out.append(sd[a])
                for r in range(c + 1, size):
                    b = start + r
                    with np.errstate(invalid="ignore", divide="ignore"):
                        out.append(cov[a, b] / (sd[a] * sd[b]))
            start += size
    return np.asarray(out, dtype=float)


def _estimates(fit) -> pd.Series:
    return pd.Series(np.r_[_variance_values(fit), fit._beta], index=parameter_names(fit))


def _check_fit(fit) -> None:
    # a GlmmFit (read by its parts: results.py imports this module for its methods)
    if not (isinstance(fit, FitResult) and hasattr(fit, "_family") and hasattr(fit, "nagq")):
        raise DataTypeError(
            f"`fit` must be a GLMM fit (bs.fit(..., family='binomial' or 'poisson')); got "
            f"{type(fit).__name__}."
        )


def _choose(names: list[str], parm) -> list[str]:
    if parm is None:
        return list(names)
    wanted = [parm] if isinstance(parm, str) else list(parm)
    out = []
    for w in wanted:
        w2 = w if w in names else lme4_term(w)
        if w2 not in names:
            raise ColumnError(
                f"`parm` must name parameters of the fit; got {w!r}. Parameters are: "
                f"{', '.join(map(repr, names))}."
            )
        out.append(w2)
    return out


# =============================================================================== simulate
def _draw_y(fit, nsim: int, rng: np.random.Generator, use_u: bool) -> np.ndarray:
    """(rows, nsim) responses on the design's scale (binomial: proportions of ``wt``)."""
    des, fam = fit._design, fit._family
    eta = (des.offset + des.X @ fit._beta)[:, None] + np.zeros((1, nsim))
    for f in fit._factors:
        if use_u:
            eta += np.einsum("ik,ik->i", f.Z, f.b[f.codes])[:, None]
            continue
        J, k = f.b.shape
        b = rng.standard_normal((nsim, J, k)) @ f.T.T  # b = T u, u ~ N(0, I)
        eta += np.einsum("ik,sik->is", f.Z, b[:, f.codes, :])
    mu = fam.link.linkinv(eta)
    if fam.name == "binomial":
        trials = np.round(des.wt).astype(np.int64)
        succ = rng.binomial(trials[:, None], mu)
        return np.where(trials[:, None] > 0, succ / np.maximum(trials, 1)[:, None], 0.0)
    return rng.poisson(mu).astype(float)


def simulate(fit, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
    """New responses from a fitted GLMM, as lme4's ``simulate(m, nsim, seed, use.u)``.

    Each simulation draws new random effects ``b ~ N(0, Sigma_hat)`` for every grouping factor
    (``use_u=True`` keeps the conditional modes instead), then each row's response from the
    family at ``mu = g^{-1}(offset + X beta_hat + Z b)``: Poisson counts; binomial successes
    out of the row's trials. The values have the response's form: 0/1 for a binary response,
    successes for ``cbind(successes, failures)``, proportions for a proportion with
    ``weights=``. One column per simulation (``sim_1``, ...), one row per fitted row, indexed
    as the fitted rows of the data (with ``missing="drop"``, the kept rows' labels).

    Examples
    --------
    >>> import bayeshrink as bs
    >>> cbpp = bs.load_dataset("cbpp")
    >>> m = bs.fit(cbpp, formula="cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...            family="binomial")
    >>> m.simulate(3, seed=1).shape
    (56, 3)
    """
    _check_fit(fit)
    nsim = check_count(nsim, "nsim", 1)
    y = _draw_y(fit, nsim, np.random.default_rng(seed), bool(use_u))
    des = fit._design
    if fit.family == "binomial" and des.response_kind == "cbind":
        y = np.round(y * des.wt[:, None])
    return pd.DataFrame(y, index=fit._rows_index(), columns=[f"sim_{k + 1}" for k in range(nsim)])


# =============================================================================== anova
def _nested_in(small, big) -> str | None:
    """Why ``small`` is not nested in ``big`` (None when it is)."""
    if not set(small.fixed_terms) <= set(big.fixed_terms):
        extra = sorted(set(small.fixed_terms) - set(big.fixed_terms))
        return f"fixed terms {extra} are not in the larger model"
    bigf = {f.name: set(f.terms) for f in big._factors}
    for f in small._factors:
        if f.name not in bigf or not set(f.terms) <= bigf[f.name]:
            return f"the random term ({' + '.join(f.terms)} | {f.name}) is not in the larger model"
    return None


def anova(*fits, names: list[str] | None = None) -> pd.DataFrame:
    """Likelihood-ratio tests between nested GLMMs, as lme4's ``anova(m0, m1, ...)``.

    The models are sorted by their number of parameters; each row after the first tests it
    against the row above: ``chisq = 2 (logLik_i - logLik_{i-1})`` on the fits' own
    log-likelihoods (Laplace for ``nagq=1``; AGQ's marginal log-likelihood for ``nagq > 1``,
    which lme4 1.1-31 prints on another scale), ``df`` the difference in parameters, ``p``
    from the chi-square distribution. A variance tested at 0 lies on the boundary, where this
    p-value is conservative (as in lme4).

    Returns
    -------
    pandas.DataFrame
        ``npar``, ``aic``, ``bic``, ``loglik``, ``deviance`` (-2 logLik, as lme4's anova table;
        not the fit's ``deviance``, lme4's sum of squared deviance residuals), ``chisq``,
        ``df``, ``p_value``, indexed by the models' formulas or ``names``.
    """
    from scipy import stats

    if len(fits) == 1 and isinstance(fits[0], (list, tuple)):
        fits = tuple(fits[0])
    if len(fits) < 2:
        raise DataError(
            f"`anova` must be given at least two fitted models; got {len(fits)}. "
            "E.g. bs.anova(m0, m1) with m0 nested in m1."
        )
    for f in fits:
        _check_fit(f)
    labels = list(names) if names is not None else [f.formula for f in fits]
    if len(labels) != len(fits):
        raise DataError(f"`names` must give one label per model ({len(fits)}); got {len(labels)}.")
    d0 = fits[0]._design
    for f, lab in zip(fits[1:], labels[1:], strict=True):
        d = f._design
        why = None
        if (f.family, f.link) != (fits[0].family, fits[0].link):
            why = f"families {fits[0].family}({fits[0].link}) and {f.family}({f.link})"
        elif len(d.y) != len(d0.y):
            why = f"{len(d0.y)} and {len(d.y)} rows"
        elif not (np.array_equal(d.y * d.wt, d0.y * d0.wt) and np.array_equal(d.wt, d0.wt)):
            why = "different responses"
        if why is not None:
            raise DataError(
                f"the models compared by `anova` must be fitted to the same rows and response "
                f"with the same family; {labels[0]} and {lab} have {why}. Fit every model to the "
                "same data frame with the same family."
            )
    order = sorted(range(len(fits)), key=lambda i: (fits[i].n_params, i))
    fits = [fits[i] for i in order]
    labels = [labels[i] for i in order]
    for a, b, la, lb in zip(fits[:-1], fits[1:], labels[:-1], labels[1:], strict=True):
        why = _nested_in(a, b)
        if why is not None:
            raise MethodError(
                f"the models given to `anova` must be nested; {la} is not nested in {lb}: {why}. "
                "A likelihood-ratio test compares a model with a larger one that contains it; "
                "compare non-nested models by `aic`."
            )
    rows = []
    for i, f in enumerate(fits):
        row = {
            "npar": f.n_params,
            "aic": f.aic,
            "bic": f.bic,
            "loglik": f.loglik,
            "deviance": f.minus2loglik,
            "chisq": np.nan,
            "df": np.nan,
            "p_value": np.nan,
        }
        if i:
            prev = fits[i - 1]
            chisq = max(2.0 * (f.loglik - prev.loglik), 0.0)
            df = f.n_params - prev.n_params
            row.update(chisq=chisq, df=float(df))
            row["p_value"] = float(stats.chi2.sf(chisq, df)) if df > 0 else np.nan
        rows.append(row)
    out = pd.DataFrame(rows, index=pd.Index(labels, name="model"))
    out["npar"] = out["npar"].astype(int)
    return out


# =============================================================================== profile
class _Deviance:
    """The fit's own criterion as a function of (theta_s, beta_s), PIRLS warm-started."""

    def __init__(self, fit):
        from .estimate import build_core

        if not hasattr(fit, "_theta_s"):
            raise MethodError("the fit does not carry its estimator's coordinates; refit it.")
        self.core, self.A, self.zscale = build_core(fit._design, fit._family)
        self.nagq = fit.nagq
        self.nt = len(fit._theta_s)
        self.lower = np.array([lo for f in self.core.factors for lo in f.theta_lower()])
        self.theta_hat = np.asarray(fit._theta_s, dtype=float)
        self.beta_hat = np.asarray(fit._beta_s, dtype=float)
        self.u = np.zeros(self.core.q)
        self.theta_u = None
        self.dev_hat = self(self.theta_hat, self.beta_hat)
        self.gradient = self.core.has_gradient and self.nagq == 1

    def __call__(self, theta, beta) -> float:
        core = self.core
        core.set_theta(theta)
        u0 = self.u if self.theta_u is None else core.carry_u(self.u, self.theta_u)
        try:
            u = core.pirls_u(beta, u0)
        except PirlsConvergenceError as exc:
            raise PirlsConvergenceError(
                f"PIRLS must find the conditional modes along the profile; it failed ({exc}) at "
                f"theta={np.round(theta, 4).tolist()} (scaled). Use method='wald' or "
                "'bootstrap'."
            ) from exc
        self.u, self.theta_u = u, np.array(theta, dtype=float)
        self.beta_u = np.array(beta, dtype=float)
        return core.laplace(beta, u) if self.nagq == 1 else core.agq(beta, u, self.nagq)

    def grad(self, theta, beta):
        if not (
            np.array_equal(self.theta_u, theta) and np.array_equal(self.beta_u, np.asarray(beta))
        ):
            self(theta, beta)
        return self.core.laplace_gradient(beta, self.u)


def _scalar_theta_index(fit, k: int) -> tuple[int, float] | None:
    """For variance parameter k: (its index in theta, the Z scale) when it is the SD of a
    scalar term (a 1 x 1 block), else None."""
    pos_param = 0
    pos_theta = 0
    for f, d in zip(fit._factors, _zscales(fit), strict=True):
        start = 0
        for size in f.block_sizes:
            n_par = size * (size + 1) // 2
            if pos_param <= k < pos_param + n_par:
                return (pos_theta, float(d[start])) if size == 1 else None
            pos_param += n_par
            pos_theta += n_par
            start += size
    return None


def _zscales(fit):
    out = []
    for fd in fit._design.factors:
        d = np.sqrt(np.mean(fd.Z**2, axis=0))
        d[d == 0] = 1.0
        out.append(d)
    return out


class _Profile:
    """The signed root of the deviance's rise, ``zeta(v)``, for one parameter fixed at v and
    all others re-optimised (lme4's ``profile``)."""

    def __init__(self, fit, dev: _Deviance, name: str, k: int, n_var: int):
        self.dev, self.name = dev, name
        self.fixed = k >= n_var
        nt, p = dev.nt, len(dev.beta_hat)
        if self.fixed:
            j = k - n_var
            a = dev.A[j, :]
            self.a = a / (a @ a)
            # an orthonormal basis of a's null space: beta_s = a v / |a|^2 + N w
            q, _ = np.linalg.qr(np.column_stack([a, np.eye(p)]))
            self.N = q[:, 1:p]
            self.hat = float(fit._beta[j])
            self.se = float(np.sqrt(fit._vcov[j, j]))
            self.x_hat = np.r_[dev.theta_hat, self.N.T @ dev.beta_hat]
            self.lower = np.r_[dev.lower, np.full(p - 1, -np.inf)]
        else:
            t, d = _scalar_theta_index(fit, k)
            self.t, self.d = t, d
            self.hat = abs(float(dev.theta_hat[t])) / d
            free = np.ones(nt, dtype=bool)
            free[t] = False
            self.free_t = free
            self.x_hat = np.r_[dev.theta_hat[free], dev.beta_hat]
            self.lower = np.r_[dev.lower[free], np.full(p, -np.inf)]
            self.se = _sd_se(fit, t, d)
        self.start = {+1: self.x_hat.copy(), -1: self.x_hat.copy()}

    def _unpack(self, v, x):
        nt = self.dev.nt
        if self.fixed:
            return x[:nt], self.a * v + self.N @ x[nt:]
        theta = np.empty(nt)
        theta[self.free_t] = x[: nt - 1]
        theta[self.t] = v * self.d
        return theta, x[nt - 1 :]

    def deviance(self, v, side: int) -> float:
        from .optimize import minimize

        dev = self.dev

        def fun(x):
            return dev(*self._unpack(v, x))

        grad = None
        if dev.gradient:

            def grad(x):
                theta, beta = self._unpack(v, x)
                g_theta, g_beta = dev.grad(theta, beta)
                if self.fixed:
                    return np.r_[g_theta, self.N.T @ g_beta]
                return np.r_[g_theta[self.free_t], g_beta]

        x0 = np.maximum(self.start[side], self.lower)
        if len(x0) == 0:
            return fun(x0)
        x, f, _, _ = minimize(fun, x0, self.lower, grad=grad, newton=False)
        self.start[side] = x
        return f

    def zeta(self, v, side: int) -> float:
        rise = self.deviance(v, side) - self.dev.dev_hat
        return math.copysign(math.sqrt(max(rise, 0.0)), v - self.hat)

    def bound(self, side: int, z: float) -> float:
        """The v on ``side`` (+1 above, -1 below the estimate) where zeta = side * z: secant
        steps on zeta (nearly linear in v), kept inside the bracket once one is found."""
        target = side * z
        step = self.se if np.isfinite(self.se) and self.se > 0 else max(0.5 * self.hat, 0.1)
        pts = [(self.hat, 0.0)]
        v = self.hat + side * z * step
        lo_b = hi_b = None  # points with zeta below / above the target
        for _ in range(60):
            if not self.fixed and v <= 0.0:
                v = 0.0
            zv = self.zeta(v, side)
            if abs(zv - target) < 1e-9:
                return v
            if not self.fixed and v == 0.0 and zv > target:
                return 0.0  # the deviance at SD = 0 rises less than z^2: one-sided
            if zv < target:
                lo_b = (v, zv) if lo_b is None or v > lo_b[0] else lo_b
            else:
                hi_b = (v, zv) if hi_b is None or v < hi_b[0] else hi_b
            pts.append((v, zv))
            (v1, z1), (v2, z2) = pts[-2], pts[-1]
            new = v2 + (target - z2) * (v2 - v1) / (z2 - z1) if z2 != z1 else np.nan
            if lo_b is not None and hi_b is not None:
                a, b = sorted((lo_b[0], hi_b[0]))
                if abs(b - a) < 1e-11 * max(1.0, abs(self.hat)):
                    return 0.5 * (a + b)
                if not (np.isfinite(new) and a < new < b):
                    new = 0.5 * (a + b)
            elif not np.isfinite(new) or (side * (new - v2) <= 0 and side * (zv - target) < 0):
                new = v2 + side * step  # not yet past the target: keep walking out
            elif abs(new - v2) > 4 * abs(v2 - v1) + step:
                new = v2 + np.sign(new - v2) * (4 * abs(v2 - v1) + step)
            v = new
        raise MethodError(
            f"the profile of {self.name} does not reach zeta = {target:.3g} on that side; the "
            "likelihood is flat there (e.g. a near-separated group). Use method='bootstrap'."
        )


def _sd_se(fit, t: int, d: float) -> float:
    """An approximate SE of a scalar term's SD from the fit's Hessian in (theta_s, ...)."""
    H = getattr(fit, "_hessian", None)
    if H is None:
        return float("nan")
    try:
        inv = np.linalg.pinv(H)
    except np.linalg.LinAlgError:
        return float("nan")
    v = 2.0 * inv[t, t]
    return float(np.sqrt(v) / d) if v > 0 else float("nan")


def profile(fit, parm=None, level: float = 0.95) -> pd.DataFrame:
    """Profile-likelihood bounds (see :func:`confint`, method="profile")."""
    from scipy import stats

    _check_fit(fit)
    level = check_level(level)
    if fit.nagq == 0:
        raise MethodError(
            "`method='profile'` needs the Laplace or AGQ deviance; the fit has nagq=0 (lme4's "
            "fast fit, which does not optimise the fixed effects in the deviance). Refit with "
            "nagq=1, or use method='wald' or 'bootstrap'."
        )
    est = _estimates(fit)
    names = list(est.index)
    chosen = _choose(names, parm)
    n_var = len(names) - len(fit.fixed_terms)
    for name in chosen:
        k = names.index(name)
        if k < n_var and _scalar_theta_index(fit, k) is None:
            raise MethodError(
                f"profile intervals for a GLMM cover the SDs of scalar random terms and the "
                f"fixed effects; {name!r} belongs to a vector term. Pass `parm=` with the "
                "fixed effects, or use method='bootstrap'."
            )
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    dev = _Deviance(fit)
    lo = pd.Series(np.nan, index=chosen)
    hi = pd.Series(np.nan, index=chosen)
    for name in chosen:
        pr = _Profile(fit, dev, name, names.index(name), n_var)
        lo[name] = pr.bound(-1, z)
        hi[name] = pr.bound(+1, z)
    out = pd.DataFrame({"estimate": est.loc[chosen], "lo": lo, "hi": hi})
    out.attrs.update(level=level, method="profile")
    return out


# =============================================================================== bootstrap
def bootstrap(fit, n_boot: int = 500, random_seed=None, use_u: bool = False) -> pd.DataFrame:
    """The parametric bootstrap (lme4's ``bootMer``): ``n_boot`` responses from
    :func:`simulate`, each refitted on the fit's design started from the fit's estimates.
    Returns the estimates (lme4's names, as :func:`confint`), one row per replicate; a refit
    that fails (separation, PIRLS) is a row of NaN, counted in ``attrs["failed"]`` and
    announced by a :class:`~bayeshrink.errors.RefitWarning`."""
    from .estimate import estimate, one_thread

    _check_fit(fit)
    n_boot = check_count(n_boot, "n_boot", 1)
    rng = np.random.default_rng(random_seed)
    ys = _draw_y(fit, n_boot, rng, bool(use_u))
    des, fam = fit._design, fit._family
    names = parameter_names(fit)
    out = np.full((n_boot, len(names)), np.nan)
    failed = 0
    start = (fit._theta_s, fit._beta_s)
    with one_thread():
        for s in range(n_boot):
            d2 = dataclasses.replace(des, y=ys[:, s])
            try:
                e = estimate(d2, fam, fit.nagq, start=start)
            except (SeparationError, PirlsConvergenceError):
                failed += 1
                continue
            out[s] = np.r_[_variance_from(fit, e), e.A @ e.beta_s]
    if failed:
        warnings.warn(
            f"{failed} of {n_boot} bootstrap refits failed (separation or PIRLS) and are NaN; "
            "the intervals use the other refits.",
            RefitWarning,
            stacklevel=2,
        )
    res = pd.DataFrame(out, columns=names)
    res.attrs.update(failed=failed, n_boot=n_boot)
    return res


# =============================================================================== confint
def confint(
    fit,
    parm=None,
    level: float = 0.95,
    method: str = "wald",
    *,
    n_boot: int = 500,
    random_seed=None,
) -> pd.DataFrame:
    """Confidence intervals for a GLMM, as lme4's ``confint(m, method=, oldNames = FALSE)``.

    ``method="wald"``: ``fixef +- z se`` (se from ``vcov``), NaN for the random-effect SDs as
    lme4. ``"profile"``: for each parameter the value where the signed root of the rise in
    the deviance (all other parameters re-optimised) reaches ``+-z``, lme4's
    ``profile.merMod`` on the SD scale, found by root finding (lme4 interpolates the profile
    by splines; they agree to its interpolation error); an SD whose profile at 0 stays within
    ``z`` gets the bound 0. Covers the SDs of scalar random terms and the fixed effects.
    ``"bootstrap"``: percentile intervals of :func:`bootstrap`'s ``n_boot`` refits,
    reproducible with ``random_seed``.

    Returns a frame with ``estimate``, ``lo``, ``hi`` per parameter (``attrs``: ``level``,
    ``method``).
    """
    from scipy import stats

    _check_fit(fit)
    m = method.lower() if isinstance(method, str) else method
    if m not in ("wald", "profile", "bootstrap", "boot"):
        raise MethodError(
            f"`method` must be 'wald', 'profile' or 'bootstrap'; got {method!r}. 'wald' is "
            "quick (fixed effects only), 'profile' inverts the likelihood-ratio test, "
            "'bootstrap' refits to responses simulated from the fit."
        )
    level = check_level(level)
    if m == "profile":
        return profile(fit, parm, level)
    est = _estimates(fit)
    names = list(est.index)
    chosen = _choose(names, parm)
    n_var = len(names) - len(fit.fixed_terms)
    lo = pd.Series(np.nan, index=names)
    hi = pd.Series(np.nan, index=names)
    if m == "wald":
        z = float(stats.norm.ppf(0.5 + level / 2.0))
        se = np.sqrt(np.diag(fit._vcov))
        lo.iloc[n_var:] = fit._beta - z * se
        hi.iloc[n_var:] = fit._beta + z * se
        m_out = "wald"
    else:
        draws = bootstrap(fit, n_boot=n_boot, random_seed=random_seed)
        q = draws.quantile([0.5 - level / 2.0, 0.5 + level / 2.0])
        lo[:] = q.iloc[0].to_numpy()
        hi[:] = q.iloc[1].to_numpy()
        m_out = "bootstrap"
    out = pd.DataFrame({"estimate": est, "lo": lo, "hi": hi}).loc[chosen]
    out.attrs.update(level=level, method=m_out)
    return out
