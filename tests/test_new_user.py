"""What a new user meets with files and fits nobody prepared: each case gets the right answer or
one clear line that says how to fix it."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_posterior

import bayeshrink as bs
from bayeshrink.cli import main


def _cli_error(capsys, argv) -> str:
    """Run the CLI; it must fail with exit code 2 and exactly one line on stderr."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("bayeshrink: error: ")
    return err


def _write_csv2(df: pd.DataFrame, path) -> None:
    """As R's write.csv2(df, path) writes it: ';' between fields, decimal commas, quoted
    strings and row names under a blank quoted header field."""
    lines = [";".join(['""', *(f'"{c}"' for c in df.columns)])]
    for i, row in enumerate(df.itertuples(index=False), start=1):
        cells = [f'"{i}"']
        for v in row:
            cells.append(f'"{v}"' if isinstance(v, str) else repr(float(v)).replace(".", ","))
        lines.append(";".join(cells))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("engine", ["polars", "duckdb", "pandas"])
def test_semicolon_csv_with_decimal_commas_gets_advice_that_works(capsys, tmp_path, engine):
    pastes = bs.load_dataset("pastes")[["strength", "batch", "cask"]]
    path = tmp_path / "pastes.csv"
    _write_csv2(pastes, path)
    argv = ["fit", path, "--y", "strength", "--group", "batch", "--engine", engine]
    err = _cli_error(capsys, argv)
    # DuckDB's sniffer took the decimal commas for the separator, and the advice left
    # "62,8" as text
    assert "`FILE` must be comma-separated; its header" in err and "looks separated by ';'" in err
    assert "(its numbers have decimal commas)" in err
    assert "pd.read_csv('pastes.csv', sep=';', decimal=',').to_csv('pastes-comma.csv'" in err
    # the advice, followed, gives the fit of the original data
    pd.read_csv(path, sep=";", decimal=",").to_csv(tmp_path / "pastes-comma.csv", index=False)
    assert (
        main(
            [
                "fit",
                str(tmp_path / "pastes-comma.csv"),
                "--y",
                "strength",
                "--group",
                "batch",
                "--json",
                "--engine",
                engine,
            ]
        )
        == 0
    )

    out = json.loads(capsys.readouterr().out)
    ref = bs.fit(pastes, y="strength", group="batch")
    assert out["tau"] == pytest.approx(ref.tau, rel=1e-10)


def test_semicolon_newdata_for_predict_is_named_as_such(capsys, tmp_path):
    pen = bs.load_dataset("penicillin")
    pen.to_csv(tmp_path / "pen.csv", index=False)
    (tmp_path / "new.csv").write_text("plate;sample\na;A\nb;B\n")
    argv = [
        "fit",
        tmp_path / "pen.csv",
        "--formula",
        "diameter ~ 1 + (1 | plate)",
        "--predict",
        tmp_path / "new.csv",
    ]
    err = _cli_error(capsys, argv)
    assert "`--predict` must be comma-separated; its header 'plate;sample' looks separated" in err
    assert "decimal" not in err


def _inside_figure(fig, artist) -> bool:
    fig.canvas.draw()
    box = artist.get_window_extent(fig.canvas.get_renderer())
    return box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height


def test_forest_title_with_both_kinds_of_draws_fits_the_figure(tmp_path):
    import matplotlib.pyplot as plt

    pen = bs.load_dataset("penicillin")
    fit = bs.fit(pen, y="diameter", group="plate")  # 24 plates
    plug = synthetic_posterior(fit, draws=200, seed=1)
    full = synthetic_posterior(fit, draws=200, seed=2, mu="flat")
    for draws, k in (({"plugin": plug, "full": full}, 10), ({"full": full}, 40), ({}, 10)):
        fig = bs.plot_forest(fit, max_labels=k, **draws)
        title = fig.axes[0].title
        fig.savefig(tmp_path / f"forest_{len(draws)}.png")
        # the title was one line of 118 characters, cut at both edges of the saved figure
        assert _inside_figure(fig, title), title.get_text()
        plt.close(fig)
    assert title.get_text() == (
        "No pooling and partial pooling (BLUP): 95% intervals, 24 groups sorted by BLUP"
    )
    fig = bs.plot_forest(fit, plug, full)
    assert fig.axes[0].get_title() == (
        "No pooling, partial pooling (BLUP), plug-in posterior and full Bayes draws:\n"
        "95% intervals, 24 groups"
    )
    plt.close(fig)


def test_explorer_and_summary_data_errors_speak_the_command_lines_flags(capsys, tmp_path):
    python_words = ("bs.", "`fit`", "`out`", "level=", "MultiFit", "fit_summary")
    pen, schools = tmp_path / "pen.csv", tmp_path / "schools.csv"
    bs.load_dataset("penicillin").to_csv(pen, index=False)
    bs.load_dataset("eight_schools").to_csv(schools, index=False)
    radon = tmp_path / "radon.csv"
    bs.load_dataset("radon").to_csv(radon, index=False)
    page = tmp_path / "page.html"
    summary = [schools, "--y", "y", "--se", "sigma", "--group", "school"]
    cases = [
        (
            [
                "explore",
                pen,
                "--formula",
                "diameter ~ 1 + (1 | plate) + (1 | sample)",
                "--out",
                page,
            ],
            r"`--formula` must have one grouping factor for the explorer; got 'diameter ~ 1 \+ "
            r"\(1 \| plate\) \+ \(1 \| sample\)', which has several.*e\.g\. --formula 'y ~ x",
        ),
        (
            ["explore", radon, "--formula", "log_radon ~ floor + (floor | county)", "--out", page],
            r"`--formula` must have a scalar random intercept \(1 \| county\) as its only random",
        ),
        (
            ["explore", pen, "--formula", "diameter ~ 0 + sample + (1 | plate)", "--out", page],
            r"`--formula` must have a fixed intercept for the explorer",
        ),
        (
            ["explore", *summary, "--out", tmp_path / "no" / "page.html"],
            r"`--out` must be a file in an existing folder",
        ),
        (
            ["fit", *summary, "--predict", schools],
            r"`FILE` must hold long data \(one row per observation\) for predict; got group "
            r"estimates with known standard errors \(--se\)",
        ),
        (["fit", *summary, "--confint", "profile"], r"for profile intervals; got group estimates"),
        (
            [
                "fit",
                pen,
                "--formula",
                "diameter ~ 1 + (1 | plate)",
                "--predict",
                pen,
                "--interval",
                "confidence",
                "--level",
                "95",
            ],
            r"`--level` must be a probability strictly between 0 and 1; got 95\.0\. E\.g\. "
            r"--level 0\.95",
        ),
    ]
    for argv, expected in cases:
        err = _cli_error(capsys, argv)
        assert re.search(expected, err), err
        assert not any(w in err for w in python_words), err


def test_explorer_refuses_a_lone_random_slope_without_calling_it_joint(capsys, tmp_path):
    radon = bs.load_dataset("radon")
    fit = bs.fit(radon, formula="log_radon ~ floor + (0 + floor | county)")
    # it said "Its BLUPs move jointly ... see bs.plot_shrinkage_2d", which refuses one term
    with pytest.raises(
        bs.DataTypeError,
        match=r"got the random slope 'floor' alone on county in 'log_radon ~ floor \+ \(0 \+ "
        r"floor \| county\)'\. The explorer draws groups' intercepts .* explore the same fixed "
        r"part with \(1 \| county\) instead, or draw the slopes with bs\.plot_forest\(fit\)\.$",
    ):
        bs.explore(fit)
    path = tmp_path / "radon.csv"
    radon.to_csv(path, index=False)
    formula = "log_radon ~ floor + (0 + floor | county)"
    err = _cli_error(capsys, ["explore", path, "--formula", formula, "--out", tmp_path / "p.html"])
    assert "jointly" not in err and "bs." not in err
    assert err.rstrip().endswith("explore the same fixed part with (1 | county) instead.")


@pytest.mark.parametrize("engine", ["polars", "duckdb", "pandas"])
def test_r_write_table_default_space_separated_file_is_named_as_such(capsys, tmp_path, engine):
    # R: write.table(Penicillin, "pen.csv"): spaces between quoted fields, row names, and a
    # header one field short; read as one column named 'diameter" "plate" "sample', it gave
    # "`--y` must name a column of the data"
    pen = bs.load_dataset("penicillin")
    lines = ['"diameter" "plate" "sample"']
    lines += [f'"{i}" {d} "{p}" "{s}"' for i, (d, p, s) in enumerate(pen.to_numpy(), start=1)]
    path = tmp_path / "pen.csv"
    path.write_text("\n".join(lines) + "\n")
    err = _cli_error(
        capsys, ["fit", path, "--y", "diameter", "--group", "plate", "--engine", engine]
    )
    assert (
        '`FILE` must be comma-separated; its header \'"diameter" "plate" "sample"\' looks '
        "separated by spaces. Convert it first, e.g. in Python: pd.read_csv('pen.csv', sep=' ')"
    ) in err
    pd.read_csv(path, sep=" ").to_csv(tmp_path / "pen-comma.csv", index=False)
    argv = ["fit", tmp_path / "pen-comma.csv", "--y", "diameter", "--group", "plate", "--json"]
    assert main([str(a) for a in argv]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tau"] == pytest.approx(bs.fit(pen, y="diameter", group="plate").tau, rel=1e-10)


@pytest.mark.parametrize("engine", ["polars", "duckdb", "pandas"])
def test_short_binary_file_without_nul_bytes_is_named_binary(capsys, tmp_path, engine):
    # 300 random bytes with the NULs taken out: polars reported "its header '\x16...' looks
    # separated by ';'" (or by tabs), the others "must be UTF-8 text ... iconv -f latin1"
    rng = np.random.default_rng(23)
    data = bytes(b for b in rng.bytes(400) if b)[:300]
    assert b"\x00" not in data
    (tmp_path / "noise.csv").write_bytes(data)
    argv = ["fit", tmp_path / "noise.csv", "--y", "y", "--group", "g", "--engine", engine]
    err = _cli_error(capsys, argv)
    assert "`FILE` must be a text table (comma-separated values)" in err
    assert "which is binary data, not text" in err and "separated by" not in err
    # a Latin-1 text keeps its own advice
    (tmp_path / "latin1.csv").write_bytes(
        "g,y\nMünster,1\nMünster,2\nKöln,3\nKöln,5\n".encode("latin-1")
    )
    argv = ["fit", tmp_path / "latin1.csv", "--y", "y", "--group", "g", "--engine", engine]
    assert "`FILE` must be UTF-8 text" in _cli_error(capsys, argv)


def test_options_that_shape_nothing_are_refused_and_confint_speaks_json(capsys, tmp_path):
    path = tmp_path / "pastes.csv"
    bs.load_dataset("pastes").to_csv(path, index=False)
    base = ["fit", path, "--y", "strength", "--group", "batch"]
    # each was silently ignored: the text of the fit or a text table of intervals came out
    cases = [
        (["--predict", path, "--json"], r"`--json` prints the fit; got it with --predict"),
        (["--level", "0.9"], r"`--level` must come with --confint or with --predict and "),
        (["--predict", path, "--level", "0.9"], r"got --level 0\.9 without them"),
        (["--n-boot", "50"], r"`--n-boot` must come with --confint bootstrap"),
        (["--confint", "wald", "--seed", "2"], r"`--seed` must come with --confint bootstrap"),
    ]
    for extra, expected in cases:
        err = _cli_error(capsys, [*base, *extra])
        assert re.search(expected, err), err
    assert main([str(a) for a in base] + ["--confint", "wald", "--json", "--level", "0.9"]) == 0
    out = json.loads(capsys.readouterr().out)
    ci = bs.fit(bs.load_dataset("pastes"), y="strength", group="batch").confint(level=0.9)
    assert out["method"] == "wald" and out["level"] == 0.9
    assert set(out["intervals"]) == {str(k) for k in ci.index}
    name = "(Intercept)" if "(Intercept)" in ci.index else ci.index[-1]
    assert out["intervals"][str(name)]["lo"] == pytest.approx(ci.loc[name, "lo"], rel=1e-12)
    assert main([str(a) for a in base] + ["--confint", "wald", "--level", "0.9"]) == 0
    assert capsys.readouterr().out.startswith("wald intervals, level 0.9:")


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--no-figures", "--out", "figs"], r"`--out` must not come with --no-figures"),
        (["--no-pymc", "--draws", "50"], r"`--draws` must not come with --no-pymc"),
        (["--no-pymc", "--seed", "4"], r"`--seed` must not come with --no-pymc"),
    ],
)
def test_demo_options_that_shape_nothing_are_refused(capsys, tmp_path, monkeypatch, extra, match):
    monkeypatch.chdir(tmp_path)
    # each was ignored: `demo --no-figures --out figs` printed the demo and wrote nothing
    err = _cli_error(capsys, ["demo", *extra])
    assert re.search(match, err), err
    assert not (tmp_path / "figs").exists()
