"""One model-frame evaluator: a :class:`~bayeshrink.formula.parse.FormulaSpec` and a data frame
-> :class:`ModelFrame` (y, X, the offset, one Z per random block, the grouping factors' codes).

The data flow through these steps, in order, for every formula fit:

1. the columns the formula reads are checked (present, unique, not named ``Intercept``) and the
   others set aside;
2. rows with a missing or non-finite value in any of them raise an error naming the rows, or
   with ``missing="drop"`` are left out with a :class:`~bayeshrink.errors.RowsDroppedWarning`
   saying how many;
3. covariates are prepared: a datetime covariate becomes days since its earliest value and a
   timedelta covariate days (a :class:`~bayeshrink.errors.TimeConvertedWarning` says so); a
   pandas Categorical keeps its categories' order, so its first category is the reference level
   (as in R, patsy and statsmodels; formulae alone would sort them);
4. formulae evaluates the response, the fixed terms (treatment coding, or the coding chosen with
   ``C(x, Treatment('mid'))``, ``C(x, Sum)``, ``C(x, levels=[...])``), the offsets (summed, each
   with coefficient 1) and each random block's columns; every value must be finite;
5. each grouping factor is coded by :func:`bayeshrink.frames.factorize` (the one-way path's
   coding: any labels, floats included, as lme4 treats any grouping variable as a factor; labels
   of different types that print alike, 308 and "308", are refused);
6. an encoder (:mod:`bayeshrink.formula.newdata`) keeps the encoding for new rows.

The design modules (:mod:`bayeshrink.lmm.design`, :mod:`bayeshrink.lmm.multi`) build their
cross-products from the frame; nothing here knows about estimators.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import (
    ColumnError,
    DataError,
    DataTypeError,
    FormulaError,
    TimeConvertedWarning,
    describe_rows,
    warn,
)
from ..frames import Missing, as_frame, check_missing, check_missing_option, factorize
from .newdata import RowEncoder, time_to_days
from .parse import FormulaSpec, parse_formula, response_variables, restore_levels

__all__ = ["ModelFrame", "code_factor", "model_frame"]


@dataclass(frozen=True, eq=False)
class ModelFrame:
    """A formula evaluated on data: everything a design is built from.

    ``y`` is the response as written (``log(y)`` evaluated); ``offset`` the sum of the
    ``offset(...)`` terms (None without one), which enters with coefficient 1, so the designs
    fit ``working_response = y - offset``; ``blocks[i]`` the random-effects columns of
    ``spec.blocks[i]`` and ``block_names[i]`` their names; ``data`` the rows used (the input's
    index), with the formula's columns only.
    """

    spec: FormulaSpec
    data: pd.DataFrame
    y: np.ndarray
    X: np.ndarray
    fixed_names: tuple[str, ...]
    offset: np.ndarray | None
    blocks: tuple[np.ndarray, ...]
    block_names: tuple[tuple[str, ...], ...]
    n_dropped: int = 0
    encoder: RowEncoder | None = field(default=None, repr=False)

    @property
    def n_obs(self) -> int:
        return len(self.y)

    @property
    def working_response(self) -> np.ndarray:
        """What the fixed and random terms model: y minus the offset."""
        return self.y if self.offset is None else self.y - self.offset

    def factor(self, name: str, text: bool = False) -> tuple[np.ndarray, pd.Index]:
        """Codes and labels of the grouping factor ``name`` (see :func:`code_factor`)."""
        for b in self.spec.blocks:
            if b.factor == name:
                return code_factor(self.data, b.components, text=text)
        raise ColumnError(
            f"`factor` must be one of the formula's grouping factors {self.spec.factor_names}; "
            f"got {name!r}."
        )


def code_factor(df: pd.DataFrame, components, text: bool = False) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and labels of a grouping factor made of ``components`` (columns of df).

    One column keeps its labels (``text=False``) as the one-way path does; an interaction is
    labelled as lme4 labels it (``c1:S01``), and so is one column with ``text=True``. Each column
    is coded by :func:`bayeshrink.frames.factorize` first, which refuses labels of different
    types that print alike."""
    from ..frames import interaction_labels

    components = list(components)
    coded = [factorize(df[c].reset_index(drop=True).rename(c)) for c in components]
    if len(components) == 1 and not text:
        codes, labels = coded[0]
        return codes, labels.rename(components[0])
    # Levels in R's order for `factor(a:b)`: each component's own level order (numbers
    # numerically, text alphabetically), the first component varying slowest, unused
    # combinations dropped; sorting the joined text would put "10" before "2".
    name = ":".join(components)
    labels_text = interaction_labels(df, components).to_numpy()
    if len(components) == 1:
        key = coded[0][0]
    else:
        key = np.zeros(len(df), dtype=np.int64)
        for codes, labels in coded:  # re-coded after each step: no int64 overflow
            key = np.unique(key * len(labels) + codes, return_inverse=True)[1].astype(np.int64)
    _, first, codes = np.unique(key, return_index=True, return_inverse=True)
    return np.asarray(codes, dtype=np.intp), pd.Index(labels_text[first], name=name)


def _check_empty_terms(common, df: pd.DataFrame, where: str) -> None:
    """A categorical term with one level codes to no column: lme4 (R's contrasts) refuses it,
    and so does bayeshrink rather than drop it without a word."""
    for name, sl in common.slices.items():
        if sl.stop > sl.start:
            continue
        found = [c for c in df.columns if c in name.replace("(", " ").replace(")", " ").split()]
        shown = "; ".join(
            f"{c!r} holds only {df[c].iloc[0]!r}" for c in found if df[c].nunique() == 1
        )
        raise FormulaError(
            f"`formula` term {name!r} in {where} must have at least 2 levels to be coded; it "
            f"has 1{' (' + shown + ')' if shown else ''} after missing rows are left out, so it "
            "would give no column. Drop it from the formula (a constant adds nothing beside the "
            "intercept), or check the data."
        )


def _quiet():
    # numpy's warnings for log(0) and the like are replaced by the finiteness checks
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def _check_columns(df: pd.DataFrame, spec: FormulaSpec) -> None:
    absent = sorted(v for v in spec.variables if v not in df.columns)
    if absent:
        cols = [str(c) for c in df.columns]
        hints = []
        for v in absent:
            close = difflib.get_close_matches(v, cols, n=1)
            hints.append(f"{v!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ColumnError(
            f"`formula` names variables that are not columns of the data: "
            f"{', '.join(hints)}. Columns are: {', '.join(map(repr, cols[:20]))}."
        )
    if "Intercept" in spec.variables:
        raise FormulaError(
            "`formula` may not use a column named 'Intercept': it would take the place of "
            "the intercept term, which has that name. Rename the column, e.g. "
            "df.rename(columns={'Intercept': 'intercept_x'})."
        )
    names = [str(c) for c in df.columns]
    repeated = sorted({c for c in names if c in spec.variables and names.count(c) > 1})
    if repeated:
        raise DataError(
            f"the columns that `formula` uses must have unique names; "
            f"{', '.join(f'{c!r} appears {names.count(c)} times' for c in repeated)}. "
            "Rename or drop the duplicate columns."
        )


#: the column checks of :func:`model_frame`, for data held in an engine (names only)
check_columns = _check_columns


def _prepare_covariates(df: pd.DataFrame, spec: FormulaSpec) -> tuple[pd.DataFrame, dict]:
    """Datetime / timedelta covariates to days, Categoricals in their categories' order.

    Returns the prepared frame and the time conversions ({column: origin or None}) that new
    rows get too."""
    grouping = set(spec.grouping_columns)
    response_only = response_variables(spec)
    times: dict[str, object] = {}
    out = {}
    for c in df.columns:
        col = df[c]
        is_time = pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(
            col
        )
        if c in grouping:
            continue  # dates label groups as well as anything else does
        if is_time and c in response_only:
            raise DataTypeError(
                f"the response {spec.response!r} must be numeric; got a {col.dtype} column "
                f"{c!r}. Convert it to a number of the unit you mean, e.g. "
                f"(df[{c!r}] - df[{c!r}].min()) / pd.Timedelta(days=1)."
            )
        if is_time:
            origin = col.min() if pd.api.types.is_datetime64_any_dtype(col) else None
            times[c] = origin
            out[c] = time_to_days(col, origin)
            since = (
                f"days since {origin} (its earliest value)"
                if origin is not None
                else "days (a timedelta of 36 hours is 1.5)"
            )
            warn(
                f"the {col.dtype} covariate {c!r} enters the formula as {since}; its coefficient "
                f"is per day. To choose another unit or origin, convert the column first, e.g. "
                f"df['t'] = (df[{c!r}] - <origin>) / pd.Timedelta(hours=1).",
                TimeConvertedWarning,
            )
        elif isinstance(col.dtype, pd.CategoricalDtype) and not col.dtype.ordered:
            # formulae sorts an unordered Categorical's levels and keeps an ordered one's order:
            # the same categories, marked ordered, keep the user's order (unused ones dropped)
            out[c] = col.cat.remove_unused_categories().cat.as_ordered()
    for derived, (var, levels, written) in spec.levels.items():
        values = out.get(var, df[var])
        present = list(pd.unique(values))
        absent = [v for v in present if v not in levels]
        unused = [v for v in levels if v not in present]
        if absent or unused:
            what = (
                f"the data hold {', '.join(map(repr, absent[:5]))}, which the list leaves out"
                if absent
                else f"{', '.join(map(repr, unused[:5]))} {'is' if len(unused) == 1 else 'are'} "
                "not in the data"
            )
            raise FormulaError(
                f"`formula` must list in {written} the levels of {var!r} in the data, each once; "
                f"{what}. List exactly the levels present (after missing rows are left out)."
            )
        out[derived] = pd.Categorical(values, categories=levels, ordered=True)
    if out:
        df = df.assign(**{str(k): v for k, v in out.items()})
    return df, times


def _evaluate(model, df: pd.DataFrame, env, what: str):
    from formulae.matrices import DesignMatrices

    try:
        with _quiet():
            return DesignMatrices(model, df, env)
    except Exception as exc:
        msg = str(exc)
        if "not present in the" in msg or "reference not in levels" in msg:
            msg += " (a level named in C(...) must be a level of the data)"
        raise FormulaError(f"{what} could not be evaluated on the data: {msg}") from exc


def model_frame(
    data, spec: FormulaSpec | str, missing: Missing = "raise", *, subject: str | None = None
) -> ModelFrame:
    """Evaluate ``spec`` on ``data``: the rows used, y, X, the offset, each block's Z.

    ``subject`` names the variables in the missing-value message."""
    from formulae.terms import Model

    check_missing_option(missing)
    spec = parse_formula(spec) if isinstance(spec, str) else spec
    df = as_frame(data)
    if len(df) == 0:
        raise DataError("`data` must have at least one row; got an empty frame.")
    _check_columns(df, spec)
    used = [c for c in df.columns if c in spec.variables]
    df = df[used]
    bad = df.isna().any(axis=1).to_numpy().copy()
    for c in used:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            bad |= ~np.isfinite(col.to_numpy(dtype=float, na_value=np.nan))
    keep = check_missing(
        df,
        bad,
        subject or "the variables of `formula` (grouping factors included)",
        "NaN, inf or a missing value",
        missing,
        "Drop or impute them first",
    )
    n_dropped = 0
    if keep is not None:
        df = df[keep]
        n_dropped = int(bad.sum())
        if len(df) == 0:
            raise DataError(
                f"the data must hold rows with every variable of `formula` present; none are "
                f"left after dropping the {n_dropped} rows with missing values. Check which "
                "column is missing throughout."
            )
    df, times = _prepare_covariates(df, spec)
    env = spec.env()

    dm = _evaluate(spec.fixed, df, env, "`formula`")
    if dm.response.kind != "numeric":
        raise DataTypeError(
            f"the response {spec.response!r} must be numeric; got a {dm.response.kind} "
            "variable. Convert it (e.g. to 0/1) or model it with a GLM."
        )
    y = np.asarray(dm.response.design_matrix, dtype=float).reshape(-1)
    if dm.common is None:
        X = np.empty((len(df), 0))
        fixed_names: list[str] = []
    else:
        _check_empty_terms(dm.common, df, "the fixed part")
        Xdf = dm.common.as_dataframe()
        X = Xdf.to_numpy(dtype=float)
        fixed_names = [restore_levels(str(c), spec.levels) for c in Xdf.columns]
    offset_matrix = None
    offset = None
    if spec.offsets:
        om = _evaluate(Model(*spec.offsets), df, env, "an offset() term")
        offset_matrix = om.common
        offset = np.asarray(om.common.design_matrix, dtype=float).reshape(len(df), -1).sum(axis=1)
    blocks, block_names, block_matrices = [], [], []
    for blk in spec.blocks:
        bm = _evaluate(Model(*blk.exprs), df, env, "a random term")
        _check_empty_terms(bm.common, df, "a random term")
        Zdf = bm.common.as_dataframe()
        block_matrices.append(bm.common)
        blocks.append(Zdf.to_numpy(dtype=float))
        block_names.append(tuple(restore_levels(str(c), spec.levels) for c in Zdf.columns))
    made = ~(np.isfinite(y) & np.isfinite(X).all(axis=1))
    for Z in blocks:
        made |= ~np.isfinite(Z).all(axis=1)
    if offset is not None:
        made |= ~np.isfinite(offset)
    if made.any():
        rows = describe_rows(df.index[made])
        raise DataError(
            f"the terms of `formula` must be finite; evaluated on the data they give NaN or "
            f"inf in {rows} (e.g. log of a value <= 0). Transform or filter those rows first."
        )
    grouping = set(spec.grouping_columns)
    response_only = response_variables(spec)
    encoder = RowEncoder(
        dm.common,
        block_matrices,
        variables=sorted(spec.variables - grouping - response_only),
        response_vars=response_only,
        fixed_names=fixed_names,
        random_names=[n for names in block_names for n in names],
        offsets=offset_matrix,
        offset_variables=sorted(_offset_variables(spec) - grouping),
        times=times,
        levels=spec.levels,
    )
    return ModelFrame(
        spec=spec,
        data=df,
        y=y,
        X=X,
        fixed_names=tuple(fixed_names),
        offset=offset,
        blocks=tuple(blocks),
        block_names=tuple(block_names),
        n_dropped=n_dropped,
        encoder=encoder,
    )


def _offset_variables(spec: FormulaSpec) -> set[str]:
    """The columns the offset() terms read."""
    out: set[str] = set()
    for t in spec.offsets:
        for comp in t.components:
            out |= {v for v in comp.var_names if v}
    return out
