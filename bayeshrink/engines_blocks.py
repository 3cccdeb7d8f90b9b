"""Several-factor formula fits inside a dataframe engine: the penalised least-squares blocks.

One GROUP BY per grouping factor and one per pair of factors compute, inside polars, DuckDB,
Dask or Spark, the blocks :class:`~bayeshrink.lmm.blocks.PLSBlocks` that the criterion of
:mod:`bayeshrink.lmm.pls` reads (Z'Z from level-pair counts and sums, Z'X, Z'y, X'X, X'y, y'y);
the columns are the engine expressions of :mod:`bayeshrink.engines_formula`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .engines_formula import collect_frame, engine_columns
from .errors import DataError
from .frames import nw_module

__all__ = ["RowsInEngine", "engine_multi_blocks", "engine_pls_blocks"]


def engine_pls_blocks(data, spec, missing: str = "raise"):
    """The cross-product blocks of a formula with several grouping factors, from GROUP BYs.

    Returns ``(blocks, factors)``: a :class:`~bayeshrink.lmm.pls.PLSBlocks` on the internal
    scale of :mod:`bayeshrink.lmm.pls` (the row path's standardization) and one
    :class:`~bayeshrink.lmm.pls.FactorData` per grouping factor in lme4's order, without rows
    (``codes`` and ``Z`` None); ``fit_pls(None, None, factors, method, blocks=blocks)`` fits
    them. One GROUP BY per factor (counts, Z_f'Z_f per level, Z_f'X, Z_f'y) and one per pair of
    factors (Z_f'Z_g per pair of levels) run in the engine; only those rows come back."""
    blocks, factors, _ = engine_multi_blocks(data, spec, missing)
    return blocks, [dataclasses.replace(f, codes=None, Z=None) for f in factors]


def engine_multi_blocks(data, spec, missing: str):
    """:func:`engine_pls_blocks`, with the namespace of :func:`engine_columns` (its encoder and
    the count of dropped rows) as a third value; the factors' rows are :class:`RowsInEngine`.
    What :meth:`bayeshrink.lmm.multi.MultiDesign.from_engine` builds an engine fit's design of."""
    import scipy.sparse as sp

    from .lmm.blocks import PLSBlocks, elimination_order
    from .lmm.pls import FactorData

    nw = nw_module()
    ec = engine_columns(data, spec, missing)
    no_rows = RowsInEngine(_engine_kind(data))
    N, p, icpt = ec.n_obs, ec.p, ec.intercept
    centre, col_of, M, names_c = ec.centre, ec.col_of, ec.M, ec.names_c

    def std_expr(desc):
        if desc is None:
            return None
        a, m, s = desc
        return (nw.col(a) + (centre[a] - m)) * (1.0 / s)

    def coef(desc):
        v = np.zeros(ec.K + 1)
        if desc is None:
            v[0] = 1.0
            return v
        a, m, s = desc
        v[0] = (centre[a] - m) / s
        v[names_c.index(a) + 1] = 1.0 / s
        return v

    # X = Xs A (lmm.blocks.scale_fixed), y = my + sy * ys
    A = np.eye(p)
    x_desc = []
    for i, nm in enumerate(ec.fixed_names):
        if i == icpt:
            x_desc.append(None)
            continue
        m, s = ec.centre_scale(col_of[nm], icpt is not None)
        x_desc.append((col_of[nm], m, s))
        A[i, i] = s
        if icpt is not None:
            A[icpt, i] = m
    my, sy = ec.centre_scale("__bs_y", icpt is not None)
    y_desc = ("__bs_y", my, sy)
    Xc = np.column_stack([coef(d) for d in x_desc]) if p else np.zeros((ec.K + 1, 0))
    yv = coef(y_desc)
    XtX, Xty, yty = Xc.T @ M @ Xc, Xc.T @ M @ yv, float(yv @ M @ yv)

    # one FactorData per factor (its blocks in the formula's order), Z = Zs Az
    per: dict[str, dict] = {}
    for blk, (_, bnames) in zip(spec.blocks, ec.blocks, strict=True):
        f = per.setdefault(blk.factor, {"comps": list(blk.components), "names": [], "sizes": []})
        f["names"] += list(bnames)
        f["sizes"].append(len(bnames))
    for f in per.values():
        q = len(f["names"])
        Az = np.eye(q)
        descs, start = [], 0
        for size in f["sizes"]:
            names = f["names"][start : start + size]
            ones = names.index("Intercept") if "Intercept" in names else None
            for k, nm in enumerate(names):
                if k == ones:
                    descs.append(None)
                    continue
                m, s = ec.centre_scale(col_of[nm], ones is not None)
                descs.append((col_of[nm], m, s))
                Az[start + k, start + k] = s
                if ones is not None:
                    Az[start + ones, start + k] = m
            start += size
        f["Az"], f["z"] = Az, [std_expr(d) for d in descs]

    def product(a, b):
        if a is None and b is None:
            return None
        return b if a is None else a if b is None else a * b

    def grouped(keys, named):
        ones = [k for k, e in named if e is None]  # ones x ones: the count
        named = [(k, e) for k, e in named if e is not None]
        aggs = [nw.len().alias("__bs_n")]
        if ec.pre.implementation is nw.Implementation.DASK:  # Dask sums columns only
            lazy = ec.pre.select(*[nw.col(c) for c in keys], *[e.alias(k) for k, e in named])
            aggs += [nw.col(k).sum() for k, _ in named]
        else:
            lazy = ec.pre
            aggs += [e.sum().alias(k) for k, e in named]
        out = lazy.group_by(*keys).agg(*aggs).pipe(collect_frame).to_pandas()
        for k in ones:
            out[k] = out["__bs_n"].astype(float)
        return out

    def level_position(f, df):
        """Each row's level among f's levels, matched on the raw key columns: a pair table
        can hold a row per observed pair of levels, too many to label as text."""
        keys = f["df"][f["comps"]]
        if len(f["comps"]) == 1:
            c = f["comps"][0]
            return pd.Index(keys[c]).get_indexer(df[c])
        return pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(df[f["comps"]]))

    def level_text(df, comps):
        out = df[comps[0]].astype(str)
        for c in comps[1:]:
            out = out + ":" + df[c].astype(str)
        return out

    xs = [std_expr(d) for d in x_desc]
    ys = std_expr(y_desc)
    stats = {}
    for name, f in per.items():
        q = len(f["z"])
        named = []
        for a in range(q):
            for b in range(a, q):
                named.append((f"zz{a}_{b}", product(f["z"][a], f["z"][b])))
            for i in range(p):
                named.append((f"zx{a}_{i}", product(f["z"][a], xs[i])))
            named.append((f"zy{a}", product(f["z"][a], ys)))
        df = grouped(f["comps"], named)
        text = level_text(df, f["comps"])
        codes, labels = pd.factorize(text, sort=True)
        df = df.iloc[np.argsort(codes, kind="stable")].reset_index(drop=True)
        f["labels"] = pd.Index(labels, name=name)
        f["df"] = df
        stats[name] = df
    order_meta = sorted(per, key=lambda n: -len(per[n]["labels"]))  # lme4's order (stable)
    factors = [
        FactorData(
            name=n,
            codes=no_rows,
            labels=per[n]["labels"],
            Z=no_rows,
            terms=tuple(per[n]["names"]),
            block_sizes=tuple(per[n]["sizes"]),
        )
        for n in order_meta
    ]
    for fd in factors:
        if fd.n_levels < 2:
            raise DataError(
                f"the grouping factor {fd.name!r} must have at least 2 levels; got "
                f"{fd.n_levels} ({fd.labels[0]!r}). A variance between levels cannot be "
                f"estimated from one level: drop (... | {fd.name}) from the formula."
            )
    elim = elimination_order(factors)
    offs, o = {}, 0
    for k in elim:
        offs[k] = o
        o += factors[k].n_levels * factors[k].q
    qtot = o
    rows, cols, vals = [], [], []
    ZtX = np.zeros((qtot, p))
    Zty = np.zeros(qtot)
    level_n, A11 = [], None
    for k, fd in enumerate(factors):
        df, q, n = per[fd.name]["df"], fd.q, fd.n_levels
        base = offs[k] + np.arange(n) * q
        level_n.append(df["__bs_n"].to_numpy(dtype=np.int64))
        blocks_k = np.zeros((n, q, q))
        for a in range(q):
            for b in range(a, q):
                v = df[f"zz{a}_{b}"].to_numpy(dtype=float)
                blocks_k[:, a, b] = blocks_k[:, b, a] = v
            for i in range(p):
                ZtX[base + a, i] = df[f"zx{a}_{i}"].to_numpy(dtype=float)
            Zty[base + a] = df[f"zy{a}"].to_numpy(dtype=float)
        if k == elim[0]:
            A11 = blocks_k
        ii, aa, bb = np.meshgrid(np.arange(n), np.arange(q), np.arange(q), indexing="ij")
        rows.append((base[ii] + aa).ravel())
        cols.append((base[ii] + bb).ravel())
        vals.append(blocks_k.ravel())
    for k in range(len(factors)):
        for m_ in range(k + 1, len(factors)):
            fk, fm = per[factors[k].name], per[factors[m_].name]
            keys = list(dict.fromkeys(fk["comps"] + fm["comps"]))
            named = [
                (f"p{a}_{b}", product(fk["z"][a], fm["z"][b]))
                for a in range(factors[k].q)
                for b in range(factors[m_].q)
            ]
            df = grouped(keys, named)
            lk, lm = level_position(fk, df), level_position(fm, df)
            for a in range(factors[k].q):
                for b in range(factors[m_].q):
                    v = df[f"p{a}_{b}"].to_numpy(dtype=float)
                    r_ = offs[k] + lk * factors[k].q + a
                    c_ = offs[m_] + lm * factors[m_].q + b
                    rows += [r_, c_]
                    cols += [c_, r_]
                    vals += [v, v]
    ZtZ = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(qtot, qtot)
    )
    blocks = PLSBlocks(
        N=N,
        XtX=XtX,
        Xty=Xty,
        yty=yty,
        ZtZ=ZtZ,
        ZtX=ZtX,
        Zty=Zty,
        A11=A11,
        level_n=tuple(level_n),
        A=A,
        icpt=icpt,
        my=float(my),
        sy=float(sy),
        Az=tuple(per[fd.name]["Az"] for fd in factors),
        first_term_ones=tuple(fd.terms[0] == "Intercept" for fd in factors),
    )
    return blocks, factors, ec


# --------------------------------------------------------------------------------------------
# the fit, and the rows it does not keep

_KINDS = {
    "polars": ("polars", "lf.collect().to_pandas()"),
    "duckdb": ("DuckDB", "rel.df()"),
    "dask": ("Dask", "ddf.compute()"),
    "pyspark": ("Spark", "sdf.toPandas()"),
}


def _engine_kind(data) -> tuple[str, str]:
    """The engine's name and how its frames are collected to pandas (for the messages)."""
    root = type(data).__module__.split(".")[0]
    root = "dask" if root == "dask_expr" else root
    return _KINDS.get(root, (root, "a pandas copy of the rows"))


class RowsInEngine:
    """Stands for the rows of a fit computed inside an engine: the response, X, and each
    factor's levels and Z stayed there, and only the cross-product blocks came back. Any use
    of it (an array operation, ``len``, an attribute such as ``shape``) raises a
    :class:`~bayeshrink.errors.DataError` saying what needs the rows and how to give them, so a
    method that reads rows never fails with an unrelated error.
    ``fit.predict(frame)``, ``fit.fitted(frame)`` and ``fit.resid(frame)`` on an engine frame
    need no rows of the fit (:mod:`bayeshrink.engines_predict`)."""

    def __init__(self, kind: tuple[str, str]):
        self._kind = kind

    def _refuse(self, *_args, **_kwargs):
        name, collect = self._kind
        raise DataError(
            f"this fit was computed inside {name}: only its cross-product blocks left the "
            "engine, not its rows, and this method needs the rows (the response, X, and each "
            "factor's levels and Z). Fit the rows as pandas to use it, e.g. "
            f"bs.fit({collect}, formula=...); fit.predict(frame), fit.fitted(frame) and "
            f"fit.resid(frame) with the {name} frame itself give {name} frames without "
            "collecting it."
        )

    def __getattr__(self, name):
        if name.startswith("__"):  # copy, pickle and numpy probe dunders: not the rows
            raise AttributeError(name)
        self._refuse()

    __len__ = __iter__ = __getitem__ = __array__ = __array_ufunc__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __matmul__ = __rmatmul__ = __truediv__ = __rtruediv__ = __neg__ = __pow__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __hash__ = None

    def __repr__(self) -> str:
        return f"<rows kept in {self._kind[0]}>"
