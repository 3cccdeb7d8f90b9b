"""Render LaTeX maths as MathML at build time (latex2mathml), so no page fetches MathJax."""

from __future__ import annotations

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _mathml(self, node, display: str) -> None:
    latex = node.astext()
    try:
        markup = convert(latex, display=display)
    except Exception as exc:  # an unsupported command: say where, show the source
        logger.warning("cannot convert %r to MathML: %s", latex, exc, location=node)
        markup = f"<code>{self.encode(latex)}</code>"
    if display == "block":
        self.body.append(f'<div class="math-block">{markup}</div>\n')
    else:
        self.body.append(markup)
    raise nodes.SkipNode


def visit_math(self, node) -> None:
    _mathml(self, node, "inline")


def visit_math_block(self, node) -> None:
    _mathml(self, node, "block")


def setup(app):
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_math_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
