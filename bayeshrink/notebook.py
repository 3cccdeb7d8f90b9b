"""One call that readies a notebook: figure resolution, fast mode, logging, no progress bars.

Every bayeshrink notebook starts with ``settings = bs.notebook_setup()`` and reads its run sizes
from the result, so that the plumbing stays out of the narrative. The test suite runs the
notebooks with ``BAYESHRINK_NOTEBOOK_FAST=1`` (fewer draws, the same code).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

__all__ = ["NotebookSettings", "notebook_setup"]

FAST_ENV = "BAYESHRINK_NOTEBOOK_FAST"
PROGRESS_ENV = "BAYESHRINK_PROGRESSBAR"


@dataclass(frozen=True)
class NotebookSettings:
    """What :func:`notebook_setup` decided: ``fast`` mode, ``draws`` per chain and the ``seed``."""

    fast: bool
    draws: int
    seed: int


def notebook_setup(
    *, draws: int = 1000, fast_draws: int = 200, seed: int = 20261125, dpi: int = 110
) -> NotebookSettings:
    """Set up a notebook: sharp figures, quiet logs, plain-text outputs, fast mode for tests.

    * figures at ``dpi`` (inline PNGs and saved files), mathtext in titles and labels;
    * fast mode when the environment variable ``BAYESHRINK_NOTEBOOK_FAST`` is ``"1"``: then
      ``draws`` is ``fast_draws`` (the test suite's setting);
    * PyMC's and nutpie's INFO lines ("NUTS: [...]") off, and sampler progress bars off
      (``BAYESHRINK_PROGRESSBAR=0``), so no Jupyter widget is saved in the outputs.

    Parameters
    ----------
    draws, fast_draws : int
        Draws per chain in a full run and in fast mode.
    seed : int
        The random seed the notebook passes on.
    dpi : int
        Figure resolution (100 or more keeps text sharp).

    Returns
    -------
    NotebookSettings

    Examples
    --------
    >>> import bayeshrink as bs
    >>> s = bs.notebook_setup(draws=1000, fast_draws=200)
    >>> s.draws in (200, 1000)
    True
    """
    import matplotlib as mpl

    fast = os.environ.get(FAST_ENV) == "1"
    mpl.rcParams["figure.dpi"] = dpi
    mpl.rcParams["savefig.dpi"] = dpi
    os.environ[PROGRESS_ENV] = "0"
    try:  # pymc sets its own logger to INFO on import: import it first, then quieten it
        import pymc  # noqa: F401
    except ImportError:  # pragma: no cover - the bayes extra is not installed
        pass
    for name in ("pymc", "pymc.sampling", "nutpie", "pytensor"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover
        shell = None
    if shell is not None:
        shell.run_line_magic("config", "InlineBackend.figure_formats = ['png']")
        shell.run_line_magic("config", f"InlineBackend.rc = {{'figure.dpi': {dpi}}}")
    return NotebookSettings(fast=fast, draws=fast_draws if fast else draws, seed=seed)
