"""The shrinkage explorer: move the variance ratio and the group size, watch the BLUPs move.

:func:`explore` returns an :class:`Explorer`, an `anywidget <https://anywidget.dev>`_ (one ES
module that runs in Jupyter, JupyterLab, VS Code and marimo); :meth:`Explorer.save` and
``bayeshrink explore`` write the same explorer as one self-contained HTML page (scripts and styles
inline, nothing fetched from the network).

Everything on screen is computed in the browser in closed form from a few numbers per group that
:func:`fit_data` reads from the fit once:

- long data: se_j = sigma / sqrt(n_j m), with sigma held at its fitted value, the control the
  variance ratio tau^2/sigma^2 and m the group-size multiplier;
- summary data (known standard errors): se_j / sqrt(m); there is no sigma, so the control is tau;
- B_j = se_j^2 / (se_j^2 + tau^2), BLUP_j = mu + (1 - B_j)(ybar_j - mu), posterior SD
  sqrt((1 - B_j) se_j^2);
- mu is recomputed at each setting as the GLS mean sum(w_j ybar_j) / sum(w_j) with
  w_j = 1 / (se_j^2 + tau^2). At the fitted value this is the fit's mu_hat (REML, ML and DL all
  put mu_hat there), at tau = 0 the complete-pooling mean.

In the page, ``window.bayeshrink`` holds a small API: ``setRatio(r)``, ``setTau(t)``,
``setMultiplier(m)``, ``setGroup(label)``, ``setModel(name)``, ``reset()`` and ``state()``, which
returns ``{ratio, tau, mu, regime, groups: [{label, blup, shrinkage, ...}, ...]}``. With several
explorers on one page (a notebook), ``window.bayeshrink`` is the last one shown; each explorer's
root element (``.bsx``) carries its own as ``element.bayeshrink``.

Group labels and column names are text: they reach the page as JSON inside a non-executed
``<script type="application/json">`` with ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, and are
shown with ``textContent``; the page's Content-Security-Policy allows only its own script.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anywidget
import traitlets

# the public namespace only, so that moving modules inside the package costs nothing here
from .. import DataTypeError, OutputError, ShrinkageFit

__all__ = ["Explorer", "explore", "fit_data", "page_html", "write_page"]

_HERE = Path(__file__).parent
WIDGET_JS = _HERE / "widget.js"
WIDGET_CSS = _HERE / "widget.css"


def _numbers(values) -> list[float | None]:
    """Plain floats for JSON; NaN (e.g. n for summary data) becomes null."""
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def fit_data(fit: ShrinkageFit, name: str = "") -> dict[str, Any]:
    """Everything the explorer reads from a one-way fit, as plain numbers and labels.

    Parameters
    ----------
    fit : ShrinkageFit
        From :func:`bayeshrink.fit` (long data) or :func:`bayeshrink.fit_summary`.
    name : str, optional
        Shown in the explorer's model menu when it holds several fits.

    Returns
    -------
    dict
        JSON-ready: ``kind``, ``method``, ``response``, ``group``, ``mu``, ``tau``, ``sigma``
        and ``ratio`` (None for summary data), ``boundary``, and per group ``labels`` (str),
        ``n``, ``own`` (the no-pooling estimate), ``se``, ``blup`` and ``shrinkage``.
    """
    if not isinstance(fit, ShrinkageFit):
        raise DataTypeError(
            f"`fit` must be a one-way fit from bs.fit or bs.fit_summary; got "
            f"{type(fit).__name__}. The explorer shows one-way (y ~ 1 + (1 | group)) models; "
            "fit one with `bs.fit(df, y=..., group=...)`."
        )
    table = fit.table()
    long = fit.data_kind == "long"
    return {
        "name": str(name),
        "kind": fit.data_kind,
        "method": str(fit.method),
        "response": str(fit.stats.response),
        "group": str(table.index.name or "group"),
        "mu": float(fit.mu),
        "tau": float(fit.tau),
        "sigma": float(fit.sigma) if long else None,
        "ratio": float(fit.var_ratio) if long else None,
        "boundary": bool(fit.boundary),
        "labels": [str(v) for v in table.index],
        "n": _numbers(table["n"]),
        "own": _numbers(table["no_pooling"]),
        "se": _numbers(table["se"]),
        "blup": _numbers(table["blup"]),
        "shrinkage": _numbers(table["shrinkage"]),
    }


def _payload(fits, title: str | None) -> dict[str, Any]:
    if isinstance(fits, Mapping):
        if not fits:
            raise DataTypeError(
                "`fits` must hold at least one fit; got an empty mapping. Pass a fit, or a dict "
                "of named fits such as bs.demo_fits()."
            )
        datasets = [fit_data(f, name) for name, f in fits.items()]
    else:
        datasets = [fit_data(fits)]
    if title is None:
        first = datasets[0]
        title = f"Shrinkage explorer: {first['response']} by {first['group']}"
    return {"title": str(title), "datasets": datasets}


class Explorer(anywidget.AnyWidget):
    """The shrinkage explorer as a notebook widget (Jupyter, JupyterLab, VS Code, marimo).

    Made by :func:`explore`. The traits follow the controls both ways: set ``ratio`` (long data)
    or ``tau``, ``multiplier``, ``group`` (an index) or ``dataset`` (an index into the fits) from
    Python and the pictures move; move a control and the traits change.
    """

    _esm = WIDGET_JS
    _css = WIDGET_CSS
    data = traitlets.Dict().tag(sync=True)
    dataset = traitlets.Int(0).tag(sync=True)
    ratio = traitlets.Float(None, allow_none=True).tag(sync=True)
    tau = traitlets.Float(0.0).tag(sync=True)
    multiplier = traitlets.Float(1.0).tag(sync=True)
    group = traitlets.Int(0).tag(sync=True)

    def save(self, path: str | Path) -> Path:
        """Write the explorer as one self-contained HTML page; return its path.

        The page opens at the fitted values, whatever the widget shows now.
        """
        return write_page(self.data, path)


def explore(fits, *, title: str | None = None) -> Explorer:
    """An interactive shrinkage explorer for a one-way fit (or several, to choose among).

    Controls: the variance ratio tau^2/sigma^2 on a log scale from 0 (complete pooling) to far
    above the fit (no pooling), with the fitted value marked and a reset; a group-size multiplier
    m (n_j -> n_j m); the group to show. Views: that group's prior N(mu, tau^2), likelihood
    N(ybar_j, se_j^2) and posterior N(BLUP_j, (1 - B_j) se_j^2); every group's arrow from its
    own estimate to its BLUP; the shrinkage curve B(n) = 1 / (1 + n tau^2/sigma^2) with the groups
    on it. For summary data (:func:`bayeshrink.fit_summary`) there is no sigma: the control is
    tau itself, and the curve is B(se) = se^2 / (se^2 + tau^2).

    mu is recomputed at each setting as the GLS mean sum(w_j ybar_j) / sum(w_j),
    w_j = 1 / (se_j^2 + tau^2): the fit's mu_hat at the fitted value, the complete-pooling mean
    at tau = 0. sigma (long data) is held at its fitted value.

    Parameters
    ----------
    fits : ShrinkageFit or dict of str to ShrinkageFit
        One fit, or named fits offered in a menu (e.g. ``bs.demo_fits()``).
    title : str, optional
        The heading; by default "Shrinkage explorer: <response> by <group>".

    Returns
    -------
    Explorer
        Displays itself in a notebook; :meth:`Explorer.save` writes a self-contained page.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> demo = bs.load_dataset("seed_demo")
    >>> fit = bs.fit(demo[demo["model"] == "2"], y="y", group="group")
    >>> widget = bs.explore(fit)
    >>> round(widget.ratio, 4), widget.multiplier
    (1.7241, 1.0)
    >>> widget.data["datasets"][0]["labels"]
    ['g1', 'g2', 'g3', 'g4', 'g5']
    """
    payload = _payload(fits, title)
    first = payload["datasets"][0]
    return Explorer(data=payload, ratio=first["ratio"], tau=first["tau"])


def _script_json(obj: Any) -> str:
    """JSON that is safe inside an HTML ``<script>`` element: no ``<``, ``>``, ``&``, U+2028 or
    U+2029 survives unescaped, so no data can close the element or start markup."""
    text = json.dumps(obj, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


_BOOT = """
// The standalone page: a tiny stand-in for anywidget's model, then the same render().
{
  const values = {
    data: JSON.parse(document.getElementById("bayeshrink-data").textContent),
    dataset: 0, ratio: null, tau: null, multiplier: 1, group: 0,
  };
  const handlers = {};
  const model = {
    get: (key) => values[key],
    set(key, value) {
      const old = values[key];
      values[key] = value;
      if (old !== value) for (const f of handlers["change:" + key] || []) f();
    },
    on(event, f) { (handlers[event] ||= []).push(f); },
    off(event, f) { handlers[event] = (handlers[event] || []).filter((g) => g !== f); },
    save_changes() {},
  };
  render({ model, el: document.getElementById("bayeshrink-explorer") });
}
"""


def page_html(data: Mapping[str, Any]) -> str:
    """The explorer as one self-contained HTML page (``data`` as made by :func:`explore`)."""
    script = WIDGET_JS.read_text(encoding="utf-8") + _BOOT
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'"
    css = WIDGET_CSS.read_text(encoding="utf-8")
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{html.escape(str(data.get('title', 'Shrinkage explorer')))}</title>\n"
        f"<style>\nbody {{ margin: 0; background: #fff; }}\n{css}</style>\n</head>\n<body>\n"
        "<main id='bayeshrink-explorer'></main>\n"
        "<script type='application/json' id='bayeshrink-data'>"
        f"{_script_json(dict(data))}</script>\n"
        f"<script type='module'>{script}</script>\n</body>\n</html>\n"
    )


def write_page(fits, path: str | Path, *, title: str | None = None) -> Path:
    """Write the explorer of ``fits`` (a fit, a dict of named fits, or an explorer's ``data``)
    to ``path`` as one self-contained HTML page; return the path."""
    if isinstance(fits, Mapping) and isinstance(fits.get("datasets"), list):  # explorer data
        data = fits
    else:
        data = _payload(fits, title)
    text = page_html(data)
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(
            f"`out` must be a file in an existing folder; got {str(path)!r}, whose folder does "
            "not exist. Create the folder first or choose another path."
        )
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(
            f"`out` must be a writable file; got {str(path)!r} ({exc.strerror or exc}). "
            "Choose a path you can write to."
        ) from exc
    return path
