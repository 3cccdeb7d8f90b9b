"""The shrinkage explorer's Python side: the data it reads, the page it writes, the CLI.

What the page does in a browser is tested in tests/test_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs
from bayeshrink.cli import main
from bayeshrink.explorer import _script_json, fit_data, page_html, write_page

HOSTILE = "</script><img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def fit2(seed_demo):
    return bs.fit(seed_demo[seed_demo["model"] == "2"], y="y", group="group")


@pytest.fixture(scope="module")
def summary_fit():
    df = pd.DataFrame(
        {
            "study": ["a", "b", "c", "d", "e"],
            "est": [-2.0, 0.0, 3.0, 8.0, 10.0],
            "se": [1.0, 2.0, 1.5, 3.0, 1.0],
        }
    )
    return bs.fit_summary(df, estimate="est", se="se", group="study")


def test_fit_data_reads_the_table(fit2):
    d = fit_data(fit2, "Model 2")
    t = fit2.table()
    assert d["name"] == "Model 2"
    assert d["kind"] == "long" and d["labels"] == ["g1", "g2", "g3", "g4", "g5"]
    assert d["response"] == "y" and d["group"] == "group"
    np.testing.assert_array_equal(d["own"], t["no_pooling"])
    np.testing.assert_array_equal(d["blup"], t["blup"])
    np.testing.assert_array_equal(d["n"], t["n"])
    assert (d["mu"], d["tau"], d["sigma"], d["ratio"]) == (
        fit2.mu,
        fit2.tau,
        fit2.sigma,
        fit2.var_ratio,
    )
    json.dumps(d, allow_nan=False)  # plain numbers only


def test_fit_data_summary_has_no_sigma(summary_fit):
    d = fit_data(summary_fit)
    assert d["kind"] == "summary" and d["sigma"] is None and d["ratio"] is None
    assert d["n"] == [None] * 5  # NaN in the table becomes null, never NaN in JSON
    assert summary_fit.tau > 0
    json.dumps(d, allow_nan=False)


def test_fit_data_rejects_fits_without_one_scalar_random_intercept():
    sleep = bs.load_dataset("sleepstudy")
    slopes = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    with pytest.raises(
        bs.DataTypeError,
        match=r"`fit` must have a scalar random intercept \(1 \| Subject\) as its only random "
        r"term for the explorer; got the random terms \['Intercept', 'Days'\] on Subject",
    ):
        fit_data(slopes)
    with pytest.raises(bs.DataTypeError, match=r"must have a fixed intercept .*Add the intercept"):
        fit_data(bs.fit(sleep, formula="Reaction ~ 0 + Days + (1 | Subject)"))
    pastes = bs.fit(bs.load_dataset("pastes"), formula="strength ~ 1 + (1 | batch) + (1 | sample)")
    for several in (pastes, pastes.factor_fit("batch")):
        with pytest.raises(
            bs.DataTypeError, match=r"`fit` must have one grouping factor for the explorer; got a"
        ):
            bs.explore(several)
    with pytest.raises(bs.DataTypeError, match=r"`fit` must be a fit from bs.fit .* got dict"):
        fit_data({"a": 1})
    with pytest.raises(bs.DataTypeError, match=r"`fits` must hold at least one fit"):
        bs.explore({})


@pytest.fixture(scope="module")
def sleepstudy_fit():
    return bs.fit(bs.load_dataset("sleepstudy"), formula="Reaction ~ Days + (1 | Subject)")


@pytest.fixture(scope="module")
def radon_fit():
    return bs.fit(bs.load_dataset("radon"), formula="log_radon ~ floor + (1 | county)")


def _js_compute(d: dict, value: float, mult: float = 1.0) -> dict:
    """The page's own compute() (widget.js), run by node on ``d``."""
    source = (Path(bs.explorer.__file__).parent / "widget.js").read_text()
    body = re.search(r"^function compute\(d, value, mult\) \{.*?^\}$", source, re.M | re.S)
    script = (
        f"{body.group(0)}\nconsole.log(JSON.stringify(compute({json.dumps(d)}, {value}, {mult})));"
    )
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", ["radon_fit", "sleepstudy_fit"])
def test_formula_fit_with_covariates_explores_its_random_intercept(name, request):
    fit = request.getfixturevalue(name)
    d = fit_data(fit)
    t = fit.table()
    (other,) = [x for x in fit.fixed_terms if x != "Intercept"]
    assert d["mu"] == fit.fixef["Intercept"] and d["tau"] == fit.sd_re()["Intercept"]
    assert d["ratio"] == pytest.approx(fit.sd_re()["Intercept"] ** 2 / fit.sigma**2, rel=1e-14)
    np.testing.assert_array_equal(d["own"], t["no_pooling"])
    # what is held fixed is said, with its value
    assert d["held"].startswith(f"Held at their estimates: the fixed effects {other} = ")
    assert d["formula"] == fit.formula and "other fixed effects held" in d["theta"]
    # the explorer's closed form (se_j = sigma / sqrt(n_j), GLS mean, one-way BLUP) reproduces
    # the fit at its estimates: the own intercepts' GLS mean is the fixed intercept (the
    # intercept's GLS normal equation) and the BLUPs are lme4's coef()
    own, n = np.asarray(d["own"]), np.asarray(d["n"])
    v = fit.sigma**2 / n
    w = 1 / (v + d["tau"] ** 2)
    assert np.sum(w * own) / np.sum(w) == pytest.approx(fit.fixef["Intercept"], rel=1e-10)
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the page's compute() is checked in test_browser.py")
    r = _js_compute(d, d["ratio"])
    assert r["mu"] == pytest.approx(fit.fixef["Intercept"], rel=1e-10)
    np.testing.assert_allclose(r["blup"], fit.coef()["Intercept"], rtol=1e-10)
    np.testing.assert_allclose(r["postsd"], fit.ranef_sd()["Intercept"], rtol=1e-10)


def test_explorer_page_of_a_formula_fit_says_what_is_held(radon_fit, tmp_path):
    path = bs.explore(radon_fit).save(tmp_path / "radon.html")
    data = json.loads(re.search(r"id='bayeshrink-data'>(.*?)</script>", path.read_text()).group(1))
    (d,) = data["datasets"]
    assert d["held"] == fit_data(radon_fit)["held"] and "floor = " in d["held"]
    assert data["title"] == "Shrinkage explorer: log_radon by county"
    # the page shows d.held, d.formula and d.theta
    js = (Path(bs.explorer.__file__).parent / "widget.js").read_text()
    assert "d.held" in js and "d.theta" in js and "d.formula" in js


def test_cli_explore_formula(tmp_path, capsys):
    csv = tmp_path / "sleep.csv"
    bs.load_dataset("sleepstudy").to_csv(csv, index=False)
    out = tmp_path / "p.html"
    argv = ["explore", str(csv), "--formula", "Reaction ~ Days + (1 | Subject)", "--out", str(out)]
    assert main(argv) == 0
    data = json.loads(re.search(r"id='bayeshrink-data'>(.*?)</script>", out.read_text()).group(1))
    ref = bs.fit(bs.load_dataset("sleepstudy"), formula="Reaction ~ Days + (1 | Subject)")
    np.testing.assert_allclose(data["datasets"][0]["blup"], ref.table()["blup"], rtol=1e-12)
    assert "Days = " in data["datasets"][0]["held"]
    capsys.readouterr()
    slopes = ["explore", str(csv), "--formula", "Reaction ~ Days + (Days | Subject)"]
    assert main([*slopes, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayeshrink: error: `--formula` must have a scalar random intercept")
    both = ["explore", str(csv), "--formula", "Reaction ~ (1 | Subject)", "--y", "Reaction"]
    assert main([*both, "--out", str(out)]) == 2
    assert "`--formula` names the response and the group itself" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text", [HOSTILE, "a & b", "x\u2028y\u2029z", "<!-- <script>", "quote ' \" `"]
)
def test_script_json_escapes_markup(text):
    out = _script_json({"labels": [text], "title": text})
    for char in "<>&\u2028\u2029":
        assert char not in out
    assert json.loads(out) == {"labels": [text], "title": text}


def test_page_is_self_contained(fit2):
    page = page_html({"title": "t", "datasets": [fit_data(fit2)]})
    # nothing to fetch: no src=, no link, no url(http...)
    assert not re.search(r"\bsrc\s*=|<link\b|https?://(?!www\.w3\.org/2000/svg)", page)
    assert page.count("<script") == 2  # the JSON data and the module
    # the Content-Security-Policy admits exactly the page's module script, by its hash
    script = re.search(r"<script type='module'>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page
    assert "default-src 'none'" in page


def test_hostile_labels_stay_text_in_the_page():
    df = pd.DataFrame({"g": [HOSTILE] * 3 + ["ok"] * 3, "y": [1.0, 2.0, 4.0, 3.0, 5.0, 9.0]})
    fit = bs.fit(df, y="y", group="g")
    page = page_html({"title": HOSTILE, "datasets": [fit_data(fit)]})
    assert "<img" not in page and "onerror=alert" in page.replace("\\u003c", "<")
    assert "<title>&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;</title>" in page
    data = re.search(r"id='bayeshrink-data'>(.*?)</script>", page, re.S).group(1)
    assert json.loads(data)["datasets"][0]["labels"] == [HOSTILE, "ok"]


def test_write_page_errors(fit2, tmp_path):
    with pytest.raises(bs.OutputError, match=r"`out` must be a file in an existing folder"):
        write_page(fit2, tmp_path / "missing" / "page.html")
    with pytest.raises(bs.OutputError, match=r"`out` must be a writable file; got .*Choose"):
        write_page(fit2, tmp_path)  # a folder, not a file
    path = write_page(fit2, tmp_path / "page.html", title="T")
    assert path.read_text().startswith("<!DOCTYPE html>")


def test_explore_widget(fit2, summary_fit, tmp_path):
    w = bs.explore(fit2)
    assert isinstance(w, bs.Explorer)
    assert w.ratio == fit2.var_ratio and w.tau == fit2.tau and w.multiplier == 1.0
    assert w.data["title"] == "Shrinkage explorer: y by group"
    state = w.get_state()  # what the front end receives
    assert state["data"]["datasets"][0]["labels"] == ["g1", "g2", "g3", "g4", "g5"]
    assert w.save(tmp_path / "w.html").read_text() == page_html(w.data)
    s = bs.explore(summary_fit, title="meta")
    assert s.ratio is None and math.isclose(s.tau, summary_fit.tau)
    bundle = w._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in bundle  # Jupyter shows it as a widget
    several = bs.explore(bs.demo_fits())
    assert [d["name"] for d in several.data["datasets"]] == ["1", "2", "3", "1b"]


def test_cli_explore_demo(tmp_path, capsys):
    out = tmp_path / "demo.html"
    assert main(["explore", "--demo", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    data = json.loads(re.search(r"id='bayeshrink-data'>(.*?)</script>", out.read_text()).group(1))
    names = [d["name"] for d in data["datasets"]]
    assert [n.split(":")[0] for n in names] == ["Model 1", "Model 2", "Model 3", "Model 1b"]


def test_cli_explore_file(tmp_path, capsys, seed_demo):
    csv = tmp_path / "d.csv"
    seed_demo[seed_demo["model"] == "3"].to_csv(csv, index=False)
    out = tmp_path / "p.html"
    assert main(["explore", str(csv), "--y", "y", "--group", "group", "--out", str(out)]) == 0
    data = json.loads(re.search(r"id='bayeshrink-data'>(.*?)</script>", out.read_text()).group(1))
    ref = bs.fit(seed_demo[seed_demo["model"] == "3"], y="y", group="group")
    np.testing.assert_allclose(data["datasets"][0]["blup"], ref.table()["blup"], rtol=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--y", "nope", "--group", "group"], r"`--y` .*nope"),
        (["--y", "y", "--group", "group", "--out-of-folder"], r"`--out` must be a file"),
        (["--y", "y"], r"`explore` needs FILE, --y and --group .* or FILE and --formula"),
        (["--demo", "--y", "y"], r"`--demo` explores the bundled worked example"),
        (["--demo", "--method", "dl"], r"`--method` must be reml or ml .*got 'dl'\. DL is for"),
        (["--y", "y", "--group", "group", "--out-is-folder"], r"`--out` must be a writable file"),
    ],
)
def test_cli_explore_errors(tmp_path, capsys, seed_demo, args, message):
    csv = tmp_path / "d.csv"
    seed_demo.to_csv(csv, index=False)
    out = str(tmp_path / "p.html")
    if "--out-of-folder" in args:
        args = [a for a in args if a != "--out-of-folder"]
        out = str(tmp_path / "no" / "p.html")
    if "--out-is-folder" in args:
        args = [a for a in args if a != "--out-is-folder"]
        out = str(tmp_path)
    argv = ["explore"] + ([] if "--demo" in args else [str(csv)]) + args + ["--out", out]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bayeshrink: error: ")
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_write_page_takes_a_fit_named_datasets(fit2, tmp_path):
    path = write_page({"datasets": fit2}, tmp_path / "p.html")
    data = json.loads(re.search(r"id='bayeshrink-data'>(.*?)</script>", path.read_text()).group(1))
    assert [d["name"] for d in data["datasets"]] == ["datasets"]
