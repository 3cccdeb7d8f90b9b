"""One encoder for new data: a fitted formula evaluated on new rows as the fit's rows were.

A fit keeps per-group cross-products, never its rows, so predicting for new rows needs the
formula's *encoding*: the levels of each categorical covariate and its reference level, and the
state of stateful transforms such as ``center(x)`` or ``scale(x)`` (the mean and SD of the fit's
data, not of the new rows). formulae keeps that state in its evaluated terms;
:class:`RowEncoder` holds them (without their data) and evaluates new rows with
``evaluate_new_data``, so ``log(x)``, ``C(x)`` or ``center(x)`` mean on new rows what they meant in
the fit.

New rows flow through :meth:`RowEncoder.evaluate` (the fixed-effects columns X and the random
blocks' columns Z, in the fit's order) and :meth:`RowEncoder.offset` (the summed ``offset()``
terms, which a prediction adds with coefficient 1). A datetime covariate is turned into days
since the fit's earliest date, as the evaluator (:mod:`bayeshrink.formula.evaluate`) did for the
fit's rows. The encoder pickles (formulae's environments, which hold modules, are rebuilt).
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from ..errors import ColumnError, DataError

__all__ = ["RowEncoder", "time_to_days"]


def time_to_days(col: pd.Series, origin) -> pd.Series:
    """A datetime column as days since ``origin``, a timedelta column (origin None) as days."""
    base = col if origin is None else col - origin
    return pd.Series(base / pd.Timedelta(days=1), index=col.index, name=col.name, dtype=float)


class _Kind:
    """What formulae's offset() needs of its evaluated argument on new rows: its kind."""

    def __init__(self, kind: str):
        self.kind = kind


def _calls(matrix):
    """The formulae Call components of an evaluated matrix (they hold an environment)."""
    from formulae.terms.call import Call

    for term in matrix.terms.values():
        for comp in getattr(term, "components", []):
            if isinstance(comp, Call):
                yield comp


def _strip(matrix) -> None:
    """Drop the evaluated data (n rows) from a formulae matrix; the encoding state stays."""
    matrix.design_matrix = None
    matrix.data = None
    for term in matrix.terms.values():
        if hasattr(term, "data"):
            term.data = None
        for comp in getattr(term, "components", []):
            if hasattr(comp, "value"):
                comp.value = None
            if hasattr(comp, "_intermediate_data"):
                # an offset() keeps what it was (a variable or a constant), not its values
                kind = getattr(comp._intermediate_data, "kind", None)
                comp._intermediate_data = None if kind is None else _Kind(kind)


class RowEncoder:
    """The fixed part, the offsets and the random blocks of a fitted formula, ready for new rows.

    ``evaluate(df)`` returns ``(X, Z)``: the fixed-effects and random-effects columns of the new
    rows, in the fit's column order (``fixed_names``, ``random_names``); ``offset(df)`` the
    summed offsets (zeros without any).
    """

    def __init__(
        self,
        fixed,
        blocks,
        variables,
        response_vars,
        fixed_names,
        random_names,
        offsets=None,
        offset_variables=(),
        times=None,
        levels=None,
    ):
        self.fixed = fixed  # formulae CommonEffectsMatrix or None (no fixed effects)
        self.blocks = list(blocks)  # one CommonEffectsMatrix per random block
        self.offsets = offsets  # a CommonEffectsMatrix of the offset() terms, or None
        self.variables = tuple(variables)  # the covariates new rows must have
        self.offset_variables = tuple(offset_variables)
        self.response_vars = frozenset(response_vars)
        self.fixed_names = tuple(fixed_names)
        self.random_names = tuple(random_names)
        self.times = dict(times or {})  # datetime / timedelta covariates: {column: origin}
        # C(x, levels=[...]): {derived column: (column, levels, call)}; new rows copy the column
        self.levels = dict(levels or {})
        for m in self._matrices():
            _strip(m)

    def _matrices(self):
        fixed = [self.fixed] if self.fixed is not None else []
        offsets = [self.offsets] if self.offsets is not None else []
        return fixed + self.blocks + offsets

    # formulae's terms hold an Environment with modules (numpy), which do not pickle: it is
    # left out of the pickle and rebuilt from the formula functions on unpickling.
    def __getstate__(self):
        import pickle

        saved = [(m, m.env, [(c, c.env) for c in _calls(m)]) for m in self._matrices()]
        try:
            for m, _, calls in saved:
                m.env = None
                for c, _ in calls:
                    c.env = None
            state = self.__dict__.copy()
            state["fixed"] = pickle.dumps(self.fixed)
            state["blocks"] = pickle.dumps(self.blocks)
            state["offsets"] = pickle.dumps(self.offsets)
        finally:
            for m, env, calls in saved:
                m.env = env
                for c, cenv in calls:
                    c.env = cenv
        return state

    def __setstate__(self, state):
        import pickle

        from formulae.categorical import ENCODINGS
        from formulae.environment import Environment
        from formulae.transforms import TRANSFORMS

        from .parse import formula_env

        state = dict(state)
        state["fixed"] = pickle.loads(state["fixed"])
        state["blocks"] = pickle.loads(state["blocks"])
        state["offsets"] = pickle.loads(state["offsets"])
        self.__dict__.update(state)
        env = formula_env()
        for m in self._matrices():
            m.env = env
            for c in _calls(m):
                # as formulae's Call.set_type builds it
                c.env = Environment([{**TRANSFORMS, **ENCODINGS}]).with_outer_namespace(
                    env.namespace
                )

    def check_columns(self, df: pd.DataFrame, extra: tuple[str, ...] = ()) -> None:
        need = [v for v in (*self.variables, *extra) if v not in self.response_vars]
        absent = [v for v in dict.fromkeys(need) if v not in df.columns]
        if absent:
            cols = [str(c) for c in df.columns]
            hints = []
            for v in absent:
                close = difflib.get_close_matches(v, cols, n=1)
                hints.append(f"{v!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            off = [v for v in absent if v in self.offset_variables]
            why = (
                f" The offset needs {', '.join(map(repr, off))}: a prediction includes the "
                "offset, as the fit did."
                if off
                else ""
            )
            raise ColumnError(
                f"`newdata` must have the columns the formula uses; missing {', '.join(hints)}. "
                f"Columns are: {', '.join(map(repr, cols[:20]))}. Add them (the response is not "
                f"needed).{why}"
            )

    def prepare(self, df: pd.DataFrame) -> pd.DataFrame:
        """New rows with the fit's time conversions applied (and C(x, levels=[...])'s column).

        A Categorical column is read by its values: the fit's levels code it (formulae would
        otherwise require an ordered Categorical of new rows to hold every level)."""
        out = {
            str(c): df[c].astype(object)
            for c in self.variables
            if c in df.columns and isinstance(df[c].dtype, pd.CategoricalDtype)
        }
        for derived, (var, _, _) in self.levels.items():
            if var in df.columns:
                out[derived] = out.get(var, df[var])
        for c, origin in self.times.items():
            if c not in df.columns:
                continue
            col = df[c]
            want = "datetime" if origin is not None else "timedelta"
            ok = (
                pd.api.types.is_datetime64_any_dtype(col)
                if origin is not None
                else pd.api.types.is_timedelta64_dtype(col)
            )
            if not ok:
                raise DataError(
                    f"`newdata` column {c!r} must hold {want} values, as in the fit; got dtype "
                    f"{col.dtype}. Convert it, e.g. pd.to_{want}(newdata[{c!r}])."
                )
            out[str(c)] = time_to_days(col, origin)
        return df.assign(**out) if out else df

    def _check_rows(self, df: pd.DataFrame) -> pd.DataFrame:
        self.check_columns(df)
        if len(df) == 0:
            raise DataError(
                "`newdata` must hold at least one row to predict for; got an empty table. "
                "Pass the rows (their covariates and group)."
            )
        return self.prepare(df)

    def _encode(self, fn):
        quiet = np.errstate(divide="ignore", invalid="ignore", over="ignore")
        try:
            with quiet:
                return fn()
        except Exception as exc:  # formulae raises ValueError for unseen categorical levels
            raise DataError(
                f"`newdata` could not be encoded with the fit's formula: {str(exc).rstrip('.')}. "
                "New rows must use the categorical levels seen in the fit."
            ) from exc

    def _finite(self, df: pd.DataFrame, bad: np.ndarray) -> None:
        if bad.any():
            from ..errors import describe_rows

            raise DataError(
                f"the terms of the formula must be finite on `newdata`; they give NaN or inf in "
                f"{describe_rows(df.index[bad])} (a missing value, or e.g. log of a value <= 0). "
                "Fix or drop those rows first."
            )

    def evaluate(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The fixed-effects columns X and the random blocks' columns Z of new rows."""
        rows = self._check_rows(df)
        n = len(rows)

        def encode():
            X = (
                np.empty((n, 0))
                if self.fixed is None
                else np.asarray(self.fixed.evaluate_new_data(rows).design_matrix, dtype=float)
            )
            Zs = [
                np.asarray(b.evaluate_new_data(rows).design_matrix, dtype=float)
                for b in self.blocks
            ]
            return X, Zs

        X, Zs = self._encode(encode)
        X = X.reshape(n, -1)
        Z = np.hstack([z.reshape(n, -1) for z in Zs]) if Zs else np.empty((n, 0))
        self._finite(df, ~(np.isfinite(X).all(axis=1) & np.isfinite(Z).all(axis=1)))
        return X, Z

    def offset(self, df: pd.DataFrame) -> np.ndarray:
        """The summed ``offset()`` terms of new rows (zeros when the formula has none)."""
        if self.offsets is None:
            return np.zeros(len(df))
        rows = self._check_rows(df)
        n = len(rows)
        m = self._encode(
            lambda: np.asarray(self.offsets.evaluate_new_data(rows).design_matrix, dtype=float)
        )
        off = m.reshape(n, -1).sum(axis=1)
        self._finite(df, ~np.isfinite(off))
        return off
