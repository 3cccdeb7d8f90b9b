"""Evaluate a fitted formula on new rows, encoded exactly as the fit's rows were.

A fit keeps per-group cross-products, never its rows, so predicting for new rows needs the
formula's *encoding*: the levels of each categorical covariate and its reference level, and the
state of stateful transforms such as ``center(x)`` or ``scale(x)`` (the mean and SD of the fit's
data, not of the new rows). formulae keeps that state in its evaluated terms;
:class:`RowEncoder` holds them (without their data) and evaluates new rows with
``evaluate_new_data``, so ``log(x)``, ``C(x)`` or ``center(x)`` mean on new rows what they meant in
the fit.
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from ..errors import ColumnError, DataError

__all__ = ["FORMULA_FUNCTIONS", "RowEncoder", "formula_env"]

# Functions a formula may call besides formulae's own (C, center, scale, ...): the names numpy
# users expect. The caller's namespace is not searched, so a formula means the same everywhere.
FORMULA_FUNCTIONS = {
    "np": np,
    "numpy": np,
    "log": np.log,
    "log1p": np.log1p,
    "log2": np.log2,
    "log10": np.log10,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}


def formula_env():
    """The formulae Environment a formula is evaluated in (FORMULA_FUNCTIONS, nothing else)."""
    from formulae.environment import Environment

    return Environment([dict(FORMULA_FUNCTIONS)])


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
                comp._intermediate_data = None


class RowEncoder:
    """The fixed part and the random blocks of a fitted formula, ready for new rows.

    ``evaluate(df)`` returns ``(X, Z)``: the fixed-effects and random-effects columns of the new
    rows, in the fit's column order (``Design.fixed_names``, ``Design.random_names``).
    """

    def __init__(self, fixed, blocks, variables, response_vars, fixed_names, random_names):
        self.fixed = fixed  # formulae CommonEffectsMatrix or None (no fixed effects)
        self.blocks = list(blocks)  # one CommonEffectsMatrix per random block
        self.variables = tuple(variables)  # the covariates new rows must have
        self.response_vars = frozenset(response_vars)
        self.fixed_names = tuple(fixed_names)
        self.random_names = tuple(random_names)
        for m in self._matrices():
            _strip(m)

    def _matrices(self):
        return ([self.fixed] if self.fixed is not None else []) + self.blocks

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

        state = dict(state)
        state["fixed"] = pickle.loads(state["fixed"])
        state["blocks"] = pickle.loads(state["blocks"])
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
            raise ColumnError(
                f"`newdata` must have the columns the formula uses; missing {', '.join(hints)}. "
                f"Columns are: {', '.join(map(repr, cols[:20]))}. Add them (the response is not "
                "needed)."
            )

    def evaluate(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        self.check_columns(df)
        n = len(df)
        if n == 0:
            raise DataError(
                "`newdata` must hold at least one row to predict for; got an empty table. "
                "Pass the rows (their covariates and group)."
            )
        quiet = np.errstate(divide="ignore", invalid="ignore", over="ignore")
        try:
            with quiet:
                X = (
                    np.empty((n, 0))
                    if self.fixed is None
                    else np.asarray(self.fixed.evaluate_new_data(df).design_matrix, dtype=float)
                )
                Zs = [
                    np.asarray(b.evaluate_new_data(df).design_matrix, dtype=float)
                    for b in self.blocks
                ]
        except Exception as exc:  # formulae raises ValueError for unseen categorical levels
            raise DataError(
                f"`newdata` could not be encoded with the fit's formula: {str(exc).rstrip('.')}. "
                "New rows must use the categorical levels seen in the fit."
            ) from exc
        X = X.reshape(n, -1)
        Z = np.hstack([z.reshape(n, -1) for z in Zs]) if Zs else np.empty((n, 0))
        bad = ~(np.isfinite(X).all(axis=1) & np.isfinite(Z).all(axis=1))
        if bad.any():
            from ..errors import describe_rows

            raise DataError(
                f"the terms of the formula must be finite on `newdata`; they give NaN or inf in "
                f"{describe_rows(df.index[bad])} (a missing value, or e.g. log of a value <= 0). "
                "Fix or drop those rows first."
            )
        return X, Z
