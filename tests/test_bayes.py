"""The PyMC layer: plug-in posteriors are the BLUPs; full Bayes keeps partial pooling.

Sampled quantities are compared in Monte Carlo standard errors (MCSE, from ArviZ), never with
hand-widened tolerances: 4 MCSE for a mean (a false alarm about once in 16,000 comparisons),
and 10% for an SD (the relative MC error of an SD with a few hundred effective draws is ~3%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from conftest import FULL, REFERENCE, draws

import bayeshrink as bs
from bayeshrink.bayes import GROUP_DIM, DivergenceWarning, count_divergences, posterior_table

# The sampling runs here are short (hundreds of draws, 2 chains) to keep the suite fast, and
# their assertions are in Monte Carlo SEs; PyMC's convergence rules (R-hat <= 1.01, ESS >= 100
# per chain), which sample() applies, are meant for 4 x 1000 draws and flag such runs at random.
# The convergence checks themselves are tested in test_hostile.py.
pytestmark = pytest.mark.filterwarnings("ignore::bayeshrink.errors.SamplerConvergenceWarning")

DRAWS = draws(500, 2000)


@pytest.fixture(scope="module")
def demo_fits():
    return bs.demo.demo_fits()


def run(model, seed=1, n=DRAWS, chains=2, **kw):
    return bs.sample(model, draws=n, tune=n, chains=chains, random_seed=seed, **kw)


# ------------------------------------------------------------------ exact plug-in posterior


@pytest.mark.parametrize("model", ["1", "2", "3", "1b"])
def test_plugin_posterior_is_the_conjugate_normal(demo_fits, model):
    fit = demo_fits[model]
    t = fit.table()
    exact = bs.plugin_posterior(fit)
    if fit.boundary:
        assert np.all(exact["mean"] == fit.mu) and np.all(exact["sd"] == 0)
        return
    # posterior of theta_j under the prior N(mu, tau^2) and likelihood N(ybar_j, sigma^2/n_j)
    prec = 1 / fit.tau**2 + t["n"] / fit.sigma**2
    mean = (fit.mu / fit.tau**2 + t["no_pooling"] * t["n"] / fit.sigma**2) / prec
    np.testing.assert_allclose(exact["mean"], mean, rtol=1e-10)
    np.testing.assert_allclose(exact["sd"], 1 / np.sqrt(prec), rtol=1e-10)
    np.testing.assert_allclose(exact["mean"], t["blup"], rtol=1e-10)
    np.testing.assert_allclose(exact["sd"], t["cond_sd"], rtol=1e-10)
    np.testing.assert_allclose(bs.plugin_posterior(fit, mu="flat")["sd"], t["pred_sd"], rtol=1e-10)


# ------------------------------------------------------------------ sampled plug-in posterior


@pytest.mark.parametrize("model", ["2", "3", "1b"])
@pytest.mark.parametrize("mu", ["fixed", "flat"])
def test_sampled_plugin_means_are_the_blups(demo_fits, model, mu):
    fit = demo_fits[model]
    idata = run(bs.plugin_model(fit, mu=mu))
    c = bs.compare(fit, plugin=idata)
    assert np.all(np.abs(c["plugin_gap_mcse"]) < 4), c["plugin_gap_mcse"]
    target = c["cond_sd"] if mu == "fixed" else c["pred_sd"]  # Henderson's equivalence for flat
    np.testing.assert_allclose(c["plugin_sd"], target, rtol=0.10)
    assert c.attrs["divergences"] == {"plugin": 0}


def test_plugin_model_on_a_boundary_fit_pins_theta(demo_fits):
    fit = demo_fits["1"]
    model = bs.plugin_model(fit)
    assert "point mass" in str(model) and "boundary fit" in str(model)
    idata = run(model, n=100)
    theta = idata["posterior"]["theta"].values
    assert np.all(theta == fit.mu) and not np.isnan(theta).any()
    c = bs.compare(fit, plugin=idata)
    assert np.all(c["plugin_gap_mcse"] == 0) and np.all(c["plugin_sd"] == 0)


def test_plugin_model_flat_mu_on_boundary_fit_has_pred_sd(demo_fits):
    fit = demo_fits["1"]
    idata = run(bs.plugin_model(fit, mu="flat"))
    post = posterior_table(idata, "theta")
    # theta_j = mu for all j; mu | y ~ N(mu_hat, mu_se^2) = N(blup, pred_sd^2)
    assert np.all(np.abs(post["mean"] - fit.mu) < 4 * post["mcse"])
    np.testing.assert_allclose(post["sd"], fit.table()["pred_sd"], rtol=0.10)


def test_plugin_model_is_an_ordinary_pymc_model(demo_fits):
    fit = demo_fits["2"]
    model = bs.plugin_model(fit)
    assert isinstance(model, pm.Model)
    assert model.named_vars_to_dims["theta"] == (GROUP_DIM,)
    assert list(model.coords[GROUP_DIM]) == ["g1", "g2", "g3", "g4", "g5"]
    assert "posterior mean = BLUP" in str(model) and "cond_sd" in str(model)
    with model:  # users can extend it
        pm.Deterministic("spread", model["theta"].max() - model["theta"].min())
    assert "spread" in model.named_vars


def test_plugin_model_for_summary_data():
    fit = bs.fit_summary(
        pd.read_csv(REFERENCE / "sim_meta.csv"), estimate="y", se="se", group="study"
    )
    idata = run(bs.plugin_model(fit))
    c = bs.compare(fit, plugin=idata)
    assert np.all(np.abs(c["plugin_gap_mcse"]) < 4)
    np.testing.assert_allclose(c["plugin_sd"], c["cond_sd"], rtol=0.10)


# ------------------------------------------------------------------ full Bayes


def _row_level_model(df, priors):
    """The textbook model, one likelihood term per row: the reference for the sufficient stats."""
    codes, labels = pd.factorize(df["group"], sort=True)
    with pm.Model(coords={GROUP_DIM: list(labels)}) as model:
        mu = pm.Normal("mu", **priors["mu"].params)
        tau = pm.HalfNormal("tau", **priors["tau"].params)
        sigma = pm.HalfNormal("sigma", **priors["sigma"].params)
        z = pm.Normal("z", 0, 1, dims=GROUP_DIM)
        theta = pm.Deterministic("theta", mu + tau * z, dims=GROUP_DIM)
        pm.Normal("y", theta[codes], sigma, observed=df["y"].to_numpy())
    return model


def _agree(a, b, var):
    pa, pb = posterior_table(a, var), posterior_table(b, var)
    err = np.sqrt(pa["mcse"] ** 2 + pb["mcse"] ** 2)
    assert np.all(np.abs(pa["mean"].to_numpy() - pb["mean"].to_numpy()) < 4 * err), (var, pa, pb)


def test_sufficient_statistics_give_the_row_level_posterior(seed_demo):
    df = seed_demo[seed_demo["model"] == "2"]
    fit = bs.fit(df, y="y", group="group")
    priors = bs.default_priors(fit)
    n = draws(1000, 4000)
    rows = run(_row_level_model(df, priors), n=n, chains=2, target_accept=0.95)
    for marginalize in (False, True):
        suff = run(bs.hierarchical_model(fit, marginalize=marginalize), n=n, seed=2)
        for var in ("mu", "tau", "sigma", "theta"):
            _agree(suff, rows, var)


def test_model_cost_is_per_group_not_per_row(seed_demo):
    fit = bs.fit(seed_demo[seed_demo["model"] == "1b"], y="y", group="group")  # 2,500 rows
    model = bs.hierarchical_model(fit)
    sizes = [tuple(v.shape.eval()) for v in model.observed_RVs]
    assert sizes == [(5,)]


def test_eight_schools_plugin_pools_completely_full_bayes_does_not():
    schools = bs.load_dataset("eight_schools")
    fit = bs.fit_summary(schools, estimate="y", se="sigma", group="school")
    assert fit.boundary
    plugin = run(bs.plugin_model(fit), n=100)
    full = run(bs.hierarchical_model(fit), n=draws(1000, 2000))
    c = bs.compare(fit, plugin=plugin, full=full)
    assert np.all(c["plugin_mean"] == fit.mu)  # complete pooling
    # full Bayes: partial pooling. School A (y = 28) stays above school E (y = -1) by many MCSE,
    # and every posterior mean lies strictly between mu's posterior and the school's own y.
    gap = c.loc["A", "full_mean"] - c.loc["E", "full_mean"]
    assert gap > 4 * np.hypot(c.loc["A", "full_mcse"], c.loc["E", "full_mcse"])
    hyper = bs.hyperparameters(fit, full)
    assert hyper.loc["tau", "estimate"] == 0.0 and hyper.loc["tau", "posterior_mean"] > 0
    assert c.attrs["hyperparameters"]["tau"]["posterior_mean"] == hyper.loc["tau", "posterior_mean"]
    pd.concat([c, c])  # attrs hold plain values, so tables can be combined
    assert c.attrs["divergences"]["full"] == 0


def test_eight_schools_uniform_prior_matches_bda3():
    # BDA3 section 5.5 with p(mu, tau) uniform: posterior means by grid integration
    bda3 = {
        "A": 11.40,
        "B": 7.89,
        "C": 6.13,
        "D": 7.64,
        "E": 5.13,
        "F": 6.14,
        "G": 10.67,
        "H": 8.46,
    }
    fit = bs.fit_summary(bs.load_dataset("eight_schools"), estimate="y", se="sigma", group="school")
    model = bs.hierarchical_model(fit, priors={"mu": "flat", "tau": "uniform"})
    assert "HalfFlat" in str(model)
    idata = run(model, n=draws(1500, 4000), chains=4, seed=5)
    post = posterior_table(idata, "theta")
    for school, value in bda3.items():
        assert abs(post.loc[school, "mean"] - value) < 3 * post.loc[school, "mcse"] + 0.2
    tau = posterior_table(idata, "tau").iloc[0]
    assert abs(tau["mean"] - 6.57) < 3 * tau["mcse"] + 0.2  # E(tau | y) in BDA3


def test_centered_parametrization(demo_fits):
    fit = demo_fits["1b"]  # strong data per group: where the centered form is meant to be used
    model = bs.hierarchical_model(fit, parametrization="centered", marginalize=False)
    assert "theta" in [v.name for v in model.free_RVs]
    idata = run(model)
    assert idata["posterior"]["theta"].sizes[GROUP_DIM] == 5
    assert "centered" in str(model)


def test_marginalized_model_samples_only_hyperparameters(demo_fits):
    fit = demo_fits["2"]
    model = bs.hierarchical_model(fit)
    assert {v.name for v in model.free_RVs} == {"mu", "tau", "sigma"}
    assert "drawn exactly after sampling" in str(model)
    # pm.sample directly, then add_theta: the same exact conditional draws bs.sample makes
    idata = pm.sample(draws=200, tune=200, chains=2, random_seed=4, progressbar=False, model=model)
    assert "theta" not in idata["posterior"]
    idata = bs.add_theta(model, idata, random_seed=5)
    theta = idata["posterior"]["theta"]
    assert theta.dims == ("chain", "draw", GROUP_DIM) and theta.sizes[GROUP_DIM] == 5
    assert np.isfinite(theta.values).all()
    with pytest.raises(bs.MethodError, match="needs `marginalize=False`"):
        bs.hierarchical_model(fit, parametrization="centered", marginalize=True)


def test_prior_overrides(demo_fits):
    fit = demo_fits["2"]
    model = bs.hierarchical_model(
        fit,
        priors={
            "tau": pm.HalfCauchy.dist(beta=5.0),
            "sigma": lambda name: pm.Exponential(name, 0.1),
        },
    )
    names = {v.name for v in model.free_RVs}
    assert names == {"mu", "tau", "sigma"}  # theta is marginalized out, drawn after sampling
    assert "HalfCauchy" in model.priors["tau"]
    with pytest.raises(
        bs.MethodError,
        match=r"`priors` keys must be among \['mu', 'sigma', "
        r"'tau'\]; got \['rho'\]",
    ):
        bs.hierarchical_model(fit, priors={"rho": "flat"})
    with pytest.raises(bs.MethodError, match=r"`priors\['tau'\]` must be 'flat'/'uniform'"):
        bs.hierarchical_model(fit, priors={"tau": "wide"})
    schools = bs.fit_summary(bs.load_dataset("eight_schools"), "y", "sigma", "school")
    with pytest.raises(bs.MethodError, match="no sigma"):
        bs.hierarchical_model(schools, priors={"sigma": "uniform"})


def test_default_priors_are_scaled_to_the_data(seed_demo):
    df = seed_demo[seed_demo["model"] == "2"]
    a = bs.default_priors(bs.fit(df, "y", "group"))
    b = bs.default_priors(bs.fit(df.assign(y=df["y"] * 100), "y", "group"))
    assert b["tau"].params["sigma"] == pytest.approx(100 * a["tau"].params["sigma"], rel=1e-12)
    assert b["mu"].params["mu"] == pytest.approx(100 * a["mu"].params["mu"], rel=1e-12)
    assert all(p.reason for p in a.values())


def test_bad_arguments(demo_fits):
    with pytest.raises(bs.MethodError, match=r"`mu` must be 'fixed'.*got 'estimated'"):
        bs.plugin_model(demo_fits["2"], mu="estimated")
    with pytest.raises(TypeError, match="`fit` must be a ShrinkageFit"):
        bs.plugin_model(pd.DataFrame())
    with pytest.raises(bs.MethodError, match="`parametrization` must be one of"):
        bs.hierarchical_model(demo_fits["2"], parametrization="funnel")
    with pytest.raises(bs.MethodError, match="`sampler` must be 'nutpie' or 'pymc'"):
        bs.sample(bs.plugin_model(demo_fits["2"]), sampler="stan")


def test_compare_rejects_a_posterior_from_another_fit(demo_fits):
    idata = run(bs.plugin_model(demo_fits["2"]), n=50)
    schools = bs.fit_summary(bs.load_dataset("eight_schools"), "y", "sigma", "school")
    with pytest.raises(bs.BayeshrinkError, match="must be sampled from a model of this fit"):
        bs.compare(schools, plugin=idata)


def test_pymc_nuts_fallback_and_divergence_report(demo_fits):
    fit = demo_fits["2"]
    idata = run(bs.plugin_model(fit), n=200, sampler="pymc")
    assert idata["sample_stats"].attrs["inference_library"] == "pymc"
    c = bs.compare(fit, plugin=idata)
    assert np.all(np.abs(c["plugin_gap_mcse"]) < 4)
    # a centered model of 5-group data with a huge step size target diverges; it is reported
    model = bs.hierarchical_model(demo_fits["1"], parametrization="centered", marginalize=False)
    with pytest.warns(DivergenceWarning, match=r"\d+ divergent transitions"):
        bad = run(model, n=200, target_accept=0.3)
    assert count_divergences(bad) > 0
    assert bs.compare(demo_fits["1"], full=bad).attrs["divergences"]["full"] > 0


@pytest.mark.slow
def test_bundled_examples_have_no_divergences_at_defaults():
    fits = dict(bs.demo.demo_fits())
    fits["eight_schools"] = bs.fit_summary(bs.load_dataset("eight_schools"), "y", "sigma", "school")
    if FULL:
        fits["radon"] = bs.fit(bs.load_dataset("radon"), "log_radon", "county")
        fits["dyestuff2"] = bs.fit(bs.load_dataset("dyestuff2"), "Yield", "Batch")
        fits["dyestuff"] = bs.fit(bs.load_dataset("dyestuff"), "Yield", "Batch")
    for name, fit in fits.items():
        idata = bs.sample(
            bs.hierarchical_model(fit),
            draws=draws(500, 1000),
            tune=1000,
            chains=draws(2, 4),
            random_seed=11,
        )
        assert count_divergences(idata) == 0, name
