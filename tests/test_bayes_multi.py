"""The plug-in model of a fit with several grouping factors: its posterior is the fit's
conditional modes and SDs (exactly, and by sampling within Monte Carlo error)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, draws, load_ref

import bayeshrink as bs
from bayeshrink.bayes.multi import (
    compare_multi,
    default_priors_multi,
    hierarchical_model_multi,
    plugin_model_multi,
    plugin_posterior_multi,
)
from bayeshrink.lmm.multi import fit_multi


@pytest.fixture(scope="module")
def penicillin_fit():
    df = pd.read_csv(REFERENCE / "penicillin.csv", dtype={"plate": str, "sample": str})
    return fit_multi(df, "diameter ~ 1 + (1 | plate) + (1 | sample)")


def test_exact_plugin_posterior_is_lme4s_conditional_distribution(penicillin_fit):
    post = plugin_posterior_multi(penicillin_fit)
    ref = load_ref("multi_penicillin_REML")
    assert len(post) == 24 + 6
    for f in ("plate", "sample"):
        levels = ref["ranef"][f]["levels"]
        sub = post.loc[f].xs("Intercept", level="term").loc[levels]
        # ranef(m)[[f]][["(Intercept)"]], and sqrt(attr(ranef(m, condVar = TRUE)[[f]], "postVar"))
        v = np.asarray(ref["ranef"][f]["values"]["(Intercept)"])
        np.testing.assert_allclose(sub["mean"], v, rtol=1e-6, atol=1e-6 * np.abs(v).max())
        s = np.asarray(ref["ranef_sd"][f]["values"]["(Intercept)"])
        np.testing.assert_allclose(sub["sd"], s, rtol=1e-6)


# PyMC's convergence rules (R-hat <= 1.01) are meant for 4 x 1000 draws: on 2 chains they flag
# runs at random (R-hat 1.013 here once); the assertions below are in Monte Carlo SEs, and the
# convergence checks themselves are tested in test_hostile.py (as in test_bayes.py).
@pytest.mark.filterwarnings("ignore::bayeshrink.errors.SamplerConvergenceWarning")
def test_sampled_plugin_posterior_means_are_the_conditional_modes(penicillin_fit):
    model = plugin_model_multi(penicillin_fit)
    assert "plate (24 levels)" in model.description
    idata = bs.sample(model, draws=draws(1000, 2000), tune=draws(1000, 1000), chains=2,
                      random_seed=7)  # fmt: skip
    cmp = compare_multi(penicillin_fit, idata)
    assert cmp["plugin_mcse"].gt(0).all()
    # every posterior mean within 4 Monte Carlo SEs of the exact conditional mode
    assert cmp["plugin_gap_mcse"].abs().max() < 4.0, cmp.sort_values("plugin_gap_mcse").iloc[
        [0, -1]
    ]
    # posterior SDs: each within 4 Monte Carlo SEs of the SD (arviz's mcse, method="sd")
    import arviz as az

    mcse = az.mcse(idata, var_names=["b"], method="sd")["b"]
    for f in penicillin_fit.factors:
        # b over (level, term): level "factor:label", its factor in the coordinate `factor`
        mc = mcse.values[mcse["factor"].values == f, 0]
        sub = cmp.loc[f]
        z = (sub["plugin_sd"].to_numpy() - sub["sd"].to_numpy()) / mc
        assert np.all(np.abs(z) < 4), np.abs(z).max()


def test_hierarchical_model_log_density(penicillin_fit):
    """The model's log density at a point equals the sum of its priors and the rows' normal
    likelihood computed directly (scipy), so the model is the one written in its docstring."""
    from scipy import stats

    fit = penicillin_fit
    model = hierarchical_model_multi(fit)
    pri = default_priors_multi(fit)
    rng = np.random.default_rng(3)
    point = {
        "beta_z": rng.normal(size=1),
        "sigma_log__": np.log(0.6),
        "sd_block:plate_log__": np.log(0.8),
        "sd_block:sample_log__": np.log(1.9),
        "z": rng.normal(size=(30, 1)),  # level = plate:a..plate:x, then sample:A..sample:F
    }
    logp = model.compile_logp(jacobian=False, mode="NUMBA")(point)
    pb = pri["beta"].params
    beta = pb["mu"] + pb["sigma"] * point["beta_z"]
    d = fit.design
    by = {f.name: f for f in d.factors}
    eta = d.X @ beta
    expected = stats.norm.logpdf(point["beta_z"]).sum()
    expected += stats.halfnorm.logpdf(0.6, scale=pri["sigma"].params["sigma"])
    expected += stats.norm.logpdf(point["z"]).sum()
    for name, sd, rows in (("plate", 0.8, slice(0, 24)), ("sample", 1.9, slice(24, 30))):
        scale = pri["sd_re"].params["sigma"][name][0]
        expected += stats.halfnorm.logpdf(sd, scale=scale)
        z = point["z"][rows]
        eta = eta + sd * z[by[name].codes, 0]
    expected += stats.norm.logpdf(d.y, eta, 0.6).sum()
    np.testing.assert_allclose(logp, expected, rtol=1e-10)
    assert "plate (24 levels)" in model.description


def test_hierarchical_model_with_a_correlated_block_builds():
    df = pd.read_csv(REFERENCE / "multi_sim_crossed.csv", dtype={"subj": str, "item": str})
    fit = fit_multi(df, "y ~ x + (1 + x | subj) + (1 | item)")
    model = hierarchical_model_multi(fit)
    assert set(model.start) == {"chol_block:subj"}
    names = {v.name for v in model.free_RVs}
    assert {"beta_z", "sigma", "chol_block:subj", "sd_block:item", "z"} <= names
    # the LKJ factor starts diagonal at the REML SDs of (Intercept, x): packed (0,0), (1,0), (1,1)
    sd = np.sqrt(np.diag(fit.cov_re("subj").to_numpy()))
    np.testing.assert_allclose(model.start["chol_block:subj"][[0, 2]], sd, rtol=1e-12)
    assert model.start["chol_block:subj"][1] == 0.0


def test_bs_functions_dispatch_on_several_factors(penicillin_fit):
    from bayeshrink.errors import MethodError

    exact = bs.plugin_posterior(penicillin_fit)
    pd.testing.assert_frame_equal(exact, plugin_posterior_multi(penicillin_fit))
    flat = bs.plugin_posterior(penicillin_fit, mu="flat")
    # coef() and pred_sd(): the intercept's uncertainty widens every SD
    assert (flat["sd"] > exact["sd"]).all()
    np.testing.assert_allclose(
        flat.loc["plate"]["mean"].to_numpy(),
        penicillin_fit.coef("plate")["Intercept"].to_numpy(),
    )
    assert bs.plugin_model(penicillin_fit).kind == "plugin"
    assert bs.hierarchical_model(penicillin_fit).kind == "hierarchical"
    with pytest.raises(MethodError, match="`mu` must be 'fixed' for a fit with several"):
        bs.plugin_model(penicillin_fit, mu="flat")
    hyp = bs.hyperparameters(penicillin_fit)
    # as.data.frame(VarCorr(m))$sdcor
    ref = load_ref("multi_penicillin_REML")
    np.testing.assert_allclose(hyp["estimate"], [r["sdcor"] for r in ref["varcorr"]], rtol=1e-6)
    assert list(hyp.index) == ["sd_re[plate:Intercept]", "sd_re[sample:Intercept]", "sigma"]
