"""Sphinx configuration: `make docs` builds the site into docs/_build/html (warnings are errors).

The notebooks are rendered from their committed outputs (never re-executed), and the explorer of
the worked example is written at build time by the same code as `bayeshrink explore --demo`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document this checkout's bayeshrink, not an installed copy
sys.path.insert(0, str(DOCS / "_ext"))

import bayeshrink  # noqa: E402


def _copy_if_changed(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dst)


# The notebooks live in ../notebooks; Sphinx reads sources only under docs/, so copy them here
# (docs/notebooks/ is generated and ignored by git).
for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
    _copy_if_changed(nb, DOCS / "notebooks" / nb.name)
# a copy of a notebook that was renamed or removed would be a page outside every toctree
for stale in (DOCS / "notebooks").glob("*.ipynb"):
    if not (ROOT / "notebooks" / stale.name).exists():
        stale.unlink()
for fig in sorted((ROOT / "notebooks" / "figures").glob("*.png")):
    _copy_if_changed(fig, DOCS / "notebooks" / "figures" / fig.name)


EXTRA = DOCS / "_generated" / "extra"  # copied to the site's root
EXTRA.mkdir(parents=True, exist_ok=True)


def _write_explorer(app) -> None:
    """The worked example's explorer, by the code behind `bayeshrink explore --demo`."""
    from bayeshrink.cli import main

    code = main(["explore", "--demo", "--out", str(EXTRA / "explore-demo.html")])
    if code != 0:
        raise RuntimeError("bayeshrink explore --demo failed")


def setup(app):
    app.connect("builder-inited", _write_explorer)


project = "bayeshrink"
author = "bayeshrink developers"
copyright = "bayeshrink developers"
release = version = bayeshrink.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "mathml",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_generated", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
html_extra_path = ["_generated/extra"]

# Notebooks: show the committed outputs; the test suite executes them.
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no widget manager from a CDN: pages fetch nothing
nb_render_markdown_format = "myst"  # Markdown outputs (display(Markdown(...))) keep their maths
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_typehints = "none"  # the numpydoc sections say the types
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

# Maths becomes MathML when the site is built (docs/_ext/mathml.py): no page fetches MathJax.
html_math_renderer = "mathml"

html_theme = "pydata_sphinx_theme"
html_title = "bayeshrink"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_context = {"default_mode": "light"}
html_sidebars = {"explorer": [], "index": [], "install": [], "cli": []}  # pages without sections
html_show_sourcelink = False
