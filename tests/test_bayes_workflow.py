"""What ArviZ reads from bs.sample's draws: the pointwise log-likelihood (checked row by row
against scipy from the same draws, to 1e-10), observed and constant data, posterior and prior
predictive draws (their moments checked against what the model implies, in Monte Carlo SEs),
the pooling models that az.compare ranks, and the checks a user reads.

Sampling is tiny (200 + 200 draws, 2 chains): assertions on sampled numbers are in Monte Carlo
SEs, and PyMC's convergence rules, meant for 4 x 1000 draws, are not asked of these runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import FULL, REFERENCE
from scipy import stats

import bayeshrink as bs
from bayeshrink.errors import DataError, MethodError

pytestmark = pytest.mark.filterwarnings(
    "ignore::bayeshrink.errors.SamplerConvergenceWarning",
    "ignore::bayeshrink.errors.DivergenceWarning",
)

RUN = {"draws": 200, "tune": 200, "chains": 2}


def run(model, seed=1):
    return bs.sample(model, random_seed=seed, **RUN)


@pytest.fixture(scope="module")
def radon():
    return bs.load_dataset("radon")


@pytest.fixture(scope="module")
def radon_fit(radon):
    return bs.fit(radon, formula="log_radon ~ 1 + (1 | county)")


@pytest.fixture(scope="module")
def radon_draws(radon, radon_fit):
    return run(bs.hierarchical_model(radon_fit, data=radon))


@pytest.fixture(scope="module")
def sleep():
    return bs.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def sleep_fit(sleep):
    return bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")


@pytest.fixture(scope="module")
def penicillin_fit():
    df = pd.read_csv(REFERENCE / "penicillin.csv", dtype={"plate": str, "sample": str})
    return bs.fit(df, formula="diameter ~ 1 + (1 | plate) + (1 | sample)")


@pytest.fixture(scope="module")
def schools_fit():
    return bs.fit_summary(
        bs.load_dataset("eight_schools"), estimate="y", se="sigma", group="school"
    )


def draws_of(dt, name):
    """(chain * draw, ...) values of a posterior variable."""
    da = dt["posterior"][name]
    return da.values.reshape(-1, *da.shape[2:])


def loglik(dt, name):
    da = dt["log_likelihood"][name]
    return da.values.reshape(-1, da.shape[-1])


def assert_loo_finite(dt):
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        # 400 draws leave a few Pareto k above 1 - 1/log10(400) = 0.62: LOO says so itself
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        loo = az.loo(dt, pointwise=True)
    assert np.isfinite(loo.elpd) and np.isfinite(loo.se)
    k = np.asarray(loo.pareto_k)
    assert (
        k.size
        == dt["log_likelihood"]
        .to_dataset()
        .sizes[
            next(d for d in dt["log_likelihood"].to_dataset().dims if d not in ("chain", "draw"))
        ]
    )
    assert np.isfinite(k).all()


# ------------------------------------------------------------------ pointwise log-likelihood


def test_radon_log_likelihood_is_the_row_density(radon, radon_draws):
    dt = radon_draws
    obs = dt["observed_data"]["log_radon"]
    np.testing.assert_array_equal(obs.values, radon["log_radon"].to_numpy())
    assert list(dt["constant_data"]["county"].values) == list(radon["county"])
    assert list(obs["county"].values) == list(radon["county"])
    theta, sigma = draws_of(dt, "theta"), draws_of(dt, "sigma")
    levels = list(dt["posterior"]["level"].values)
    codes = np.array([levels.index(c) for c in radon["county"]])
    # log p(y_i | theta_county(i), sigma), row by row, from the same draws
    expected = stats.norm.logpdf(
        radon["log_radon"].to_numpy()[None, :], theta[:, codes], sigma[:, None]
    )
    np.testing.assert_allclose(loglik(dt, "log_radon"), expected, rtol=1e-10, atol=1e-12)
    assert_loo_finite(dt)


def test_sleepstudy_slopes_log_likelihood_is_the_row_density(sleep, sleep_fit):
    dt = run(bs.hierarchical_model(sleep_fit, data=sleep))
    b, beta, sigma = draws_of(dt, "b"), draws_of(dt, "beta"), draws_of(dt, "sigma")
    subjects = [str(s) for s in dt["posterior"]["level"].values]
    codes = np.array([subjects.index(str(s)) for s in sleep["Subject"]])
    days = sleep["Days"].to_numpy(float)
    mean = (beta[:, 0:1] + b[:, codes, 0]) + (beta[:, 1:2] + b[:, codes, 1]) * days
    expected = stats.norm.logpdf(sleep["Reaction"].to_numpy()[None, :], mean, sigma[:, None])
    np.testing.assert_allclose(loglik(dt, "Reaction"), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(dt["constant_data"]["Days"].values, days)
    assert_loo_finite(dt)


@pytest.fixture(scope="module")
def penicillin_plugin_draws(penicillin_fit):
    return run(bs.plugin_model(penicillin_fit))


def test_crossed_log_likelihood_is_the_row_density(penicillin_fit, penicillin_plugin_draws):
    df = pd.read_csv(REFERENCE / "penicillin.csv", dtype={"plate": str, "sample": str})
    dt = penicillin_plugin_draws
    post = dt["posterior"]
    parts = []
    b = post["b"]  # over (level, term): level "factor:label", with factor and label coords
    assert list(b.dims) == ["chain", "draw", "level", "term"]
    for factor in ("plate", "sample"):
        da = b.isel(level=b["factor"].values == factor)
        assert all(v.startswith(factor + ":") for v in da["level"].values)
        vals = da.values.reshape(-1, *da.shape[2:])
        labels = [str(v) for v in da["label"].values]
        parts.append(vals[:, [labels.index(v) for v in df[factor]], 0])
    mean = penicillin_fit.fixef["Intercept"] + parts[0] + parts[1]
    expected = stats.norm.logpdf(df["diameter"].to_numpy()[None, :], mean, penicillin_fit.sigma)
    np.testing.assert_allclose(loglik(dt, "diameter"), expected, rtol=1e-10, atol=1e-12)
    assert set(dt["constant_data"].data_vars) >= {"plate", "sample"}
    assert_loo_finite(dt)


def test_summary_data_are_pointwise_per_group(schools_fit):
    dt = run(bs.hierarchical_model(schools_fit))
    schools = bs.load_dataset("eight_schools")
    theta = draws_of(dt, "theta")
    expected = stats.norm.logpdf(schools["y"].to_numpy()[None, :], theta, schools["sigma"].values)
    np.testing.assert_allclose(loglik(dt, "y"), expected, rtol=1e-10, atol=1e-12)
    assert list(dt["log_likelihood"]["y"]["level"].values) == list(schools["school"])
    assert_loo_finite(dt)


def test_without_rows_the_unit_is_the_group_and_sums_the_rows(radon, radon_fit):
    dt = run(bs.plugin_model(radon_fit))  # no data=: the group's joint row density
    theta = draws_of(dt, "theta")
    levels = list(dt["posterior"]["level"].values)
    codes = np.array([levels.index(c) for c in radon["county"]])
    rows = stats.norm.logpdf(
        radon["log_radon"].to_numpy()[None, :], theta[:, codes], radon_fit.sigma
    )
    expected = np.stack([rows[:, codes == j].sum(axis=1) for j in range(len(levels))], axis=1)
    np.testing.assert_allclose(loglik(dt, "ybar"), expected, rtol=1e-10)


def test_mixed_fit_without_rows_sums_the_rows_too(sleep, sleep_fit):
    dt = run(bs.plugin_model(sleep_fit))
    b = draws_of(dt, "b")
    subjects = [str(s) for s in dt["posterior"]["level"].values]
    codes = np.array([subjects.index(str(s)) for s in sleep["Subject"]])
    beta = sleep_fit.fixef.to_numpy()
    days = sleep["Days"].to_numpy(float)
    mean = beta[0] + b[:, codes, 0] + (beta[1] + b[:, codes, 1]) * days
    rows = stats.norm.logpdf(sleep["Reaction"].to_numpy()[None, :], mean, sleep_fit.sigma)
    expected = np.stack([rows[:, codes == j].sum(axis=1) for j in range(len(subjects))], axis=1)
    np.testing.assert_allclose(loglik(dt, "Reaction"), expected, rtol=1e-10)


# ------------------------------------------------------------------ predictive draws


def test_posterior_predictive_moments_are_the_plugin_posteriors(radon, radon_fit):
    dt = run(bs.plugin_model(radon_fit, data=radon))
    bs.sample_posterior_predictive(dt, random_seed=3)
    pp = dt["posterior_predictive"]["log_radon"]
    assert pp.dims == ("chain", "draw", "obs") and pp.shape[2] == len(radon)
    assert list(pp["county"].values) == list(radon["county"])
    # plug-in posterior predictive of a row of county j: N(blup_j, cond_sd_j^2 + sigma_hat^2)
    t = radon_fit.table()
    y = pp.values.reshape(-1, len(radon))
    frame = pd.DataFrame(y.T, index=radon["county"].to_numpy())
    by = frame.groupby(level=0)
    mean = by.apply(lambda g: g.to_numpy().mean()).reindex(t.index)
    var = by.apply(lambda g: g.to_numpy().var()).reindex(t.index)
    implied_var = t["cond_sd"] ** 2 + radon_fit.sigma**2
    n_draw = y.shape[0]
    # Monte Carlo SE of a county's mean: the theta draws are shared by its rows (ESS ~ draws),
    # the noise is not; bounded by sqrt(var / draws)
    se_mean = np.sqrt(implied_var / n_draw)
    assert np.all(np.abs(mean - t["blup"]) < 5 * se_mean)
    # the variance over draws and rows: relative MC error about sqrt(2 / draws)
    np.testing.assert_allclose(var, implied_var, rtol=6 * np.sqrt(2 / n_draw))


def test_posterior_predictive_noise_is_the_models(radon_draws):
    dt = bs.sample_posterior_predictive(radon_draws, random_seed=5)
    pp = dt["posterior_predictive"]["log_radon"].values
    theta, sigma = dt["posterior"]["theta"].values, dt["posterior"]["sigma"].values
    levels = list(dt["posterior"]["level"].values)
    codes = np.array([levels.index(c) for c in dt["observed_data"]["county"].values])
    r = (pp - theta[:, :, codes]) / sigma[:, :, None]  # iid N(0, 1) if the draws are right
    m = r.size
    assert abs(r.mean()) < 4 / np.sqrt(m)
    assert abs(r.var() - 1) < 4 * np.sqrt(2 / m)
    again = bs.sample_posterior_predictive(radon_draws, random_seed=5)
    np.testing.assert_array_equal(again["posterior_predictive"]["log_radon"].values, pp)


@pytest.mark.parametrize("kind", ["sleep", "penicillin", "schools"])
def test_posterior_predictive_for_every_fit_type(kind, sleep, sleep_fit, penicillin_fit,
                                                 schools_fit):  # fmt: skip
    model = {
        "sleep": lambda: bs.plugin_model(sleep_fit, data=sleep),
        "penicillin": lambda: bs.plugin_model(penicillin_fit),
        "schools": lambda: bs.plugin_model(schools_fit),
    }[kind]()
    dt = bs.sample_posterior_predictive(run(model), random_seed=1)
    name = next(iter(dt["observed_data"].data_vars))
    pp, obs = dt["posterior_predictive"][name], dt["observed_data"][name]
    assert pp.dims[2:] == obs.dims and pp.shape[2:] == obs.shape
    np.testing.assert_array_equal(pp[pp.dims[2]].values, obs[obs.dims[0]].values)
    # given each draw, y_rep ~ N(the model's mean, its SD): computed here from the draws
    if kind == "schools":
        mean = draws_of(dt, "theta")
        sd = bs.load_dataset("eight_schools")["sigma"].to_numpy(float)[None, :]
    else:
        fit = sleep_fit if kind == "sleep" else penicillin_fit
        n_draw = pp.shape[0] * pp.shape[1]
        beta = np.broadcast_to(fit.fixef.to_numpy(), (n_draw, len(fit.fixef)))
        b = draws_of(dt, "b")
        sigma = np.full(n_draw, fit.sigma)
        mean = _row_density_mean(kind, dt, beta, b, sleep)
        sd = sigma[:, None]
    r = (pp.values.reshape(-1, pp.shape[-1]) - mean) / sd
    m = r.size
    assert abs(r.mean()) < 4 / np.sqrt(m)
    assert abs(r.var() - 1) < 4 * np.sqrt(2 / m)


def test_prior_predictive_moments(schools_fit):
    model = bs.hierarchical_model(schools_fit)
    prior = bs.sample_prior_predictive(model, draws=4000, random_seed=7)
    y = prior["prior_predictive"]["y"].values.reshape(-1, 8)
    d = bs.default_priors(schools_fit)
    m, s_mu, s_tau = d["mu"].params["mu"], d["mu"].params["sigma"], d["tau"].params["sigma"]
    se = bs.load_dataset("eight_schools")["sigma"].to_numpy(float)
    # y_j = mu + tau z_j + se_j e_j: mean m, variance s_mu^2 + E[tau^2] + se_j^2, and
    # E[tau^2] = s_tau^2 for tau ~ HalfNormal(s_tau)
    var = s_mu**2 + s_tau**2 + se**2
    n = y.shape[0]
    assert np.all(np.abs(y.mean(axis=0) - m) < 4.5 * np.sqrt(var / n))
    # the variance of a sum of normal scale mixtures: allow 6 relative SEs of a kurtotic variance
    np.testing.assert_allclose(y.var(axis=0), var, rtol=6 * np.sqrt(3 / n))
    again = bs.sample_prior_predictive(model, draws=4000, random_seed=7)
    np.testing.assert_array_equal(again["prior_predictive"]["y"].values, y.reshape(1, -1, 8))


def test_arviz_ppc_and_loo_pit_plots_run(radon_draws, close_figures):
    import arviz as az

    dt = bs.sample_posterior_predictive(radon_draws, random_seed=2)
    assert az.plot_ppc_dist(dt) is not None
    assert az.plot_loo_pit(dt) is not None


# ------------------------------------------------------------------ bad input


def test_predictive_draws_need_a_model(radon_draws):
    import xarray as xr

    bare = xr.DataTree.from_dict({"posterior": radon_draws["posterior"].to_dataset()})
    with pytest.raises(DataError, match=r"`draws` must come from bs.sample .* have no model"):
        bs.sample_posterior_predictive(bare)


def test_predictive_draws_of_another_fit_are_refused(radon, radon_draws):
    other = radon[radon["county"] != "AITKIN"]
    model = bs.hierarchical_model(bs.fit(other, y="log_radon", group="county"), data=other)
    with pytest.raises(DataError, match="`draws` must be sampled from this model's fit"):
        bs.sample_posterior_predictive(radon_draws, model=model)


def test_rows_that_are_not_the_fits_are_refused(radon, radon_fit):
    with pytest.raises(DataError, match="`data` must be the rows the fit was made from"):
        bs.hierarchical_model(radon_fit, data=radon.iloc[:-3])


def test_pooling_misspelt(radon_fit):
    with pytest.raises(MethodError, match=r"`pooling` must be one of 'partial' .* got 'partail'"):
        bs.hierarchical_model(radon_fit, pooling="partail")


# ------------------------------------------------------------------ pooling models, compare


def test_three_pooling_models_compare_on_radon(radon, radon_fit, radon_draws):
    import warnings

    import arviz as az

    models = {
        p: bs.hierarchical_model(radon_fit, pooling=p, data=radon) for p in ("complete", "none")
    }
    assert "theta_j = mu for every group;  mu ~ Normal(" in str(models["complete"])
    assert "sigma ~ HalfNormal(" in str(models["complete"])
    assert "theta_j ~ Normal(" in str(models["none"]) and "independently" in str(models["none"])
    draws = {p: run(m) for p, m in models.items()}
    draws["partial"] = radon_draws
    # complete pooling: every row's density at the one mean
    mu, sigma = draws_of(draws["complete"], "mu"), draws_of(draws["complete"], "sigma")
    expected = stats.norm.logpdf(
        radon["log_radon"].to_numpy()[None, :], mu[:, None], sigma[:, None]
    )
    np.testing.assert_allclose(loglik(draws["complete"], "log_radon"), expected, rtol=1e-10)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        table = az.compare(draws)
    assert set(table.index) == {"complete", "none", "partial"}
    assert np.isfinite(table["elpd"]).all()


@pytest.mark.slow  # three models to compile each; CI runs the crossed fit only
@pytest.mark.parametrize("kind", ["sleep", "penicillin"] if FULL else ["penicillin"])
def test_three_pooling_models_for_slopes_and_crossed_fits(kind, sleep, sleep_fit, penicillin_fit):
    import warnings

    import arviz as az

    fit = sleep_fit if kind == "sleep" else penicillin_fit
    data = {"data": sleep} if kind == "sleep" else {}
    models = {p: bs.hierarchical_model(fit, pooling=p, **data) for p in POOLINGS}
    assert "Complete-pooling model" in str(models["complete"]) and "b = 0" in str(
        models["complete"]
    )
    assert "No-pooling model" in str(models["none"]) and "independently" in str(models["none"])
    assert "beta ~ Normal(" in str(models["complete"]) and "sigma ~ HalfNormal(" in str(
        models["none"]
    )
    assert {v.name for v in models["complete"].free_RVs} == {"beta_z", "sigma"}
    draws = {p: run(m) for p, m in models.items()}
    assert float(np.abs(draws["complete"]["posterior"]["b"]).max()) == 0.0
    # the log-likelihood of each is the rows' density given its own draws
    for p, dt in draws.items():
        beta, b, sigma = draws_of(dt, "beta"), draws_of(dt, "b"), draws_of(dt, "sigma")
        np.testing.assert_allclose(
            loglik(dt, name := next(iter(dt["observed_data"].data_vars))),
            _row_density(kind, dt, beta, b, sigma, sleep),
            rtol=1e-10,
            err_msg=f"{p} {name}",
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        table = az.compare(draws)
    assert set(table.index) == set(POOLINGS) and np.isfinite(table["elpd"]).all()


POOLINGS = ("partial", "none", "complete")


def _row_density(kind, dt, beta, b, sigma, sleep):
    """log N(y_i | x_i' beta + z_i' b, sigma^2) row by row from the draws."""
    y = (sleep["Reaction"] if kind == "sleep" else _penicillin()["diameter"]).to_numpy()
    return stats.norm.logpdf(
        y[None, :], _row_density_mean(kind, dt, beta, b, sleep), sigma[:, None]
    )


def _penicillin():
    return pd.read_csv(REFERENCE / "penicillin.csv", dtype={"plate": str, "sample": str})


def _row_density_mean(kind, dt, beta, b, sleep):
    """(draw, row) x_i' beta + z_i' b_l(i) from the draws (beta may be the fit's)."""
    levels = [str(v) for v in dt["posterior"]["level"].values]
    if kind == "sleep":
        codes = np.array([levels.index(str(s)) for s in sleep["Subject"]])
        days = sleep["Days"].to_numpy(float)
        return beta[:, 0:1] + b[:, codes, 0] + (beta[:, 1:2] + b[:, codes, 1]) * days
    df = _penicillin()
    return beta[:, 0:1] + sum(
        b[:, [levels.index(f"{f}:{v}") for v in df[f]], 0] for f in ("plate", "sample")
    )


def test_compare_gives_every_fit_the_same_columns(
    radon_fit, radon_draws, penicillin_fit, penicillin_plugin_draws
):
    base = {"n", "no_pooling", "blup", "cond_sd"}
    stats_ = ("mean", "sd", "mcse", "rhat", "ess_bulk", "ess_tail")
    one = bs.compare(radon_fit, full=radon_draws)
    crossed = bs.compare(penicillin_fit, plugin=penicillin_plugin_draws)
    assert base | {f"full_{c}" for c in stats_} | {"full_lo", "full_hi"} <= set(one.columns)
    assert base | {f"plugin_{c}" for c in stats_} | {"plugin_gap_mcse"} <= set(crossed.columns)
    assert one.attrs["prob"] == crossed.attrs["prob"] == 0.95  # the default interval level
    # the sampled plug-in means are the conditional modes (coef) in Monte Carlo SEs
    assert crossed["plugin_gap_mcse"].abs().max() < 4.5
    assert list(crossed.index.names) == ["factor", "level", "term"]


# ------------------------------------------------------------------ checks a user reads


def test_check_reports_rhat_ess_divergences_and_pareto_k(radon_draws):
    report = bs.check(radon_draws)
    assert {"mu", "tau", "sigma", "theta"} <= set(report.table.index)
    assert {"rhat", "ess_bulk", "ess_tail", "ok"} <= set(report.table.columns)
    k = report.pareto_k
    assert k["good"] + k["bad"] + k["very_bad"] == 919
    assert report.divergences == 0
    assert "Pareto k" in str(report) and report.verdict in str(report)


def test_check_says_when_chains_disagree():
    import xarray as xr

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 500)) + np.array([[0.0], [3.0]])  # two chains, two places
    dt = xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), x)})})
    report = bs.check(dt)
    assert not report.ok
    assert report.verdict.startswith("Problems: the chains disagree: R-hat of mu is")


# ------------------------------------------------------------------ prior sensitivity


def _grid_median_of_tau(schools, prior_pdf, m0, s0):
    """Median of p(tau | y) on a grid: mu ~ N(m0, s0^2) integrated out exactly,
    y ~ N(m0 1, diag(se^2 + tau^2) + s0^2 11')."""
    y = schools["y"].to_numpy(float)
    se2 = schools["sigma"].to_numpy(float) ** 2
    tau = np.linspace(1e-6, 1000, 200_001)
    logp = np.empty_like(tau)
    for i, t in enumerate(tau[::100]):  # coarse first, then interpolate: smooth in tau
        cov = np.diag(se2 + t**2) + s0**2
        logp[i] = stats.multivariate_normal.logpdf(y, np.full(8, m0), cov)
    coarse = tau[::100]
    logp = np.interp(tau, coarse, logp[: len(coarse)])
    dens = np.exp(logp - logp.max()) * prior_pdf(tau)
    cdf = np.cumsum(dens)
    return float(np.interp(0.5, cdf / cdf[-1], tau))


def test_prior_sensitivity_matches_the_exact_posterior_of_tau(schools_fit, close_figures):
    import arviz as az

    schools = bs.load_dataset("eight_schools")
    result = bs.prior_sensitivity(
        schools_fit,
        priors={
            "uniform": "uniform",
            "half-Cauchy(25)": "half-cauchy(25)",
            "inverse-gamma(1, 1)": "invgamma(1, 1)",
        },
        draws=500,
        tune=300,
        chains=2,
        random_seed=3,
    )
    t = result.table
    assert list(t.index) == ["uniform", "half-Cauchy(25)", "inverse-gamma(1, 1)"]
    assert {"mean", "sd", "lo", "median", "hi", "rhat", "ess_bulk", "divergences"} <= set(t)
    assert t.loc["uniform", "prior"].startswith("HalfFlat")
    assert len(result.draws) == 3 * 1000 and set(result.draws.columns) == {"prior", "tau"}
    d = bs.default_priors(schools_fit)["mu"].params
    pdfs = {
        "uniform": lambda x: np.ones_like(x),
        "half-Cauchy(25)": lambda x: 1 / (1 + (x / 25) ** 2),
        # tau^2 ~ InvGamma(1, 1): the density of tau is 2 tau IG(tau^2; 1, 1)
        "inverse-gamma(1, 1)": lambda x: 2 * x * stats.invgamma.pdf(x**2, 1, scale=1),
    }
    for label, pdf in pdfs.items():
        exact = _grid_median_of_tau(schools, pdf, d["mu"], d["sigma"])
        mcse = float(az.mcse(result.idata[label], var_names=["tau"], method="median")["tau"])
        assert abs(t.loc[label, "median"] - exact) < 5 * mcse + 0.02 * exact, (label, exact)
    fig = result.plot()
    lines = [line for line in fig.axes[0].lines if line.get_gid() in t.index]
    assert len(lines) == 3
    fig.savefig("/tmp/prior_sensitivity.png")


@pytest.mark.parametrize(
    "spec, why",
    [
        ("halfcauhcy(25)", "unknown distribution 'halfcauhcy'"),
        ("halfcauchy(25, 3)", "halfcauchy takes 1 numbers"),
        ("invgamma(0.001)", "invgamma takes 2 numbers"),
        ("halfnormal(-1)", "the parameters must be positive"),
        ("uniform(10, 1)", r"need 0 <= lower < upper"),
        (3.0, "a float"),
    ],
)
def test_a_prior_written_wrongly(schools_fit, spec, why):
    with pytest.raises(MethodError, match=r"`priors\['tau prior'\]` must be one of .*" + why):
        bs.prior_sensitivity(schools_fit, priors={"tau prior": spec})


def test_prior_sensitivity_needs_a_one_way_fit(sleep_fit):
    from bayeshrink.errors import DataTypeError

    with pytest.raises(DataTypeError, match="`fit` must be a one-way fit"):
        bs.prior_sensitivity(sleep_fit)
