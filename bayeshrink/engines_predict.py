"""predict, fitted and resid on an engine frame, computed inside the engine.

For rows held by polars (lazy or eager), DuckDB, Dask or Spark, the prediction of a fitted
model is an engine expression: the fixed part x'beta (the formula's columns written as narwhals
expressions, :mod:`bayeshrink.engines_formula`) plus, for each grouping factor, z'b with the
factor's conditional modes b joined to the rows by level (a left join with a small table of
one row per level). Nothing is collected but that check: the number of rows whose level the
fit has not seen (and of rows of a categorical covariate with a level it has not seen), and the
first 50 rows, on which the engine's numbers must equal the pandas path's or the prediction is
refused. The result is a frame of the same kind (polars LazyFrame or DataFrame, DuckDB relation,
Dask or Spark DataFrame): the rows' columns and one more (``fit``, ``fitted`` or ``resid``).
Like any join in those engines, the rows may come back in another order; the columns carried
along identify them. :func:`write_parquet` writes such a frame with the engine's own writer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .engines_formula import Translator, collect_frame, matrix_columns, untranslatable
from .errors import ColumnError, DataError, MethodError
from .frames import lazy_frame, nw_module

__all__ = ["engine_fitted", "engine_predict", "engine_resid", "write_parquet"]

_CHECK_ROWS = 50


def _recipe(fit, nw, random: bool):
    """The fit as expressions: [(expr or None for the intercept, beta_j)], the offsets, and per
    factor (name, columns, level labels as text, its Z expressions, b (levels x terms))."""
    design = getattr(fit, "design", None)
    enc = getattr(design, "encoder", None)
    beta = fit.fixef.to_numpy(dtype=float)
    if enc is None:  # the one-way model y ~ 1 + (1 | g)
        if list(fit.fixed_terms) != ["Intercept"] or list(fit.random_terms) != ["Intercept"]:
            raise MethodError(
                "`fit` must carry its formula's encoding to predict on an engine frame; this fit "
                "was built without it. Refit it with bs.fit(data, formula=...)."
            )
        labels = [str(v) for v in fit.groups]
        b = fit.ranef().to_numpy(dtype=float)
        return [(None, beta[0])], [], [(fit.groups.name, (fit.groups.name,), labels, [None], b)]
    if getattr(enc, "times", None):
        raise untranslatable(
            ", ".join(enc.times), "date and time covariates are converted on the pandas path only"
        )
    spec = design.spec
    fixed = matrix_columns(nw, enc.fixed, spec) if enc.fixed is not None else []
    offsets = matrix_columns(nw, enc.offsets, spec) if enc.offsets is not None else []
    terms = list(zip(fixed, beta, strict=True))
    factors = []
    if not random:
        return terms, offsets, factors
    block_exprs = [matrix_columns(nw, m, spec) for m in enc.blocks]
    if callable(getattr(fit, "factor_fit", None)):  # several factors (MultiFit)
        comps = {}
        for blk in spec.blocks:
            comps.setdefault(blk.factor, tuple(blk.components))
        for name in fit.factors:
            z = [e for blk, ex in zip(spec.blocks, block_exprs, strict=True) for e in ex
                 if blk.factor == name]  # fmt: skip
            labels = [str(v) for v in fit.ranef(name).index]
            factors.append((name, comps[name], labels, z, fit.ranef(name).to_numpy(dtype=float)))
    else:  # one factor (MixedFit); a factor spelled a:b reads its columns
        columns = tuple(getattr(fit, "group_columns", None) or (fit.group,))
        z = [e for ex in block_exprs for e in ex]
        labels = [str(v) for v in fit.groups]
        factors.append((fit.group, columns, labels, z, fit.ranef().to_numpy(dtype=float)))
    return terms, offsets, factors


def _categorical_levels(enc, spec) -> dict[str, list]:
    """The fit's levels of each categorical covariate the formula reads (column -> levels)."""
    out: dict[str, list] = {}
    spec_levels = {k: v[0] for k, v in spec.levels.items()}
    for m in enc._matrices():
        for term in m.terms.values():
            for comp in getattr(term, "components", ()):
                if getattr(comp, "kind", None) != "categoric":
                    continue
                var = [v for v in comp.var_names if v and v not in ("Sum", "Treatment")]
                col = spec_levels.get(var[0], var[0]) if var else None
                if col is None:
                    continue
                out.setdefault(col, [v.item() if hasattr(v, "item") else v for v in comp.levels])
    return out


def _key(nw, columns):
    """A factor's level of each row as text, as lme4 labels it (``c1:S01``)."""
    parts = [nw.col(c).cast(nw.String) for c in columns]
    return parts[0] if len(parts) == 1 else nw.concat_str(parts, separator=":")


def _join(lazy, native, table: pd.DataFrame, key: str):
    """``lazy`` left-joined with the small pandas ``table`` on ``key``, in the same engine."""
    nw = nw_module()
    impl = lazy.implementation
    if impl is nw.Implementation.DUCKDB:  # a relation joins relations of its own connection
        rel = lazy.to_native()
        __bs_levels = table  # DuckDB's replacement scan reads it by its name
        cols = ", ".join(f'l."{c}"' for c in table.columns if c != key)
        joined = rel.query(
            "__bs_rows",
            f'SELECT r.*, {cols} FROM __bs_rows r LEFT JOIN __bs_levels l ON r."{key}" = l."{key}"',
        )
        return lazy_frame(joined)
    if impl is nw.Implementation.POLARS:
        import polars as pl

        other = pl.from_pandas(table).lazy()
    elif impl is nw.Implementation.DASK:
        import dask.dataframe as dd

        other = dd.from_pandas(table, npartitions=1)
    elif impl is nw.Implementation.PYSPARK:
        import pyarrow as pa

        other = native.sparkSession.createDataFrame(
            pa.Table.from_pandas(table, preserve_index=False)
        )
    else:
        raise MethodError(
            f"predictions inside the engine cover polars, DuckDB, Dask and Spark; got {impl}. "
            "Collect the rows to pandas first."
        )
    return lazy.join(lazy_frame(other), on=key, how="left")


def _shown(values) -> str:
    vals = list(values)
    return ", ".join(repr(v) for v in vals[:5]) + (" ..." if len(vals) > 5 else "")


def _mean(fit, frame, *, random: bool, allow_new_levels: bool, what: str):
    """The frame (narwhals) with the prediction's expression ``__bs_mean`` (offsets included)."""
    nw = nw_module()
    lazy = lazy_frame(frame)
    names = list(lazy.collect_schema().names())
    terms, offsets, factors = _recipe(fit, nw, random)
    enc = getattr(getattr(fit, "design", None), "encoder", None)
    extra = tuple(dict.fromkeys(c for f in factors for c in f[1]))
    if enc is not None:
        enc.check_columns(pd.DataFrame(columns=names), extra=extra)
    elif random and not set(extra) <= set(names):
        raise ColumnError(
            f"`newdata` must have the grouping column {extra[0]!r}; got columns "
            f"{', '.join(map(repr, names[:20]))}. Add it, or pass random=False for the "
            "population-level prediction."
        )
    # categorical covariates: a level the fit has not seen has no column to go to
    cats = _categorical_levels(enc, fit.design.spec) if enc is not None else {}
    checks = [
        (~nw.col(c).is_in(levels) & ~nw.col(c).is_null()).cast(nw.Int64).sum().alias(f"c|{c}")
        for c, levels in cats.items()
        if c in names
    ]
    out = lazy
    for i, (_, columns, labels, _z, b) in enumerate(factors):
        key = f"__bs_k{i}"
        table = pd.DataFrame({key: labels, f"__bs_s{i}": 1.0})
        for t in range(b.shape[1]):
            table[f"__bs_b{i}_{t}"] = b[:, t]
        out = _join(out.with_columns(_key(nw, columns).alias(key)), frame, table, key)
        checks.append(nw.col(f"__bs_s{i}").is_null().cast(nw.Int64).sum().alias(f"f|{i}"))
    if checks:
        row = out.select(*checks).pipe(collect_frame).to_pandas().iloc[0]
        for c, levels in cats.items():
            n = int(row.get(f"c|{c}", 0) or 0)
            if n:
                new = out.filter(~nw.col(c).is_in(levels) & ~nw.col(c).is_null())
                new = new.select(nw.col(c)).unique().head(6).pipe(collect_frame).to_pandas()[c]
                raise DataError(
                    f"`newdata` column {c!r} must hold levels the fit saw ({_shown(levels)}); "
                    f"{n} rows hold other levels: {_shown(new)}. A new level of a categorical "
                    "covariate has no fixed effect to predict with."
                )
        for i, (name, *_rest) in enumerate(factors):
            n = int(row[f"f|{i}"] or 0)
            if n and not allow_new_levels:
                new = out.filter(nw.col(f"__bs_s{i}").is_null()).select(nw.col(f"__bs_k{i}"))
                count = new.unique().select(nw.len().alias("n")).pipe(collect_frame).to_pandas()
                head = new.unique().head(5).pipe(collect_frame).to_pandas()[f"__bs_k{i}"]
                raise DataError(
                    f"`{what}` must hold levels of the grouping factor {name!r} seen in the fit "
                    f"unless allow_new_levels=True; got {int(count['n'].iloc[0])} new level(s) "
                    f"of {name!r}: {_shown(head)}. Pass allow_new_levels=True to give those rows "
                    f"0 for {name!r}'s effects (lme4's allow.new.levels = TRUE)."
                )
    mean = nw.lit(0.0)
    for e, coef in terms:
        mean = mean + (float(coef) if e is None else e * float(coef))
    for e in offsets:
        mean = mean + e
    for i, (_, _, _, z, b) in enumerate(factors):
        for t in range(b.shape[1]):
            bt = nw.col(f"__bs_b{i}_{t}").fill_null(0.0)
            mean = mean + (bt if z[t] is None else z[t] * bt)
    return out.with_columns(mean.alias("__bs_mean")), names


def _finish(fit, frame, out, names, value, column: str, reference):
    """Keep the rows' columns and ``column``; check the first rows against the pandas path."""
    nw = nw_module()
    if column in names:
        raise ColumnError(
            f"`newdata` must not already have a column {column!r}, which the result adds; "
            "rename it first."
        )
    result = out.select(*[nw.col(c) for c in names], value.alias(column))
    head = result.head(_CHECK_ROWS).pipe(collect_frame).to_pandas()
    if len(head):
        want = np.asarray(reference(head[names]), dtype=float)
        got = head[column].to_numpy(dtype=float)
        scale = max(float(np.nanmax(np.abs(want))) if np.isfinite(want).any() else 1.0, 1e-300)
        if not np.allclose(got, want, rtol=1e-9, atol=1e-12 * scale, equal_nan=True):
            raise untranslatable(
                fit.formula if hasattr(fit, "formula") else column,
                "its prediction in the engine does not reproduce the pandas path's",
            )
    eager = type(frame).__module__.split(".")[0] == "polars" and type(frame).__name__ == (
        "DataFrame"
    )
    if eager:  # an eager polars frame in, an eager one out
        return result.pipe(collect_frame).to_native()
    return result.to_native()


def _check_interval(interval) -> None:
    if interval is not None:
        raise MethodError(
            "`interval` is computed on pandas rows only; on an engine frame predict gives the "
            f"point predictions (interval=None); got interval={interval!r}. Collect the rows "
            "you need intervals for to pandas, e.g. lf.head(1000).collect().to_pandas()."
        )


def engine_predict(fit, frame, *, random=True, allow_new_levels=False, interval=None):
    """lme4's ``predict`` for the rows of an engine frame, in the engine (module docstring):
    the frame's columns and ``fit``. Same rules as :func:`bayeshrink.predict`: a level of a
    grouping factor not in the fit raises unless ``allow_new_levels=True``, which gives it 0."""
    _check_interval(interval)
    out, names = _mean(fit, frame, random=random, allow_new_levels=allow_new_levels, what="newdata")
    nw = nw_module()

    def reference(df):
        return fit.predict(df, random=random, allow_new_levels=True)

    return _finish(fit, frame, out, names, nw.col("__bs_mean"), "fit", reference)


def engine_fitted(fit, frame):
    """lme4's ``fitted(m)`` for the rows of an engine frame (offsets included): the frame's
    columns and ``fitted``."""
    out, names = _mean(fit, frame, random=True, allow_new_levels=False, what="data")
    nw = nw_module()

    def reference(df):
        return fit.predict(df)

    return _finish(fit, frame, out, names, nw.col("__bs_mean"), "fitted", reference)


def engine_resid(fit, frame):
    """lme4's ``residuals(m)`` for the rows of an engine frame: the response minus
    :func:`engine_fitted`; the frame's columns and ``resid``."""
    nw = nw_module()
    lazy = lazy_frame(frame)
    response = fit.response
    spec = getattr(getattr(fit, "design", None), "spec", None)
    text = spec.response if spec is not None else response
    if response not in lazy.collect_schema().names() and text == response:
        raise ColumnError(f"`data` must hold the response {response!r} for residuals; it does not.")
    y = Translator(nw, text)(text)
    out, names = _mean(fit, frame, random=True, allow_new_levels=False, what="data")

    def reference(df):
        from .inference.model import response_values

        return response_values(fit, df) - fit.predict(df).to_numpy()

    return _finish(fit, frame, out, names, y - nw.col("__bs_mean"), "resid", reference)


def write_parquet(frame, path) -> None:
    """Write an engine frame (e.g. what :func:`engine_predict` returns) to Parquet with the
    engine's own writer, without collecting it: polars ``sink_parquet`` (``write_parquet`` for
    an eager frame), DuckDB ``write_parquet``, Dask ``to_parquet`` (a folder), Spark
    ``write.parquet`` (a folder)."""
    root = type(frame).__module__.split(".")[0]
    path = str(path)
    if hasattr(frame, "sink_parquet"):
        frame.sink_parquet(path)
    elif root == "polars":
        frame.write_parquet(path)
    elif root == "duckdb":
        frame.write_parquet(path)
    elif root in ("dask", "dask_expr"):
        frame.to_parquet(path)
    elif root == "pyspark":
        frame.write.parquet(path)
    else:
        raise MethodError(
            f"`frame` must be a polars, DuckDB, Dask or Spark frame; got {type(frame).__name__}."
        )
