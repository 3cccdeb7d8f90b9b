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


#: ``BAYESHRINK_FULL=1`` (``make test-full``) runs the sampling tests at full size; CI runs them
#: reduced. Assertions are in Monte Carlo standard errors either way, so both sizes are honest.
FULL = os.environ.get("BAYESHRINK_FULL") == "1"


def draws(reduced: int, full: int) -> int:
    return full if FULL else reduced


@pytest.fixture
def close_figures():
    """Close every matplotlib figure a test opened (plot modules use it for all their tests)."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def panels_of(pc) -> dict:
    """The panels of a per-level PlotCollection (plot_triplot), by level label."""
    from bayeshrink.bayes import GROUP_DIM

    levels = pc.viz["plot"][GROUP_DIM].values
    return {str(k): pc.viz["plot"].sel({GROUP_DIM: k}).item() for k in levels}
