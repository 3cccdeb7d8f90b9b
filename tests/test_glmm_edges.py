"""GLMM edge cases: levels, missing rows, degenerate weights and messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE

import bayeshrink as bs
from bayeshrink.errors import DataError

CBPP_F = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    df = pd.read_csv(REFERENCE / "cbpp.csv")
    df["period"] = df["period"].astype(str)
    return df


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return bs.fit(cbpp, formula=CBPP_F, family="binomial")


def test_predict_matches_a_level_given_as_text(cbpp_fit):
    # herd is an integer in the fit; "1" is herd 1, as in the LMM path, not a new level
    as_int = cbpp_fit.predict(pd.DataFrame({"herd": [1, 2], "period": ["1", "2"]}))
    as_text = cbpp_fit.predict(
        pd.DataFrame({"herd": ["1", "2"], "period": ["1", "2"]}), allow_new_levels=True
    )
    np.testing.assert_array_equal(as_text, as_int)
    pop = cbpp_fit.predict(pd.DataFrame({"herd": [1, 2], "period": ["1", "2"]}), random=False)
    assert not np.allclose(as_text, pop)


def test_predict_missing_group_raises(cbpp_fit):
    nd = pd.DataFrame({"herd": [1.0, np.nan], "period": ["1", "1"]})
    for allow in (False, True):
        with pytest.raises(DataError, match=r"row 1 holds a missing value"):
            cbpp_fit.predict(nd, allow_new_levels=allow)
    # population predictions need no group
    assert np.isfinite(cbpp_fit.predict(nd, random=False)).all()
