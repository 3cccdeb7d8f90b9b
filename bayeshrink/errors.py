"""Errors and warnings raised by bayeshrink.

Every error subclasses a built-in (``ValueError``, ``TypeError`` or ``KeyError``) so that
generic ``except ValueError`` code keeps working, and every message follows one format:
what was expected, what was received, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "BayeshrinkError",
    "BayeshrinkWarning",
    "ColumnError",
    "ConvergenceWarning",
    "DataError",
    "DataTypeError",
    "DivergenceWarning",
    "FamilyWarning",
    "FormulaError",
    "MethodError",
    "NonIntegerWarning",
    "OutputError",
    "PirlsConvergenceError",
    "RefitWarning",
    "RepeatedLabelsWarning",
    "RowsDroppedWarning",
    "SamplerConvergenceWarning",
    "SeparationError",
    "TimeConvertedWarning",
    "describe_rows",
]


class BayeshrinkError(Exception):
    """Base class of all bayeshrink errors."""


class DataError(BayeshrinkError, ValueError):
    """The data cannot support the requested model (values, sizes, variation)."""


class DataTypeError(BayeshrinkError, TypeError):
    """A column or argument has the wrong type."""


class ColumnError(BayeshrinkError, KeyError):
    """A named column is not in the data."""

    def __str__(self) -> str:  # KeyError repr()s its message; show it as written
        return str(self.args[0]) if self.args else ""


class MethodError(BayeshrinkError, ValueError):
    """An unknown estimation method or option was requested."""


class OutputError(BayeshrinkError, OSError):
    """A file cannot be written where it was asked to go."""


class FormulaError(DataError):
    """The formula cannot be read, or asks for a model bayeshrink does not fit."""


class SeparationError(DataError):
    """The fixed effects separate the binary outcomes: their estimates would be infinite."""


class PirlsConvergenceError(DataError):
    """PIRLS could not find the conditional modes of a GLMM's random effects."""


class BayeshrinkWarning(UserWarning):
    """Base class of bayeshrink warnings."""


class ConvergenceWarning(BayeshrinkWarning):
    """The optimiser stopped before the gradient of the criterion was small."""


class SamplerConvergenceWarning(ConvergenceWarning):
    """The sampler's chains have not converged: R-hat above 1.01 or too few effective draws
    (PyMC's rules, which PyMC itself does not apply when nutpie samples)."""


class DivergenceWarning(BayeshrinkWarning):
    """The sampler reported divergent transitions: the posterior may be biased."""


class FamilyWarning(BayeshrinkWarning):
    """The response looks binary or like counts, and the normal family is fitting it: the
    warning names the family that models it (``family="binomial"`` or ``"poisson"``)."""


class RefitWarning(BayeshrinkWarning):
    """REML fits were refitted by maximum likelihood to compare them (as lme4's ``anova``)."""


class RepeatedLabelsWarning(BayeshrinkWarning):
    """A grouping factor's labels restart within every level of another factor of the formula
    (class c1 in every school): lme4 would treat them as one level each."""


class NonIntegerWarning(BayeshrinkWarning):
    """A binomial or Poisson response holds counts that are not whole numbers (R warns too)."""


class RowsDroppedWarning(BayeshrinkWarning):
    """Rows were left out because ``missing='drop'`` was requested."""


class TimeConvertedWarning(BayeshrinkWarning):
    """A datetime or timedelta covariate of a formula entered as a number of days (the message
    names the origin)."""


def describe_rows(index_labels, limit: int = 5) -> str:
    """Name the first few offending rows for an error message, e.g. ``rows 3, 17 and 2 more``."""
    labels = [repr(x) if isinstance(x, str) else str(x) for x in list(index_labels)[:limit]]
    total = len(index_labels)
    if total == 1:
        return f"row {labels[0]}"
    shown = ", ".join(labels)
    more = total - len(labels)
    return f"rows {shown}" + (f" and {more} more" if more > 0 else "")


def rows_verb(index_labels, singular: str, plural: str, limit: int = 5) -> str:
    """:func:`describe_rows` followed by the verb in the right number: ``row 3 is`` or
    ``rows 3, 17 are``."""
    return f"{describe_rows(index_labels, limit)} {singular if len(index_labels) == 1 else plural}"


#: the package's own directory: warnings skip its frames so that they point at the user's line
_PACKAGE_DIR = str(__import__("pathlib").Path(__file__).resolve().parent)


def warn(message: str, category: type[Warning]) -> None:
    """Issue ``category(message)`` attributed to the first caller outside bayeshrink.

    Counting frames with ``stacklevel`` breaks whenever a call path gains or loses a level (the
    same warning can be reached from ``bs.fit``, an engine or a refit); skipping the package's
    files (Python 3.12's ``skip_file_prefixes``) always lands on the user's own line.
    """
    import warnings

    warnings.warn(message, category, skip_file_prefixes=(_PACKAGE_DIR,))
