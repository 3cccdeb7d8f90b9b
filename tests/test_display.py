"""Printed and notebook views of fits stay bounded however many groups there are (like a
pandas repr: head, tail and a count), for every fit type; ``table()`` keeps every row, raw."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs
from bayeshrink.lmm.multi import fit_multi


@pytest.fixture(scope="module")
def many():
    """100,000 groups of 3 observations, with a covariate and a second, small factor."""
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(100_000), 3)
    x = rng.normal(size=g.size)
    y = 0.6 * rng.normal(size=100_000)[g] + 0.3 * x + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g, "h": g % 7})


def _body_rows(text: str, labels) -> list[str]:
    """The table lines of ``text`` that start with one of the group labels."""
    wanted = {str(v) for v in labels}
    return [ln for ln in text.splitlines() if ln.split(" ")[0] in wanted]


def test_one_way_str_and_html_are_bounded(many):
    fit = bs.fit(many, y="y", group="g")
    text = str(fit)
    assert text == fit.summary()
    assert len(text.splitlines()) < 40
    assert "... 99,990 more groups; fit.table() has every row ..." in text
    # head and tail, in table order
    rows = _body_rows(text, fit.groups)
    assert [r.split()[0] for r in rows] == [
        "0",
        "1",
        "2",
        "3",
        "4",
        *map(str, range(99995, 100000)),
    ]
    html = fit._repr_html_()
    assert len(html) < 10_000
    assert html.count("<tr>") < 40 and "99,990 more groups" in html
    # table() is untouched: every row, unrounded
    t = fit.table()
    assert len(t) == 100_000
    np.testing.assert_array_equal(t["blup"].to_numpy(), fit.coef()["Intercept"].to_numpy())


def test_pandas_display_max_rows_none_shows_every_row():
    demo = bs.load_dataset("seed_demo")
    fit = bs.fit(demo[demo["model"] == "2"], y="y", group="group")
    with pd.option_context("display.max_rows", 3, "display.min_rows", 2):
        text = fit.summary()
    assert "... 3 more groups" in text and len(_body_rows(text, fit.groups)) == 2
    with pd.option_context("display.max_rows", None):
        assert len(_body_rows(fit.summary(), fit.groups)) == fit.n_groups


def test_formula_fit_prints_a_bounded_table_per_random_term(many):
    fit = bs.fit(many, formula="y ~ x + (1 | g)")
    text = str(fit)
    assert "Per g (100,000 levels), Intercept:" in text
    assert "... 99,990 more groups; fit.table() has every row ..." in text
    assert len(text.splitlines()) < 50
    html = fit._repr_html_()
    assert len(html) < 12_000 and "99,990 more groups" in html
    assert len(fit.table()) == 100_000


def test_small_formula_fit_prints_every_group_of_every_term():
    sleep = bs.load_dataset("sleepstudy")
    fit = bs.fit(sleep, formula="Reaction ~ Days + (Days | Subject)")
    text = str(fit)
    assert "more groups" not in text
    assert (
        "Per Subject (18 levels), Intercept:" in text and "Per Subject (18 levels), Days:" in text
    )
    # each of the 18 subjects once in each of the two tables
    assert len(_body_rows(text, fit.groups)) == 2 * 18
    # the printed BLUPs are the table's, rounded to 6 significant digits
    row = _body_rows(text, ["308"])[0].split()
    assert float(row[5]) == pytest.approx(fit.table("Intercept")["blup"].iloc[0], rel=1e-5)
    html = fit._repr_html_()
    assert html.count("<th>308</th>") == 2


def test_several_factor_fit_and_its_factor_views_are_bounded(many):
    fit = fit_multi(many, "y ~ 1 + (1 | g) + (1 | h)")
    text = str(fit)
    assert len(text.splitlines()) < 60
    assert "... 99,990 more levels; fit.table(factor='g') has every row ..." in text
    # the small factor is printed whole
    assert "Per h (7 levels), Intercept:" in text
    assert len(_body_rows(text.split("Per h")[1], range(7))) == 7
    assert len(fit._repr_html_()) < 12_000
    view = fit.factor_fit("g")
    vtext = str(view)
    assert len(vtext.splitlines()) < 40 and "Per h" not in vtext
    assert "99,990 more levels; fit.table() has every row" in vtext
    vhtml = view._repr_html_()
    assert len(vhtml) < 10_000 and re.search(r"99,990 more levels", vhtml)
    assert len(fit.table(factor="g")) == 100_000
