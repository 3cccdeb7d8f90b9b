"""Several grouping factors, crossed and nested: agreement with lme4 1.1-31 and invariances.

References: tests/reference/multi_*.json, made by tests/reference/make_multi_references.R from
the CSV files next to them (bobyqa at rhoend 2e-12 restarted twice, then Newton-polished on
lme4's own deviance function and rebuilt with lme4's mkMerMod, so lme4's theta is settled to
~1e-9 where bobyqa alone leaves it ~1e-6 off on the larger data sets).

Tolerance: 1e-6 relative. Per-level arrays (ranef, conditional SDs, coef) are compared with
``rtol = 1e-6`` and ``atol = 1e-6 x`` the largest magnitude of that array (an element near zero
has no meaningful relative error). The R call is written above each assertion; ``m`` is the
``lmer`` fit named in the case table.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, load_ref

from bayeshrink.errors import ColumnError, DataError, RepeatedLabelsWarning
from bayeshrink.lmm.multi import MultiDesign, MultiFit, fit_multi, parse_multi
from bayeshrink.lmm.pls import fit_pls

RTOL = 1e-6
LABELS = ["plate", "sample", "batch", "cask", "subj", "item", "school", "class", "primary",
          "second", "s", "d", "dept", "sex"]  # fmt: skip


def close(actual, expected, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=atol
    )


def lme4_name(term: str) -> str:
    """formulae's names to lme4's: Intercept -> (Intercept), sex[M] -> sexM."""
    return "(Intercept)" if term == "Intercept" else re.sub(r"\[(.*)\]$", r"\1", term)


def read(csv: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE / csv, dtype={c: str for c in LABELS})


# (reference, data, formula, method); the reference was made by
#   m <- lmer(<formula>, data = <data>, REML = <method == "reml">)  (then polished, see above)
CASES = [
    ("multi_penicillin_REML", "penicillin.csv",
     "diameter ~ 1 + (1 | plate) + (1 | sample)", "reml"),
    ("multi_penicillin_ML", "penicillin.csv",
     "diameter ~ 1 + (1 | plate) + (1 | sample)", "ml"),
    ("multi_pastes_nested_REML", "pastes.csv", "strength ~ 1 + (1 | batch/cask)", "reml"),
    ("multi_pastes_nested_ML", "pastes.csv", "strength ~ 1 + (1 | batch/cask)", "ml"),
    ("multi_pastes_interaction_REML", "pastes.csv",
     "strength ~ 1 + (1 | batch) + (1 | batch:cask)", "reml"),
    ("multi_sim_crossed_REML", "multi_sim_crossed.csv", "y ~ x + (1 + x | subj) + (1 | item)",
     "reml"),
    ("multi_sim_crossed_ML", "multi_sim_crossed.csv", "y ~ x + (1 + x | subj) + (1 | item)", "ml"),
    ("multi_sim_crossed_item_slopes_REML", "multi_sim_crossed.csv",
     "y ~ x + (1 | subj) + (1 + x | item)", "reml"),
    ("multi_sim_crossed_blocks_REML", "multi_sim_crossed.csv",
     "y ~ x + (1 | subj) + (0 + x | subj) + (1 | item)", "reml"),
    ("multi_sim_nested_REML", "multi_sim_nested.csv", "y ~ x + (1 | school/class)", "reml"),
    ("multi_sim_nested_ML", "multi_sim_nested.csv", "y ~ x + (1 | school/class)", "ml"),
    ("multi_sim_nested_school_slopes_REML", "multi_sim_nested.csv",
     "y ~ x + (1 | school:class) + (1 + x | school)", "reml"),
    ("multi_sim_nested_singular_REML", "multi_sim_nested_singular.csv",
     "y ~ x + (1 | school/class)", "reml"),
    ("multi_scotssec_REML", "multi_scotssec.csv",
     "attain ~ verbal + sex + (1 | primary) + (1 | second)", "reml"),
]  # fmt: skip


def check_against_lme4(fit: MultiFit, ref: dict) -> None:
    # names(ranef(m)): the factors, lme4's names, in lme4's order
    assert fit.factors == ref["factors"]
    fixed = [lme4_name(t) for t in fit.fixed_terms]
    # fixef(m)
    assert fixed == list(ref["fixef"])
    close(fit.fixef, [ref["fixef"][t] for t in fixed])
    # sqrt(diag(vcov(m)))
    close(fit.fixef_se, [ref["fixef_se"][t] for t in fixed])
    # sigma(m)
    close(fit.sigma, ref["sigma"])
    # as.data.frame(VarCorr(m)): every variance, covariance, SD and correlation
    vc = fit.varcorr()
    rows = ref["varcorr"]
    assert list(vc.grp) == [r["grp"] for r in rows]
    assert [lme4_name(v) if isinstance(v, str) else v for v in vc.var1] == [r["var1"] for r in rows]
    assert [lme4_name(v) if isinstance(v, str) else v for v in vc.var2] == [r["var2"] for r in rows]
    close(vc.vcov, [r["vcov"] for r in rows], atol=RTOL * max(abs(r["vcov"]) for r in rows))
    close(vc.sdcor, [r["sdcor"] for r in rows], atol=RTOL)
    # getME(m, "theta")
    close(fit.theta, ref["theta"], atol=RTOL * max(1.0, np.max(np.abs(ref["theta"]))))
    # logLik(m)
    close(fit.loglik, ref["logLik"], rtol=1e-9)
    # isSingular(m)
    assert fit.boundary == ref["singular"]
    for f in fit.factors:
        levels = ref["ranef"][f]["levels"]
        mine = fit.ranef(f).rename(columns=lme4_name).loc[levels]
        sd = fit.ranef_sd(f).rename(columns=lme4_name).loc[levels]
        coef = fit.coef(f).rename(columns=lme4_name).loc[ref["coef"][f]["levels"]]
        # the factor's levels, labelled as lme4 labels them: rownames(ranef(m)[[f]])
        assert sorted(map(str, fit.ranef(f).index)) == sorted(levels)
        for term, values in ref["ranef"][f]["values"].items():
            v = np.asarray(values, float)
            # ranef(m)[[f]][[term]]
            close(mine[term], v, atol=RTOL * np.abs(v).max())
            # sqrt of the diagonal of attr(ranef(m, condVar = TRUE)[[f]], "postVar")
            s = np.asarray(ref["ranef_sd"][f]["values"][term], float)
            close(sd[term], s, atol=RTOL * s.max())
        for term, values in ref["coef"][f]["values"].items():
            v = np.asarray(values, float)
            # coef(m)[[f]][[term]]
            close(coef[term], v, atol=RTOL * np.abs(v).max())


@pytest.mark.parametrize("name,csv,formula,method", CASES, ids=[c[0] for c in CASES])
def test_lme4_parity(name, csv, formula, method):
    fit = fit_multi(read(csv), formula, method)
    check_against_lme4(fit, load_ref(name))


@pytest.fixture(scope="module")
def insteval():
    return read("multi_insteval.csv.gz")


INSTEVAL = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"


def test_insteval_at_lme4_theta(insteval):
    """Everything but the optimiser, on 73,421 rows and three factors (Schur complement
    1,142 x 1,142): evaluated at lme4's theta, every estimate equals lme4's."""
    # m <- lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept), data = InstEval); getME(m, "theta")
    ref = load_ref("multi_insteval_REML")
    design = MultiDesign.from_formula(insteval, INSTEVAL)
    comp = fit_pls(design.y, design.X, list(design.factors), "reml", theta=ref["theta"])
    check_against_lme4(MultiFit(design, comp), ref)


@pytest.mark.slow
def test_insteval_parity(insteval):
    # m <- lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept), data = InstEval, REML = TRUE)
    ref = load_ref("multi_insteval_REML")
    fit = fit_multi(insteval, INSTEVAL)
    check_against_lme4(fit, ref)


def test_near_boundary_never_worse_than_lme4():
    """Eight crossed data sets with tau / sigma 0.01-0.1 for every term: the REML criterion at
    bayeshrink's optimum is never above lme4's (bobyqa, rhoend 2e-12, restarted twice)."""
    data = read("multi_sim_near_boundary.csv")
    ref = load_ref("multi_sim_near_boundary")
    for fit_ref in ref["fits"]:
        d = data[data["sim"] == fit_ref["sim"]]
        fit = fit_multi(d, ref["formula"])
        # REMLcrit(m)
        assert fit.criterion <= fit_ref["REMLcrit"] + 1e-9 * abs(fit_ref["REMLcrit"])


# ---------------------------------------------------------------------------- results API
@pytest.fixture(scope="module")
def pastes_fit():
    return fit_multi(read("pastes.csv"), "strength ~ 1 + (1 | batch/cask)")


def test_factor_must_be_named_when_several(pastes_fit):
    # names(ranef(m)) for lmer(strength ~ 1 + (1 | batch/cask), Pastes)
    assert pastes_fit.factors == ["cask:batch", "batch"]
    with pytest.raises(ColumnError, match=r"`factor` must name one of .*'cask:batch', 'batch'"):
        pastes_fit.ranef()
    with pytest.raises(ColumnError, match=r"`factor` must be one of .*; got 'cask'"):
        pastes_fit.ranef_sd("cask")
    # rownames(ranef(m)$`cask:batch`)[1:2]: cask a of batch A is "a:A"
    assert {"a:A", "b:A"} <= set(pastes_fit.ranef("cask:batch").index)
    tab = pastes_fit.table(factor="batch")
    assert list(tab.columns) == [
        "n", "no_pooling", "se", "shrinkage", "blup", "cond_sd", "pred_sd", "prior_mean",
        "prior_sd",
    ]  # fmt: skip
    close(tab["blup"], pastes_fit.coef("batch")["Intercept"], rtol=1e-14)
    close(tab["cond_sd"], pastes_fit.ranef_sd("batch")["Intercept"], rtol=1e-14)
    with pytest.raises(ColumnError, match="`term` must be one of the random terms of batch"):
        pastes_fit.table("x", factor="batch")


@pytest.mark.parametrize("factor", ["cask:batch", "batch"])
def test_table_shrinkage_identity(pastes_fit, factor):
    """Given the other factor's BLUPs, each level's BLUP is its own fit shrunk toward the prior
    mean: blup = prior_mean + (1 - shrinkage) (no_pooling - prior_mean), exactly."""
    t = pastes_fit.table(factor=factor)
    close(
        t["blup"],
        t["prior_mean"] + (1 - t["shrinkage"]) * (t["no_pooling"] - t["prior_mean"]),
        rtol=1e-10,
    )
    assert ((t["shrinkage"] > 0) & (t["shrinkage"] < 1)).all()
    # counting the intercept's uncertainty widens every interval
    assert (t["pred_sd"] > t["cond_sd"]).all()


def test_own_fit_of_an_outer_factor_integrates_the_inner_one_out(pastes_fit):
    """Pastes is balanced (3 casks x 2 assays per batch): a batch's data, the casks integrated
    out, say mean(batch) ~ N(mu + b, sd_cask^2 / 3 + sigma^2 / 6), which is what no_pooling and
    se must be (closed form)."""
    import bayeshrink as bs

    df = bs.load_dataset("pastes")
    t = pastes_fit.table(factor="batch")
    means = df.groupby("batch")["strength"].mean()
    close(t["no_pooling"], means.loc[t.index], rtol=1e-9)
    var_cask = pastes_fit.cov_re("cask:batch").iloc[0, 0]
    close(t["se"], np.sqrt(var_cask / 3 + pastes_fit.sigma**2 / 6), rtol=1e-9)
    # and the shrinkage is the one-way model's se^2 / (se^2 + tau^2)
    tau2 = pastes_fit.cov_re("batch").iloc[0, 0]
    close(t["shrinkage"], t["se"] ** 2 / (t["se"] ** 2 + tau2), rtol=1e-9)


def test_pred_sd_own_fit_and_shrinkage_are_the_one_factor_paths():
    """One factor: pred_sd, own_fit, own_se and shrinkage equal the per-group estimator's."""
    import bayeshrink as bs
    from bayeshrink.lmm import fit_formula

    sleep = bs.load_dataset("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    one, multi = fit_formula(sleep, f), fit_multi(sleep, f)
    idx = multi.ranef().index
    for name in ("pred_sd", "own_fit", "own_se", "shrinkage"):
        a, b = getattr(multi, name)(), getattr(one, name)().loc[idx]
        close(a, b, rtol=1e-7, atol=1e-9 * np.abs(b.to_numpy()).max())


def test_summary_and_dict(pastes_fit):
    import json

    text = pastes_fit.summary()
    assert "cask:batch" in text and "Residual" in text
    d = json.loads(json.dumps(pastes_fit.to_dict()))
    assert d["factors"] == ["cask:batch", "batch"]
    close(d["ranef"]["batch"]["values"]["Intercept"], pastes_fit.ranef("batch")["Intercept"])
    assert d["varcorr"][-1]["var1"] is None


def test_one_factor_needs_no_name():
    df = read("multi_sim_crossed.csv")
    fit = fit_multi(df, "y ~ x + (1 + x | subj)")
    assert fit.factors == ["subj"]
    assert fit.ranef().shape == (60, 2)
    assert list(fit.varcorr().grp) == ["subj"] * 3 + ["Residual"]


def test_bundled_penicillin_and_pastes():
    import bayeshrink as bs

    # lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin): the bundled copy is the same
    m = bs.fit(bs.load_dataset("penicillin"), formula="diameter ~ 1 + (1 | plate) + (1 | sample)")
    check_against_lme4(m, load_ref("multi_penicillin_REML"))
    nest = bs.fit(bs.load_dataset("pastes"), formula="strength ~ 1 + (1 | batch/cask)")
    check_against_lme4(nest, load_ref("multi_pastes_nested_REML"))


def test_bs_fit_routes_several_factors():
    import bayeshrink as bs

    fit = bs.fit(read("pastes.csv"), formula="strength ~ 1 + (1 | batch) + (1 | batch:cask)")
    assert isinstance(fit, MultiFit)
    # names(ranef(lmer(strength ~ 1 + (1 | batch) + (1 | batch:cask), Pastes)))
    assert fit.factors == ["batch:cask", "batch"]
    assert "A:a" in fit.ranef("batch:cask").index


def test_cli_fits_several_factors(capsys):
    import json

    from bayeshrink.cli import main

    path = REFERENCE / "pastes.csv"
    assert main(["fit", str(path), "--formula", "strength ~ 1 + (1 | batch/cask)", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["factors"] == ["cask:batch", "batch"]
    # AIC(m), BIC(m): lme4's with df = 1 fixed effect + 2 theta + sigma
    ref = load_ref("multi_pastes_nested_REML")
    close(out["aic"], -2 * ref["logLik"] + 2 * 4, rtol=1e-9)
    close(out["bic"], -2 * ref["logLik"] + 4 * np.log(60), rtol=1e-9)
    assert out["n_params"] == 4
    # sigma(lmer(strength ~ 1 + (1 | batch/cask), Pastes))
    close(out["sigma"], load_ref("multi_pastes_nested_REML")["sigma"])


def test_parse_groupings():
    spec = parse_multi("y ~ x + (1 | a/b) + (x | c:d) + (0 + x | a)")
    assert [b.factor for b in spec.blocks] == ["a", "b:a", "c:d", "a"]
    assert spec.factor_names == ["a", "b:a", "c:d"]
    # lme4's implicit intercept: (x | c:d) is (1 + x | c:d); (0 + x | a) has none
    assert [len(b.exprs) for b in spec.blocks] == [1, 1, 2, 1]


# ---------------------------------------------------------------------------- the one-factor path
@pytest.mark.parametrize(
    "formula",
    [
        "Reaction ~ Days + (Days | Subject)",
        "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
    ],
)
def test_one_factor_agrees_with_the_one_factor_estimator(formula):
    """Two of our own code paths: the per-group cross-product estimator and this one."""
    import bayeshrink as bs
    from bayeshrink.lmm import fit_formula

    sleep = bs.load_dataset("sleepstudy")
    one = fit_formula(sleep, formula)
    multi = fit_multi(sleep, formula)
    close(multi.fixef, one.fixef, rtol=1e-8)
    close(multi.fixef_se, one.fixef_se, rtol=1e-8)
    close(multi.sigma, one.sigma, rtol=1e-8)
    close(multi.loglik, one.loglik, rtol=1e-10)
    cov = one.cov_re()
    close(multi.cov_re(), cov, rtol=1e-8, atol=1e-8 * np.abs(cov.to_numpy()).max())
    r1 = one.ranef().loc[multi.ranef().index]
    close(multi.ranef(), r1, rtol=1e-8, atol=1e-8 * np.abs(r1.to_numpy()).max())
    close(multi.ranef_sd(), one.ranef_sd().loc[multi.ranef().index], rtol=1e-8)


# ---------------------------------------------------------------------------- invariances
hyp = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def crossed():
    return read("multi_sim_crossed.csv")


@settings(max_examples=4, deadline=None)
@given(shift=st.floats(-1e6, 1e6).filter(lambda v: abs(v) > 1e-3))
def test_shifting_a_covariate_leaves_the_criterion(shift):
    """x + c spans the same model as x when x has an intercept and a random slope."""
    df = read("multi_sim_crossed.csv")
    base = fit_multi(df, "y ~ x + (1 + x | subj) + (1 | item)")
    moved = fit_multi(df.assign(x=df.x + shift), "y ~ x + (1 + x | subj) + (1 | item)")
    # lme4: REMLcrit(m) is unchanged by x -> x + c
    close(moved.criterion, base.criterion, rtol=1e-9)
    close(moved.fixef["x"], base.fixef["x"], rtol=1e-6)
    close(moved.sigma, base.sigma, rtol=1e-7)
    # (not isSingular(m): lme4 judges it on theta at x = 0, which a shift moves toward |corr| = 1)
    sx = base.cov_re("subj").loc["x", "x"]
    close(moved.cov_re("subj").loc["x", "x"], sx, rtol=1e-6)


@settings(max_examples=4, deadline=None)
@given(k=st.floats(1e-4, 1e4) | st.floats(-1e4, -1e-4))
def test_scaling_a_fixed_column_moves_reml_loglik_by_log_k(k):
    """X -> X diag(1, k): log|X'V^-1X| grows by 2 log|k|, so the REML log-likelihood drops by
    exactly log|k|; the fixed effect scales by 1/k and nothing else moves."""
    df = read("multi_scotssec.csv")
    f = "attain ~ verbal + sex + (1 | primary) + (1 | second)"
    base = fit_multi(df, f)
    scaled = fit_multi(df.assign(verbal=df.verbal * k), f)
    close(scaled.loglik - base.loglik, -math.log(abs(k)), rtol=1e-8, atol=1e-8)
    close(scaled.fixef["verbal"] * k, base.fixef["verbal"], rtol=1e-7)
    close(scaled.theta, base.theta, rtol=1e-6)


# ---------------------------------------------------------------------------- bad input
def nested_frame(seed: int = 3, n_school: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_school):
        u = rng.normal(0, 1)
        for c in range(int(rng.integers(2, 5))):
            v = rng.normal(0, 0.5)
            for _ in range(6):
                rows.append((f"S{s:02d}", f"c{c + 1}", 10 + u + v + rng.normal()))
    return pd.DataFrame(rows, columns=["school", "class", "y"])


def test_one_level_factor():
    df = nested_frame().assign(lab="L1")
    with pytest.raises(DataError, match=r"grouping factor 'lab' must have at least 2 levels"):
        fit_multi(df, "y ~ 1 + (1 | school) + (1 | lab)")


def test_labels_repeating_across_parents_warn():
    df = nested_frame()
    with pytest.warns(RepeatedLabelsWarning, match=r"write \(1 \| school/class\)"):
        fit_multi(df, "y ~ 1 + (1 | school) + (1 | class)")


def test_nested_formula_does_not_warn():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_multi(nested_frame(), "y ~ 1 + (1 | school/class)")
    assert fit.factors == ["class:school", "school"]
    assert "c1:S00" in fit.ranef("class:school").index


def test_crossed_design_does_not_warn():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_multi(read("penicillin.csv"), "diameter ~ 1 + (1 | plate) + (1 | sample)")
        fit_multi(read("multi_sim_crossed.csv"), "y ~ x + (1 | subj) + (1 | item)")


def test_more_random_effects_than_observations():
    df = nested_frame()
    df["row"] = [f"r{i}" for i in range(len(df))]
    with pytest.raises(DataError, match=r"more random effects for 'row' .* than observations"):
        fit_multi(df, "y ~ 1 + (1 | school) + (1 | row)")


def test_rank_deficient_fixed_effects():
    df = nested_frame().assign(x=lambda d: np.arange(len(d)) % 7)
    df["x2"] = 2.0 * df["x"] + 1.0
    with pytest.raises(DataError, match=r"fixed effects are rank deficient: 'x2'"):
        fit_multi(df, "y ~ x + x2 + (1 | school/class)")


def test_unknown_function_in_a_formula_with_several_factors():
    from bayeshrink.errors import FormulaError

    with pytest.raises(FormulaError, match=r"may call only known functions; got shady\(\)"):
        fit_multi(nested_frame(), "y ~ shady(y) + (1 | school/class)")


def test_nan_in_a_factor():
    df = nested_frame()
    df.loc[[4, 9], "class"] = np.nan
    with pytest.raises(DataError, match=r"grouping factors included\) must be present"):
        fit_multi(df, "y ~ 1 + (1 | school/class)")
