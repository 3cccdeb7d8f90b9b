"""The plug-in model of a fit with several grouping factors: its posterior is the fit's
conditional modes and SDs (exactly, and by sampling within Monte Carlo error)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, draws, load_ref

import bayeshrink as bs
from bayeshrink.bayes_multi import compare_multi, plugin_model_multi, plugin_posterior_multi
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


def test_sampled_plugin_posterior_means_are_the_conditional_modes(penicillin_fit):
    model = plugin_model_multi(penicillin_fit)
    assert "plate (24 levels)" in model.description
    idata = bs.sample(model, draws=draws(400, 2000), tune=draws(400, 1000), chains=2,
                      random_seed=7)  # fmt: skip
    cmp = compare_multi(penicillin_fit, idata)
    assert cmp["plugin_mcse"].gt(0).all()
    # every posterior mean within 4 Monte Carlo SEs of the exact conditional mode
    assert cmp["plugin_gap"].abs().max() < 4.0, cmp.sort_values("plugin_gap").iloc[[0, -1]]
    # posterior SDs: the SD of n draws has a relative SE of about 1 / sqrt(2 ESS)
    ess = (cmp["plugin_sd"] / cmp["plugin_mcse"]) ** 2
    rel = (cmp["plugin_sd"] / cmp["sd"] - 1.0).abs()
    assert (rel < 5.0 / np.sqrt(2.0 * ess)).all()
