"""Every notebook runs top to bottom (reduced draws), and notebook 1 shows the published tables."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def execute(path: Path, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("BAYESHRINK_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return nb


def test_all_notebooks_are_found():
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "01_blup_vs_no_pooling.ipynb",
        "02_eight_schools.ipynb",
        "03_baseball.ipynb",
        "04a_radon_one_way.ipynb",
        "04b_radon_covariates.ipynb",
        "05_simulation_study.ipynb",
        "06_random_slopes.ipynb",
        "07_crossed_nested.ipynb",
        "08_model_checking.ipynb",
        "09_proportions_and_counts.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nb = execute(path, tmp_path, monkeypatch)
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors


def _printed_tables(nb) -> dict[str, dict[str, tuple[float, float]]]:
    """The 'Model k' tables printed by notebook 1: {model: {group: (fixed effects, BLUP)}}."""
    text = "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "stream"
    )
    tables: dict[str, dict[str, tuple[float, float]]] = {}
    current = None
    for line in text.splitlines():
        if m := re.fullmatch(r"Model (\w+)", line.strip()):
            current = tables.setdefault(m.group(1), {})
        elif current is not None and (m := re.fullmatch(r"(g\d)\s+(\S+)\s+(\S+)", line.strip())):
            current[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return tables


def test_worked_example_notebook_shows_the_published_tables(tmp_path, monkeypatch):
    nb = execute(NOTEBOOKS[0], tmp_path, monkeypatch)
    tables = _printed_tables(nb)
    # ../shared/reference/README.md: the original demo's BLUPs (an older lme4, within 3e-5)
    published = {
        "1": [15.9897] * 5,
        "2": [11.32997, 13.14321, 24.89537, 12.34319, 10.05969],
        "3": [13.19965, 16.31164, 17.47962, 15.49802, 13.82224],
        "1b": [15.29543, 14.08403, 14.00061, 16.92004, 17.40445],
    }
    assert sorted(tables) == sorted(published)
    for model, blups in published.items():
        shown = [tables[model][f"g{i}"][1] for i in range(1, 6)]
        # shown to 5 decimals: 3e-5 relative for the old lme4, plus half a unit of display
        assert shown == pytest.approx(blups, rel=3e-5, abs=5e-6)
    fixed_effects = [tables["1"][f"g{i}"][0] for i in range(1, 6)]
    assert fixed_effects == pytest.approx(
        [17.88528, 18.38737, 14.85108, 14.92801, 13.89675], abs=5e-6
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_need_no_widget_manager(path):
    # a progress bar saved as a Jupyter widget makes the rendered page (docs, GitHub) load a
    # widget manager from a CDN and show nothing: committed notebooks carry plain outputs only
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata
    views = [
        c.execution_count
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert not views, f"cells {views} hold widget outputs: execute with progress bars off"


def test_notebook_setup_sets_dpi_fast_mode_and_turns_progress_bars_off(monkeypatch):
    import logging

    import matplotlib

    import bayeshrink as bs
    from bayeshrink.bayes.sampling import _interactive

    monkeypatch.setenv("BAYESHRINK_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("BAYESHRINK_PROGRESSBAR", "1")  # restored by monkeypatch afterwards
    with matplotlib.rc_context():
        s = bs.notebook_setup(draws=1000, fast_draws=50, seed=7, dpi=120)
        assert matplotlib.rcParams["figure.dpi"] == 120
    assert (s.fast, s.draws, s.seed) == (True, 50, 7)
    assert logging.getLogger("pymc").level == logging.WARNING
    # outside pytest (no PYTEST_CURRENT_TEST) a notebook would show a widget progress bar
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert not _interactive()
    monkeypatch.setenv("BAYESHRINK_NOTEBOOK_FAST", "0")
    with matplotlib.rc_context():
        assert bs.notebook_setup(draws=1000, fast_draws=50).draws == 1000
