"""The formula layer (bayeshrink.formula): offsets, categorical coding, time covariates and the
coding of grouping factors, against lme4 where lme4 has the answer.

References: tests/reference/make_formula_references.R (lme4 1.1-31 on R's ChickWeight, written
to tests/reference/chickweight.csv and formula_chickweight.json).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs
from bayeshrink.formula import model_frame, parse_formula

REF = Path(__file__).parent / "reference"
FIXED = "weight ~ Time + {} + (1 | Chick)"


def close(actual, expected, rtol=1e-6, atol=0.0):
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=atol
    )


@pytest.fixture(scope="module")
def chick() -> pd.DataFrame:
    return pd.read_csv(REF / "chickweight.csv", dtype={"Chick": str, "Diet": str})


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((REF / "formula_chickweight.json").read_text())


def _check_lme4(m, r, rtol=1e-6):
    # fixef(m), sqrt(diag(vcov(m))), logLik(m), as.data.frame(VarCorr(m))$sdcor, ranef(m)$Chick
    close(m.fixef.to_numpy(), r["fixef"], rtol=rtol, atol=1e-6)
    close(m.fixef_se.to_numpy(), r["se"], rtol=1e-5)
    close(m.loglik, r["loglik"], rtol=1e-9)
    close(m.varcorr()["sdcor"].to_numpy(), [r["sd_chick"], r["sigma"]], rtol=1e-5)
    b = m.ranef().iloc[:, 0]
    close(b.loc[r["ranef_levels"]].to_numpy(), r["ranef"], rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- categorical coding
@pytest.mark.parametrize(
    ("how", "term"),
    [
        ("categorical", "Diet"),
        ("treatment", "C(Diet, Treatment('3'))"),
        ("levels", "C(Diet, levels=['3', '1', '2', '4'])"),
        ("levels_treatment", "C(Diet, Treatment('3'), levels=['1', '2', '3', '4'])"),
    ],
)
def test_reference_level_other_than_the_alphabetical_first_matches_lme4(chick, ref, how, term):
    # cw3 <- transform(cw, Diet = relevel(factor(Diet), ref = "3"))
    # lmer(weight ~ Time + Diet + (1 | Chick), cw3)
    data = chick
    if how == "categorical":
        data = chick.assign(Diet=pd.Categorical(chick["Diet"], categories=["3", "1", "2", "4"]))
    m = bs.fit(data, formula=FIXED.format(term))
    assert [n.rsplit("[", 1)[-1] for n in m.fixed_terms[2:]] == ["1]", "2]", "4]"]
    _check_lme4(m, ref["ref3"])
    # fitted(m)[1:5], and the same coding on new rows after a pickle round trip
    close(m.predict(data.head(5)), ref["ref3"]["fitted_head"], rtol=1e-6)
    again = pickle.loads(pickle.dumps(m))
    close(again.predict(data.iloc[::37]), m.predict(data.iloc[::37]), rtol=0, atol=0)


def test_sum_contrasts_match_lme4_contr_sum(chick, ref):
    # lmer(weight ~ Time + Diet + (1 | Chick), cw, contrasts = list(Diet = "contr.sum"))
    m = bs.fit(chick, formula=FIXED.format("C(Diet, Sum)"))
    assert m.fixed_terms == [
        "Intercept",
        "Time",
        "C(Diet, Sum)[1]",
        "C(Diet, Sum)[2]",
        "C(Diet, Sum)[3]",
    ]
    _check_lme4(m, ref["sum"])
    # the same coding with the levels listed (the omitted level is the last listed)
    listed = bs.fit(chick, formula=FIXED.format("C(Diet, Sum, levels=['1', '2', '3', '4'])"))
    assert listed.fixed_terms[2] == "C(Diet, Sum, levels=['1', '2', '3', '4'])[1]"
    close(listed.fixef.to_numpy(), m.fixef.to_numpy(), rtol=1e-10)


def test_categorical_order_is_kept_and_unused_categories_are_dropped(chick):
    base = bs.fit(chick, formula=FIXED.format("C(Diet, Treatment('2'))"))
    cat = pd.Categorical(chick["Diet"], categories=["9", "2", "4", "1", "3"])  # '9' is unused
    m = bs.fit(chick.assign(Diet=cat), formula=FIXED.format("Diet"))
    assert m.fixed_terms[2:] == ["Diet[4]", "Diet[1]", "Diet[3]"]
    close(m.loglik, base.loglik, rtol=1e-10)
    same = [n.replace("C(Diet, Treatment('2'))", "Diet") for n in base.fixed_terms]
    close(m.fixef[same].to_numpy(), base.fixef.to_numpy(), rtol=1e-9)
    # new rows are coded with the fit's levels, and a Categorical there is read by value
    new = chick.head(30).assign(Diet=pd.Categorical(chick["Diet"].head(30)))
    close(m.predict(new), base.predict(chick.head(30)), rtol=1e-10)
    # an ordered Categorical keeps its order too (formulae's own rule)
    ordered = pd.Categorical(chick["Diet"], categories=["2", "4", "1", "3"], ordered=True)
    again = bs.fit(chick.assign(Diet=ordered), formula=FIXED.format("Diet"))
    close(again.fixef.to_numpy(), m.fixef.to_numpy(), rtol=1e-12)
    # new rows holding some of the levels, as an ordered Categorical, through C() too
    c_fit = bs.fit(chick.assign(Diet=ordered), formula=FIXED.format("C(Diet)"))
    part = chick.head(30).assign(Diet=pd.Categorical(chick["Diet"].head(30), ordered=True))
    close(c_fit.predict(part), base.predict(chick.head(30)), rtol=1e-10)


def test_reordering_the_reference_level_changes_only_the_parametrisation(chick):
    fits = [bs.fit(chick, formula=FIXED.format(f"C(Diet, Treatment('{r}'))")) for r in "1234"]
    for m in fits[1:]:
        close(m.loglik, fits[0].loglik, rtol=1e-10)
        close(m.sigma, fits[0].sigma, rtol=1e-7)
    # the diet means Intercept + Diet[k] are the same whichever diet is the reference
    a, b = fits[0].fixef, fits[2].fixef
    close(a["Intercept"], b["Intercept"] + b["C(Diet, Treatment('3'))[1]"], rtol=1e-8)


def test_a_contrast_level_that_is_not_in_the_data_is_a_clear_error(chick):
    with pytest.raises(
        bs.FormulaError, match=r"could not be evaluated.*level named in C\(\.\.\.\)"
    ):
        bs.fit(chick, formula=FIXED.format("C(Diet, Treatment('7'))"))
    with pytest.raises(bs.FormulaError, match=r"levels=\[\.\.\.\] as a list of literal labels"):
        bs.fit(chick, formula=FIXED.format("C(Diet, levels=[a + b])"))
    with pytest.raises(
        bs.FormulaError,
        match=r"levels of 'Diet' in the data, each once; the data "
        r"hold '4', which the list leaves out",
    ):
        bs.fit(chick, formula=FIXED.format("C(Diet, levels=['3', '1', '2'])"))
    with pytest.raises(bs.FormulaError, match=r"'5' is not in the data"):
        bs.fit(chick, formula=FIXED.format("C(Diet, levels=['3', '1', '2', '4', '5'])"))


# ----------------------------------------------------------------------------- offsets
@pytest.mark.parametrize("key", ["offset", "offset2"])
def test_offset_enters_with_coefficient_one_as_in_lme4(chick, ref, key):
    # lmer(weight ~ Diet + offset(log(Time + 1)) + (1 | Chick), cw)
    # lmer(weight ~ Diet + offset(Time) + offset(log(Time + 1)) + (1 | Chick), cw)
    off = "offset(log(Time + 1))" if key == "offset" else "offset(Time) + offset(log(Time + 1))"
    m = bs.fit(chick, formula=f"weight ~ Diet + {off} + (1 | Chick)")
    assert m.fixed_terms == ["Intercept", "Diet[2]", "Diet[3]", "Diet[4]"]
    _check_lme4(m, ref[key])
    # fitted(m)[1:5]: the prediction for the fit's own rows includes the offset
    close(m.predict(chick.head(5)), ref[key]["fitted_head"], rtol=1e-6)


def _offset_data(seed=3):
    d = bs.load_dataset("pastes")
    rng = np.random.default_rng(seed)
    return d.assign(z=rng.normal(3.0, 2.0, len(d)), w=rng.uniform(0, 1, len(d)))


@pytest.mark.parametrize(
    ("rhs", "random"),
    [
        ("w", "(w | batch)"),  # one grouping factor, correlated slopes (lmm.design)
        ("1", "(1 | batch/cask)"),  # nested factors (lmm.multi)
    ],
)
def test_offset_fits_as_the_response_minus_the_offset(rhs, random):
    d = _offset_data()
    m = bs.fit(d, formula=f"strength ~ {rhs} + offset(z) + {random}")
    d2 = d.assign(adj=d["strength"] - d["z"])
    ref = bs.fit(d2, formula=f"adj ~ {rhs} + {random}")
    assert type(m) is type(ref)
    close(m.fixef, ref.fixef, rtol=1e-9)
    # the offset has Jacobian 1: the likelihoods are the same number
    close(m.loglik, ref.loglik, rtol=1e-12)
    close(m.varcorr()["vcov"], ref.varcorr()["vcov"], rtol=1e-9)
    for f in getattr(ref, "factors", [None]):
        args = () if f is None else (f,)
        close(m.ranef(*args), ref.ranef(*args), rtol=1e-9, atol=1e-12)
    # predict takes the offset from the new rows
    new = d.head(7).assign(z=np.linspace(-5, 5, 7))
    close(m.predict(new), ref.predict(new) + new["z"].to_numpy(), rtol=1e-12)
    again = pickle.loads(pickle.dumps(m))
    close(again.predict(new), m.predict(new), rtol=0, atol=0)


def test_offset_with_an_intercept_only_model_is_not_the_one_way_model_of_y():
    d = _offset_data(5)
    m = bs.fit(d, formula="strength ~ 1 + offset(z) + (1 | batch)")
    oneway = bs.fit(d.assign(adj=d["strength"] - d["z"]), y="adj", group="batch")
    # the general and the exact one-parameter solvers agree to their tolerances
    close(m.loglik, oneway.loglik, rtol=1e-8)
    close(m.fixef["Intercept"], oneway.mu, rtol=1e-7)


def test_predict_without_the_offset_column_names_it():
    d = _offset_data()
    m = bs.fit(d, formula="strength ~ w + offset(log(z + 10)) + (1 | batch)")
    with pytest.raises(bs.ColumnError, match=r"missing 'z'.*The offset needs 'z': a prediction"):
        m.predict(d.drop(columns="z").head(3))
    multi = bs.fit(d, formula="strength ~ w + offset(z) + (1 | batch/cask)")
    with pytest.raises(bs.ColumnError, match=r"missing 'z'.*The offset needs 'z'"):
        multi.predict(d.drop(columns="z").head(3))


def test_offset_vector_is_on_the_model_frame():
    d = _offset_data()
    frame = model_frame(d, "strength ~ w + offset(z) + offset(np.log(w + 1)) + (1 | batch)")
    close(frame.offset, d["z"] + np.log(d["w"] + 1), rtol=1e-15)
    close(frame.working_response, d["strength"] - frame.offset, rtol=1e-15)
    assert frame.fixed_names == ("Intercept", "w")
    assert model_frame(d, "strength ~ w + (1 | batch)").offset is None


def test_offset_in_a_random_block_or_an_interaction_is_refused():
    with pytest.raises(bs.FormulaError, match=r"offset\(\) among the fixed terms only"):
        parse_formula("y ~ x + (offset(z) | g)")
    with pytest.raises(bs.FormulaError, match=r"offset\(\) as a term of its own"):
        parse_formula("y ~ x + offset(z):x + (1 | g)")


def test_one_parser_for_one_and_several_factors():
    spec = parse_formula("y ~ x + offset(z) + (1 | a/b) + (0 + x | c:d)")
    assert spec.factor_names == ["a", "b:a", "c:d"]
    assert spec.grouping_columns == ["a", "b", "c", "d"]
    assert spec.several_factors and not spec.intercept_only
    assert sorted(spec.variables) == ["a", "b", "c", "d", "x", "y", "z"]
    one = parse_formula("y ~ 1 + (1 | g)")
    assert one.intercept_only and not one.several_factors and one.group == "g"
    assert not parse_formula("y ~ 1 + offset(z) + (1 | g)").intercept_only
    assert pickle.loads(pickle.dumps(spec)).formula == spec.formula
    # the old several-factor names still work
    from bayeshrink.lmm import parse_formula as old
    from bayeshrink.lmm.multi import parse_multi

    assert old is parse_multi is parse_formula


# ----------------------------------------------------------------------------- time covariates
def _dated(chick: pd.DataFrame) -> pd.DataFrame:
    start = pd.Timestamp("2021-03-01")
    return chick.assign(
        day=start + pd.to_timedelta(chick["Time"], unit="D"),
        age=pd.to_timedelta(chick["Time"] * 24 + 12, unit="h"),
    )


def test_datetime_covariate_enters_as_days_since_the_first_date(chick):
    d = _dated(chick)
    with pytest.warns(
        bs.TimeConvertedWarning,
        match=r"'day' enters the formula as days since "
        r"2021-03-01 00:00:00 \(its earliest value\)",
    ):
        m = bs.fit(d, formula="weight ~ day + (day | Chick)")
    ref = bs.fit(chick, formula="weight ~ Time + (Time | Chick)")
    close(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-9)
    close(m.loglik, ref.loglik, rtol=1e-12)
    # new rows are converted with the fit's origin, not their own first date
    new = d.tail(4)
    close(m.predict(new), ref.predict(chick.tail(4)), rtol=1e-10)
    with pytest.raises(bs.DataError, match=r"`newdata` column 'day' must hold datetime values"):
        m.predict(new.assign(day=new["Time"]))


def test_timedelta_covariate_enters_as_days(chick):
    d = _dated(chick)
    with pytest.warns(bs.TimeConvertedWarning, match=r"'age' enters the formula as days \("):
        m = bs.fit(d, formula="weight ~ age + (1 | Chick) + (1 | Diet)")
    ref = bs.fit(
        chick.assign(age=chick["Time"] + 0.5), formula="weight ~ age + (1 | Chick) + (1 | Diet)"
    )
    close(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-9)
    close(m.loglik, ref.loglik, rtol=1e-12)


def test_datetime_response_is_refused_naming_the_column(chick):
    d = _dated(chick)
    with pytest.raises(bs.DataTypeError, match=r"response 'day' must be numeric; got a datetime"):
        bs.fit(d, formula="day ~ weight + (1 | Chick)")


# ----------------------------------------------------------------------------- grouping factors
def test_float_group_labels_are_a_factor_in_formulas_as_in_the_one_way_path(chick):
    d = chick.assign(g=chick["Chick"].astype(int).astype(float))
    ints = chick.assign(g=chick["Chick"].astype(int))
    m = bs.fit(d, formula="weight ~ Time + (Time | g)")
    ref = bs.fit(ints, formula="weight ~ Time + (Time | g)")
    close(m.loglik, ref.loglik, rtol=1e-12)
    close(m.ranef().to_numpy(), ref.ranef().to_numpy(), rtol=1e-9)
    # labels as the one-way path keeps them (floats, printed 1.0 by both)
    oneway = bs.fit(d, y="weight", group="g")
    assert m.groups.equals(oneway.groups)
    assert str(m.groups[0]) == str(oneway.groups[0]) == "1.0"
    # several factors: crossed with Diet
    multi = bs.fit(d, formula="weight ~ Time + (1 | g) + (1 | Diet)")
    assert len(multi.ranef("g")) == 50
    assert np.isfinite(multi.predict(d.head(3))).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda d: bs.fit(d, y="weight", group="g"),
        lambda d: bs.fit(d, formula="weight ~ Time + (1 | g)"),
        lambda d: bs.fit(d, formula="weight ~ Time + (1 | g) + (1 | Diet)"),
        lambda d: bs.fit(d, formula="weight ~ Time + (1 | Diet/g)"),
    ],
    ids=["one-way", "formula", "crossed", "nested"],
)
def test_labels_of_different_types_that_print_alike_are_refused(chick, call):
    g = chick["Chick"].astype(int).astype(object)
    g[chick["Chick"] == "21"] = "21"  # chick 21 as text, the others as integers
    g[(chick["Chick"] == "21") & (chick["Time"] > 10)] = 21  # ... and as an integer
    d = chick.assign(g=g)
    with pytest.raises(
        bs.DataTypeError,
        match=r"grouping column 'g' must hold one label per group.*21 \(int\) and '21' \(str\)"
        r".*astype\(str\)",
    ):
        call(d)


@pytest.mark.parametrize("random", ["(1 | batch)", "(1 | batch/cask)"])
def test_anova_compares_a_model_with_an_offset_to_one_without(random):
    # the offset is the same response with a coefficient fixed at 1: the likelihoods compare
    d = _offset_data()
    free = bs.fit(d, formula=f"strength ~ z + {random}", method="ml")
    fixed = bs.fit(d, formula=f"strength ~ 1 + offset(z) + {random}", method="ml")
    table = bs.anova(fixed, free)
    assert table["loglik"].iloc[1] >= table["loglik"].iloc[0] - 1e-9
    close(table["loglik"].to_numpy(), [fixed.loglik, free.loglik], rtol=1e-12)
    other = d.assign(strength=d["strength"] + d["w"])
    with pytest.raises(bs.DataError, match="different response values"):
        bs.anova(fixed, bs.fit(other, formula=f"strength ~ z + {random}", method="ml"))


def test_numeric_levels_are_ordered_as_r_orders_them():
    # lme4 (R 4.x), on these data: rownames(ranef(lmer(y ~ 1 + (1|g) + (1|h)))$g) is
    # "1" "2" "3" "10" "11", $h is "5" "20" "100", and (1|g:h) gives "1:5" "1:20" "1:100"
    # "2:5" ... "11:100": each column in its own (numeric) order, the first varying slowest
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat([1, 2, 10, 11, 3], 6), "h": np.tile([5, 20, 100], 10)})
    df["y"] = rng.normal(size=len(df)) + 0.1 * df["g"]
    crossed = bs.fit(df, formula="y ~ 1 + (1 | g) + (1 | h)")
    assert list(crossed.ranef(factor="g").index) == ["1", "2", "3", "10", "11"]
    assert list(crossed.ranef(factor="h").index) == ["5", "20", "100"]
    inter = bs.fit(df, formula="y ~ 1 + (1 | g:h)")
    expected = [f"{g}:{h}" for g in (1, 2, 3, 10, 11) for h in (5, 20, 100)]
    assert list(inter.ranef().index) == expected
    assert type(inter.ranef().index) is pd.Index
    # a Categorical grouping column keeps its categories' order, as plain labels
    cat = df.assign(g=pd.Categorical(df["g"], categories=[11, 10, 3, 2, 1]))
    assert list(bs.fit(cat, y="y", group="g").ranef().index) == [11, 10, 3, 2, 1]


@pytest.mark.parametrize(
    "formula, family",
    [
        ("Reaction ~ Days + f + (1 | Subject)", "gaussian"),
        ("Reaction ~ Days + C(f) + (Days | Subject)", "gaussian"),
        ("Reaction ~ Days + (1 | Subject) + (1 | Days) + f", "gaussian"),
        ("lapse ~ Days + f + (1 | Subject)", "binomial"),
    ],
)
def test_a_one_level_covariate_is_refused_not_dropped(formula, family):
    # R: "contrasts can be applied only to factors with 2 or more levels"; it must not vanish
    # from the fixed effects without a word
    sleep = bs.load_dataset("sleepstudy")
    df = sleep.assign(f="a", lapse=(sleep["Reaction"] > 300).astype(int))
    kw = {} if family == "gaussian" else {"family": family}
    with pytest.raises(bs.FormulaError, match=r"term '(C\()?f\)?' .* at least 2 levels.*'a'"):
        bs.fit(df, formula=formula, **kw)
