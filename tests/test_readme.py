"""The README's code that pytest's doctest does not run (plain ``python`` blocks) runs as written,
and its dataset list names every bundled dataset."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from conftest import load_ref

import bayeshrink as bs

README = Path(__file__).parent.parent / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _python_blocks(section: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_bayesian_reading_snippet_runs_as_written(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (code,) = _python_blocks(_section("The Bayesian reading, in PyMC"))
    assert ">>>" not in code  # the doctest does not run it: this test does
    real = bs.sample

    def tiny(model, *args, **kwargs):  # the snippet's calls, with few draws
        kwargs.update(draws=100, tune=100, chains=2)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(bs, "sample", tiny)
    namespace: dict = {}
    with warnings.catch_warnings():
        # 100 draws are too few for the convergence checks; the snippet's names are the point
        warnings.simplefilter("ignore", bs.SamplerConvergenceWarning)
        warnings.simplefilter("ignore", bs.DivergenceWarning)
        exec(compile(code, str(README), "exec"), namespace)
    plt.close("all")
    fit = namespace["fit"]
    assert list(fit.groups) == list("ABCDEF") and fit.n_obs == 30
    ref = load_ref("dyestuff_REML")  # lmer(Yield ~ (1 | Batch), data = dyestuff, REML = TRUE)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-6)
    assert fit.tau == pytest.approx(ref["tau"], rel=1e-6)


def test_dataset_list_names_every_bundled_dataset():
    section = _section("Datasets")
    listed = set(re.findall(r"`([a-z_0-9]+)`", section))
    missing = sorted(set(bs.list_datasets()) - listed)
    assert not missing, f"add {missing} to the README's dataset list"
