"""predict, confint, AIC/BIC and anova for models with several grouping factors: lme4 1.1-31.

References: tests/reference/api_multi_*.json, made by tests/reference/make_multi_api_references.R
(bobyqa, rhoend 2e-12, two restarts). In R::

    pen <- read.csv("penicillin.csv", colClasses = c(plate = "character", sample = "character"))
    crossed <- read.csv("multi_sim_crossed.csv", colClasses = c(subj = "character",
                                                                 item = "character"))
    m  <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen, REML = REML, control = ctrl)
    m0 <- lmer(diameter ~ 1 + (1 | plate), pen, REML = REML, control = ctrl)
    g  <- lmer(y ~ x + (1 + x | subj) + (1 | item), crossed, REML = REML, control = ctrl)
    g0 <- lmer(y ~ x + (1 + x | subj), crossed, REML = REML, control = ctrl)

``newdata_*`` in each JSON holds the new rows: an observed level of every factor, a new level
of one factor (each in turn) and of both.

Tolerances: 1e-6 relative. For the crossed simulation's predictions an absolute floor of
1e-6 x SD(y) is added: some fitted values are ~1e-4 (relative comparison is meaningless
there), and lme4's bobyqa stops with theta 2e-7 (relative) from the optimum that
make_multi_references.R's Newton polish finds (bayeshrink's theta agrees with the polished one
to 1e-9), which moves predictions by up to 2e-7 absolute. Profile intervals 1e-4 relative
(lme4 interpolates its profile with splines; the measured gap is <= 4e-5, on the lower bound of
Penicillin's sample SD, which has 6 levels; <= 1.2e-5 on the crossed simulation, on the lower
bound of the correlation).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, load_ref

import bayeshrink as bs
from bayeshrink.errors import DataError
from bayeshrink.inference import RefitWarning, model_of
from bayeshrink.inference.profile import Profile

RTOL = 1e-6
PROFILE_RTOL = 1e-4

PEN = "diameter ~ 1 + (1 | plate) + (1 | sample)"
PEN0 = "diameter ~ 1 + (1 | plate)"
CR = "y ~ x + (1 + x | subj) + (1 | item)"
CR0 = "y ~ x + (1 + x | subj)"
CASES = [(name, tag) for name in ("penicillin", "sim_crossed") for tag in ("REML", "ML")]


def close(actual, expected, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=atol
    )


def penicillin() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "penicillin.csv", dtype={"plate": str, "sample": str})


def crossed() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "multi_sim_crossed.csv", dtype={"subj": str, "item": str})


_FITS: dict = {}


def fitted(name: str, tag: str, small: bool = False):
    key = (name, tag, small)
    if key not in _FITS:
        data = penicillin() if name == "penicillin" else crossed()
        formula = {"penicillin": (PEN, PEN0), "sim_crossed": (CR, CR0)}[name][small]
        _FITS[key] = (bs.fit(data, formula=formula, method=tag.lower()), data)
    return _FITS[key]


def newdata(ref: dict) -> pd.DataFrame:
    return pd.DataFrame({k.removeprefix("newdata_"): v for k, v in ref.items() if "newdata_" in k})


def atol_for(name: str, data: pd.DataFrame) -> float:
    return 0.0 if name == "penicillin" else 1e-6 * float(data["y"].std())


@pytest.mark.parametrize(("name", "tag"), CASES)
def test_predict_matches_lme4(name, tag):
    ref = load_ref(f"api_multi_{name}_{tag}")
    m, data = fitted(name, tag)
    assert type(m).__name__ == "MultiFit"
    atol = atol_for(name, data)
    # predict(m)
    close(m.predict(data), ref["fitted"], atol=atol)
    # predict(m, newdata, allow.new.levels = TRUE): a new level of a factor contributes 0
    nd = newdata(ref)
    close(m.predict(nd, allow_new_levels=True), ref["predict_new"], atol=atol)
    # predict(m, newdata, re.form = NA)
    close(m.predict(nd, random=False), ref["predict_population"], atol=atol)


@pytest.mark.parametrize(("name", "tag"), CASES)
def test_information_matches_lme4(name, tag):
    ref = load_ref(f"api_multi_{name}_{tag}")
    m, _ = fitted(name, tag)
    # attr(logLik(m), "df"), logLik(m), AIC(m), BIC(m)
    assert m.n_params == ref["df"]
    close(m.loglik, ref["logLik"])
    close(m.aic, ref["AIC"])
    close(m.bic, ref["BIC"])


@pytest.mark.parametrize(("name", "tag"), CASES)
def test_anova_matches_lme4(name, tag):
    ref = load_ref(f"api_multi_{name}_{tag}")["anova"]
    m, _ = fitted(name, tag)
    m0, _ = fitted(name, tag, small=True)
    if tag == "REML":
        with pytest.warns(RefitWarning, match="refitting 2 REML fit"):
            a = bs.anova(m, m0)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            a = bs.anova(m, m0)
    # anova(m0, m): rows sorted by npar, the smaller model first
    assert list(a["npar"]) == ref["npar"]
    close(a["aic"], ref["AIC"])
    close(a["bic"], ref["BIC"])
    close(a["loglik"], ref["logLik"])
    close(a["deviance"], ref["deviance"])
    close(a["chisq"].iloc[1], ref["Chisq"][1])
    assert a["df"].iloc[1] == ref["Df"][1]
    close(a["p_value"].iloc[1], ref["p"][1])


@pytest.mark.parametrize(("name", "tag"), CASES)
def test_wald_intervals_match_lme4(name, tag):
    ref = load_ref(f"api_multi_{name}_{tag}")["confint_wald"]
    m, _ = fitted(name, tag)
    # confint(m, method = "Wald", oldNames = FALSE): same names, same order; NA for the
    # variance parameters
    ci = m.confint()
    assert list(ci.index) == list(ref)
    for parm, (lo, hi) in ref.items():
        if lo is None:
            assert np.isnan(ci.loc[parm, "lo"]) and np.isnan(ci.loc[parm, "hi"])
        else:
            close(ci.loc[parm, ["lo", "hi"]], [lo, hi])


@pytest.mark.parametrize("tag", ["REML", "ML"])
def test_profile_intervals_match_lme4(tag):
    ref = load_ref(f"api_multi_penicillin_{tag}")["confint_profile"]
    m, _ = fitted("penicillin", tag)
    # confint(m, method = "profile", oldNames = FALSE) (a REML fit is profiled by ML)
    ci = m.confint(method="profile")
    assert list(ci.index) == list(ref)
    for parm, (lo, hi) in ref.items():
        close(ci.loc[parm, ["lo", "hi"]], [lo, hi], rtol=PROFILE_RTOL)
        assert ci.loc[parm, "lo"] < ci.loc[parm, "estimate"] < ci.loc[parm, "hi"]


def test_profile_intervals_crossed_with_a_correlation():
    # confint(g, method = "profile", oldNames = FALSE) for the REML fit of
    # y ~ x + (1 + x | subj) + (1 | item): the correlation of the 2 x 2 block and the crossed
    # factor's SD (the other five parameters agree to 2e-6 too; left out to keep the suite quick)
    ref = load_ref("api_multi_sim_crossed_REML")["confint_profile"]
    m, _ = fitted("sim_crossed", "REML")
    parms = ["cor_x.(Intercept)|subj", "sd_(Intercept)|item"]
    ci = m.confint(parms, method="profile")
    for parm in parms:
        close(ci.loc[parm, ["lo", "hi"]], ref[parm], rtol=PROFILE_RTOL)


def test_predict_nested_factors_from_lme4_modes():
    # Pastes, lmer(strength ~ 1 + (1 | batch/cask)) (multi_pastes_nested_REML.json of
    # make_multi_references.R): predict(m) = fixef + ranef(m)$batch + ranef(m)$`cask:batch`;
    # a new cask in an observed batch keeps the batch's effect (allow.new.levels = TRUE)
    ref = load_ref("multi_pastes_nested_REML")
    d = pd.read_csv(REFERENCE / "pastes.csv", dtype={"batch": str, "cask": str, "sample": str})
    m = bs.fit(d, formula="strength ~ 1 + (1 | batch/cask)")
    modes = {
        f: dict(zip(v["levels"], v["values"]["(Intercept)"], strict=True))
        for f, v in ref["ranef"].items()
    }
    rb, rc = modes["batch"], modes["cask:batch"]
    mu = ref["fixef"]["(Intercept)"]
    close(m.predict(d), mu + d["batch"].map(rb) + (d["cask"] + ":" + d["batch"]).map(rc))
    nd = pd.DataFrame({"batch": ["A", "A", "Z"], "cask": ["a", "q", "a"]})
    close(m.predict(nd, allow_new_levels=True), [mu + rb["A"] + rc["a:A"], mu + rb["A"], mu])
    with pytest.raises(DataError, match=r"factor 'cask:batch'.*'q:A'"):
        m.predict(nd.iloc[:2])


def test_profile_minimum_is_the_ml_deviance():
    # the profile's deviance at the ML estimates is the ML fit's -2 logLik (two code paths)
    m, _ = fitted("sim_crossed", "ML")
    prof = Profile(m)
    close(prof.base, -2.0 * m.loglik, rtol=1e-10)


def _dense_pieces(m, data, fe_terms):
    """Z, G, X from the data frame by hand (independent of the estimator's layout)."""
    p = model_of(m)
    cols, G_blocks, keys = [], [], []
    for f in p.terms:
        (comp,) = f.components
        for lev in f.labels:
            ind = (data[comp] == lev).to_numpy(float)
            for t in f.terms:
                cols.append(ind * (1.0 if t == "Intercept" else data[t].to_numpy(float)))
                keys.append((f.name, lev, t))
            G_blocks.append(f.cov_re)
    Z = np.column_stack(cols)
    q = Z.shape[1]
    G = np.zeros((q, q))
    o = 0
    for B in G_blocks:
        G[o : o + len(B), o : o + len(B)] = B
        o += len(B)
    X = np.column_stack(
        [np.ones(len(data)) if t == "Intercept" else data[t].to_numpy(float) for t in fe_terms]
    )
    return p, Z, G, X, keys


@pytest.mark.parametrize("name", ["penicillin", "sim_crossed"])
def test_prediction_sd_is_the_joint_posterior(name):
    """The predictive SD of a row with observed levels of both factors uses the joint posterior
    of (b_1, b_2), cross-factor covariance included; checked against a dense computation from
    the marginal covariance V = Z G Z' + sigma^2 I (an independent code path, 1e-10)."""
    m, data = fitted(name, "REML")
    ref = load_ref(f"api_multi_{name}_REML")
    nd = newdata(ref)
    fe = m.fixed_terms
    p, Z, G, X, keys = _dense_pieces(m, data, fe)
    s2 = m.sigma**2
    V = Z @ G @ Z.T + s2 * np.eye(len(data))
    Vi = np.linalg.inv(V)
    GZ = G @ Z.T
    post = G - GZ @ Vi @ GZ.T  # Var(b | y, beta)
    Hi = np.linalg.inv(X.T @ Vi @ X)  # Var(beta_hat)
    C = GZ @ Vi @ X  # b_hat = G Z' V^-1 (y - X beta_hat)
    index = {k: i for i, k in enumerate(keys)}
    for fixef_unc in (False, True):
        got = m.predict(
            nd, allow_new_levels=True, interval="prediction", fixef_uncertainty=fixef_unc
        )
        for r in range(len(nd)):
            row = nd.iloc[r]
            x = np.array([1.0 if t == "Intercept" else float(row[t]) for t in fe])
            z = np.zeros(len(keys))
            prior = 0.0
            for f in p.terms:
                (comp,) = f.components
                zt = np.array([1.0 if t == "Intercept" else float(row[t]) for t in f.terms])
                if row[comp] in set(f.labels):
                    for t, v in zip(f.terms, zt, strict=True):
                        z[index[(f.name, row[comp], t)]] = v
                else:
                    prior += zt @ f.cov_re @ zt
            var = z @ post @ z + prior + s2
            if fixef_unc:
                # b_hat = b_tilde - C (beta_hat - beta), b_tilde the BLUP at the true beta;
                # beta_hat - beta is uncorrelated with b_tilde - b, Var(beta_hat) = H^-1
                k = x - C.T @ z
                var += k @ Hi @ k
            close(got["sd"].iloc[r] ** 2, var, rtol=1e-10)
    # the two-observed-levels row really has a cross-factor term (the test can fail)
    r0 = 0
    row = nd.iloc[r0]
    zz = np.zeros(len(keys))
    for f in p.terms:
        (comp,) = f.components
        for t in f.terms:
            zz[index[(f.name, row[comp], t)]] = 1.0 if t == "Intercept" else float(row[t])
    n1 = sum(len(f.labels) * len(f.terms) for f in p.terms[:1])
    cross = 2 * zz[:n1] @ post[:n1, n1:] @ zz[n1:]
    assert abs(cross) > 1e-6 * (zz @ post @ zz)


def test_diagonal_posterior_blocks_match_the_estimator():
    # the joint posterior's diagonal blocks are the estimator's conditional covariances
    # (lme4's condVar): two code paths, 1e-10
    from bayeshrink.inference.backends import MultiSystem, rel_factor

    m, _ = fitted("sim_crossed", "REML")
    p = model_of(m)
    sysm = MultiSystem(m)
    st = sysm.solve([rel_factor(f.cov_re, p.sigma) for f in p.terms])
    A = st["A"].toarray()
    L = st["L"].toarray()
    post = m.sigma**2 * L @ np.linalg.inv(A.T @ A + np.eye(sysm.q)) @ L.T
    o = 0
    for f in p.terms:
        q, n = len(f.terms), len(f.labels)
        blocks = np.array(
            [post[o + i * q : o + (i + 1) * q, o + i * q : o + (i + 1) * q] for i in range(n)]
        )
        close(blocks, f.cond_cov, rtol=1e-10)
        close((L @ st["u"])[o : o + n * q].reshape(n, q), f.b, rtol=1e-9)
        o += n * q


# ------------------------------------------------------------------------------- bad input


def test_unknown_level_names_the_factor():
    m, _ = fitted("penicillin", "REML")
    nd = pd.DataFrame({"plate": ["a", "b"], "sample": ["A", "Z"]})
    with pytest.raises(
        DataError, match=r"grouping factor 'sample'.*1 new level\(s\) of 'sample': 'Z'"
    ):
        m.predict(nd)
    nd = pd.DataFrame({"plate": ["zz"], "sample": ["A"]})
    with pytest.raises(DataError, match=r"grouping factor 'plate'.*'zz'.*allow_new_levels=True"):
        m.predict(nd)


def test_anova_refuses_non_nested_crossed_models():
    data = crossed()
    a = bs.fit(data, formula="y ~ x + (1 | subj) + (1 | item)", method="ml")
    b = bs.fit(data, formula="y ~ x + (0 + x | subj) + (1 | item)", method="ml")
    # anova(a, b) in lme4 would test them (it does not check nesting); bayeshrink refuses
    with pytest.raises(
        DataError, match=r"must be nested.*\(Intercept \| subj\) is not part of a block"
    ):
        bs.anova(a, b)
    # a factor of the smaller model missing from the larger one
    c = bs.fit(data, formula="y ~ x + (1 | subj) + (1 | item)", method="ml")
    d = bs.fit(data, formula="y ~ x + (1 + x | subj)", method="ml")
    with pytest.raises(DataError, match=r"is not nested in .*\(Intercept \| item\) is not part"):
        bs.anova(c, d)


def test_anova_refuses_different_data():
    data = crossed()
    a = bs.fit(data, formula="y ~ x + (1 | subj) + (1 | item)", method="ml")
    b = bs.fit(data.iloc[:-5], formula="y ~ x + (1 + x | subj) + (1 | item)", method="ml")
    with pytest.raises(DataError, match=r"same rows and response.*observations"):
        bs.anova(a, b)


def test_missing_newdata_is_refused():
    # the bootstrap with several factors: tests/test_afterfit.py
    m, _ = fitted("penicillin", "REML")
    with pytest.raises(DataError, match="`newdata` must be given"):
        m.predict()
