"""The PyMC models of a GLMM: the plug-in model's MAP is lme4's conditional mode and its sampled
means are the exact (quadrature) plug-in means; the ArviZ groups are per row, with counts."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, find_map, load_ref
from scipy import special, stats

import bayeshrink as bs
from bayeshrink.errors import MethodError

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
RATES = "count ~ z + offset(log(exposure)) + (1 | site)"

# PyMC's convergence rules (R-hat <= 1.01, ESS >= 100 per chain) are meant for 4 x 1000 draws:
# on 2 x 500 they flag runs at random; the assertions here are in Monte Carlo SEs (as in
# test_bayes_multi.py).
pytestmark = pytest.mark.filterwarnings("ignore::bayeshrink.errors.SamplerConvergenceWarning")


@pytest.fixture(scope="module")
def cbpp():
    df = pd.read_csv(REFERENCE / "cbpp.csv", dtype={"herd": str, "period": str})
    return df, bs.fit(df, formula=CBPP, family="binomial")


@pytest.fixture(scope="module")
def rates():
    df = pd.read_csv(REFERENCE / "glmm_rates.csv")
    return df, bs.fit(df, formula=RATES, family="poisson")


@pytest.fixture(scope="module")
def plugin_draws(cbpp):
    _, fit = cbpp
    return bs.sample(bs.plugin_model(fit), draws=500, tune=500, chains=2, random_seed=11)


@pytest.fixture(scope="module")
def full_draws(cbpp):
    _, fit = cbpp
    return bs.sample(bs.hierarchical_model(fit), draws=500, tune=500, chains=2, random_seed=12)


def test_plugin_model_is_named_as_every_model(cbpp):
    _, fit = cbpp
    model = bs.plugin_model(fit)
    assert sorted(v.name for v in model.deterministics) == ["b", "coef"]
    assert [v.name for v in model.free_RVs] == ["z"]
    assert model.named_vars_to_dims["b"] == ("level", "term")
    assert list(model.coords["level"]) == [str(g) for g in fit.groups]
    assert list(model.coords["term"]) == ["Intercept"]
    assert "b_j ~ N(0, Sigma_hat)" in str(model) and "Binomial" in str(model)


def test_plugin_map_is_the_conditional_mode(cbpp, rates):
    ref = load_ref("cbpp_laplace")
    for _, fit in (cbpp, rates):
        mp = find_map(bs.plugin_model(fit))
        np.testing.assert_allclose(mp["b"], fit.ranef().to_numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(mp["coef"], fit.coef().to_numpy(), rtol=0, atol=1e-5)
    # ranef(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial))
    mp = find_map(bs.plugin_model(cbpp[1]))
    lme4 = np.asarray(ref["ranef"]["herd"]["values"]["(Intercept)"])
    levels = ref["ranef"]["herd"]["levels"]
    order = [list(cbpp[1].groups).index(v) for v in levels]
    np.testing.assert_allclose(mp["b"][order, 0], lme4, rtol=0, atol=1e-4)


def test_plugin_sampled_means_are_the_exact_plugin_means(cbpp, plugin_draws):
    _, fit = cbpp
    exact = bs.plugin_posterior(fit)
    coef = plugin_draws["posterior"]["coef"].sel(term="Intercept")
    mean = coef.mean(("chain", "draw")).to_numpy()
    mcse = az.mcse(plugin_draws, var_names=["coef"])["coef"].sel(term="Intercept").to_numpy()
    gap = (mean - exact["mean"].to_numpy()) / mcse
    assert np.all(np.abs(gap) < 4.5), gap  # 15 groups, each N(0, 1) in Monte Carlo SEs
    # the mean is not the mode: for cbpp the exact gap reaches 0.04 (~ 1/10 posterior SD)
    assert (exact["mode"] - exact["mean"]).abs().max() > 0.02


def _scipy_loglik(fit, df, beta, b):
    """Row by row with scipy, from beta (draw, p) and b (draw, J)."""
    X = fit._design.X
    codes = pd.Index([str(g) for g in fit.groups]).get_indexer(df["herd"])
    eta = beta @ X.T + b[:, codes]
    return stats.binom.logpmf(df["incidence"].to_numpy(), df["size"].to_numpy(), special.expit(eta))


def test_pointwise_loglik_is_binom_logpmf_row_by_row(cbpp, plugin_draws, full_draws):
    df, fit = cbpp
    for idata in (plugin_draws, full_draws):
        post = idata["posterior"]
        ll = idata["log_likelihood"]["incidence"]
        assert ll.dims == ("chain", "draw", "obs") and ll.shape[-1] == len(df)
        for c in range(2):
            b = post["b"].isel(chain=c).sel(term="Intercept").to_numpy()
            if "beta" in post:
                beta = post["beta"].isel(chain=c).to_numpy()
            else:
                beta = np.broadcast_to(fit.fixef.to_numpy(), (b.shape[0], len(fit.fixef)))
            want = _scipy_loglik(fit, df, beta, b)
            np.testing.assert_allclose(ll.isel(chain=c).to_numpy(), want, rtol=0, atol=1e-10)
    obs = plugin_draws["observed_data"]["incidence"].to_numpy()
    np.testing.assert_array_equal(obs, df["incidence"].to_numpy())
    const = plugin_draws["constant_data"]
    np.testing.assert_array_equal(const["trials"].to_numpy(), df["size"].to_numpy())
    np.testing.assert_array_equal(const["herd"].to_numpy(), df["herd"].to_numpy())


def test_pointwise_loglik_is_poisson_logpmf_with_the_offset(rates):
    df, fit = rates
    model = bs.plugin_model(fit)
    rng = np.random.default_rng(3)
    b = fit.ranef().to_numpy()[None, None] + 0.3 * rng.standard_normal((2, 50, fit.n_groups, 1))
    import xarray as xr

    ds = xr.Dataset(
        {"b": (("chain", "draw", "level", "term"), b)},
        coords={"chain": [0, 1], "draw": np.arange(50), "level": list(model.coords["level"])},
    )
    from bayeshrink.bayes.workflow import pointwise

    name, ll, pp = pointwise(model, ds, np.random.default_rng(4))
    assert name == "count" and pp.shape == ll.shape == (2, 50, len(df))
    codes = pd.Index(list(model.coords["level"])).get_indexer(df["site"].astype(str))
    beta = fit.fixef.to_numpy()
    eta = np.log(df["exposure"].to_numpy()) + beta[0] + beta[1] * df["z"].to_numpy()
    mu = np.exp(eta + b[..., 0][:, :, codes])
    want = stats.poisson.logpmf(df["count"].to_numpy(), mu)
    np.testing.assert_allclose(ll.to_numpy(), want, rtol=0, atol=1e-10)
    assert np.all(pp.to_numpy() == np.round(pp.to_numpy())) and pp.to_numpy().min() >= 0


def test_loo_is_finite_with_pareto_k(plugin_draws, full_draws):
    for idata in (plugin_draws, full_draws):
        with warnings.catch_warnings():
            # 56 rows of 15 herds: some Pareto k above 0.7 is ArviZ's warning, not an error
            warnings.simplefilter("ignore", UserWarning)
            loo = az.loo(idata, pointwise=True)
        assert np.isfinite(loo.elpd) and np.isfinite(loo.se)
        assert loo.pareto_k.shape == (56,) and np.isfinite(loo.pareto_k).all()


def test_posterior_predictive_counts_match_the_model(cbpp, full_draws):
    df, fit = cbpp
    idata = bs.sample_posterior_predictive(full_draws, random_seed=5)
    pp = idata["posterior_predictive"]["incidence"]
    obs = idata["observed_data"]["incidence"]
    assert pp.dims == ("chain", "draw", "obs") and pp.shape[-1] == obs.shape[0]
    np.testing.assert_array_equal(pp["obs"].to_numpy(), obs["obs"].to_numpy())
    y = pp.to_numpy().reshape(-1, len(df))
    assert np.all(y == np.round(y)) and y.min() >= 0 and np.all(y <= df["size"].to_numpy())
    # given each draw's p, y_rep ~ Binomial(m, p), independently across draws: the residuals
    # r = y_rep - m p have mean 0 and variance m p q whatever the chains' autocorrelation
    post = idata["posterior"]
    beta = post["beta"].to_numpy().reshape(-1, len(fit.fixef))
    b = post["b"].sel(term="Intercept").to_numpy().reshape(-1, fit.n_groups)
    codes = pd.Index([str(g) for g in fit.groups]).get_indexer(df["herd"])
    p = special.expit(beta @ fit._design.X.T + b[:, codes])
    m = df["size"].to_numpy()[None, :]
    r = y - m * p
    v = m * p * (1 - p)
    z_mean = r.sum(axis=0) / np.sqrt(v.sum(axis=0))  # per row, N(0, 1)
    assert np.all(np.abs(z_mean) < 4.5), z_mean
    # variance: E[r^2 - v] = 0 with Var(r^2) = mu4 - v^2, mu4 = m p q (1 + 3 (m - 2) p q)
    mu4 = v * (1 + 3 * (m - 2) * p * (1 - p))
    z_var = (r**2 - v).sum() / np.sqrt((mu4 - v**2).sum())
    assert abs(z_var) < 4.5, z_var
    # and the predictive mean of each row is the model's E[m p] within its Monte Carlo SE
    np.testing.assert_allclose(y.mean(axis=0), (m * p).mean(axis=0), atol=0, rtol=0.25)


def test_hierarchical_model_states_its_priors(cbpp):
    _, fit = cbpp
    model = bs.hierarchical_model(fit)
    text = str(model)
    assert "HalfNormal(sigma=2.5)" in text and "beta ~ Normal(" in text
    assert {v.name for v in model.free_RVs} == {"beta_z", "sd_block0", "z"}
    pri = bs.default_priors(fit)
    assert set(pri) == {"beta", "sd_re", "eta"}
    # the intercept is centred at the logit of the overall incidence, sum(incidence)/sum(size)
    df = cbpp[0]
    np.testing.assert_allclose(
        pri["beta"].params["mu"][0], special.logit(df["incidence"].sum() / df["size"].sum())
    )


def test_compare_columns(cbpp, plugin_draws, full_draws):
    _, fit = cbpp
    tab = bs.compare(fit, plugin=plugin_draws, full=full_draws)
    for col in (
        "cond_mode",
        "plugin_mode",
        "plugin_mean",
        "plugin_sd",
        "sampled_mean",
        "sampled_gap_mcse",
        "full_mean",
        "full_rhat",
        "full_ess_bulk",
    ):
        assert col in tab.columns, col
    np.testing.assert_allclose(tab["plugin_mode"], tab["cond_mode"], rtol=0, atol=1e-10)
    # coef(m)$herd: lme4's conditional modes plus the intercept
    ref = load_ref("cbpp_laplace")
    lme4 = ref["fixef"]["(Intercept)"] + np.asarray(ref["ranef"]["herd"]["values"]["(Intercept)"])
    got = tab.xs("Intercept", level="term").loc[ref["ranef"]["herd"]["levels"], "cond_mode"]
    np.testing.assert_allclose(got, lme4, rtol=0, atol=1e-5)
    assert np.all(np.abs(tab["sampled_gap_mcse"]) < 4.5)
    assert tab.attrs["divergences"]["full"] == 0
    assert "sd_re[Intercept]" in tab.attrs["hyperparameters"]


def test_bad_input(cbpp, plugin_draws):
    df, fit = cbpp
    with pytest.raises(MethodError, match="`mu` must be 'fixed' for a GLMM"):
        bs.plugin_model(fit, mu="flat")
    with pytest.raises(MethodError, match="no closed-form marginal"):
        bs.hierarchical_model(fit, marginalize=True)
    with pytest.raises(MethodError, match="`priors` must be None for a GLMM"):
        bs.hierarchical_model(fit, priors={"beta": "flat"})
    with pytest.raises(bs.errors.DataError, match="`data` must be the rows the fit"):
        bs.plugin_model(fit, data=df.iloc[:10])
    two = bs.fit(df, formula=CBPP.replace("(1 | herd)", "(1 | herd) + (1 | period)"),
                 family="binomial")  # fmt: skip
    # several factors have PyMC models (test_bayes_glmm_factors.py); the exact quadrature
    # posterior is for one scalar term
    assert bs.plugin_model(two).layout is not None
    with pytest.raises(MethodError, match="one scalar random term"):
        bs.plugin_posterior(two)
    with pytest.raises(bs.errors.DataError, match="`full` must be draws of the hierarchical model"):
        bs.compare(fit, full=plugin_draws)


def test_triplot_draws_the_exact_posterior_on_the_link_scale(cbpp, close_figures):
    from conftest import panels_of

    from bayeshrink.plots_glmm import glmm_curves

    _, fit = cbpp
    exact = bs.plugin_posterior(fit)
    curves = glmm_curves(fit, ["1", "2"])
    for g in ("1", "2"):
        x = curves["posterior"].sel(level=g, plot_axis="x").to_numpy()
        y = curves["posterior"].sel(level=g, plot_axis="y").to_numpy()
        # the drawn density: unit area, its mode the conditional mode and its mean the exact mean
        assert abs(np.trapezoid(y, x) - 1) < 1e-10
        step = x[1] - x[0]
        assert abs(x[np.argmax(y)] - exact.loc[g, "mode"]) <= step
        np.testing.assert_allclose(np.trapezoid(x * y, x), exact.loc[g, "mean"], atol=1e-5)
    pc = bs.plot_triplot(fit, groups=["1", "2", "3"])
    panels = panels_of(pc)
    assert sorted(panels) == ["1", "2", "3"]
    for ax in panels.values():
        gids = {ln.get_gid() for ln in ax.lines}
        assert {"prior", "likelihood", "posterior", "laplace", "marker-mode", "marker-mean"} <= gids
        (laplace,) = [ln for ln in ax.lines if ln.get_gid() == "laplace"]
        assert laplace.get_linestyle() == "--"
    pc.viz["figure"].item().savefig("/tmp/triplot_glmm.png", dpi=70)
    with pytest.raises(MethodError, match="must be left out for a GLMM's triplot"):
        bs.plot_triplot(fit, term="Intercept")


def test_prior_predictive_draws_counts(cbpp):
    df, fit = cbpp
    prior = bs.sample_prior_predictive(bs.hierarchical_model(fit), draws=100, random_seed=1)
    y = prior["prior_predictive"]["incidence"]
    assert y.dims == ("chain", "draw", "obs") and y.shape == (1, 100, len(df))
    v = y.to_numpy()
    assert np.all(v == np.round(v)) and v.min() >= 0 and np.all(v <= df["size"].to_numpy())
    again = bs.sample_prior_predictive(bs.hierarchical_model(fit), draws=100, random_seed=1)
    np.testing.assert_array_equal(again["prior_predictive"]["incidence"].to_numpy(), v)


def test_correlated_slopes_plugin_map_and_full_model():
    df = pd.read_csv(REFERENCE / "glmm_slopes.csv")
    fit = bs.fit(df, formula="y ~ x + (x | g)", family="binomial")
    model = bs.plugin_model(fit)
    assert list(model.coords["term"]) == ["Intercept", "x"]
    mp = find_map(model)
    np.testing.assert_allclose(mp["b"], fit.ranef().to_numpy(), rtol=0, atol=1e-5)
    full = bs.hierarchical_model(fit)
    assert {v.name for v in full.free_RVs} == {"beta_z", "chol_block0", "z"}
    assert "correlations ~ LKJ(eta=2)" in str(full)
    assert set(full.start) == {"chol_block0"}
    # the plot and the exact posterior are for one scalar term
    with pytest.raises(MethodError, match="one scalar random term"):
        bs.plot_triplot(fit)


def test_poisson_full_model_rows_loo_and_predictive(rates):
    df, fit = rates
    idata = bs.sample(bs.hierarchical_model(fit), draws=300, tune=300, chains=2, random_seed=21)
    idata = bs.sample_posterior_predictive(idata, random_seed=22)
    post = idata["posterior"]
    beta = post["beta"].to_numpy().reshape(-1, 2)
    b = post["b"].sel(term="Intercept").to_numpy().reshape(-1, fit.n_groups)
    codes = pd.Index(list(post["level"].to_numpy())).get_indexer(df["site"].astype(str))
    eta = np.log(df["exposure"].to_numpy()) + beta[:, :1] + beta[:, 1:] * df["z"].to_numpy()
    mu = np.exp(eta + b[:, codes])
    ll = idata["log_likelihood"]["count"].to_numpy().reshape(-1, len(df))
    np.testing.assert_allclose(ll, stats.poisson.logpmf(df["count"].to_numpy(), mu), atol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ's Pareto k > 0.7 warning
        loo = az.loo(idata, pointwise=True)
    assert np.isfinite(loo.elpd) and np.isfinite(loo.pareto_k).all()
    # given each draw's mu, y_rep ~ Poisson(mu): residuals have mean 0 and variance mu
    y = idata["posterior_predictive"]["count"].to_numpy().reshape(-1, len(df))
    z_mean = (y - mu).sum(axis=0) / np.sqrt(mu.sum(axis=0))
    assert np.all(np.abs(z_mean) < 4.5), z_mean
    # Var((y - mu)^2) = mu4 - mu^2 with the Poisson fourth central moment mu4 = mu + 3 mu^2
    z_var = ((y - mu) ** 2 - mu).sum() / np.sqrt((mu + 2 * mu**2).sum())
    assert abs(z_var) < 4.5, z_var


def test_no_and_complete_pooling_models_of_one_factor(cbpp):
    df, fit = cbpp
    none = bs.hierarchical_model(fit, pooling="none")
    assert "No-pooling model" in str(none) and "every group's own coefficients" in str(none)
    # the intercept is each herd's own; the period effects stay shared
    assert {v.name for v in none.free_RVs} == {"beta_z", "z"}
    point = none.initial_point()
    rng = np.random.default_rng(3)
    points = [
        {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in point.items()} for _ in range(2)
    ]
    logp = none.compile_logp(mode="NUMBA")
    pri = bs.default_priors(fit)["beta"].params

    def independent(pt):
        # coef_j ~ N(mu_0, s_0) per herd, beta_k ~ N(mu_k, s_k) for the periods, rows binomial
        z, bz = pt["z"][:, 0], pt["beta_z"]
        intercept = pri["mu"][0] + pri["sigma"][0] * z
        beta = pri["mu"][1:] + pri["sigma"][1:] * bz
        codes = pd.Index([str(g) for g in fit.groups]).get_indexer(df["herd"])
        eta = intercept[codes] + fit._design.X[:, 1:] @ beta
        rows = stats.binom.logpmf(df["incidence"], df["size"], special.expit(eta)).sum()
        return rows + stats.norm.logpdf(z).sum() + stats.norm.logpdf(bz).sum()

    # the model's density is the independent one up to a constant (the binomial coefficients)
    diff = logp(points[0]) - logp(points[1])
    np.testing.assert_allclose(diff, independent(points[0]) - independent(points[1]), rtol=1e-9)
    complete = bs.hierarchical_model(fit, pooling="complete")
    assert {v.name for v in complete.free_RVs} == {"beta_z"}
    assert "Complete-pooling model" in str(complete) and "b = 0" in str(complete)


@pytest.mark.parametrize("pooling", ["none", "complete"])
def test_compare_refuses_draws_of_a_pooling_model(cbpp, pooling):
    _, fit = cbpp
    draws = bs.sample(
        bs.hierarchical_model(fit, pooling=pooling), draws=50, tune=50, chains=1, random_seed=3
    )
    for tag in ("full", "plugin"):
        with pytest.raises(bs.DataError, match=rf"pooling='{pooling}' model"):
            bs.compare(fit, **{tag: draws})


def test_compare_refuses_pooling_draws_of_an_lmm():
    # the same hole for every fit type: check_draws reads the pooling the draws record
    df = pd.read_csv(REFERENCE / "cbpp.csv", dtype={"herd": str, "period": str})
    df["p"] = df["incidence"] / df["size"]
    fit = bs.fit(df, formula="p ~ period + (1 | herd)")
    draws = bs.sample(
        bs.hierarchical_model(fit, pooling="none"), draws=50, tune=50, chains=1, random_seed=3
    )
    with pytest.raises(bs.DataError, match=r"pooling='none' model"):
        bs.compare(fit, full=draws)
