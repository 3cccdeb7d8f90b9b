"""The result of a GLMM fit (:class:`GlmmFit`), with lme4's names and definitions.

==================  ===========================================================================
``fixef``           fixed effects on the link scale; lme4 ``fixef()``
``vcov``            their covariance: for ``nagq >= 1`` twice the fixed-effects block of the
                    inverse Hessian of the deviance in (theta, beta), as lme4's default
                    ``vcov()``; for ``nagq = 0`` the inverse of the penalised information
                    (lme4's ``RX``)
``theta``           lme4's ``getME(m, "theta")`` (relative factor; sigma is 1)
``loglik``          the log-likelihood: Laplace for ``nagq = 1``; for ``nagq > 1`` the
                    marginal log-likelihood by quadrature, on the same scale (lme4 1.1-31 prints
                    another constant for nAGQ > 1: -50.005 for cbpp with nAGQ = 25, where the
                    marginal log-likelihood at the same estimates is -91.983)
``deviance``        lme4's ``deviance()`` of a glmer fit: the sum of the squared deviance
                    residuals at the conditional modes. It is *not* ``-2 loglik`` (cbpp: 73.47
                    against 184.05); ``minus2loglik`` is that
``aic``, ``bic``    ``-2 loglik + 2 k`` and ``+ k log(n)``, k = fixed effects + theta, n = rows
``ranef()``         conditional modes of the random effects (group x term)
``ranef_sd()``      their conditional SDs, lme4's ``condVar``
``coef()``          fixed + random, per group; lme4 ``coef()``
==================  ===========================================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..api import SINGULAR_TOL, FitResult
from ..display import fmt, group_tables_text, html_report
from ..errors import ColumnError, DataError, MethodError, rows_verb
from ..frames import as_frame, interaction_labels
from ..inference.model import match_groups

__all__ = ["GlmmFit"]


class _FactorResult:
    __slots__ = ("T", "Z", "b", "block_sizes", "codes", "cond_cov", "labels", "name", "terms")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


class GlmmFit(FitResult):
    """A binomial or Poisson GLMM fitted as lme4's ``glmer`` (see the module docstring)."""

    data_kind = "long"

    # ------------------------------------------------------------------ construction
    @classmethod
    def _from_core(
        cls, des, core, fam, nagq, theta_s, beta_s, u, dev, A, zscale, vcov_s, hess, info
    ):
        self = cls.__new__(cls)
        self._design = des
        self.family = fam.name
        self.link = fam.link.name
        self._family = fam
        self.nagq = nagq
        self.formula = des.formula
        self.response = des.response
        self.fixed_terms = list(des.fixed_names)
        beta = A @ beta_s
        self._beta = beta
        self._vcov = A @ vcov_s @ A.T
        self.minus2loglik = float(dev)
        self.optinfo = info
        self._hessian = hess
        ccov = core.cond_cov_u(beta_s, u)
        factors, pos, thetas = [], 0, []
        for f, fd, d, T_s, cc in zip(core.factors, des.factors, zscale, core.Ts, ccov, strict=True):
            uu = u[pos : pos + f.J * f.k].reshape(f.J, f.k)
            pos += f.J * f.k
            T = T_s / d[:, None]  # b = D^{-1} T_s u
            start = 0
            for s in f.block_sizes:
                for c in range(s):
                    for r in range(c, s):
                        thetas.append(T[start + r, start + c])
                start += s
            factors.append(
                _FactorResult(
                    name=fd.name,
                    labels=fd.labels,
                    terms=tuple(fd.terms),
                    block_sizes=tuple(fd.block_sizes),
                    T=T,
                    b=uu @ T.T,
                    cond_cov=np.einsum("ab,jbc,dc->jad", T, cc, T),
                    codes=fd.codes,
                    Z=fd.Z,
                )
            )
        self._factors = factors
        self.theta = np.asarray(thetas)
        eta = des.offset + des.X @ beta
        for fr in factors:
            eta = eta + np.einsum("ik,ik->i", fr.Z, fr.b[fr.codes])
        self._eta = eta
        self._mu = fam.link.linkinv(eta)
        self.deviance = float(np.sum(fam.dev_resids(des.y, self._mu, des.wt)))
        return self

    # ------------------------------------------------------------------ the one API
    @property
    def method(self) -> str:
        if self.nagq == 0:
            return "nAGQ=0"
        return "Laplace" if self.nagq == 1 else f"AGQ({self.nagq})"

    @property
    def factors(self) -> list[str]:
        return [f.name for f in self._factors]

    def _factor(self, factor):
        if factor is None:
            if len(self._factors) == 1:
                return self._factors[0]
            raise ColumnError(
                f"`factor` must name one of the grouping factors {self.factors} when the model "
                f"has several; got None. Pass e.g. factor={self.factors[0]!r}."
            )
        for f in self._factors:
            if f.name == factor:
                return f
        raise ColumnError(f"`factor` must be one of {self.factors}; got {factor!r}.")

    @property
    def group(self) -> str:
        return self._factors[0].name

    @property
    def groups(self) -> pd.Index:
        return self._factors[0].labels

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def n_obs(self) -> int:
        return len(self._design.y)

    @property
    def n(self) -> np.ndarray:
        f = self._factors[0]
        return np.bincount(f.codes, minlength=len(f.labels))

    @property
    def random_terms(self) -> list[str]:
        return list(self._factors[0].terms)

    @property
    def block_sizes(self) -> tuple[int, ...]:
        return self._factors[0].block_sizes

    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self._beta, index=self.fixed_terms, dtype=float)

    @property
    def vcov(self) -> pd.DataFrame:
        return pd.DataFrame(self._vcov, index=self.fixed_terms, columns=self.fixed_terms)

    @property
    def sigma(self) -> float:
        return 1.0

    def cov_re(self, factor: str | None = None) -> pd.DataFrame:
        """lme4's ``VarCorr(m)[[factor]]`` (link scale; a GLMM has no residual variance)."""
        f = self._factor(factor)
        return pd.DataFrame(f.T @ f.T.T, index=list(f.terms), columns=list(f.terms))

    @property
    def boundary(self) -> bool:
        """lme4's ``isSingular()``: a diagonal entry of a relative factor below 1e-4."""
        return any(np.any(np.abs(np.diag(f.T)) < SINGULAR_TOL) for f in self._factors)

    @property
    def loglik(self) -> float:
        return -0.5 * self.minus2loglik

    @property
    def n_params(self) -> int:
        return len(self.fixed_terms) + len(self.theta)

    @property
    def aic(self) -> float:
        return self.minus2loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        return self.minus2loglik + self.n_params * np.log(self.n_obs)

    def _frame_of(self, f, values) -> pd.DataFrame:
        return pd.DataFrame(
            np.asarray(values, dtype=float), index=f.labels.copy(), columns=list(f.terms)
        )

    def ranef(self, factor: str | None = None) -> pd.DataFrame:
        """Conditional modes of the random effects (link scale), group x term."""
        f = self._factor(factor)
        return self._frame_of(f, f.b)

    def ranef_sd(self, factor: str | None = None) -> pd.DataFrame:
        """Conditional SDs of the random effects: lme4's ``ranef(m, condVar = TRUE)``."""
        f = self._factor(factor)
        return self._frame_of(f, np.sqrt(np.diagonal(f.cond_cov, axis1=1, axis2=2)))

    def _fixed_of(self, f) -> np.ndarray:
        fe = self.fixef
        return np.array([float(fe.get(t, 0.0)) for t in f.terms])

    def coef(self, factor: str | None = None) -> pd.DataFrame:
        """Fixed + random effects per group (lme4's ``coef()`` for the random terms)."""
        f = self._factor(factor)
        return self._frame_of(f, f.b + self._fixed_of(f)[None, :])

    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))`` (no Residual row: sigma is 1 for these
        families)."""
        rows = []
        for f in self._factors:
            cov = f.T @ f.T.T
            sd = np.sqrt(np.diag(cov))
            start = 0
            for k, size in enumerate(f.block_sizes):
                grp = f.name if k == 0 else f"{f.name}.{k}"
                idx = range(start, start + size)
                for i in idx:
                    rows.append((grp, f.terms[i], None, cov[i, i], sd[i]))
                for a in idx:
                    for b in idx:
                        if b > a:
                            with np.errstate(invalid="ignore", divide="ignore"):
                                r = cov[a, b] / (sd[a] * sd[b])
                            rows.append((grp, f.terms[a], f.terms[b], cov[a, b], r))
                start += size
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

    # ------------------------------------------------------------------ rows
    def _rows_index(self) -> pd.Index:
        """The data's index of the fitted rows (with ``missing="drop"``, of the kept rows)."""
        idx = self._design.index
        return pd.RangeIndex(len(self._mu)) if idx is None else idx

    def fitted(self) -> pd.Series:
        """Fitted means per row on the response scale (probabilities for binomial; lme4's
        ``fitted()``), indexed as the fitted rows of the data (as the LMM's ``fitted()``)."""
        return pd.Series(self._mu.copy(), index=self._rows_index(), name="fitted")

    def linear_predictor(self) -> np.ndarray:
        return self._eta.copy()

    def resid(self, type: str = "deviance") -> pd.Series:
        """Residuals as lme4's ``residuals(m, type)``: ``"deviance"`` (default),
        ``"pearson"`` ((y - mu) sqrt(wt / V(mu))) or ``"response"`` (y - mu, binomial on the
        proportion scale); indexed as the fitted rows of the data (as the LMM's ``resid()``)."""
        des, mu, fam = self._design, self._mu, self._family
        if type == "response":
            r = des.y - mu
        elif type == "pearson":
            r = (des.y - mu) * np.sqrt(des.wt / fam.variance(mu))
        elif type == "deviance":
            d = np.maximum(fam.dev_resids(des.y, mu, des.wt), 0.0)
            r = np.sign(des.y - mu) * np.sqrt(d)
        else:
            raise MethodError(f"`type` must be 'deviance', 'pearson' or 'response'; got {type!r}.")
        return pd.Series(r, index=self._rows_index(), name="resid")

    def predict(
        self,
        newdata=None,
        type: str = "link",
        *,
        random: bool = True,
        allow_new_levels: bool = False,
    ) -> np.ndarray:
        """Predictions as lme4's ``predict(m, newdata, type, re.form, allow.new.levels)``.

        ``type="link"`` (default) gives eta, ``"response"`` the mean (probability or rate);
        ``random=False`` leaves the random effects out (lme4's ``re.form = NA``). Levels not
        in the fit raise unless ``allow_new_levels=True``, which gives them the population
        value (random effect 0). The offset terms are evaluated on ``newdata``.
        """
        if type not in ("link", "response"):
            raise MethodError(f"`type` must be 'link' or 'response'; got {type!r}.")
        if newdata is None:
            if random:
                eta = self._eta
            else:
                eta = self._design.offset + self._design.X @ self._beta
        else:
            eta = self._predict_new(
                as_frame(newdata).reset_index(drop=True), random, allow_new_levels
            )
        return eta.copy() if type == "link" else self._family.link.linkinv(eta)

    def _predict_new(self, df, random, allow_new_levels):
        from .frame import evaluate_expression

        des = self._design
        enc = des.encoder
        X, _ = enc.evaluate(df)
        eta = X @ self._beta
        for expr in des.offset_exprs:
            off = evaluate_expression(expr, df, f"`offset({expr})` on `newdata`").astype(float)
            bad = ~np.isfinite(off)
            if bad.any():
                # as the fit, which refuses a non-finite offset (e.g. log of an exposure <= 0)
                raise DataError(
                    f"`offset({expr})` on `newdata` must be finite; "
                    f"{rows_verb(df.index[bad], 'gives', 'give')} NaN or inf (e.g. "
                    f"{off[bad][0]:g}: the log of an exposure of 0 or below?). An offset enters "
                    "the linear predictor as it is: correct the column or leave those rows out."
                )
            eta = eta + off
        if not random:
            return eta
        n = len(df)
        Zs: dict[str, list[np.ndarray]] = {}
        for name, blk in zip(des.block_factors, enc.blocks, strict=True):
            z = np.asarray(blk.evaluate_new_data(df).design_matrix, dtype=float).reshape(n, -1)
            Zs.setdefault(name, []).append(z)
        for f in self._factors:
            Z = np.hstack(Zs[f.name])
            comps = f.name.split(":")
            absent = [c for c in comps if c not in df.columns]
            if absent:
                raise ColumnError(
                    f"`newdata` must have the grouping column(s) {absent} (or pass "
                    "random=False for population predictions)."
                )
            missing = df[comps].isna().any(axis=1).to_numpy()
            if missing.any():
                raise DataError(
                    f"`newdata` must give every row a level of {f.name!r}; "
                    f"{rows_verb(df.index[missing], 'holds', 'hold')} a missing value. Fill "
                    "them in, drop them, or pass random=False for population predictions (a "
                    "missing group is not a new level)."
                )
            if len(comps) > 1:
                labels = interaction_labels(df, comps)
                codes = pd.Index(f.labels.astype(str)).get_indexer(labels.astype(str))
            else:
                labels = df[comps[0]]
                # as the LMM path: by value, else by text (308 in the fit, "308" in newdata)
                codes = match_groups(pd.Index(f.labels), labels)
            new = codes < 0
            if new.any() and not allow_new_levels:
                raise DataError(
                    f"`newdata` holds levels of {f.name!r} that are not in the fit "
                    f"({', '.join(map(repr, pd.unique(labels[new])[:5]))}); pass "
                    "allow_new_levels=True to give them the population value (random effect 0)."
                )
            b = np.where(new[:, None], 0.0, f.b[np.maximum(codes, 0)])
            eta = eta + np.einsum("ik,ik->i", Z, b)
        return eta

    # ------------------------------------------------------------------ after the fit
    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
        """New responses, lme4's ``simulate(m, nsim, seed, use.u)``; see
        :func:`bayeshrink.glmm.inference.simulate`."""
        from .inference import simulate

        return simulate(self, nsim, seed, use_u)

    def confint(
        self,
        parm=None,
        level: float = 0.95,
        method: str = "wald",
        *,
        n_boot: int = 500,
        random_seed=None,
    ) -> pd.DataFrame:
        """lme4's ``confint(m, method = "Wald" | "profile" | "boot")``; see
        :func:`bayeshrink.glmm.inference.confint`."""
        from .inference import confint

        return confint(self, parm, level, method, n_boot=n_boot, random_seed=random_seed)

    # ------------------------------------------------------------------ per group, link scale
    def _information(self, f):
        """Per group, Z_j' W Z_j at the conditional modes (link scale; b's units)."""
        fam, des = self._family, self._design
        d = fam.link.mu_eta(self._eta)
        W = des.wt * d * d / fam.variance(self._mu)
        outer = W[:, None, None] * f.Z[:, :, None] * f.Z[:, None, :]
        J, k = len(f.labels), len(f.terms)
        out = np.stack(
            [
                np.bincount(f.codes, weights=outer[:, a, b], minlength=J)
                for a in range(k)
                for b in range(k)
            ],
            axis=1,
        )
        return out.reshape(J, k, k)

    def _own(self, f):
        """Each group's own GLM for the factor's terms, the rest of eta held at the fit: the
        maximum-likelihood deviations, their covariance and a status per group."""
        fam, des = self._family, self._design
        J, k = len(f.labels), len(f.terms)
        base = self._eta - np.einsum("ik,ik->i", f.Z, f.b[f.codes])
        b = f.b.copy()
        ok = np.ones(J, dtype=bool)
        y, wt = des.y, des.wt
        events = np.bincount(f.codes, weights=wt * y, minlength=J)
        trials = np.bincount(f.codes, weights=wt, minlength=J)
        status = np.array(["ok"] * J, dtype=object)
        if fam.name == "binomial":
            none, every = events <= 0, events >= trials
            status[none] = "all failures: no finite estimate"
            status[every] = "all successes: no finite estimate"
            status[trials <= 0] = "no trials: no estimate"
        else:
            none = events <= 0
            status[none] = "all zero: no finite estimate"
            status[trials <= 0] = "no weight: no estimate"
        ok &= status == "ok"
        cov = np.full((J, k, k), np.nan)
        for _ in range(100):
            eta = base + np.einsum("ik,ik->i", f.Z, b[f.codes])
            mu = fam.link.linkinv(eta)
            dd = fam.link.mu_eta(eta)
            v = fam.variance(mu)
            r = wt * (y - mu) * dd / v
            W = wt * dd * dd / v
            g = np.stack(
                [np.bincount(f.codes, weights=r * f.Z[:, a], minlength=J) for a in range(k)], axis=1
            )
            outer = W[:, None, None] * f.Z[:, :, None] * f.Z[:, None, :]
            H = np.stack(
                [
                    np.bincount(f.codes, weights=outer[:, a, c], minlength=J)
                    for a in range(k)
                    for c in range(k)
                ],
                axis=1,
            ).reshape(J, k, k)
            det = np.linalg.det(H)
            ok &= np.isfinite(det) & (np.abs(det) > 1e-12)
            Hs = np.where(ok[:, None, None], H, np.eye(k))
            step = np.linalg.solve(Hs, g[:, :, None])[:, :, 0]
            step[~ok] = 0.0
            step = np.clip(step, -5, 5)
            b = b + step
            if np.max(np.abs(step)) < 1e-10:
                cov[ok] = np.linalg.inv(Hs[ok])
                break
        status[(status == "ok") & ~ok] = "own terms not estimable"
        b[~ok] = np.nan
        return b, cov, status, events, trials

    def own_fit(self, factor: str | None = None) -> pd.DataFrame:
        """No pooling on the link scale: each group's own maximum-likelihood estimate of the
        factor's terms (its own GLM, the fixed effects of the other terms held at the fit).
        NaN for a group with no finite estimate (binomial: all failures or all successes;
        Poisson: all zero), with the reason in ``table()["own_status"]``."""
        f = self._factor(factor)
        b, *_ = self._own(f)
        return self._frame_of(f, b + self._fixed_of(f)[None, :])

    def own_se(self, factor: str | None = None) -> pd.DataFrame:
        f = self._factor(factor)
        _, cov, *_ = self._own(f)
        return self._frame_of(f, np.sqrt(np.diagonal(cov, axis1=1, axis2=2)))

    def shrinkage(self, factor: str | None = None) -> pd.DataFrame:
        """Per term, the weight on the population value on the link scale:
        ``1 - (C_j I_j)_kk``, with C_j the conditional covariance and I_j = Z_j'WZ_j the
        group's information at the conditional mode. With one term this is
        se_j^2 / (se_j^2 + tau^2), se_j^2 = 1 / I_j: the linear model's B_j, the data's weight
        measured by the curvature of the group's likelihood at the mode (finite also for groups
        whose own estimate is infinite)."""
        f = self._factor(factor)
        CI = np.einsum("jkl,jlm->jkm", f.cond_cov, self._information(f))
        return self._frame_of(f, 1.0 - np.diagonal(CI, axis1=1, axis2=2))

    def pred_sd(self, factor: str | None = None) -> pd.DataFrame:
        """sqrt(condVar + Var(fixed effect of the term)): the SD of ``coef()`` counting the
        fixed effects' uncertainty, ignoring their covariance with the modes (approximate)."""
        f = self._factor(factor)
        v = np.array(
            [float(self.vcov.loc[t, t]) if t in self.fixed_terms else 0.0 for t in f.terms]
        )
        return self._frame_of(f, np.sqrt(np.diagonal(f.cond_cov, axis1=1, axis2=2) + v[None, :]))

    def table(self, term: str | None = None, factor: str | None = None) -> pd.DataFrame:
        """One random term's per-group picture on the link scale, raw numbers indexed by the
        levels: n (rows), events and trials (binomial: successes and trials; Poisson: the
        count and the rows' weight), for Poisson exposure (the sum over the group's rows of
        weight x exp(offset): exp(offset) with no weights, 1 per row without an offset, so that
        for (1 | g) with an intercept alone no_pooling = log(events / exposure)),
        no_pooling (the group's own GLM estimate) and its se, own_status (why no_pooling is
        NaN: all failures / all successes / all zero / no trials (binomial) / no weight),
        shrinkage, cond_mode (the conditional mode plus the fixed effect: ``coef()``; the
        plug-in posterior's mode, not its mean, so not a "BLUP"), cond_sd (condVar), pred_sd,
        and the plug-in prior's mean and SD."""
        f = self._factor(factor)
        terms = list(f.terms)
        if term is None:
            term = terms[0]
        if term not in terms:
            raise ColumnError(f"`term` must be one of the random terms {terms}; got {term!r}.")
        k = terms.index(term)
        b, cov, status, events, trials = self._own(f)
        fixed = self._fixed_of(f)
        out = pd.DataFrame(
            {
                "n": np.bincount(f.codes, minlength=len(f.labels)),
                "events": events,
                "trials": trials,
                "no_pooling": b[:, k] + fixed[k],
                "se": np.sqrt(cov[:, k, k]),
                "own_status": status,
                "shrinkage": self.shrinkage(f.name)[term].to_numpy(),
                "cond_mode": f.b[:, k] + fixed[k],
                "cond_sd": np.sqrt(f.cond_cov[:, k, k]),
                "pred_sd": self.pred_sd(f.name)[term].to_numpy(),
            },
            index=f.labels.copy(),
        )
        if self.family == "poisson":
            des = self._design
            exposure = np.bincount(
                f.codes, weights=des.wt * np.exp(des.offset), minlength=len(f.labels)
            )
            out.insert(out.columns.get_loc("trials") + 1, "exposure", exposure)
        out["prior_mean"] = fixed[k]
        out["prior_sd"] = float(np.sqrt((f.T @ f.T.T)[k, k]))
        return out

    # ------------------------------------------------------------------ display
    def _summary_lines(self) -> list[str]:
        fam = f"{self.family} ({self.link} link)"
        lines = [
            f"Generalized linear mixed model fit by maximum likelihood ({self.method}) [glmer]",
            f"  Family: {fam}",
            f"  Formula: {self.formula}",
            f"  logLik {fmt(self.loglik)}   AIC {fmt(self.aic)}   BIC {fmt(self.bic)}   "
            f"deviance {fmt(self.deviance)} (sum of squared deviance residuals; "
            f"-2 logLik = {fmt(self.minus2loglik)})",
            "",
            "Random effects (link scale):",
        ]
        for _, r in self.varcorr().iterrows():
            if r["var2"] is None:
                lines.append(
                    f"  {r['grp']:<12} {r['var1']:<14} variance {fmt(r['vcov'])}  "
                    f"sd {fmt(r['sdcor'])}"
                )
            else:
                lines.append(f"  {r['grp']:<12} corr({r['var1']}, {r['var2']}) {fmt(r['sdcor'])}")
        nl = ", ".join(f"{f.name}: {len(f.labels)}" for f in self._factors)
        lines.append(f"  Number of obs: {self.n_obs}; groups: {nl}")
        lines.append("")
        lines.append("Fixed effects (link scale):")
        se = self.fixef_se
        for t in self.fixed_terms:
            z = self.fixef[t] / se[t]
            lines.append(
                f"  {t:<22} {fmt(self.fixef[t]):>12}  se {fmt(se[t]):>10}  z {fmt(z, 4):>8}"
            )
        if self.boundary:
            lines.append("")
            lines.append(
                "boundary (singular) fit: a random-effects covariance is estimated singular (a "
                "variance at 0 or a correlation at +-1); see help('isSingular') in lme4"
            )
        lines.append("")
        lines.append(
            "ranef() are conditional modes: the modes of each group's posterior under the "
            "plug-in prior N(0, Sigma_hat); in a GLMM they are not posterior means."
        )
        return lines

    def summary(self) -> str:
        return "\n".join([*self._summary_lines(), "", group_tables_text(self._group_tables())])

    def __repr__(self) -> str:
        return (
            f"<GlmmFit {self.family}/{self.link} {self.method}: {self.formula!r}, "
            f"logLik {fmt(self.loglik)}, boundary={self.boundary}>"
        )

    def _html_parts(self):
        lines = [
            ("family", f"{self.family} ({self.link})"),
            ("method", self.method),
            ("logLik", fmt(self.loglik)),
            ("AIC / BIC", f"{fmt(self.aic)} / {fmt(self.bic)}"),
            ("deviance", f"{fmt(self.deviance)} (sum of squared deviance residuals)"),
            ("boundary", "yes (singular fit)" if self.boundary else "no"),
        ]
        for t in self.fixed_terms:
            lines.append((t, f"{fmt(self.fixef[t])} (se {fmt(self.fixef_se[t])})"))
        for _, r in self.varcorr().iterrows():
            if r["var2"] is None:
                lines.append((f"sd {r['grp']}: {r['var1']}", fmt(r["sdcor"])))
        text = (
            "Per group on the link scale: its own GLM estimate (no_pooling), the conditional "
            "mode (cond_mode) and the weight on the population value (shrinkage)."
        )
        return f"GLMM {self.formula}", lines, text, self._group_tables()

    def _group_tables(self) -> list[tuple[str, pd.DataFrame, str]]:
        """Every factor's and term's per-group table, for the bounded summary and HTML."""
        out = []
        several = len(self._factors) > 1
        for f in self._factors:
            for term in f.terms:
                args = [repr(term)] if len(f.terms) > 1 else []
                if several:
                    args.append(f"factor={f.name!r}")
                table = self.table(term, factor=f.name if several else None)
                table = table.drop(columns=[c for c in ("prior_mean", "prior_sd") if c in table])
                caption = f"Per {f.name} ({len(f.labels):,} levels), {term} (link scale):"
                out.append((caption, table, f"fit.table({', '.join(args)})"))
        return out

    def _repr_html_(self) -> str:
        return html_report(*self._html_parts())

    def to_dict(self) -> dict:
        if len(self._factors) > 1:
            return self._to_dict_factors()
        d = super().to_dict()
        d.update(
            family=self.family,
            link=self.link,
            nagq=self.nagq,
            deviance=self.deviance,
            aic=self.aic,
            bic=self.bic,
            theta=self.theta.tolist(),
        )
        d["table"] = {
            t: {
                k: [v if not isinstance(v, float) or np.isfinite(v) else None for v in col]
                for k, col in self.table(t).items()
            }
            for t in self.random_terms
        }
        return d

    def _to_dict_factors(self) -> dict:
        """Several grouping factors: per-factor levels, conditional modes and SDs (the shape of a
        several-factor linear fit's dict), with the GLMM's family and criteria."""

        def clean(v):
            return None if isinstance(v, float) and not np.isfinite(v) else v

        return {
            "formula": self.formula,
            "family": self.family,
            "link": self.link,
            "nagq": self.nagq,
            "method": self.method,
            "factors": self.factors,
            "n_obs": self.n_obs,
            "n_groups": {f.name: len(f.labels) for f in self._factors},
            "fixef": {k: float(v) for k, v in self.fixef.items()},
            "fixef_se": {k: float(v) for k, v in self.fixef_se.items()},
            "theta": self.theta.tolist(),
            "varcorr": [
                {k: clean(v) for k, v in row.items()} for row in self.varcorr().to_dict("records")
            ],
            "boundary": bool(self.boundary),
            "loglik": float(self.loglik),
            "deviance": float(self.deviance),
            "aic": float(self.aic),
            "bic": float(self.bic),
            "ranef": {
                f: {
                    "levels": [str(v) for v in self.ranef(f).index],
                    "values": {k: v.tolist() for k, v in self.ranef(f).items()},
                    "sd": {k: v.tolist() for k, v in self.ranef_sd(f).items()},
                }
                for f in self.factors
            },
        }
