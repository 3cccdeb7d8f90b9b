from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayeshrink as bs
from bayeshrink.cli import main


def test_demo_prints_four_scenarios_and_explanation(capsys, tmp_path):
    # the one run of the demo in the suite: tables, explanation, figures and the PyMC check
    assert main(["demo", "--out", str(tmp_path / "figs"), "--draws", "300"]) == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == sorted(
        [
            "triplot_model1.png",
            "triplot_model2.png",
            "triplot_model3.png",
            "triplot_model1b.png",
            "shrinkage.png",
            "shrinkage_curve.png",
        ]
    )
    for name in names:
        assert str(tmp_path / "figs" / name) in out
    for name in ["Model 1:", "Model 2:", "Model 3:", "Model 1b:"]:
        assert name in out
    fits = bs.demo.demo_fits()
    # the printed tables carry the fitted numbers (rows g1..g5)
    for fit in fits.values():
        for v in fit.table()["blup"]:
            assert f"{v:.5f}" in out
        assert f"tau^2/sigma^2 = {fit.var_ratio:.4g}" in out
    assert "boundary: yes" in out and out.count("boundary: no") == 3
    assert "What changed and why" in out
    assert "100x more data" in out
    # the PyMC check: one "largest gap" line per scenario, each within 4 Monte Carlo SEs
    gaps = [float(line.split()[2]) for line in out.splitlines() if line.startswith("largest gap:")]
    assert len(gaps) == 4 and max(gaps) < 4


def test_cli_runs_as_a_module(tmp_path, seed_demo):
    path = tmp_path / "d.csv"
    seed_demo[seed_demo["model"] == "2"].to_csv(path, index=False)
    proc = subprocess.run(
        [sys.executable, "-m", "bayeshrink.cli", "fit", str(path), "--y", "y", "--group", "group"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "g5" in proc.stdout and "One-way hierarchical normal model" in proc.stdout


@pytest.fixture
def schools_csv(tmp_path):
    path = tmp_path / "schools.csv"
    bs.load_dataset("eight_schools").to_csv(path, index=False)
    return path


def test_fit_long_csv_and_parquet_agree_with_api(tmp_path, seed_demo, capsys):
    data = seed_demo[seed_demo["model"] == "2"]
    expected = bs.fit(data, y="y", group="group", method="ml")
    for path in [tmp_path / "d.csv", tmp_path / "d.parquet"]:
        if path.suffix == ".csv":
            data.to_csv(path, index=False)
        else:
            data.to_parquet(path)
        code = main(["fit", str(path), "--y", "y", "--group", "group", "--method", "ml", "--json"])
        assert code == 0
        out = json.loads(capsys.readouterr().out)
        assert out["method"] == "ml"
        # CSV round-trips floats exactly (17 significant digits), so agreement is to rounding
        np.testing.assert_allclose(out["tau"], expected.tau, rtol=1e-12)
        np.testing.assert_allclose(out["loglik"], expected.loglik, rtol=1e-12)


def test_fit_json_content(tmp_path, seed_demo, capsys):
    data = seed_demo[seed_demo["model"] == "3"]
    path = tmp_path / "d.parquet"
    data.to_parquet(path)
    assert main(["fit", str(path), "--y", "y", "--group", "group", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = bs.fit(data, y="y", group="group")
    assert out["method"] == "reml" and out["boundary"] is False
    np.testing.assert_allclose(out["tau"], expected.tau, rtol=1e-12)
    table = out["table"]["Intercept"]
    np.testing.assert_allclose(table["blup"], expected.table()["blup"], rtol=1e-12)
    assert out["groups"] == ["g1", "g2", "g3", "g4", "g5"]
    assert table["n"] == [5] * 5


def test_fit_summary_data_text(schools_csv, capsys):
    assert (
        main(
            [
                "fit",
                str(schools_csv),
                "--y",
                "y",
                "--se",
                "sigma",
                "--group",
                "school",
                "--method",
                "dl",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Boundary (singular) fit" in out and "DL" in out


def test_fit_summary_json_has_null_sigma(schools_csv, capsys):
    assert (
        main(["fit", str(schools_csv), "--y", "y", "--se", "sigma", "--group", "school", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["sigma"] is None and out["tau"] == 0.0 and out["boundary"] is True
    assert out["table"]["Intercept"]["n"][0] is None


def test_fit_errors_are_reported_not_raised(tmp_path, capsys):
    path = tmp_path / "d.csv"
    pd.DataFrame({"g": ["a", "b"], "y": [1.0, 2.0]}).to_csv(path, index=False)
    assert main(["fit", str(path), "--y", "score", "--group", "g"]) == 2
    err = capsys.readouterr().err
    assert "bayeshrink: error: `--y` must name a column" in err
    assert main(["fit", str(tmp_path / "nope.csv"), "--y", "y", "--group", "g"]) == 2
    assert "must exist" in capsys.readouterr().err
    (tmp_path / "d.xlsx").write_text("x")
    assert main(["fit", str(tmp_path / "d.xlsx"), "--y", "y", "--group", "g"]) == 2
    assert "must be a .csv or .parquet file" in capsys.readouterr().err


def test_fit_formula_matches_the_api(tmp_path, capsys):
    sleep = bs.load_dataset("sleepstudy")
    path = tmp_path / "sleep.csv"
    sleep.to_csv(path, index=False)
    formula = "Reaction ~ Days + (Days | Subject)"
    assert main(["fit", str(path), "--formula", formula, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    api = bs.fit(sleep, formula=formula)
    assert out["formula"] == formula
    np.testing.assert_allclose(list(out["fixef"].values()), api.fixef.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(out["coef"]["Days"], api.coef()["Days"].to_numpy(), rtol=1e-12)
    assert main(["fit", str(path), "--formula", formula]) == 0
    assert "Linear mixed model fit by REML" in capsys.readouterr().out


def test_fit_formula_argument_errors(tmp_path, capsys):
    path = tmp_path / "sleep.csv"
    bs.load_dataset("sleepstudy").to_csv(path, index=False)
    assert main(["fit", str(path), "--y", "Reaction"]) == 2
    assert "needs --y and --group" in capsys.readouterr().err
    assert main(["fit", str(path), "--formula", "Reaction ~ (1 | Subject)", "--y", "R"]) == 2
    assert "drop --y, --group and --se" in capsys.readouterr().err
    assert main(["fit", str(path), "--formula", "Reaction ~ Dayz + (1 | Subject)"]) == 2
    assert "did you mean 'Days'" in capsys.readouterr().err


def _env_importing_this_checkout() -> dict[str, str]:
    """The environment for a subprocess that imports the bayeshrink under test."""
    import os
    from pathlib import Path

    root = str(Path(bs.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def test_output_into_a_pipe_closed_early_ends_quietly(tmp_path):
    # `bayeshrink fit ... --predict new.csv | head -n 2`: the reader leaves after two lines
    rng = np.random.default_rng(3)
    g = np.repeat([f"s{i}" for i in range(30)], 10)
    data = pd.DataFrame({"g": g, "y": rng.normal(size=g.size) + np.repeat(rng.normal(size=30), 10)})
    data.to_csv(tmp_path / "d.csv", index=False)
    # 200,000 rows of predictions: far more than a pipe's buffer holds
    pd.DataFrame({"g": np.resize(data["g"].unique(), 200_000)}).to_csv(
        tmp_path / "new.csv", index=False
    )
    cmd = [sys.executable, "-m", "bayeshrink.cli", "fit", "d.csv", "--y", "y", "--group", "g"]
    proc = subprocess.Popen(
        [*cmd, "--predict", "new.csv", "--engine", "pandas"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=_env_importing_this_checkout(),
    )
    assert proc.stdout.readline().decode().strip() == "g,fit"
    proc.stdout.readline()
    proc.stdout.close()  # as `head` does once it has its lines
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 0


def _write_r_style(df: pd.DataFrame, path) -> None:
    """A CSV as R's write.table(df, sep = ",") writes it: quoted names, no header field over
    the row names, every row starting with its quoted row name, NA for missing values."""
    lines = [",".join(f'"{c}"' for c in df.columns)]
    for i, row in enumerate(df.itertuples(index=False), start=1):
        fields = [f'"{i}"']
        for v in row:
            if isinstance(v, str):
                fields.append(f'"{v}"')
            elif pd.isna(v):
                fields.append("NA")
            else:
                fields.append(repr(v.item() if hasattr(v, "item") else v))
        lines.append(",".join(fields))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("engine", ["pandas", "polars", "duckdb"])
def test_r_exported_csv_with_row_names_is_read_as_r_reads_it(tmp_path, capsys, engine):
    # R: write.table(transform(sleepstudy, Subject = paste0("s", Subject)), "sleep.csv", sep = ",")
    # writes a header one field shorter than its rows; read.csv takes the first field as row
    # names. Read shifted, Days would become the group and Reaction the row names.
    sleep = bs.load_dataset("sleepstudy")
    sleep = sleep.assign(Subject="s" + sleep["Subject"].astype(str))
    sleep.loc[3, "Reaction"] = np.nan  # R writes NA
    path = tmp_path / "sleep.csv"
    _write_r_style(sleep[["Reaction", "Days", "Subject"]], path)
    assert path.read_text().splitlines()[:2] == [
        '"Reaction","Days","Subject"',
        f'"1",{float(sleep["Reaction"][0])!r},0,"s308"',
    ]
    kept = sleep.drop(index=3)
    for argv, expected in (
        (["--y", "Reaction", "--group", "Subject"], bs.fit(kept, y="Reaction", group="Subject")),
        (
            ["--formula", "Reaction ~ Days + (Days | Subject)"],
            bs.fit(kept, formula="Reaction ~ Days + (Days | Subject)"),
        ),
    ):
        code = main(["fit", str(path), *argv, "--engine", engine, "--json", "--missing", "drop"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "left out 1 of 180 rows" in captured.err
        out = json.loads(captured.out)
        assert out["n_groups"] == 18 and out["n_obs"] == 179
        np.testing.assert_allclose(list(out["fixef"].values()), expected.fixef, rtol=1e-10)
        np.testing.assert_allclose(out["loglik"], expected.loglik, rtol=1e-10)
        np.testing.assert_allclose(out["sigma"], expected.sigma, rtol=1e-10)


def test_statsmodels_dietox_csv_has_72_pigs(capsys):
    # statsmodels ships dietox.csv as R wrote it (row names, NA); 72 pigs, 861 weighings
    statsmodels = pytest.importorskip("statsmodels")
    from pathlib import Path

    path = Path(statsmodels.__file__).parent / "regression/tests/results/dietox.csv"
    if not path.exists():
        pytest.skip("this statsmodels does not ship dietox.csv")
    expected = bs.fit(pd.read_csv(path), formula="Weight ~ Time + (Time | Pig)")
    assert expected.n_groups == 72
    for engine in ("pandas", "polars", "duckdb"):
        argv = ["fit", str(path), "--engine", engine, "--json"]
        assert main([*argv, "--y", "Weight", "--group", "Pig"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["n_groups"], out["n_obs"]) == (72, 861)
        assert main([*argv, "--formula", "Weight ~ Time + (Time | Pig)"]) == 0
        out = json.loads(capsys.readouterr().out)
        np.testing.assert_allclose(list(out["fixef"].values()), expected.fixef, rtol=1e-10)


def test_errors_name_the_command_line_flags(tmp_path, capsys):
    sleep = bs.load_dataset("sleepstudy")
    gaps = sleep.copy()
    gaps.loc[5, "Reaction"] = np.nan
    gaps.to_csv(tmp_path / "gaps.csv", index=False)
    text = sleep.astype({"Reaction": str})
    text.loc[7, "Reaction"] = "about 300"
    text.to_csv(tmp_path / "text.csv", index=False)
    sleep.to_csv(tmp_path / "sleep.csv", index=False)
    pd.DataFrame({"Days": [1, 2], "Subject": [999, 308]}).to_csv(tmp_path / "new.csv", index=False)
    pd.DataFrame({"Days": [1, 2]}).to_csv(tmp_path / "nogroup.csv", index=False)
    sleep_csv, new_csv, nogroup_csv = (tmp_path / f"{f}.csv" for f in ("sleep", "new", "nogroup"))

    boot = ("--n-boot", "1")

    def error(*argv):
        assert main(["fit", *map(str, argv)]) == 2
        return capsys.readouterr().err

    python_words = ("missing='drop'", "allow_new_levels", "random=False", "pl.col", "CAST(")
    cases = [
        ((tmp_path / "gaps.csv", "--y", "Reaction", "--group", "Subject"), "`--missing drop`"),
        ((tmp_path / "gaps.csv", "--formula", "Reaction ~ Days + (1 | Subject)"), "--missing drop"),
        *[
            (
                (tmp_path / "text.csv", "--y", "Reaction", "--group", "Subject", "--engine", e),
                "`--y` column 'Reaction' must be numeric; got dtype .*The file holds text in that",
            )
            for e in ("polars", "duckdb", "pandas")
        ],
        (
            (sleep_csv, "--formula", "Reaction ~ Days + (Days | Subject)", "--predict", new_csv),
            "unless `--allow-new-levels` is given; got 1 new level.*Pass `--allow-new-levels`",
        ),
        (
            (sleep_csv, "--y", "Reaction", "--group", "Subject", "--predict", nogroup_csv),
            "`--predict` NEWDATA must have the grouping column 'Subject'.*pass `--population`",
        ),
        (
            (sleep_csv, "--y", "Reaction", "--group", "Subject", "--confint", "bootstrap", *boot),
            r"`--n-boot` must be an integer >= 2; got 1\. E\.g\. --n-boot 500\.",
        ),
    ]
    for argv, expected in cases:
        err = error(*argv)
        assert re.search(expected, err), err
        assert not any(w in err for w in python_words), err
    # the same messages from Python keep Python's words
    with pytest.raises(bs.DataError, match=r"pass `missing='drop'`"):
        bs.fit(gaps, y="Reaction", group="Subject")


def test_binary_file_is_not_a_text_table(tmp_path, capsys):
    rng = np.random.default_rng(11)
    (tmp_path / "noise.csv").write_bytes(rng.bytes(4000))
    sleep = bs.load_dataset("sleepstudy")
    sleep.to_parquet(tmp_path / "sleep.parquet")
    (tmp_path / "named.csv").write_bytes((tmp_path / "sleep.parquet").read_bytes())
    for name, kind in (("noise.csv", "binary data, not text"), ("named.csv", "a Parquet file")):
        for engine in ("polars", "duckdb", "pandas"):
            argv = ["fit", str(tmp_path / name), "--y", "Reaction", "--group", "Subject"]
            assert main([*argv, "--engine", engine]) == 2
            err = capsys.readouterr().err
            assert "`FILE` must be a text table (comma-separated values)" in err, err
            assert kind in err and "separated by" not in err
    sleep.to_csv(tmp_path / "sleep.csv", index=False)
    argv = ["fit", str(tmp_path / "sleep.csv"), "--y", "Reaction", "--group", "Subject"]
    assert main([*argv, "--predict", str(tmp_path / "noise.csv")]) == 2
    assert "`--predict` must be a text table" in capsys.readouterr().err


def test_json_of_formula_fits_counts_observations_and_groups(tmp_path, capsys):
    # lme4: ngrps(lmer(strength ~ 1 + (1 | batch/cask), Pastes)) is cask:batch 30, batch 10;
    # nobs() is 60
    path = tmp_path / "pastes.csv"
    bs.load_dataset("pastes").to_csv(path, index=False)
    assert main(["fit", str(path), "--formula", "strength ~ 1 + (1 | batch/cask)", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_obs"] == 60 and out["n_groups"] == {"cask:batch": 30, "batch": 10}
    path = tmp_path / "sleep.csv"
    bs.load_dataset("sleepstudy").to_csv(path, index=False)
    formula = "Reaction ~ Days + (Days | Subject)"
    assert main(["fit", str(path), "--formula", formula, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_obs"] == 180 and out["n_groups"] == 18
    # n_levels has one shape for every fit: levels per grouping factor, by lme4's name
    assert out["n_levels"] == {"Subject": 18}
    path = tmp_path / "pastes.csv"
    assert main(["fit", str(path), "--formula", "strength ~ 1 + (1 | batch/cask)", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_levels"] == {"cask:batch": 30, "batch": 10}
    assert main(["fit", str(path), "--y", "strength", "--group", "batch", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_levels"] == {"batch": 10}


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"bayeshrink {bs.__version__}"


def test_top_level_help_describes_what_the_cli_fits(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "one-way models only" not in text and "for one-way mixed models" not in text
    for phrase in ("covariates", "random slopes", "several crossed or nested", "--formula", "--se"):
        assert phrase in text


def test_count_response_warns_on_the_command_line(tmp_path, capsys):
    sleep = bs.load_dataset("sleepstudy")
    lapses = np.random.default_rng(2).poisson(np.exp(0.15 * sleep["Days"]))
    sleep.assign(lapses=lapses).to_csv(tmp_path / "d.csv", index=False)
    assert main(["fit", str(tmp_path / "d.csv"), "--formula", "lapses ~ Days + (1 | Subject)"]) == 0
    err = capsys.readouterr().err
    assert "bayeshrink: warning: the response 'lapses' looks like counts" in err
    assert 'family="poisson"' in err and "filterwarnings" not in err
