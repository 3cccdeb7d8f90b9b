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

A formula fit with covariates and one scalar random intercept (``y ~ x + (1 | g)``) is the same
picture once the other fixed effects are held at their estimates beta_hat: ybar_j becomes the
group's own intercept, its mean of y - x'beta_hat (``table()["no_pooling"]``), and mu the fixed
intercept. Given beta_hat, the random intercept's posterior is exactly the one-way formula above
with these numbers, and the GLS mean of the own intercepts at the fitted value is the fit's
intercept (the intercept's GLS normal equation, sum_j w_j (ybar_j - mu) = 0). The page says
which effects are held fixed.

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
from .. import DataTypeError, FactorFit, MixedFit, MultiFit, OutputError, ShrinkageFit
from ..display import fmt

__all__ = ["Explorer", "explore", "fit_data", "page_html", "write_page"]

_HERE = Path(__file__).parent
WIDGET_JS = _HERE / "widget.js"
WIDGET_CSS = _HERE / "widget.css"


def _numbers(values) -> list[float | None]:
    """Plain floats for JSON; NaN (e.g. n for summary data) becomes null."""
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def _check_scalar_intercept(fit) -> list[str]:
    """The fixed terms held at their estimates, once ``fit`` is known to have what the explorer
    draws: one grouping factor whose only random term is an intercept, with a fixed intercept."""
    if not isinstance(fit, (ShrinkageFit, MixedFit)):
        if isinstance(fit, (MultiFit, FactorFit)):
            raise DataTypeError(
                f"`fit` must have one grouping factor for the explorer; got a {type(fit).__name__} "
                f"of {fit.formula!r}, which has several. The explorer draws one scalar random "
                "intercept with everything else held at its estimate, and the other factors' "
                "effects are random, not held: fit one factor, e.g. "
                "bs.fit(df, formula='y ~ x + (1 | g)')."
            )
        raise DataTypeError(
            f"`fit` must be a fit from bs.fit or bs.fit_summary with a scalar random intercept; "
            f"got {type(fit).__name__}. Fit one with `bs.fit(df, y=..., group=...)` or "
            "`bs.fit(df, formula='y ~ x + (1 | group)')`."
        )
    if isinstance(fit, ShrinkageFit):
        return []
    terms = list(fit.random_terms)
    if len(terms) == 1 and terms != ["Intercept"]:
        raise DataTypeError(
            f"`fit` must have a scalar random intercept (1 | {fit.group}) as its only random "
            f"term for the explorer; got the random slope {terms[0]!r} alone on {fit.group} in "
            f"{fit.formula!r}. The explorer draws groups' intercepts shrinking toward the fixed "
            f"intercept, not slopes: explore the same fixed part with (1 | {fit.group}) "
            "instead, or draw the slopes with bs.plot_forest(fit)."
        )
    if terms != ["Intercept"]:
        raise DataTypeError(
            f"`fit` must have a scalar random intercept (1 | {fit.group}) as its only random "
            f"term for the explorer; got the random terms {terms} on {fit.group} in "
            f"{fit.formula!r}. Its BLUPs move jointly, which the one-parameter picture does "
            f"not draw: explore the same fixed part with (1 | {fit.group}) instead, and see "
            "bs.plot_shrinkage_2d for the joint move."
        )
    if "Intercept" not in fit.fixed_terms:
        raise DataTypeError(
            f"`fit` must have a fixed intercept for the explorer; got {fit.formula!r}, whose "
            "random intercepts shrink toward 0 rather than toward an estimated mean. Add the "
            "intercept (drop '0 +' or '- 1')."
        )
    return [t for t in fit.fixed_terms if t != "Intercept"]


def fit_data(fit: ShrinkageFit | MixedFit, name: str = "") -> dict[str, Any]:
    """Everything the explorer reads from a fit's scalar random intercept, as plain numbers and
    labels.

    Parameters
    ----------
    fit : ShrinkageFit or MixedFit
        From :func:`bayeshrink.fit` (long data, a one-way model or a formula whose only random
        term is ``(1 | group)``, with any fixed effects) or :func:`bayeshrink.fit_summary`. The
        other fixed effects are held at their estimates (see the module docstring).
    name : str, optional
        Shown in the explorer's model menu when it holds several fits.

    Returns
    -------
    dict
        JSON-ready: ``kind``, ``method``, ``response``, ``group``, ``mu``, ``tau``, ``sigma``
        and ``ratio`` (None for summary data), ``boundary``, per group ``labels`` (str),
        ``n``, ``own`` (the no-pooling estimate), ``se``, ``blup`` and ``shrinkage``; and
        ``formula``, ``held`` (a sentence naming what is held fixed, "" for a one-way model)
        and ``theta`` (what a group's effect is).
    """
    others = _check_scalar_intercept(fit)
    table = fit.table()
    long = fit.data_kind == "long"
    response = str(fit.response)
    if isinstance(fit, ShrinkageFit):
        mu, tau, ratio = float(fit.mu), float(fit.tau), float(fit.var_ratio)
    else:
        mu, tau = float(fit.fixef["Intercept"]), float(fit.sd_re()["Intercept"])
        ratio = tau**2 / float(fit.sigma) ** 2
    if others:
        beta = fit.fixef
        values = ", ".join(f"{t} = {fmt(beta[t], 4)}" for t in others)
        held = (
            f"Held at their estimates: the fixed effects {values}. Each group's own estimate "
            f"ȳⱼ is its intercept, its mean of {response} minus these terms; μ is the fixed "
            "intercept."
        )
        theta = f"the group's intercept of {response}, other fixed effects held"
    else:
        held = ""
        theta = f"the group's mean of {response}"
    return {
        "name": str(name),
        "kind": fit.data_kind,
        "method": str(fit.method),
        "response": response,
        "group": str(table.index.name or "group"),
        "formula": str(fit.formula),
        "held": held,
        "theta": theta,
        "mu": mu,
        "tau": tau,
        "sigma": float(fit.sigma) if long else None,
        "ratio": ratio if long else None,
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
    """An interactive shrinkage explorer for a fit's scalar random intercept (or several fits,
    to choose among): a one-way fit, or a formula fit whose only random term is ``(1 | group)``,
    its other fixed effects held at their estimates (the page says which).

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
    fits : ShrinkageFit, MixedFit, or dict of str to either
        One fit, or named fits offered in a menu (e.g. ``bs.demo_fits()``). A fit with random
        slopes or several grouping factors is refused with a message naming the term needed.
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
