"""``bayeshrink fit ... --predict NEWDATA --out PRED.csv`` and ``--confint``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import load_ref

import bayeshrink as bs
from bayeshrink.cli import main

FORMULA = "Reaction ~ Days + (Days | Subject)"


def test_predict_writes_the_api_predictions(tmp_path, capsys):
    ref = load_ref("api_sleepstudy_slopes_REML")
    sleep = bs.load_dataset("sleepstudy")
    data = tmp_path / "sleep.csv"
    sleep.to_csv(data, index=False)
    new = pd.DataFrame({"Subject": ref["newdata_subject"], "Days": ref["newdata_days"]})
    new_path, out = tmp_path / "new.csv", tmp_path / "pred.csv"
    new.to_csv(new_path, index=False)
    args = ["fit", str(data), "--formula", FORMULA, "--predict", str(new_path), "--out", str(out)]
    assert main([*args, "--allow-new-levels", "--interval", "prediction"]) == 0
    got = pd.read_csv(out)
    assert list(got.columns) == ["Subject", "Days", "fit", "sd", "lo", "hi"]
    # R: predict(m, newdata = newdata, allow.new.levels = TRUE)
    np.testing.assert_allclose(got["fit"], ref["predict_new"], rtol=1e-6)
    api = bs.fit(sleep, formula=FORMULA).predict(new, allow_new_levels=True, interval="prediction")
    np.testing.assert_allclose(got[["lo", "hi"]], api[["lo", "hi"]], rtol=1e-12)
    # a new level without --allow-new-levels is an error message, exit code 2
    assert main(args) == 2
    assert "Pass `--allow-new-levels`" in capsys.readouterr().err
    # population level, to stdout
    assert main([*args[:-2], "--population"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "Subject,Days,fit"
    # R: predict(m, newdata = newdata, re.form = NA)
    vals = [float(line.split(",")[-1]) for line in printed[1:]]
    np.testing.assert_allclose(vals, ref["predict_population"], rtol=1e-6)


def test_confint_and_information_are_printed(tmp_path, capsys):
    data = tmp_path / "sleep.csv"
    bs.load_dataset("sleepstudy").to_csv(data, index=False)
    assert main(["fit", str(data), "--formula", FORMULA, "--confint", "wald"]) == 0
    out = capsys.readouterr().out
    assert "wald intervals, level 0.95" in out and "sd_(Intercept)|Subject" in out
    assert main(["fit", str(data), "--formula", FORMULA]) == 0
    out = capsys.readouterr().out
    ref = load_ref("api_sleepstudy_slopes_REML")
    # R: AIC(m)
    assert f"AIC {ref['AIC']:.4f}" in out
    assert (
        main(["fit", str(data), "--formula", FORMULA, "--predict", str(tmp_path / "no.csv")]) == 2
    )
    assert "`--predict` must name an existing" in capsys.readouterr().err
