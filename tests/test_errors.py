"""Every bad input gets an error that says what is wrong and how to fix it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs
from bayeshrink.errors import ColumnError, DataError, DataTypeError, MethodError


@pytest.fixture
def long_df():
    rng = np.random.default_rng(1)
    return pd.DataFrame({"g": np.repeat(list("abcd"), 4), "y": rng.normal(size=16)})


@pytest.fixture
def summary_df():
    return pd.DataFrame({"g": list("abcd"), "est": [1.0, 2.0, 0.5, 3.0], "se": [1, 1, 2, 1.5]})


def test_missing_column(long_df):
    with pytest.raises(ColumnError, match=r"`y` must name a column.*'score'.*Check the spelling"):
        bs.fit(long_df, y="score", group="g")
    with pytest.raises(KeyError):  # a ColumnError is a KeyError
        bs.fit(long_df, y="y", group="school")


def test_missing_column_message_is_readable(long_df):
    with pytest.raises(ColumnError) as info:
        bs.fit(long_df, y="y", group="school")
    assert str(info.value).startswith("`group` must name a column")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_y(long_df, bad):
    long_df.loc[[3, 7], "y"] = bad
    with pytest.raises(
        DataError,
        match=r"`y` \('y'\) must be present and finite; rows 3, 7 "
        r"hold NaN or infinite values.*missing='drop'",
    ):
        bs.fit(long_df, y="y", group="g")


def test_missing_drop_warns_and_counts(long_df):
    full = bs.fit(long_df.drop(index=[3]), y="y", group="g")
    long_df.loc[3, "y"] = np.nan
    with pytest.warns(bs.RowsDroppedWarning, match=r"left out 1 of 16 rows.*row 3"):
        dropped = bs.fit(long_df, y="y", group="g", missing="drop")
    assert dropped.tau == full.tau and dropped.mu == full.mu


def test_unknown_missing_option(long_df):
    with pytest.raises(DataError, match=r"`missing` must be 'raise' or 'drop'; got 'skip'"):
        bs.fit(long_df, y="y", group="g", missing="skip")


def test_nan_group_labels(long_df):
    long_df["g"] = long_df["g"].astype(object)
    long_df.loc[5, "g"] = None
    with pytest.raises(DataError, match=r"group label `g` must be present.*row 5.*a group label"):
        bs.fit(long_df, y="y", group="g")


def test_non_numeric_y(long_df):
    long_df["y"] = list("abcdefghijklmnop")
    with pytest.raises(
        DataTypeError,
        match=r"`y` column 'y' must be numeric; got dtype .*"
        r"pd.to_numeric",
    ):
        bs.fit(long_df, y="y", group="g")


def test_numbers_as_strings_suggest_conversion(long_df):
    long_df["y"] = long_df["y"].astype(str)
    with pytest.raises(TypeError, match="to_numeric"):
        bs.fit(long_df, y="y", group="g")


def test_empty_data(long_df):
    with pytest.raises(DataError, match="at least one row; got an empty table"):
        bs.fit(long_df.iloc[:0], y="y", group="g")
    with pytest.raises(DataError, match="at least one row; got an empty table"):
        bs.fit_summary(pd.DataFrame({"g": [], "e": [], "s": []}), "e", "s", "g")


def test_single_group(long_df):
    with pytest.raises(DataError, match=r"at least 2 groups.*got 1 group \('a'\)"):
        bs.fit(long_df[long_df["g"] == "a"], y="y", group="g")


def test_every_group_of_size_one():
    df = pd.DataFrame({"g": list("abcde"), "y": [1.0, 2.0, 0.5, 3.0, 1.5]})
    with pytest.raises(
        DataError,
        match=r"got 5 groups of size 1.*not separately identifiable"
        r".*fit_summary",
    ):
        bs.fit(df, y="y", group="g")


def test_group_of_size_one_beside_larger_groups_fits(long_df):
    df = pd.concat([long_df, pd.DataFrame({"g": ["z"], "y": [0.3]})], ignore_index=True)
    fit = bs.fit(df, y="y", group="g")
    t = fit.table()
    assert t.loc["z", "n"] == 1
    assert np.all(np.isfinite(t.to_numpy(dtype=float)))


@pytest.mark.parametrize("shift", [0.0, 1e9])
def test_no_within_group_variation(shift):
    df = pd.DataFrame({"g": list("aabbcc"), "y": shift + np.array([0.1, 0.1, 0.3, 0.3, 0.7, 0.7])})
    with pytest.raises(DataError, match=r"must vary within at least one group.*sigma\^2 is 0"):
        bs.fit(df, y="y", group="g")


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_bad_standard_errors(summary_df, bad):
    summary_df.loc[2, "se"] = bad
    with pytest.raises(
        DataError,
        match=r"`se` must be finite and positive; row 2 of 'se' "
        r"hold.*Fix or remove",
    ):
        bs.fit_summary(summary_df, estimate="est", se="se", group="g")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_bad_estimates(summary_df, bad):
    summary_df.loc[1, "est"] = bad
    with pytest.raises(DataError, match=r"`estimate` must be finite; row 1 of 'est'"):
        bs.fit_summary(summary_df, estimate="est", se="se", group="g")


def test_duplicate_summary_labels(summary_df):
    summary_df.loc[3, "g"] = "a"
    with pytest.raises(DataError, match=r"must be unique in summary data; got duplicates \['a'\]"):
        bs.fit_summary(summary_df, estimate="est", se="se", group="g")


def test_missing_summary_labels(summary_df):
    summary_df.loc[0, "g"] = None
    with pytest.raises(DataError, match=r"`group` labels must be present; row 0"):
        bs.fit_summary(summary_df, estimate="est", se="se", group="g")


def test_single_summary_group(summary_df):
    with pytest.raises(DataError, match="at least 2 groups"):
        bs.fit_summary(summary_df.iloc[:1], estimate="est", se="se", group="g")


def test_unknown_method(long_df, summary_df):
    with pytest.raises(
        MethodError,
        match=r"`method` must be one of 'reml', 'ml' for long data; "
        r"got 'bayes'",
    ):
        bs.fit(long_df, y="y", group="g", method="bayes")
    with pytest.raises(
        MethodError,
        match=r"got 'dl'\. The DerSimonian-Laird estimator needs "
        r"known standard errors",
    ):
        bs.fit(long_df, y="y", group="g", method="dl")
    with pytest.raises(ValueError, match=r"'reml', 'ml', 'dl' for summary data; got 'pm'"):
        bs.fit_summary(summary_df, estimate="est", se="se", group="g", method="pm")


def test_method_is_case_insensitive(long_df):
    assert bs.fit(long_df, y="y", group="g", method="REML").method == "reml"


def test_data_of_wrong_type():
    with pytest.raises(DataTypeError, match=r"`data` must be a pandas DataFrame.*got list"):
        bs.fit([1, 2, 3], y="y", group="g")


def test_unknown_dataset():
    with pytest.raises(DataError, match=r"`name` must be one of \[.*'seed_demo'.*got 'radom'"):
        bs.load_dataset("radom")


def test_from_arrays_needs_ssw():
    with pytest.raises(DataError, match="need `n` and `ssw`"):
        bs.GroupStats.from_arrays(labels=["a", "b"], mean=[1, 2], n=[3, 4])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"formula": "Reaction ~ Days + (Days | Subject)"},
        {"formula": "Reaction ~ 1 + (1 | Subject)"},
        {"formula": "Reaction ~ Days + (1 | Subject) + (1 | Days)"},
        {"y": "Reaction", "group": "Subject"},
    ],
    ids=["slopes", "intercept", "crossed", "one-way"],
)
def test_warnings_point_at_the_callers_line(kwargs):
    # a warning names the line of the user's code that called bs.fit, whichever path the fit
    # takes inside the package
    df = bs.load_dataset("sleepstudy").copy()
    df.loc[3, "Reaction"] = np.nan
    with pytest.warns(bs.RowsDroppedWarning) as record:
        bs.fit(df, missing="drop", **kwargs)
    assert [w.filename for w in record] == [__file__]
