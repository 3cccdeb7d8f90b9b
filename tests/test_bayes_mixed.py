"""PyMC models of a MixedFit: the multivariate plug-in posterior means are coef(); LKJ full Bayes.

Sampled quantities are compared in Monte Carlo standard errors (MCSE, from ArviZ): 4 MCSE for
a mean (36 comparisons per model: a false alarm about once in 450 runs), and 10% for an SD
(the relative Monte Carlo error of an SD from ~1,000 effective draws is ~2-3%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, draws

import bayeshrink as bs
from bayeshrink.posterior import TERM_DIM

# The sampling runs here are short (hundreds of draws, 2 chains) to keep the suite fast, and
# their assertions are in Monte Carlo SEs; PyMC's convergence rules (R-hat <= 1.01, ESS >= 100
# per chain), which sample() applies, are meant for 4 x 1000 draws and flag such runs at random.
# The convergence checks themselves are tested in test_hostile.py.
pytestmark = pytest.mark.filterwarnings("ignore::bayeshrink.errors.SamplerConvergenceWarning")

DRAWS = draws(500, 2000)
SLOPES = "Reaction ~ Days + (Days | Subject)"


def _sd_mcse(idata, index) -> pd.Series:
    """Monte Carlo SE of the posterior SD of coef (arviz-stats' method="sd"), aligned with a
    compare() index (level as text, term)."""
    import arviz as az

    m = az.mcse(idata, var_names=["coef"], method="sd")["coef"].to_series()
    m.index = m.index.set_levels([str(g) for g in m.index.levels[0]], level=0)
    return m.reindex(index).to_numpy()


@pytest.fixture(scope="module")
def sleep_fit():
    return bs.fit(bs.load_dataset("sleepstudy"), formula=SLOPES)


def run(model, seed=1, n=DRAWS, chains=2, **kw):
    return bs.sample(model, draws=n, tune=n, chains=chains, random_seed=seed, **kw)


@pytest.mark.parametrize("mu", ["fixed", "flat"])
def test_plugin_posterior_means_are_coef(sleep_fit, mu):
    fit = sleep_fit
    model = bs.plugin_model(fit, mu=mu)
    assert "b_j ~ N(0, cov_re_hat)" in str(model)
    idata = run(model)
    c = bs.compare(fit, plugin=idata)
    assert len(c) == 2 * fit.n_groups
    assert c.attrs["divergences"] == {"plugin": 0}
    # posterior mean of each group's (intercept, slope) = lme4's coef(), within 4 MCSE
    assert np.all(np.abs(c["plugin_gap_mcse"]) < 4), c.loc[np.abs(c["plugin_gap_mcse"]) >= 4]
    # posterior SD = the conditional SD (lme4's condVar), or with a flat prior on the fixed
    # effects the SD that also counts their uncertainty (fit.pred_sd()) ...
    exact = bs.plugin_posterior(fit, mu=mu)
    exact.index = exact.index.set_levels([str(g) for g in exact.index.levels[0]], level=0)
    # ... within 4 Monte Carlo SEs of the sampled SD (arviz's mcse for the SD)
    z_sd = (c["plugin_sd"] - exact.loc[c.index, "sd"]) / _sd_mcse(idata, c.index)
    assert np.all(np.abs(z_sd) < 4), z_sd.abs().max()
    if mu == "fixed":
        np.testing.assert_allclose(exact.loc[c.index, "sd"], c["cond_sd"], rtol=1e-12)
        # the triplot overlays the sampled marginal posterior of the term
        import matplotlib.pyplot as plt

        pc = bs.plot_triplot(fit, idata, groups=list(fit.groups[:3]), term="Days")
        for ax in pc.viz["plot"].values.ravel():
            assert "sampled" in {p.get_gid() for p in ax.patches}
        plt.close("all")


def test_plugin_on_a_singular_covariance_keeps_groups_on_a_line():
    # lmm_sim_corr_one: |corr| = 1 estimated; the prior N(0, cov_re_hat) lives on a line, so
    # every posterior draw of every group's (b0, b1) lies on it: b1 = (L21 / L11) b0 exactly.
    fit = bs.fit(pd.read_csv(REFERENCE / "lmm_sim_corr_one.csv"), formula="y ~ x + (x | g)")
    assert fit.boundary
    model = bs.plugin_model(fit)
    assert "singular" in str(model)
    idata = run(model, n=200)
    b = idata["posterior"]["b"]
    b0 = b.sel({TERM_DIM: "Intercept"}).values
    b1 = b.sel({TERM_DIM: "x"}).values
    L = fit.components.Lambda
    np.testing.assert_allclose(b1, L[1, 0] / L[0, 0] * b0, rtol=1e-9, atol=1e-12)
    c = bs.compare(fit, plugin=idata)
    assert np.all(np.abs(c["plugin_gap_mcse"]) < 4)


def test_full_bayes_has_an_lkj_prior_and_stays_near_the_blups(sleep_fit):
    fit = sleep_fit
    model = bs.hierarchical_model(fit)
    text = str(model)
    assert "LKJ(eta=2)" in text and "marginalized out" in text
    assert any(
        "LKJCholeskyCov" in type(v.owner.op).__name__ or "lkj" in v.name.lower()
        for v in model.free_RVs
    )
    priors = bs.default_priors(fit)
    assert set(priors) == {"beta", "sd_re", "sigma", "eta"}
    idata = run(model, n=draws(300, 1000))
    post = idata["posterior"]
    assert set(post["coef"].dims) == {"chain", "draw", "level", TERM_DIM}
    corr = post["corr_re"].sel({TERM_DIM: "Intercept", f"{TERM_DIM}_bis": "Days"}).values
    assert np.all(np.abs(corr) < 1)
    c = bs.compare(fit, full=idata)
    # 18 subjects with 10 days each pin the hyperparameters down: averaging over them moves the
    # group coefficients by a small fraction of their posterior SD (here < 0.1 in every group)
    assert np.all(np.abs(c["full_mean"] - c["blup"]) < 0.5 * c["full_sd"])
    assert np.all(c["full_lo"] < c["blup"]) and np.all(c["blup"] < c["full_hi"])


def test_marginalized_and_sampled_group_effects_agree(sleep_fit):
    # The same posterior two ways: b_j integrated out of the likelihood and drawn exactly after
    # sampling, or sampled by NUTS. Posterior means and SDs of coef agree within 4 combined
    # Monte Carlo SEs; the marginalized sampler needs far fewer leapfrog steps per draw.
    fit = sleep_fit
    n = draws(500, 1500)
    marg = bs.hierarchical_model(fit)
    assert marg.marginalized and "marginalized out" in str(marg)
    a = run(marg, n=n, seed=3)
    b = run(bs.hierarchical_model(fit, marginalize=False), n=n, seed=4)
    ca, cb = bs.compare(fit, full=a), bs.compare(fit, full=b)
    z = (ca["full_mean"] - cb["full_mean"]) / np.sqrt(ca["full_mcse"] ** 2 + cb["full_mcse"] ** 2)
    assert np.all(np.abs(z) < 4), z.abs().max()
    se = np.sqrt(_sd_mcse(a, ca.index) ** 2 + _sd_mcse(b, cb.index) ** 2)
    z_sd = (ca["full_sd"] - cb["full_sd"]) / se
    assert np.all(np.abs(z_sd) < 4), z_sd.abs().max()
    import arviz as az

    for var in ("sd_re", "sigma"):
        mean_a, mean_b = (x["posterior"][var].mean(("chain", "draw")).values for x in (a, b))
        mcse_a, mcse_b = (az.mcse(x, var_names=[var])[var].values for x in (a, b))
        gap = (mean_a - mean_b) / np.sqrt(mcse_a**2 + mcse_b**2)
        assert np.all(np.abs(gap) < 4), (var, gap)
    steps_a = float(a["sample_stats"]["n_steps"].mean())
    steps_b = float(b["sample_stats"]["n_steps"].mean())
    assert steps_a < steps_b


def test_model_options_are_checked(sleep_fit):
    with pytest.raises(bs.MethodError, match=r"'fixed' .* or 'flat'"):
        bs.plugin_model(sleep_fit, mu="free")
    with pytest.raises(bs.MethodError, match="sampled non-centered"):
        bs.hierarchical_model(sleep_fit, parametrization="centered")
    three = bs.fit(
        pd.read_csv(REFERENCE / "lmm_sim_three_terms.csv"), formula="y ~ x + x2 + (1 + x + x2 | g)"
    )
    with pytest.raises(bs.MethodError, match="at most two random terms"):
        bs.hierarchical_model(three, marginalize=True)
    assert not bs.hierarchical_model(three).marginalized
    with pytest.raises(bs.MethodError, match="keys must be among \\['beta', 'sigma'\\]"):
        bs.hierarchical_model(sleep_fit, priors={"tau": "flat"})
    with pytest.raises(bs.MethodError, match="`eta` must be positive"):
        bs.hierarchical_model(sleep_fit, eta=0)
