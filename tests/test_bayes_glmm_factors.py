"""The PyMC models of GLMMs with several grouping factors, named as every other model (``b`` and
``coef`` over (level, term) with ``factor`` and ``label`` on ``level``): the plug-in MAP is
lme4's conditional modes of every factor; the pointwise log-likelihood is binom.logpmf row by
row from the same draws; predictive counts follow the model given each draw; the three pooling
models build, sample and state their priors."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, find_map
from scipy import special, stats

import bayeshrink as bs
from bayeshrink.errors import MethodError

pytestmark = pytest.mark.filterwarnings(
    "ignore::bayeshrink.errors.SamplerConvergenceWarning",
    "ignore::bayeshrink.errors.DivergenceWarning",
)

CROSSED = "cbind(incidence, size - incidence) ~ 1 + (1 | herd) + (1 | period)"
RUN = {"draws": 200, "tune": 200, "chains": 2}


@pytest.fixture(scope="module")
def cbpp():
    df = pd.read_csv(REFERENCE / "cbpp.csv", dtype={"herd": str, "period": str})
    return df, bs.fit(df, formula=CROSSED, family="binomial")


@pytest.fixture(scope="module")
def full_draws(cbpp):
    _, fit = cbpp
    return bs.sample(bs.hierarchical_model(fit), random_seed=3, **RUN)


def _by_factor(values, model, fit, factor):
    """The rows of a (level, term) array that belong to ``factor``, in the fit's level order."""
    lay = model.glmm_layout
    rows = [i for i, f in enumerate(lay.factor_of) if f == factor]
    return values[rows][:, lay.term_pos[factor]]


def test_crossed_plugin_map_is_the_conditional_modes(cbpp):
    _, fit = cbpp
    model = bs.plugin_model(fit)
    mp = find_map(model)
    for factor in ("herd", "period"):
        np.testing.assert_allclose(
            _by_factor(mp["b"], model, fit, factor), fit.ranef(factor).to_numpy(), atol=1e-5
        )


@pytest.mark.slow  # ~10 s (584 effects to compile); the crossed cbpp test above is its CI form
def test_three_factor_plugin_map_is_the_conditional_modes():
    gt = pd.read_csv(REFERENCE / "grouseticks.csv")
    gt["YEAR"] = gt["YEAR"].astype(str)
    gt["sHEIGHT"] = (gt["HEIGHT"] - gt["HEIGHT"].mean()) / gt["HEIGHT"].std(ddof=1)
    fit = bs.fit(
        gt,
        formula="TICKS ~ YEAR + sHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
        family="poisson",
    )
    model = bs.plugin_model(fit)
    assert model.named_vars_to_dims["b"] == ("level", "term")
    assert model.named_vars_to_dims["coef"] == ("level", "term")
    assert [v.name for v in model.free_RVs] == ["z"]
    levels = list(model.coords["level"])
    assert levels[0].startswith("INDEX:") and sum(v.startswith("BROOD:") for v in levels) == 118
    mp = find_map(model)
    # the MAP of the plug-in posterior is lme4's conditional mode, to the optimiser's precision
    for factor in fit.factors:
        np.testing.assert_allclose(
            _by_factor(mp["b"], model, fit, factor),
            fit.ranef(factor).to_numpy(),
            rtol=0,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            _by_factor(mp["coef"], model, fit, factor),
            fit.coef(factor).to_numpy(),
            rtol=0,
            atol=1e-5,
        )


def test_crossed_models_are_named_and_state_their_priors(cbpp):
    _, fit = cbpp
    full = bs.hierarchical_model(fit)
    assert {v.name for v in full.free_RVs} == {"beta_z", "sd_block:herd", "sd_block:period", "z"}
    assert list(full.coords["re_term"]) == ["herd:Intercept", "period:Intercept"]
    text = str(full)
    assert "herd: HalfNormal(sigma=2.5)" in text and "beta ~ Normal(mu=-2.016" in text
    none = str(bs.hierarchical_model(fit, pooling="none"))
    assert "No-pooling model" in none and "~ N(0, S^2) independently" in none
    complete = bs.hierarchical_model(fit, pooling="complete")
    assert "Complete-pooling model" in str(complete) and "b = 0" in str(complete)
    assert {v.name for v in complete.free_RVs} == {"beta_z"}
    with pytest.raises(MethodError, match="`pooling` must be one of"):
        bs.hierarchical_model(fit, pooling="partail")


def test_crossed_loglik_is_binom_logpmf_row_by_row(cbpp, full_draws):
    df, _ = cbpp
    post = full_draws["posterior"]
    b = post["b"]
    assert set(b["factor"].values) == {"herd", "period"}
    beta = post["beta"].to_numpy().reshape(-1, 1)
    eta = np.repeat(beta, len(df), axis=1)
    for factor in ("herd", "period"):
        da = b.isel(level=b["factor"].values == factor).sel(term="Intercept")
        labels = [str(v) for v in da["label"].values]
        vals = da.to_numpy().reshape(-1, len(labels))
        eta = eta + vals[:, [labels.index(v) for v in df[factor]]]
    expected = stats.binom.logpmf(
        df["incidence"].to_numpy(), df["size"].to_numpy(), special.expit(eta)
    )
    ll = full_draws["log_likelihood"]["incidence"].to_numpy().reshape(-1, len(df))
    np.testing.assert_allclose(ll, expected, rtol=1e-10, atol=1e-12)
    assert set(full_draws["constant_data"].data_vars) >= {"herd", "period", "trials"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ's Pareto k > 0.7 warning
        loo = az.loo(full_draws, pointwise=True)
    assert np.isfinite(loo.elpd) and np.isfinite(loo.pareto_k).all()
    assert np.asarray(loo.pareto_k).size == len(df)


def test_crossed_predictive_counts_follow_the_model(cbpp, full_draws):
    df, _ = cbpp
    dt = bs.sample_posterior_predictive(full_draws, random_seed=4)
    pp = dt["posterior_predictive"]["incidence"]
    assert pp.shape[2:] == dt["observed_data"]["incidence"].shape
    # given each draw's p_i, y_rep_i ~ Binomial(m_i, p_i): mean m p, variance m p (1 - p)
    ll = dt["log_likelihood"]["incidence"].to_numpy()
    assert ll.shape == pp.shape
    eta = _row_eta(dt, df)
    m = df["size"].to_numpy()
    p = special.expit(eta)
    y = pp.to_numpy().reshape(-1, len(df))
    var = m * p * (1 - p)
    z_mean = (y - m * p).sum(axis=0) / np.sqrt(var.sum(axis=0))
    assert np.all(np.abs(z_mean) < 4.5), z_mean
    # E[(y - mp)^2] = var; Var((y - mp)^2) = mu4 - var^2, mu4 = var (1 + (3m - 6) p (1 - p))
    mu4 = var * (1 + (3 * m - 6) * p * (1 - p))
    z_var = ((y - m * p) ** 2 - var).sum() / np.sqrt((mu4 - var**2).sum())
    assert abs(z_var) < 4.5, z_var
    assert np.all((y >= 0) & (y <= m))


def _row_eta(dt, df):
    post = dt["posterior"]
    b = post["b"]
    eta = np.repeat(post["beta"].to_numpy().reshape(-1, 1), len(df), axis=1)
    for factor in ("herd", "period"):
        da = b.isel(level=b["factor"].values == factor).sel(term="Intercept")
        labels = [str(v) for v in da["label"].values]
        eta = eta + da.to_numpy().reshape(-1, len(labels))[:, [labels.index(v) for v in df[factor]]]
    return eta


def test_three_pooling_models_compare(cbpp, full_draws):
    _, fit = cbpp
    runs = {"partial": full_draws}
    for pooling in ("none", "complete"):
        runs[pooling] = bs.sample(bs.hierarchical_model(fit, pooling=pooling), random_seed=5, **RUN)
    comp = runs["complete"]["posterior"]
    assert float(np.abs(comp["b"]).max()) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table = az.compare(runs)
    assert set(table.index) == {"partial", "none", "complete"}
    assert np.isfinite(table["elpd"]).all()


def test_compare_and_hyperparameters_with_several_factors(cbpp, full_draws):
    _, fit = cbpp
    out = bs.compare(fit, full=full_draws)
    assert list(out.index.get_level_values("level")[:2]) == ["herd:1", "herd:10"]
    assert {"cond_mode", "cond_sd", "full_mean", "full_sd", "full_rhat", "full_ess_bulk"} <= set(
        out.columns
    )
    hyper = bs.hyperparameters(fit, full=full_draws)
    assert list(hyper.index) == [
        "beta[Intercept]",
        "sd_re[herd:Intercept]",
        "sd_re[period:Intercept]",
    ]
    assert hyper["posterior_mean"].notna().all()
