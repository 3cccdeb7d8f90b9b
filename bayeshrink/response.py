"""Is a response one the normal family models well? One check, called by every normal-family fit.

A linear mixed model of a 0/1, boolean or count response fits without complaint, and its
predictions then fall outside [0, 1] or below 0. Such responses get a
:class:`~bayeshrink.errors.FamilyWarning` naming the family that models them; a response of
two text levels (``"yes"``/``"no"``) cannot be fitted as numbers at all and gets an error
pointing to ``family="binomial"``.

The rules (missing values are left out first):

* **binary**: a boolean column, or numbers that are all 0 or 1 with both present;
* **counts**: whole numbers, none negative, at least one of them 0 and the largest at least 2.
  A zero is what marks counts: measurements that happen to be whole numbers (rounded reaction
  times in the hundreds, grades from 1 to 5) have none and do not warn. Whole numbers from 0
  (scores of 0 to 10, say) do warn; silence the warning for them with
  ``warnings.filterwarnings("ignore", category=bs.FamilyWarning)``.
* **two text levels**: a text, categorical or object column with exactly two distinct values.

The engines (polars, DuckDB, ...) compute the few numbers the rules need inside the engine and
call :func:`check_response_profile`; pandas data go through :func:`check_normal_response`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataTypeError, FamilyWarning, warn

__all__ = ["check_normal_response", "check_response_profile", "two_levels_error"]

_SILENCE = 'warnings.filterwarnings("ignore", category=bs.FamilyWarning)'


def check_response_profile(
    name, *, lo: float, hi: float, whole: bool, boolean: bool = False
) -> None:
    """Warn when a numeric response with range ``[lo, hi]`` (all whole numbers when ``whole``)
    looks binary or like counts (the module's rules)."""
    if boolean or (whole and lo == 0 and hi == 1):
        what = "is boolean" if boolean else "holds only 0 and 1"
        warn(
            f"the response {name!r} {what} (a binary response), which the normal family fits "
            "as a linear probability model: its predictions can fall outside [0, 1]. Fit it "
            'with family="binomial" (a logistic mixed model); if the linear model is meant, '
            f"silence this warning with {_SILENCE}.",
            FamilyWarning,
        )
    elif whole and lo == 0 and hi >= 2:
        warn(
            f"the response {name!r} looks like counts (whole numbers from 0 to {hi:g}), which "
            "the normal family fits with one variance for every mean, and whose predictions "
            'can fall below 0. Fit it with family="poisson" (a Poisson mixed model); if the '
            f"linear model is meant, silence this warning with {_SILENCE}.",
            FamilyWarning,
        )


def two_levels_error(name, levels) -> DataTypeError:
    """The error for a response of two text levels (``yes``/``no``)."""
    a, b = sorted(map(str, levels))
    return DataTypeError(
        f"the response {name!r} must be numeric for the normal family; got the two levels "
        f'{a!r} and {b!r} (a binary response). Fit it with family="binomial" (a logistic '
        "mixed model); recoded as 0/1 it would be fitted as a linear probability model, whose "
        "predictions can fall outside [0, 1]."
    )


def _is_text(values: pd.Series) -> bool:
    dtype = values.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
    )


def check_normal_response(values, name) -> None:
    """Check a response about to be fitted by the normal family (the module's rules).

    Raises :class:`~bayeshrink.errors.DataTypeError` for two text levels; warns with
    :class:`~bayeshrink.errors.FamilyWarning` for a binary or count response; leaves every
    other column alone (a column that is neither numeric nor two-level text is the caller's
    to refuse, with its own message).
    """
    values = pd.Series(values) if not isinstance(values, pd.Series) else values
    if _is_text(values):
        present = values.dropna()
        try:
            levels = pd.unique(present)
        except TypeError:  # unhashable values: the caller's type check says what is wrong
            return
        if len(levels) == 2 and all(isinstance(v, str) for v in levels):
            raise two_levels_error(name, levels)
        return
    if pd.api.types.is_bool_dtype(values.dtype):
        check_response_profile(name, lo=0, hi=1, whole=True, boolean=True)
        return
    if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_complex_dtype(
        values.dtype
    ):
        return
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return
    whole = bool(np.all(arr == np.round(arr)))
    check_response_profile(
        name,
        lo=float(arr.min()),
        hi=float(arr.max()),
        whole=whole,
    )
