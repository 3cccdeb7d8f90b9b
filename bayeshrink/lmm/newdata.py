"""The formula functions under their former module name (the formula layer now lives in
:mod:`bayeshrink.formula`); kept so that code importing them from here keeps working."""

from ..formula.parse import FORMULA_FUNCTIONS

__all__ = ["FORMULA_FUNCTIONS"]
