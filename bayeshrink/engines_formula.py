"""A one-factor formula fit computed inside a dataframe engine: only cross-product blocks return.

polars (eager and lazy), DuckDB relations, Dask DataFrames and PySpark DataFrames go through one
narwhals code path. The formula is evaluated once by :mod:`bayeshrink.formula` on a small pandas
*prototype* (the first rows, with every level of each categorical covariate), which gives the
column names, the contrasts and the encoder for new rows; each evaluated column is then written
as a narwhals expression (numeric covariates, ``I(x**2)``, ``log()`` and the other functions of
:data:`~bayeshrink.formula.FORMULA_FUNCTIONS`, interactions, categorical covariates one-hot
through their contrast matrix, a Categorical column in the order of its categories as collecting
it to pandas would give them, ``offset()`` subtracted from y) and checked against formulae's
own columns on the prototype, so a term that would be translated wrongly is refused, not fitted.

The engine then runs three aggregations, mirroring the pandas path's standardization
(:func:`bayeshrink.lmm.design.standardize`):

1. counts of missing values (raise with the count, or drop with it in a
   :class:`~bayeshrink.errors.RowsDroppedWarning`) and the distinct levels of the categorical
   covariates (one encoding for every partition);
2. one global pass of the sums of products of the columns, each first centred on the median of
   its first 1001 values (so that x around 1e9 loses nothing): the means, SDs and least-squares
   start ``beta0`` of the standardization;
3. one GROUP BY over the grouping factor of the sums of products of the standardized columns
   and the residual ``y - X_s beta0``: the per-group blocks ``W_j'W_j``.

The blocks become the :class:`~bayeshrink.lmm.design.MixedStats` the pandas path builds from rows
(``beta0`` refined once from the blocks, as the pandas path refines it from the rows), and the
estimator runs on them unchanged.
"""

from __future__ import annotations

import ast
import re
import warnings

import numpy as np
import pandas as pd

from .errors import DataError, FormulaError, RowsDroppedWarning
from .frames import check_missing_option, factorize, lazy_frame, missing_error, nw_module

__all__ = [
    "Translator",
    "collect_frame",
    "engine_check_response",
    "engine_columns",
    "engine_design",
    "matrix_columns",
    "untranslatable",
    "verify",
]

#: formulae transforms whose value depends on the whole column (not computable row by row)
_STATEFUL = ("center", "scale", "standardize", "poly", "bs")

_COLLECT_HINT = (
    "Collect the data to pandas first (e.g. `lf.collect().to_pandas()`, `rel.df()`, "
    "`ddf.compute()`, `sdf.toPandas()`), or compute the column in the engine before the fit"
)


def untranslatable(term: str, why: str) -> FormulaError:
    return FormulaError(
        f"`formula` term {term!r} must be computable inside the engine to fit there; {why}. "
        f"{_COLLECT_HINT}."
    )


# --------------------------------------------------------------------------------------------
# formula text -> narwhals expressions


class Translator:
    """Python expressions of a formula (``log(x)``, ``I(x ** 2)``) -> narwhals expressions."""

    def __init__(self, nw, term: str):
        self.nw = nw
        self.term = term

    def __call__(self, text: str):
        try:
            node = ast.parse(text.strip(), mode="eval").body
        except SyntaxError:
            raise untranslatable(
                self.term, f"{text!r} is not an expression bayeshrink reads"
            ) from None
        return self.expr(node)

    def expr(self, node):
        nw = self.nw
        if isinstance(node, ast.Name):
            return nw.col(node.id).cast(nw.Float64)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = self.expr(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a, b = self.expr(node.left), self.expr(node.right)
            ops = {
                ast.Add: lambda: a + b,
                ast.Sub: lambda: a - b,
                ast.Mult: lambda: a * b,
                ast.Div: lambda: a / b,
                ast.Pow: lambda: self._power(a, b),
            }
            for op, f in ops.items():
                if isinstance(node.op, op):
                    return f()
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in _STATEFUL:
            raise untranslatable(
                self.term, f"{node.func.id}() depends on the whole column, not on each row alone"
            )
        if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else None
            if isinstance(node.func, ast.Name):
                name = node.func.id
            if isinstance(node.func, ast.Attribute) and not (
                isinstance(node.func.value, ast.Name) and node.func.value.id in ("np", "numpy")
            ):
                name = None
            arg = self.expr(node.args[0])
            if name == "I" and isinstance(node.func, ast.Name):
                return arg
            if not isinstance(arg, float) and name in _FUNCTIONS:
                return _FUNCTIONS[name](arg)
        raise untranslatable(
            self.term,
            f"{ast.unparse(node)!r} uses an operation the engine translation does not cover "
            "(+ - * / **, log, log1p, log2, log10, exp, sqrt, abs, I())",
        )

    def _power(self, a, b):
        if (
            isinstance(b, float)
            and float(b).is_integer()
            and 0 <= b <= 8
            and not isinstance(a, float)
        ):
            out = a
            for _ in range(int(b) - 1):
                out = out * a
            return self.nw.lit(1.0) + 0.0 * a if b == 0 else out
        if isinstance(a, float) and isinstance(b, float):
            return a**b
        if isinstance(b, float) and b == 0.5:
            return a.sqrt()
        raise untranslatable(self.term, "a power other than a whole number 0-8 or 0.5")


_FUNCTIONS = {
    "log": lambda e: e.log(),
    "log1p": lambda e: (e + 1.0).log(),
    "log2": lambda e: e.log(base=2.0),
    "log10": lambda e: e.log(base=10.0),
    "exp": lambda e: e.exp(),
    "sqrt": lambda e: e.sqrt(),
    "abs": lambda e: e.abs(),
}


def _component_columns(nw, comp, spec, term: str) -> list:
    """The expressions of one formulae component (a Variable or a Call) as evaluated."""
    kind = getattr(comp, "kind", None)
    if kind == "categoric":
        var = [v for v in comp.var_names if v and v not in ("Sum", "Treatment")]
        if len(var) != 1:
            raise untranslatable(term, "a categorical term must read exactly one column")
        col = spec.levels[var[0]][0] if var[0] in spec.levels else var[0]
        matrix = np.asarray(comp.contrast_matrix.matrix, dtype=float)
        out = []
        for k in range(matrix.shape[1]):
            e = None
            for level, value in zip(comp.levels, matrix[:, k], strict=True):
                if value == 0.0:
                    continue
                level = level.item() if hasattr(level, "item") else level
                piece = (nw.col(col) == level).cast(nw.Float64)
                piece = piece if value == 1.0 else piece * float(value)
                e = piece if e is None else e + piece
            out.append(e if e is not None else nw.col(col).is_null().cast(nw.Float64) * 0.0)
        return out
    if kind == "numeric":
        e = Translator(nw, term)(comp.name)
        if isinstance(e, float):
            raise untranslatable(term, "a constant is not a covariate")
        return [e]
    if kind == "offset":
        inner = re.fullmatch(r"offset\((.*)\)", comp.name.strip(), flags=re.S)
        return [Translator(nw, term)(inner.group(1) if inner else comp.name)]
    raise untranslatable(term, f"formulae evaluates it as a {kind} term")


def matrix_columns(nw, matrix, spec) -> list:
    """Expressions of the columns of a formulae design matrix, term by term
    (an interaction is the row-wise outer product of its components, formulae's order)."""
    exprs = []
    for name, term in matrix.terms.items():
        if type(term).__name__ == "Intercept":
            exprs.append(None)  # the column of ones
            continue
        cols = None
        for comp in term.components:
            new = _component_columns(nw, comp, spec, name)
            cols = new if cols is None else [a * b for a in cols for b in new]
        exprs.extend(cols)
    return exprs


# --------------------------------------------------------------------------------------------
# the engine passes


def _schema_kinds(schema) -> dict[str, str]:
    out = {}
    for name, dtype in schema.items():
        if dtype.is_numeric() and str(dtype) != "Boolean":
            out[name] = "float" if dtype.is_float() else "int"
        else:
            out[name] = "other"
    return out


def _categorical_candidates(spec, kinds) -> list[str]:
    """Columns the formula may read as categories: non-numeric columns, C(x) and levels=[...]."""
    grouping = set(spec.grouping_columns)
    named = set(re.findall(r"\bC\(\s*([A-Za-z_][\w.]*)", spec.formula))
    named |= {var for var, _, _ in spec.levels.values()}
    return sorted(
        v for v in spec.variables if v not in grouping and (kinds.get(v) == "other" or v in named)
    )


def _prototype(head: pd.DataFrame, levels: dict[str, list]) -> pd.DataFrame:
    """The first rows, lengthened so that every level of every categorical column appears."""
    n = max([len(head), *(len(v) for v in levels.values())])
    proto = head.iloc[np.resize(np.arange(len(head)), n)].reset_index(drop=True)
    for col, values in levels.items():
        cycled = [values[i % len(values)] for i in range(n)]
        proto[col] = pd.Series(cycled, dtype=head[col].dtype if len(head) else None)
    return proto


def collect_frame(lazy):
    """Collect a small result; polars runs its streaming engine (bounded memory on big scans),
    without common-subexpression elimination, which would keep a shared column for every row."""
    nw = nw_module()
    if lazy.implementation is nw.Implementation.POLARS:
        import polars as pl

        flags = pl.QueryOptFlags(comm_subexpr_elim=False)
        return lazy.collect(engine="streaming", optimizations=flags)
    return lazy.collect()


def _value(x) -> float:
    return float(0.0 if x is None or (isinstance(x, float) and np.isnan(x)) else x)


def engine_columns(data, spec, missing: str):
    """Steps 1 and 2 (module docstring): the formula's columns as expressions on the kept rows,
    pre-centred, with their global moments. Returns a namespace of what the GROUP BYs need."""
    from .formula import model_frame
    from .formula.evaluate import check_columns

    nw = nw_module()
    check_missing_option(missing)
    lazy = lazy_frame(data)
    schema = lazy.collect_schema()
    # Decimal columns are float64 here as on the pandas path (frames.engine_to_pandas)
    decimals = [name for name, dtype in schema.items() if str(dtype).startswith("Decimal")]
    if decimals:
        lazy = lazy.with_columns(*[nw.col(c).cast(nw.Float64) for c in decimals])
        schema = lazy.collect_schema()
    names = list(schema.names())
    check_columns(pd.DataFrame(columns=names), spec)
    group = spec.group
    used = [c for c in names if c in spec.variables]
    kinds = _schema_kinds(schema)

    # 1. missing values, counted in the engine (the pandas path's rule: NaN, inf, None)
    bad = nw.lit(False)
    for c in used:
        miss = nw.col(c).is_null()
        if kinds[c] == "float":
            miss = miss | ~nw.col(c).is_finite().fill_null(False)
        bad = bad | miss
    counts = (
        lazy.select(nw.len().alias("rows"), bad.cast(nw.Int64).sum().alias("bad"))
        .pipe(collect_frame)
        .to_pandas()
    )
    rows, n_bad = int(counts["rows"].iloc[0]), int(_value(counts["bad"].iloc[0]))
    if rows == 0:
        raise DataError("`data` must have at least one row; got an empty frame.")
    subject = "the variables of `formula`"
    problem = "NaN, inf or a missing value"
    if n_bad:
        if missing != "drop":
            raise missing_error(
                subject, f"{n_bad} of {rows} rows", n_bad, problem, "Drop or impute them first"
            )
        warnings.warn(
            f"left out {n_bad} of {rows} rows where {subject} held {problem}.",
            RowsDroppedWarning,
            stacklevel=4,
        )
        if n_bad == rows:
            raise DataError(
                f"the data must hold rows with every variable of `formula` present; none are "
                f"left after dropping the {n_bad} rows with missing values. Check which "
                "column is missing throughout."
            )
        lazy = lazy.filter(~bad)
    n_obs = rows - n_bad

    # the levels of the categorical covariates, collected once for every partition
    levels = {}
    for c in _categorical_candidates(spec, kinds):
        values = lazy.select(nw.col(c)).unique().pipe(collect_frame).to_pandas()[c]
        levels[c] = list(values)
    head = lazy.select(*[nw.col(c) for c in used]).head(1001).pipe(collect_frame).to_pandas()
    proto = _prototype(head, levels)
    frame = model_frame(proto, spec, "raise", subject=subject)
    enc = frame.encoder

    # every evaluated column as an expression, checked on the prototype against formulae's
    fixed_exprs = matrix_columns(nw, enc.fixed, spec) if enc.fixed is not None else []
    fixed_names = list(frame.fixed_names)
    blocks = [
        (matrix_columns(nw, bm, spec), list(bnames))
        for bm, bnames in zip(enc.blocks, frame.block_names, strict=True)
    ]
    resp = Translator(nw, spec.response)(spec.response)
    if isinstance(resp, float):
        raise untranslatable(spec.response, "the response must read a column")
    offset_exprs = []
    if enc.offsets is not None:
        offset_exprs = matrix_columns(nw, enc.offsets, spec)
    y_expr = resp
    for o in offset_exprs:
        y_expr = y_expr - o
    verify(nw, proto, frame, fixed_exprs, fixed_names, blocks, y_expr)

    # the distinct raw columns (a random term equal to a fixed one is read once)
    p = len(fixed_names)
    intercept = fixed_names.index("Intercept") if "Intercept" in fixed_names else None
    raw: dict[str, object] = {}
    for nm, e in zip(fixed_names, fixed_exprs, strict=True):
        if e is not None:
            raw.setdefault(nm, e)
    for exprs, bnames in blocks:
        for nm, e in zip(bnames, exprs, strict=True):
            if e is not None:
                raw.setdefault(nm, e)
    keys = list(raw)
    cols = {f"__bs_u{i}": raw[k] for i, k in enumerate(keys)}
    col_of = {k: f"__bs_u{i}" for i, k in enumerate(keys)}
    cols["__bs_y"] = y_expr
    keys = [nw.col(c) for c in spec.grouping_columns]
    evaluated = lazy.select(*keys, *[e.alias(a) for a, e in cols.items()])
    finite = nw.lit(True)
    for a in cols:
        finite = finite & nw.col(a).is_finite().fill_null(False)

    # 2. global sums of products of the pre-centred columns (and a finiteness count)
    first = evaluated.head(1001).pipe(collect_frame).to_pandas()
    centre = {a: float(np.nanmedian(first[a].to_numpy(dtype=float))) for a in cols}
    centre = {a: (v if np.isfinite(v) else 0.0) for a, v in centre.items()}
    names_c = list(cols)
    pre = evaluated.with_columns(*[(nw.col(a) - centre[a]).alias(a) for a in names_c])
    pairs = [(a, b) for i, a in enumerate(names_c) for b in names_c[i:]]
    g1 = (
        pre.select(
            (~finite).cast(nw.Int64).sum().alias("__bs_nonfinite"),
            *[nw.col(a).sum().alias(f"s1|{a}") for a in names_c],
            *[(nw.col(a) * nw.col(b)).sum().alias(f"s2|{a}|{b}") for a, b in pairs],
        )
        .pipe(collect_frame)
        .to_pandas()
        .iloc[0]
    )
    nonfinite = int(_value(g1["__bs_nonfinite"]))
    if nonfinite:
        raise DataError(
            f"the terms of `formula` must be finite; evaluated on the data they give NaN or "
            f"inf in {nonfinite} of {n_obs} rows (e.g. log of a value <= 0). Transform or "
            "filter those rows first."
        )
    K = len(names_c)
    M = np.zeros((K + 1, K + 1))  # moments of [1, u_1 - c_1, ..., y - c_y]
    M[0, 0] = n_obs
    for i, a in enumerate(names_c):
        M[0, i + 1] = M[i + 1, 0] = _value(g1[f"s1|{a}"])
    for a, b in pairs:
        i, j = names_c.index(a) + 1, names_c.index(b) + 1
        M[i, j] = M[j, i] = _value(g1[f"s2|{a}|{b}"])

    def centre_scale(a: str, centred: bool) -> tuple[float, float]:
        i = names_c.index(a) + 1
        s1, s2, c = M[0, i], M[i, i], centre[a]
        if centred:
            m = c + s1 / n_obs
            ss = max(s2 - s1 * s1 / n_obs, 0.0)
        else:
            m = 0.0
            ss = s2 + 2.0 * c * s1 + n_obs * c * c
        s = float(np.sqrt(ss / n_obs))
        if not np.isfinite(s) or s == 0.0:
            s = 1.0
        return m, s

    from types import SimpleNamespace

    return SimpleNamespace(**{k: v for k, v in locals().items() if k != "SimpleNamespace"})


def engine_design(data, spec, missing: str = "raise"):
    """The :class:`~bayeshrink.lmm.design.Design` of a one-factor formula, from an engine frame.

    Only aggregates leave the engine: counts, the levels of categorical covariates, the first
    1001 rows (the prototype), one row of global sums and one row per group."""
    from .lmm.design import (
        Design,
        MixedStats,
        Standardization,
        check_fixed_rank,
        check_random_support,
        check_residual_variation,
        stats_from_std,
    )

    nw = nw_module()
    ec = engine_columns(data, spec, missing)
    group, n_obs, n_bad, enc = spec.group, ec.n_obs, ec.n_bad, ec.enc
    fixed_names, blocks, p, intercept = ec.fixed_names, ec.blocks, ec.p, ec.intercept
    names_c, centre, col_of, M, pre = ec.names_c, ec.centre, ec.col_of, ec.M, ec.pre
    centre_scale, K = ec.centre_scale, ec.K

    # the standardized columns: coefficients on [1, u - c ...], and their expressions
    def std_coef(a: str, m: float, s: float) -> np.ndarray:
        v = np.zeros(K + 1)
        v[0] = (centre[a] - m) / s
        v[names_c.index(a) + 1] = 1.0 / s
        return v

    ones = np.zeros(K + 1)
    ones[0] = 1.0
    Gx = np.eye(p)
    x_coef, x_std = [], []  # coefficient vectors; (column, m, s) or None for the intercept
    for i, nm in enumerate(fixed_names):
        if i == intercept:
            x_coef.append(ones)
            x_std.append(None)
            continue
        m, s = centre_scale(col_of[nm], intercept is not None)
        x_coef.append(std_coef(col_of[nm], m, s))
        x_std.append((col_of[nm], m, s))
        Gx[i, i] = s
        if intercept is not None:
            Gx[intercept, i] = m
    q = sum(len(b[1]) for b in blocks)
    Gz = np.eye(q)
    z_std_cols, z_std_idx, z_idx, random_names, block_sizes = [], [], [], [], []
    extra = []  # standardized Z columns not shared with X: (column, m, s) or None
    raw_cols = list(fixed_names)  # the data-scale columns: X, then Z columns not in X
    start = 0
    for _, bnames in blocks:
        block_ones = bnames.index("Intercept") if "Intercept" in bnames else None
        for k, nm in enumerate(bnames):
            kk = start + k
            random_names.append(nm)
            if k == block_ones:
                desc = None
            else:
                m, s = centre_scale(col_of[nm], block_ones is not None)
                desc = (col_of[nm], m, s)
                Gz[kk, kk] = s
                if block_ones is not None:
                    Gz[start + block_ones, kk] = m
            # shared with a fixed column when the same column is standardized the same way
            same = next((i for i in range(p) if fixed_names[i] == nm and x_std[i] == desc), None)
            if same is None:
                if desc in extra:
                    same = p + extra.index(desc)
                else:
                    extra.append(desc)
                    same = p + len(extra) - 1
            z_std_idx.append(same)
            z_std_cols.append(desc)
            if nm not in raw_cols:
                raw_cols.append(nm)
            z_idx.append(raw_cols.index(nm))
        block_sizes.append(len(bnames))
        start += len(bnames)

    # the least-squares start beta0 of y on X_s, from the global moments
    y_col = "__bs_y"
    y_coef = np.zeros(K + 1)
    y_coef[0] = centre[y_col]
    y_coef[names_c.index(y_col) + 1] = 1.0
    Xc = np.column_stack(x_coef) if p else np.zeros((K + 1, 0))
    if p:
        G = Xc.T @ M @ Xc
        beta0 = np.linalg.lstsq(G, Xc.T @ M @ y_coef, rcond=None)[0]
    else:
        beta0 = np.zeros(0)

    # 3. one GROUP BY: per-group sums of products of [X_s | Z_s (unshared) | y - X_s beta0]
    def std_expr(desc):
        a, m, s = desc
        return (nw.col(a) + (centre[a] - m)) * (1.0 / s)

    w_names, w_exprs = [], []
    for i, desc in enumerate(x_std):
        w_names.append(f"__bs_w{i}")
        w_exprs.append(None if desc is None else std_expr(desc))
    for k, desc in enumerate(extra):
        w_names.append(f"__bs_w{p + k}")
        w_exprs.append(None if desc is None else std_expr(desc))
    r = nw.col(y_col) + (centre[y_col] - (beta0[intercept] if intercept is not None else 0.0))
    for i, desc in enumerate(x_std):
        if desc is not None and beta0[i] != 0.0:
            r = r - std_expr(desc) * float(beta0[i])
    w_names.append("__bs_r")
    w_exprs.append(r)
    kw = len(w_names)
    mat = pre.with_columns(
        *[e.alias(a) for a, e in zip(w_names, w_exprs, strict=True) if e is not None]
    )
    prods, spots = [], {}
    for i in range(kw):
        for j in range(i, kw):
            a, b = w_exprs[i], w_exprs[j]
            if a is None and b is None:
                spots[i, j] = "__bs_n"
                continue
            if a is None or b is None:
                expr = nw.col(w_names[j] if a is None else w_names[i])
            else:
                expr = nw.col(w_names[i]) * nw.col(w_names[j])
            alias = f"__bs_p{i}_{j}"
            prods.append((alias, expr))
            spots[i, j] = alias
    if mat.implementation is nw.Implementation.DASK:
        # Dask aggregates columns only: the products are columns first
        grouped = (
            mat.select(nw.col(group), *[e.alias(a) for a, e in prods])
            .group_by(group)
            .agg(nw.len().alias("__bs_n"), *[nw.col(a).sum() for a, _ in prods])
        )
    else:  # sums of expressions: nothing per row is kept (polars' streaming engine, DuckDB)
        grouped = mat.group_by(group).agg(
            nw.len().alias("__bs_n"), *[e.sum().alias(a) for a, e in prods]
        )
    per_group = grouped.pipe(collect_frame).to_pandas()
    codes, labels = factorize(per_group[group].rename(group))  # the pandas path's label order
    order = np.argsort(codes, kind="stable")
    per_group = per_group.iloc[order].reset_index(drop=True)
    labels = pd.Index(per_group[group].to_numpy(), name=group)
    J = len(labels)
    if J < 2:
        raise DataError(
            f"the data must hold at least 2 levels of {group!r} to estimate the "
            f"random-effects variances; got 1 level ({labels[0]!r}). With one group there is "
            "nothing to pool: fit an ordinary regression (e.g. statsmodels' ols) instead."
        )
    n = per_group["__bs_n"].to_numpy(dtype=float)
    cross = np.empty((J, kw, kw))
    for (i, j), alias in spots.items():
        v = per_group[alias].to_numpy(dtype=float)
        cross[:, i, j] = v
        cross[:, j, i] = v

    # beta0 refined once from the blocks (the pandas path refines it from the rows)
    total = cross.sum(axis=0)
    if p:
        delta = np.linalg.lstsq(total[:p, :p], total[:p, -1], rcond=None)[0]
        T = np.eye(kw)
        T[:p, -1] = -delta
        cross = np.einsum("ak,jab,bl->jkl", T, cross, T, optimize=True)
        beta0 = beta0 + delta
    rr = float(cross[:, -1, -1].sum())
    y_scale = float(np.sqrt(rr / n_obs))
    if not np.isfinite(y_scale) or y_scale == 0.0:
        y_scale = 1.0
    cross[:, -1, :] /= y_scale
    cross[:, :, -1] /= y_scale
    i_y = names_c.index(y_col) + 1
    if intercept is not None:
        y_ss = max(M[i_y, i_y] - M[0, i_y] ** 2 / n_obs, 0.0)
    else:
        c = centre[y_col]
        y_ss = M[i_y, i_y] + 2.0 * c * M[0, i_y] + n_obs * c * c
    tr = Standardization(Gx=Gx, Gz=Gz, beta0=beta0, y_scale=y_scale, y_ss=float(y_ss))
    std = MixedStats(
        cross=cross,
        n=n,
        x_idx=np.arange(p),
        z_idx=np.asarray(z_std_idx, dtype=int),
        y_shift=0.0,
        intercept_col=intercept,
    )
    shift = centre[y_col] if intercept is not None else 0.0
    stats = stats_from_std(std, tr, np.asarray(z_idx, dtype=int), shift)
    check_fixed_rank(std.XtX, list(fixed_names))
    check_random_support(stats, n_obs, J, random_names, group)
    design = Design(
        spec=spec,
        fixed_names=tuple(fixed_names),
        random_names=tuple(random_names),
        block_sizes=tuple(block_sizes),
        labels=labels,
        stats=stats,
        n_dropped=n_bad,
        encoder=enc,
        offset=None,
    )
    check_residual_variation(design.stats, spec.response)
    return design


def verify(nw, proto, frame, fixed_exprs, fixed_names, blocks, y_expr) -> None:
    """Each translated column must equal formulae's on the prototype, or the fit is refused."""
    pdf = nw.from_native(proto, eager_only=True)
    checks = [("X", frame.X, fixed_exprs, fixed_names)]
    checks += [
        ("Z", Z, exprs, bnames) for Z, (exprs, bnames) in zip(frame.blocks, blocks, strict=True)
    ]
    for _, target, exprs, nms in checks:
        if target.shape[1] != len(exprs):
            raise untranslatable(", ".join(nms), "its columns could not be matched")
        for k, (e, nm) in enumerate(zip(exprs, nms, strict=True)):
            got = (
                np.ones(len(proto))
                if e is None
                else pdf.select(e.alias("v"))["v"].to_numpy().astype(float)
            )
            if not np.allclose(got, target[:, k], rtol=1e-12, atol=0.0, equal_nan=True):
                raise untranslatable(nm, "its translation does not reproduce formulae's column")
    got = pdf.select(y_expr.alias("v"))["v"].to_numpy().astype(float)
    if not np.allclose(got, frame.working_response, rtol=1e-12, atol=1e-300, equal_nan=True):
        raise untranslatable(frame.spec.response, "the response (minus offsets) differs")


def engine_check_response(data, response: str) -> None:
    """:func:`bayeshrink.response.check_normal_response` for a response column of an engine
    frame, from one aggregation (its range and whether every value is whole) or, for a text
    column, its first three distinct values: the column is never collected."""
    from .response import check_response_profile, two_levels_error

    nw = nw_module()
    lazy = lazy_frame(data)
    schema = lazy.collect_schema()
    if response not in schema:
        return
    dtype = schema[response]
    if dtype in (nw.String, nw.Categorical, nw.Enum):
        levels = lazy.select(nw.col(response)).drop_nulls().unique().head(3)
        levels = levels.pipe(collect_frame).to_pandas()[response]
        if len(levels) == 2:
            raise two_levels_error(response, levels.tolist())
        return
    if dtype == nw.Boolean:
        check_response_profile(response, lo=0, hi=1, whole=True, boolean=True)
        return
    if not dtype.is_numeric():
        return
    y = nw.col(response).cast(nw.Float64)
    ok = y.is_finite().fill_null(False)
    row = (
        lazy.select(
            ok.cast(nw.Int64).sum().alias("n"),
            nw.when(ok).then(y).min().alias("lo"),
            nw.when(ok).then(y).max().alias("hi"),
            nw.when(ok).then((y != y.round(0)).cast(nw.Int64)).sum().alias("frac"),
        )
        .pipe(collect_frame)
        .to_pandas()
        .iloc[0]
    )
    if int(_value(row["n"])) == 0:
        return
    check_response_profile(
        response,
        lo=float(row["lo"]),
        hi=float(row["hi"]),
        whole=int(_value(row["frac"])) == 0,
    )
