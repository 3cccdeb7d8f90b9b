"""Entry points: fit the one-way model to long data or to group estimates with known SEs."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from .api import FitResult
from .data import GroupStats, group_stats, summary_stats
from .errors import MethodError
from .estimate import estimate
from .frames import Missing
from .results import ShrinkageFit

__all__ = ["fit", "fit_stats", "fit_summary"]


def fit(
    data,
    y: str | None = None,
    group: str | None = None,
    method: str | None = None,
    *,
    formula: str | None = None,
    missing: Missing = "raise",
    family: str = "gaussian",
    link: str | None = None,
    nagq: int = 1,
    weights=None,
) -> FitResult:
    """Fit a linear mixed model by REML or ML, or a GLMM by maximum likelihood, exactly as lme4.

    Either ``y`` and ``group`` for the one-way model ``y ~ 1 + (1 | group)``, or an lme4-style
    ``formula`` with fixed covariates and correlated random terms on one or more grouping
    factors, crossed or nested, e.g. ``"Reaction ~ Days + (Days | Subject)"`` or
    ``"diameter ~ 1 + (1 | plate) + (1 | sample)"``.

    Parameters
    ----------
    data : pandas.DataFrame or dict of columns
        Long data, one row per observation.
    y : str
        Numeric response column (one-way model). A formula passed here (a string holding
        ``~``, as in ``bs.fit(df, "y ~ x + (1 | g)")``) is read as ``formula``.
    group : str
        Grouping column; any hashable labels. Groups are sorted by label where possible.
    method : {"reml", "ml"}, optional
        Restricted (default, lme4's default) or full maximum likelihood. A GLMM is fitted by
        maximum likelihood (Laplace or adaptive quadrature, ``nagq=``): leave ``method`` out or
        pass ``"ml"``; ``"reml"`` raises a :class:`~bayeshrink.errors.MethodError`.
    formula : str, optional
        lme4 syntax, parsed by the ``formulae`` package: ``(x | g)`` is a correlated block
        (intercept and slope), ``(1 | g) + (0 + x | g)`` two uncorrelated ones; categorical
        covariates get treatment coding (``C(x)`` or string columns); ``log``, ``sqrt``,
        ``exp``, formulae's ``center``/``scale`` may be called. Several grouping factors, crossed
        (``(1 | a) + (1 | b)``) or nested (``(1 | a/b)``, ``(1 | a:b)``), give a
        :class:`~bayeshrink.lmm.multi.MultiFit`.
        ``y ~ 1 + (1 | g)`` returns the same one-way fit as ``y=..., group=...``.
    missing : {"raise", "drop"}
        Rows with NaN/inf or missing values in the variables used raise an error by default;
        ``"drop"`` leaves them out with a :class:`~bayeshrink.errors.RowsDroppedWarning`.
    family : {"gaussian", "binomial", "poisson"}
        ``"gaussian"`` (default) is the linear mixed model. ``"binomial"`` and ``"poisson"``
        fit a GLMM by maximum likelihood as lme4's ``glmer`` (``method`` may only be ``"ml"``)
        and return a :class:`~bayeshrink.glmm.GlmmFit`. Binomial responses: ``cbind(successes,
        failures)`` on the left of the formula, a 0/1 or boolean column, a column with two
        levels (the first, R's reference level, is the failure), or a proportion with
        ``weights=`` the trials. Poisson: counts, with ``offset(log(exposure))`` on the right.
        Any random-effects structure of the linear model (vector terms, crossed, nested).
    link : str, optional
        ``"logit"`` (default), ``"probit"`` or ``"cloglog"`` for binomial; ``"log"`` for
        Poisson. For a non-canonical link (probit, cloglog) the Laplace approximation uses the
        IRLS (expected-information) weights, as lme4 does; glmmTMB uses the observed Hessian
        and its log-likelihood differs slightly (0.15 on mlmRev's Contraception, probit).
    nagq : int
        lme4's ``nAGQ``: 1 (default) the Laplace approximation; above 1 adaptive Gauss-Hermite
        quadrature with that many nodes (one scalar random term only); 0 lme4's fast fit (beta
        estimated inside PIRLS, only theta optimised). With ``nagq > 1`` ``loglik`` is the
        marginal log-likelihood, on the same scale as Laplace's (lme4 1.1-31 prints another
        constant: -50.005 for cbpp with nAGQ = 25, where the marginal value is -91.983).
    weights : str or array, optional
        Binomial: the number of trials behind a proportion response. Poisson: prior weights.

    Returns
    -------
    ShrinkageFit or MixedFit
        The one-way fit (the exact one-parameter solver), or for a general formula a
        :class:`~bayeshrink.MixedFit`. Both answer the one result API of
        :class:`~bayeshrink.FitResult` (``fixef``, ``vcov``, ``ranef()``, ``coef()``,
        ``shrinkage()``, ``varcorr()``, ``table(term)``, ...) with the same types. For
        ``family="binomial"``/``"poisson"`` a :class:`~bayeshrink.glmm.GlmmFit` (ranef() are the
        conditional modes, ranef_sd() lme4's condVar, all on the link scale).

    Examples
    --------
    >>> import bayeshrink as bs
    >>> demo = bs.load_dataset("seed_demo")
    >>> fit = bs.fit(demo[demo["model"] == "2"], y="y", group="group")
    >>> round(fit.tau, 4), round(fit.sigma, 4)
    (6.3432, 4.8309)
    >>> fit.table()["blup"].round(3).tolist()
    [11.33, 13.143, 24.895, 12.343, 10.06]

    With covariates and correlated random slopes:

    >>> sleep = bs.load_dataset("sleepstudy")
    >>> m = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    >>> m.fixef.round(4).to_dict()
    {'Intercept': 251.4051, 'Days': 10.4673}
    >>> m.coef().round(2).head(2)
             Intercept   Days
    Subject
    308         253.66  19.67
    309         211.01   1.85

    A binomial GLMM (lme4's cbpp):

    >>> cbpp = bs.load_dataset("cbpp")
    >>> g = bs.fit(cbpp, formula="cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...            family="binomial")
    >>> round(g.loglik, 4)  # lme4: logLik(glmer(...)) = -92.02628
    -92.0263
    """
    if formula is None and isinstance(y, str) and "~" in y:  # bs.fit(df, "y ~ x + (1 | g)")
        if group is not None:
            raise MethodError(
                f"a formula passed as the second argument must come alone; got {y!r} followed "
                f"by {group!r}. Pass the other options by keyword, e.g. "
                f"bs.fit(df, {y!r}, method='ml')."
            )
        formula, y = y, None
    if family != "gaussian":
        if formula is None:
            raise MethodError(
                f"family={family!r} needs a `formula`, e.g. formula='y ~ x + (1 | g)'; got "
                f"y={y!r}, group={group!r}."
            )
        if method is not None and method != "ml":
            raise MethodError(
                f"a GLMM (family={family!r}) is fitted by maximum likelihood (the Laplace "
                "approximation, or adaptive Gauss-Hermite quadrature with nagq=); REML does not "
                f"apply to it; got method={method!r}. Leave `method` out (or pass 'ml'); lme4's "
                "glmer likewise disregards REML."
            )
        from .glmm import fit_glmm

        return fit_glmm(
            data, formula, family=family, link=link, nagq=nagq, weights=weights, missing=missing
        )
    if method is None:
        method = "reml"
    if isinstance(formula, str) and re.match(r"\s*cbind\s*\(", formula.split("~", 1)[0]):
        raise MethodError(
            f"a cbind(successes, failures) response is binomial: it needs family='binomial'; "
            f"got {formula.split('~', 1)[0].strip()!r} with family='gaussian' (the default). "
            f"Pass family='binomial', e.g. bs.fit(df, formula={formula!r}, family='binomial')."
        )
    if link is not None or nagq != 1 or weights is not None:
        raise MethodError(
            "`link`, `nagq` and `weights` apply to family='binomial' or 'poisson'; got "
            f"link={link!r}, nagq={nagq!r}, weights={weights!r} with family='gaussian'. Pass "
            "family=... for a GLMM."
        )
    if formula is not None:
        if y is not None or group is not None:
            raise MethodError(
                "pass either `formula` or `y` and `group`, not both; got formula="
                f"{formula!r} with y={y!r}, group={group!r}."
            )
        from .lmm import fit_formula, parse_formula  # formulae loads on first use
        from .lmm.multi import fit_multi, needs_multi

        if needs_multi(formula):  # several grouping factors, a/b or a:b
            from .lmm.multi import parse_multi

            _check_response_column(data, parse_multi(formula).response)
            columns = _single_interaction(formula)
            if columns is None:
                return fit_multi(data, formula, method, missing=missing)
            return _fit_interaction(data, formula, columns, method, missing)
        spec = parse_formula(formula)
        if spec.intercept_only:  # group_stats checks the response
            return fit_stats(group_stats(data, spec.response, spec.group, missing=missing), method)
        _check_response_column(data, spec.response)
        return fit_formula(data, formula, method, missing=missing, spec=spec)
    if y is None or group is None:
        raise MethodError(
            "`fit` needs `y` and `group` (the one-way model) or a `formula`; got "
            f"y={y!r}, group={group!r}. E.g. bs.fit(df, y='y', group='g') or "
            "bs.fit(df, formula='y ~ x + (x | g)')."
        )
    return fit_stats(group_stats(data, y, group, missing=missing), method)


def _check_response_column(data, response: str) -> None:
    """The normal family's response check (bayeshrink.response) on a formula's response, when
    it is a column of the data (a transformed response such as log(y) is not checked)."""
    from .frames import is_engine_frame
    from .response import check_normal_response

    if is_engine_frame(data):  # aggregated in the engine: the column is not collected
        from .engines_formula import engine_check_response

        return engine_check_response(data, response)
    if isinstance(data, pd.DataFrame) or isinstance(data, Mapping):
        if response not in data:
            return
        values = data[response]
        if isinstance(values, pd.DataFrame):  # a repeated name: the design refuses it
            return
    else:
        return
    check_normal_response(values, response)


def _single_interaction(formula: str) -> tuple[str, ...] | None:
    """The columns of the one grouping factor of ``formula`` when it is spelled as an
    interaction (``(1 | a:b)``); None when the formula has several factors."""
    from .lmm.multi import parse_multi

    spec = parse_multi(formula)
    if len(spec.factor_names) != 1:
        return None
    return spec.blocks[0].components


def _fit_interaction(data, formula: str, columns: tuple[str, ...], method: str, missing):
    """One grouping factor spelled as an interaction, ``(1 | a:b)``: the same model as the
    one-factor formula on a column holding the combined labels (lme4's ``a:b`` labels, ``A:a``),
    so it takes the one-factor path and gives the same fit type and numbers. The fit is named
    as lme4 names the factor (``a:b``) and predicts from the columns ``a`` and ``b``."""
    import dataclasses
    import re

    import pandas as pd

    from .errors import DataTypeError
    from .formula.evaluate import code_factor
    from .frames import as_frame, interaction_labels
    from .lmm import fit_formula, parse_formula

    df = as_frame(data)
    missing_cols = [c for c in columns if c not in df.columns]
    if missing_cols:  # the formula path names them, with its hints
        from .lmm.multi import fit_multi

        return fit_multi(data, formula, method, missing=missing)
    for c in columns:
        if pd.api.types.is_float_dtype(df[c]):
            raise DataTypeError(
                f"the grouping factor {c!r} must hold labels (strings or integers); got "
                f"floats. Convert it, e.g. df[{c!r}].astype(int).astype(str)."
            )
    name = ":".join(columns)
    column = "_".join(columns)  # an identifier the formula can name
    while column in df.columns:
        column = "_" + column
    complete = df[list(columns)].notna().all(axis=1).to_numpy()
    labels = interaction_labels(df, columns).where(complete)
    # R's level order for factor(a:b) (each column's own order, numbers numerically): as a
    # Categorical, whose category order the fit keeps
    _, order = code_factor(df.loc[complete], columns, text=True)
    df = df.assign(**{column: pd.Categorical(labels, categories=list(order))})
    one = re.sub(r"\|[^|()]*\)", f"| {column})", formula)
    spec = parse_formula(one)
    if spec.intercept_only:
        df = df.rename(columns={column: name})
        fit = fit_stats(group_stats(df, spec.response, name, missing=missing), method)
    else:
        fit = fit_formula(df, one, method, missing=missing, spec=spec)
    return dataclasses.replace(fit, group_columns=tuple(columns), spelled=formula)


def fit_summary(
    data,
    estimate: str,
    se: str,
    group: str,
    method: str = "reml",
    *,
    n: str | None = None,
) -> ShrinkageFit:
    """Fit the normal-normal model to group estimates with known standard errors (metafor's rma).

    Parameters
    ----------
    data : pandas.DataFrame or dict of columns
        One row per group.
    estimate, se, group : str
        Columns holding each group's estimate, its standard error and its label.
    method : {"reml", "ml", "dl"}
        REML (default, metafor's default), ML, or the DerSimonian-Laird moment estimator.
    n : str, optional
        Column of group sizes, shown in the table (not used by the estimator).

    Examples
    --------
    >>> import bayeshrink as bs
    >>> schools = bs.load_dataset("eight_schools")
    >>> fit = bs.fit_summary(schools, estimate="y", se="sigma", group="school")
    >>> fit.boundary, round(fit.mu, 4), round(fit.mu_se, 4)
    (True, 7.6856, 4.0719)
    """
    return fit_stats(summary_stats(data, estimate, se, group, n=n), method)


def fit_stats(stats: GroupStats, method: str = "reml") -> ShrinkageFit:
    """Fit from precomputed per-group statistics (see :meth:`GroupStats.from_arrays`)."""
    if not isinstance(stats, GroupStats):
        from .errors import DataTypeError

        raise DataTypeError(
            f"`stats` must be a GroupStats; got {type(stats).__name__}. Build it with "
            "bs.group_stats(df, y, group) or GroupStats.from_arrays(...), or call bs.fit(df, ...)."
        )
    return ShrinkageFit(stats, estimate(stats, method))
