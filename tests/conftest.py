from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

TESTS = Path(__file__).parent
REFERENCE = TESTS / "reference"


def load_ref(name: str) -> dict:
    """A reference fit made by tests/reference/make_references.R or copied from R's output."""
    return json.loads((REFERENCE / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def seed_demo():
    import bayeshrink as bs

    return bs.load_dataset("seed_demo")


def read_cbpp():
    """lme4's cbpp (../shared/reference/cbpp.csv, copied to tests/reference), period as text as
    R's factor; herd stays an integer."""
    import pandas as pd

    df = pd.read_csv(REFERENCE / "cbpp.csv")
    df["period"] = df["period"].astype(str)
    return df


@pytest.fixture(scope="module")
def cbpp():
    """cbpp rows (:func:`read_cbpp`), one frame per test module."""
    return read_cbpp()


def find_map(model):
    """The MAP of a PyMC model, tight (L-BFGS-B at tol 1e-14, no jitter), as a dict of arrays."""
    import warnings

    import pymc as pm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # find_MAP's announced API changes
        with model:
            return pm.find_MAP(
                method="L-BFGS-B",
                tol=1e-14,
                progressbar=False,
                jitter=False,
                return_inferencedata=False,
                compile_kwargs={"mode": "NUMBA"},
            )


#: ``BAYESHRINK_FULL=1`` (``make test-full``) runs the sampling tests at full size; CI runs them
#: reduced. Assertions are in Monte Carlo standard errors either way, so both sizes are honest.
FULL = os.environ.get("BAYESHRINK_FULL") == "1"


def draws(reduced: int, full: int) -> int:
    return full if FULL else reduced


#: marks for a parametrisation CI leaves to ``BAYESHRINK_FULL=1`` (one case per engine runs)
HEAVY = (
    pytest.mark.slow,
    pytest.mark.skipif(not FULL, reason="a further engine case: BAYESHRINK_FULL=1 runs it"),
)


@pytest.fixture(scope="session")
def dask_client():
    """One distributed.LocalCluster of 2 worker processes for the whole test session."""
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("dask.dataframe")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session on loopback for the whole test session, stopped at the end."""
    import shutil
    import sys

    sql = pytest.importorskip("pyspark.sql")
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        pytest.skip("Spark needs Java (CI installs a headless JRE: .ci/run)")
    patch = pytest.MonkeyPatch()
    patch.setenv("PYSPARK_PYTHON", sys.executable)
    patch.setenv("SPARK_LOCAL_IP", "127.0.0.1")  # keep the driver on loopback
    session = (
        sql.SparkSession.builder.master("local[2]")
        .appName("bayeshrink-tests")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    patch.undo()


@pytest.fixture
def close_figures():
    """Close every matplotlib figure a test opened (plot modules use it for all their tests)."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def panels_of(pc) -> dict:
    """The panels of a per-level PlotCollection (plot_triplot), by level label."""
    from bayeshrink.posterior import GROUP_DIM

    levels = pc.viz["plot"][GROUP_DIM].values
    return {str(k): pc.viz["plot"].sel({GROUP_DIM: k}).item() for k in levels}


def synthetic_posterior(fit, draws: int = 500, chains: int = 2, seed: int = 0, mu="fixed"):
    """A DataTree of exact draws from the plug-in posterior, made with numpy and xarray only.

    coef[level, term] ~ N(fit.coef(), fit.ranef_sd()^2) independently (``mu="flat"``: SD
    fit.pred_sd()), the marginals of the plug-in model's posterior; ``theta`` as well for a
    one-way fit. Plot tests use it instead of sampling a PyMC model.
    """
    import numpy as np
    import xarray as xr

    from bayeshrink.posterior import GROUP_DIM, TERM_DIM

    terms = list(fit.random_terms)
    mean = fit.coef()[terms].to_numpy()
    sd = (fit.ranef_sd() if mu == "fixed" else fit.pred_sd())[terms].to_numpy()
    rng = np.random.default_rng(seed)
    coef = mean + sd * rng.standard_normal((chains, draws, *mean.shape))
    coords = {
        "chain": np.arange(chains),
        "draw": np.arange(draws),
        GROUP_DIM: list(fit.groups),
        TERM_DIM: terms,
    }
    ds = xr.Dataset({"coef": (("chain", "draw", GROUP_DIM, TERM_DIM), coef)}, coords=coords)
    if terms == ["Intercept"] and list(fit.fixed_terms) == ["Intercept"]:
        ds["theta"] = ds["coef"].sel({TERM_DIM: "Intercept"}, drop=True)
    return xr.DataTree.from_dict({"posterior": ds})
