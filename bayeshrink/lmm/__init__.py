"""General linear mixed models with one grouping factor: covariates and correlated random terms.

``design`` turns an lme4-style formula into per-group cross-products, ``estimate`` maximises the
(restricted) likelihood from them, ``results`` holds the fit with lme4's names. Entry point:
``bs.fit(df, formula="y ~ x + (x | g)")``.
"""

from __future__ import annotations

from ..frames import Missing
from .design import Design, FormulaSpec, parse_formula
from .estimate import LMMComponents, estimate_lmm
from .results import MixedFit

__all__ = ["Design", "LMMComponents", "MixedFit", "fit_formula", "parse_formula"]


def fit_formula(
    data,
    formula: str,
    method: str = "reml",
    *,
    missing: Missing = "raise",
    spec: FormulaSpec | None = None,
) -> MixedFit:
    """Fit ``formula`` by REML or ML with the general estimator (no one-way shortcut).

    ``spec``: the formula already parsed by :func:`parse_formula`, so it is not parsed again."""
    from ..frames import is_engine_frame

    if is_engine_frame(data):  # polars, DuckDB, Dask, Spark: the blocks come from the engine
        from ..engines_formula import engine_design

        spec = spec if spec is not None else parse_formula(formula)
        design = engine_design(data, spec, missing)
    else:
        design = Design.from_formula(data, formula, missing=missing, spec=spec)
    components = estimate_lmm(
        design.stats, design.block_sizes, method, names=list(design.random_names)
    )
    return MixedFit(design, components)
