"""The formula layer: lme4 formula text -> spec -> model frame, and the encoder for new rows.

``parse`` reads the formula (:func:`parse_formula` -> :class:`FormulaSpec`), ``evaluate`` turns a
spec and a data frame into a :class:`ModelFrame` (y, X, the offset, each random block's Z, the
grouping factors' codes), ``newdata`` keeps the encoding so that new rows are evaluated as the
fit's were (:class:`RowEncoder`). The designs in :mod:`bayeshrink.lmm` are built from the frame.
"""

from __future__ import annotations

from .evaluate import ModelFrame, code_factor, model_frame
from .newdata import RowEncoder
from .parse import FORMULA_FUNCTIONS, FormulaSpec, RandomBlock, parse_formula, response_variables

__all__ = [
    "FORMULA_FUNCTIONS",
    "FormulaSpec",
    "ModelFrame",
    "RandomBlock",
    "RowEncoder",
    "code_factor",
    "model_frame",
    "parse_formula",
    "response_variables",
]
