"""The explorer page and the documentation site in a real browser (headless Chromium).

Driven by Playwright's Python API with the system's Chromium (Debian: ``apt-get install
chromium``); without one these tests skip. Screenshots go to a pytest tmp folder, and also to
``$BAYESHRINK_SCREENSHOTS`` when that names a folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs
from bayeshrink.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "headless Chromium not found: install it to run the browser tests "
        "(Debian/Ubuntu: `apt-get install chromium`)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright not installed: `pip install playwright`"
)

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "</script><img src=x onerror=alert(1)>"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Save a screenshot in a tmp folder (and in $BAYESHRINK_SCREENSHOTS if set)."""
    folder = tmp_path_factory.mktemp("screenshots")
    extra = os.environ.get("BAYESHRINK_SCREENSHOTS")

    def save(page, name: str, **kw) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), **kw)
        assert path.stat().st_size > 5000  # something was drawn
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(extra) / path.name)
        return path

    return save


class Opened:
    """A page with everything it logged, fetched and tried to pop up."""

    def __init__(self, browser, url: str, width: int = 1400, height: int = 1000):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

        def dialog(d):
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", dialog)
        self.page.goto(url)

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def close(self):
        self.page.close()


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore") / "demo.html"
    assert main(["explore", "--demo", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def demo(browser, demo_page):
    opened = Opened(browser, demo_page.as_uri())
    yield opened
    opened.close()


def closed_form(fit, value: float, mult: float = 1.0):
    """BLUPs and shrinkage at tau^2/sigma^2 = value (long) or tau = value (summary), computed
    here from the fit's table, with mu the GLS mean at that setting."""
    t = fit.table()
    if fit.data_kind == "long":
        se2 = fit.sigma**2 / (t["n"].to_numpy() * mult)
        tau2 = value * fit.sigma**2
    else:
        se2 = t["se"].to_numpy() ** 2 / mult
        tau2 = value**2
    own = t["no_pooling"].to_numpy()
    b = se2 / (se2 + tau2)
    w = 1.0 / (se2 + tau2)
    mu = np.sum(w * own) / np.sum(w)
    return mu + (1 - b) * (own - mu), b


def groups_of(state) -> tuple[list[str], np.ndarray, np.ndarray]:
    g = state["groups"]
    return (
        [x["label"] for x in g],
        np.array([x["blup"] for x in g]),
        np.array([x["shrinkage"] for x in g]),
    )


def test_demo_page_loads_clean(demo):
    state = demo.js("window.bayeshrink.state()")
    assert demo.errors == [] and demo.dialogs == []
    assert demo.requests == [demo.page.url]  # the page itself, nothing else
    assert state["model"].startswith("Model 1:") and state["kind"] == "long"
    assert state["ratio"] == 0.0  # model 1 is a boundary fit: it opens at tau = 0
    assert "Complete pooling" in demo.page.locator(".bsx-status").inner_text()


@pytest.mark.parametrize("model", ["1", "2", "3", "1b"])
def test_set_ratio_matches_closed_form(demo, model, shots):
    from bayeshrink.demo import SCENARIOS

    fit = bs.demo_fits()[model]
    t = fit.table()
    demo.js("(name) => window.bayeshrink.setModel(name)", SCENARIOS[model].title)

    # ratio 0: complete pooling, every BLUP is the complete-pooling mean
    s0 = demo.js("window.bayeshrink.setRatio(0)")
    labels, blup, b = groups_of(s0)
    assert labels == [str(x) for x in t.index]
    np.testing.assert_allclose(blup, fit.complete_pooling, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(b, 1.0)
    assert s0["regime"] == "complete"
    assert "Complete pooling" in demo.page.locator(".bsx-status").inner_text()
    if model == "2":
        shots(demo.page, "explorer_ratio_0", full_page=True)

    # the fitted ratio: the fit's own BLUPs and shrinkage
    sf = demo.js("(r) => window.bayeshrink.setRatio(r)", fit.var_ratio)
    _, blup, b = groups_of(sf)
    np.testing.assert_allclose(blup, t["blup"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(b, t["shrinkage"], rtol=0, atol=1e-12)
    assert sf["mu"] == pytest.approx(fit.mu, abs=1e-9)
    sd = np.array([g["posterior_sd"] for g in sf["groups"]])
    np.testing.assert_allclose(sd, t["cond_sd"], rtol=0, atol=1e-9)  # lme4's condVar SDs
    assert "(the fitted value" in demo.page.locator(".bsx-ratio output").inner_text()
    if model == "2":
        shots(demo.page, "explorer_ratio_fit", full_page=True)

    # far above the fit: no pooling
    big = 1e4 * max(fit.var_ratio, 1.0)
    sb = demo.js("(r) => window.bayeshrink.setRatio(r)", big)
    _, blup, b = groups_of(sb)
    ref_blup, ref_b = closed_form(fit, big)
    np.testing.assert_allclose(blup, ref_blup, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b, ref_b, rtol=1e-12)
    np.testing.assert_allclose(blup, t["no_pooling"], atol=1e-2 * t["se"].max())
    assert sb["regime"] == "none"
    assert "No pooling" in demo.page.locator(".bsx-status").inner_text()
    if model == "2":
        shots(demo.page, "explorer_ratio_far", full_page=True)

    # a group-size multiplier: se_j = sigma / sqrt(n_j m)
    sm = demo.js(
        "() => { window.bayeshrink.setRatio(0.3); return window.bayeshrink.setMultiplier(4); }"
    )
    _, blup, b = groups_of(sm)
    ref_blup, ref_b = closed_form(fit, 0.3, mult=4.0)
    np.testing.assert_allclose(blup, ref_blup, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b, ref_b, rtol=1e-12)
    demo.js("window.bayeshrink.reset()")
    assert demo.errors == []


def test_keyboard_moves_the_slider_and_the_picture(demo, shots):
    from bayeshrink.demo import SCENARIOS

    fit = bs.demo_fits()["2"]
    page = demo.page
    demo.js("(name) => window.bayeshrink.setModel(name)", SCENARIOS["2"].title)
    demo.js("window.bayeshrink.reset()")
    slider = page.get_by_role("slider", name=re.compile("variance ratio"))
    posterior = page.locator("svg[data-panel^='prior'] path[data-curve='post']")
    before = (posterior.get_attribute("d"), slider.get_attribute("aria-valuetext"))
    shot_before = page.screenshot()
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    state = demo.js("window.bayeshrink.state()")
    # 50 steps per decade: five steps right multiply the ratio by 10^(5/50)
    assert state["ratio"] == pytest.approx(fit.var_ratio * 10 ** (5 / 50), rel=1e-12)
    _, blup, _ = groups_of(state)
    np.testing.assert_allclose(blup, closed_form(fit, state["ratio"])[0], rtol=0, atol=1e-9)
    after = (posterior.get_attribute("d"), slider.get_attribute("aria-valuetext"))
    assert after[0] != before[0] and after[1] != before[1]
    assert page.screenshot() != shot_before
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    assert demo.js("window.bayeshrink.state().ratio") == fit.var_ratio  # back on the mark
    page.keyboard.press("Home")
    assert demo.js("window.bayeshrink.state().regime") == "complete"
    assert page.locator("svg[data-panel^='prior'] [data-curve='spike']").count() == 1
    page.keyboard.press("End")
    assert demo.js("window.bayeshrink.state().regime") == "none"
    shots(page, "explorer_keyboard_end")
    assert slider.get_attribute("aria-label").startswith("variance ratio")
    assert demo.errors == []


def test_summary_data_control_is_tau(browser, tmp_path):
    df = pd.DataFrame(
        {
            "study": ["a", "b", "c", "d", "e"],
            "est": [-2.0, 0.0, 3.0, 8.0, 10.0],
            "se": [1.0, 2.0, 1.5, 3.0, 1.0],
        }
    )
    fit = bs.fit_summary(df, estimate="est", se="se", group="study")
    path = bs.explore(fit).save(tmp_path / "summary.html")
    opened = Opened(browser, path.as_uri())
    try:
        state = opened.js("window.bayeshrink.state()")
        assert state["kind"] == "summary" and state["ratio"] is None
        assert state["tau"] == pytest.approx(fit.tau, rel=1e-15)
        _, blup, _ = groups_of(state)
        np.testing.assert_allclose(blup, fit.table()["blup"], rtol=0, atol=1e-9)
        for tau in (0.0, 0.5, 50.0):
            _, blup, b = groups_of(opened.js("(t) => window.bayeshrink.setTau(t)", tau))
            ref_blup, ref_b = closed_form(fit, tau)
            np.testing.assert_allclose(blup, ref_blup, rtol=0, atol=1e-9)
            np.testing.assert_allclose(b, ref_b, rtol=1e-12)
        text = opened.page.locator(".bsx").inner_text()
        assert "there is no σ, so the control is τ itself" in text
        err = opened.js(
            "() => { try { window.bayeshrink.setRatio(1); } catch (e) { return e.message; } }"
        )
        assert "use setTau" in err
        assert opened.errors == []
    finally:
        opened.close()


def _hostile_fit():
    df = pd.DataFrame(
        {
            "<script>alert(2)</script>": [HOSTILE] * 3 + ['"><svg onload=alert(3)>'] * 3,
            "<b onmouseover=alert(4)>y</b>": [1.0, 2.0, 4.0, 3.0, 5.0, 9.0],
        }
    )
    return bs.fit(df, y="<b onmouseover=alert(4)>y</b>", group="<script>alert(2)</script>")


# the fit orders groups by label: '"' sorts before '<'
SHOWN = ['"><svg onload=alert(3)>', HOSTILE]


def _assert_shown_as_text(opened):
    page = opened.page
    assert opened.dialogs == [] and opened.errors == []
    assert page.locator("img").count() == 0
    assert page.locator("svg [onload], [onerror], [onmouseover], b").count() == 0
    rows = page.locator(".bsx-table tbody th").all_inner_texts()
    assert rows == SHOWN
    assert page.locator(".bsx-table tbody th").first.is_visible()
    opened.js("(label) => window.bayeshrink.setGroup(label)", HOSTILE)
    assert page.locator(".bsx-panel svg .bsx-title").first.text_content().startswith(HOSTILE)
    options = page.locator(".bsx-mult select option").all_inner_texts()
    assert options == SHOWN
    assert (
        "<b onmouseover=alert(4)>y</b> by <script>alert(2)</script>"
        in page.locator(".bsx-heading").inner_text()
    )
    labels, _, _ = groups_of(opened.js("window.bayeshrink.state()"))
    assert labels == SHOWN


def test_hostile_labels_are_text_in_the_page(browser, tmp_path, shots):
    fit = _hostile_fit()
    path = bs.explore(fit, title=HOSTILE).save(tmp_path / "hostile.html")
    opened = Opened(browser, path.as_uri())
    try:
        assert opened.page.title() == HOSTILE
        _assert_shown_as_text(opened)
        opened.js("window.bayeshrink.setGroup(1)")
        dots = opened.page.locator(".bsx-group circle.bsx-lik")
        dots.first.hover()  # the tooltip (an SVG <title>) holds the label as text
        dots.first.click()  # clicking a group shows it
        assert opened.js("window.bayeshrink.state().group") in SHOWN
        assert opened.dialogs == [] and opened.errors == []
        shots(opened.page, "explorer_hostile_labels")
    finally:
        opened.close()


def test_hostile_labels_are_text_in_the_widget(browser):
    """The anywidget front end: the widget's ES module, imported as a module, rendered with the
    state the kernel would sync (``widget.get_state()``) and a stand-in for anywidget's model."""
    widget = bs.explore(_hostile_fit())
    state = {k: v for k, v in widget.get_state().items() if k in widget.keys}
    esm = Path(widget._esm).read_text() if isinstance(widget._esm, Path) else str(widget._esm)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_content("<!DOCTYPE html><div id='el'></div>")
    page.evaluate(
        """async ([source, state]) => {
            const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
            const mod = await import(url);
            const handlers = {};
            const model = {
                get: (k) => state[k],
                set: (k, v) => { state[k] = v; },
                on: (e, f) => { (handlers[e] ||= []).push(f); },
                off: () => {},
                save_changes: () => {},
            };
            mod.default.render({ model, el: document.getElementById("el") });
        }""",
        [esm, state],
    )

    class Shim:
        pass

    opened = Shim()
    opened.page, opened.dialogs, opened.errors = page, dialogs, errors
    opened.js = lambda expr, arg=None: page.evaluate(expr, arg)
    try:
        _assert_shown_as_text(opened)
    finally:
        page.close()


# ------------------------------------------------------------------ the documentation site
SOURCE_SUFFIXES = {".py", ".js", ".css", ".ipynb", ".png", ".csv", ".md", ".rst", ".html"}


def _newest(paths) -> float:
    return max(
        p.stat().st_mtime
        for base in paths
        for p in base.rglob("*")
        if p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts
    )


@pytest.fixture(scope="session")
def docs_html(tmp_path_factory) -> Path:
    """The built site: docs/_build/html when `make docs` built it after the last change to any
    source, else a fresh build (as `make docs`: warnings are errors) into a tmp folder."""
    pytest.importorskip("sphinx", reason="the docs extra is not installed: pip install '.[docs]'")
    built = ROOT / "docs" / "_build" / "html"
    stamp = built / ".built"  # touched by `make docs` after a build without warnings
    if stamp.exists():
        newest = max(
            _newest([ROOT / "bayeshrink", ROOT / "notebooks"]),
            _newest([ROOT / "docs" / "_ext", ROOT / "docs" / "_templates"]),
            max(p.stat().st_mtime for p in (ROOT / "docs").glob("*.*")),  # conf.py, pages
        )
        if stamp.stat().st_mtime > newest:
            return built
    out = tmp_path_factory.mktemp("docs") / "html"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(ROOT / "docs"),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_docs_pages(browser, docs_html, shots):
    landing = Opened(browser, (docs_html / "index.html").as_uri(), width=1300, height=900)
    try:
        assert "bayeshrink" in landing.page.title()
        assert landing.page.get_by_role(
            "heading", name="bayeshrink", exact=False
        ).first.is_visible()
        assert landing.page.get_by_text("The Bayesian reading of mixed models").first.is_visible()
        assert landing.errors == []
        assert all(u.startswith("file://") for u in landing.requests)
        shots(landing.page, "docs_landing")
    finally:
        landing.close()

    api = Opened(browser, (docs_html / "generated" / "bayeshrink.fit.html").as_uri(), 1300, 900)
    try:
        assert api.page.locator("dt.sig").first.inner_text().startswith("bayeshrink.fit(")
        assert api.page.get_by_text("Parameters").first.is_visible()
        assert api.errors == []
        shots(api.page, "docs_api_fit")
    finally:
        api.close()

    nb = docs_html / "notebooks" / "01_blup_vs_no_pooling.html"
    page = Opened(browser, nb.as_uri(), 1300, 900)
    try:
        images = page.js(
            "[...document.querySelectorAll('img')].map(i => [i.complete, i.naturalWidth])"
        )
        assert images and all(ok and w > 0 for ok, w in images)  # the committed figures show
        assert page.page.locator("math").count() > 0  # maths rendered to MathML at build time
        assert page.errors == []
        shots(page.page, "docs_notebook_01")
        page.page.locator("img").first.scroll_into_view_if_needed()
        shots(page.page, "docs_notebook_01_figure")
    finally:
        page.close()

    explorer = Opened(browser, (docs_html / "explorer.html").as_uri(), 1300, 900)
    try:
        frame = explorer.page.frame_locator("iframe").locator(".bsx-status")
        assert "pooling" in frame.inner_text()
        inner = explorer.page.frames[1]
        assert inner.evaluate("window.bayeshrink.state().groups.length") == 5
        assert explorer.errors == []
        assert all(u.startswith("file://") for u in explorer.requests)
        shots(explorer.page, "docs_explorer", full_page=True)
    finally:
        explorer.close()


def test_many_groups_draw_a_subset_and_compute_all(browser, tmp_path):
    rng = np.random.default_rng(7)
    k = 1000
    g = np.repeat(np.arange(k), rng.integers(2, 20, k))
    y = rng.normal(0.0, 1.0, k)[g] + rng.normal(0.0, 2.0, g.size)
    fit = bs.fit(pd.DataFrame({"g": [f"county {i:04d}" for i in g], "y": y}), y="y", group="g")
    opened = Opened(browser, bs.explore(fit).save(tmp_path / "many.html").as_uri())
    try:
        page = opened.page
        assert page.locator(".bsx-group").count() == 300  # spread over the estimates
        assert page.locator(".bsx-table tbody tr").count() == 200
        assert "first 200 of 1000 groups" in page.locator(".bsx").inner_text()
        _, blup, b = groups_of(opened.js("(r) => window.bayeshrink.setRatio(r)", 0.5))
        ref_blup, ref_b = closed_form(fit, 0.5)
        np.testing.assert_allclose(blup, ref_blup, rtol=0, atol=1e-9)  # every group
        np.testing.assert_allclose(b, ref_b, rtol=1e-12)
        opened.js("window.bayeshrink.setGroup('county 0999')")
        chosen = page.locator(".bsx-group.bsx-chosen")
        assert chosen.count() == 1 and "county 0999" in chosen.locator("title").text_content()
        assert opened.errors == []
    finally:
        opened.close()
