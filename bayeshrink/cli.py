"""Command line: ``bayeshrink demo``, ``bayeshrink fit FILE`` (with ``--predict``,
``--confint``) and ``bayeshrink explore``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from .errors import BayeshrinkError, DataError
from .inference import information
from .readers import (
    check_delimiter,
    check_separator,
    check_text,
    read_table,
    reading_errors,
    reading_message,
)

__all__ = ["main"]


def _check_demo_args(args: argparse.Namespace) -> None:
    """Refuse bad options before any work is done (the PyMC check takes a while), and options
    that would shape nothing (--out with --no-figures, --draws or --seed with --no-pymc)."""
    for flag, given, off in (
        ("--out", args.out is not None, args.no_figures and "--no-figures"),
        ("--draws", args.draws is not None, args.no_pymc and "--no-pymc"),
        ("--seed", args.seed is not None, args.no_pymc and "--no-pymc"),
    ):
        if given and off:
            raise DataError(
                f"`{flag}` must not come with {off}, which turns off what it shapes; got both. "
                f"Drop one of them."
            )
    args.out = "bayeshrink-demo" if args.out is None else args.out
    args.draws = 1000 if args.draws is None else args.draws
    args.seed = 1 if args.seed is None else args.seed
    if not args.no_pymc:
        if args.draws < 1:
            raise DataError(
                f"`--draws` must be a whole number of at least 1 (draws per chain); got "
                f"{args.draws}. Pass e.g. --draws 1000, or --no-pymc to skip the PyMC check."
            )
        if args.seed < 0:
            raise DataError(
                f"`--seed` must be a non-negative whole number; got {args.seed}. "
                "Pass e.g. --seed 1."
            )
    if not args.no_figures:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise DataError(
                f"`--out` must name a folder for the figures; got {str(out)!r}, which is a file. "
                "Pass a folder name (it is created if missing), or --no-figures."
            )
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".bayeshrink-write-test"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise DataError(
                f"`--out` must be a folder bayeshrink can create and write to; got {str(out)!r} "
                f"({exc.strerror or exc}). Pass a writable folder, or --no-figures."
            ) from None


def _demo(args: argparse.Namespace) -> int:
    from .demo import SCENARIOS, demo_fits, describe_changes

    _check_demo_args(args)
    fits = demo_fits(args.method)
    for name, fit in fits.items():
        sc = SCENARIOS[name]
        print(sc.title)
        print("=" * len(sc.title))
        t = fit.table()
        shown = pd.DataFrame(
            {
                "n": t["n"],
                "no pooling (group mean)": t["no_pooling"],
                "BLUP": t["blup"],
                "shrinkage": t["shrinkage"],
            }
        )
        print(shown.to_string(float_format=lambda v: f"{v:.5f}"))
        print(
            f"mu = {fit.mu:.5f} (se {fit.mu_se:.4f})   tau = {fit.tau:.4f}   "
            f"sigma = {fit.sigma:.4f}   tau^2/sigma^2 = {fit.var_ratio:.4g} "
            f"(true {sc.true_ratio:.4g})   boundary: {'yes' if fit.boundary else 'no'}"
        )
        print()
    print("What changed and why")
    print("--------------------")
    print(describe_changes(fits))
    if not args.no_figures:
        print()
        _figures(fits, Path(args.out))
    if not args.no_pymc:
        print()
        _pymc_check(fits, draws=args.draws, seed=args.seed)
    return 0


def _figures(fits, out: Path) -> None:
    """Write the demo's figures as PNG files and print their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window
    import matplotlib.pyplot as plt

    from .demo import SCENARIOS
    from .plots import plot_shrinkage, plot_shrinkage_curve, plot_triplot

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fit in fits.items():
        fig = plot_triplot(fit).viz["figure"].item()
        fig.suptitle(f"{SCENARIOS[name].title}\n{fig.get_suptitle()}", fontsize=11)
        path = out / f"triplot_model{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        written.append(path)
    named = {
        SCENARIOS[k].title.split(":")[0] + f" (true ratio {SCENARIOS[k].true_ratio:g})": f
        for k, f in fits.items()
    }
    figures = {
        "shrinkage.png": plot_shrinkage(named),
        "shrinkage_curve.png": plot_shrinkage_curve(fits["2"], ratios=[1 / 25, 25]),
    }
    for filename, fig in figures.items():
        fig.savefig(out / filename, dpi=110, bbox_inches="tight")
        written.append(out / filename)
    plt.close("all")
    print("Figures")
    print("-------")
    for path in written:
        print(path)


def _pymc_check(fits, draws: int, seed: int) -> None:
    """Sample each scenario's plug-in model in PyMC and set its posterior means by the BLUPs."""
    from .bayes import compare, plugin_model, sample

    title = "The Bayesian reading, checked in PyMC"
    print(title)
    print("-" * len(title))
    print(
        "The plug-in model takes N(mu_hat, tau_hat^2) as every group's prior and the group's\n"
        "likelihood given sigma_hat; its posterior means should be the BLUPs, up to Monte Carlo\n"
        f"error ({draws} draws x 4 chains per scenario)."
    )
    for name, fit in fits.items():
        idata = sample(plugin_model(fit), draws=draws, tune=draws, chains=4, random_seed=seed)
        c = compare(fit, plugin=idata)
        shown = c[["blup", "plugin_mean", "plugin_mcse", "plugin_gap_mcse"]].rename(
            columns={
                "plugin_mean": "posterior mean",
                "plugin_mcse": "MCSE",
                "plugin_gap_mcse": "gap (MCSE)",
            }
        )
        print(
            f"\nModel {name}" + (" (boundary fit: theta pinned at mu_hat)" if fit.boundary else "")
        )
        print(shown.to_string(float_format=lambda v: f"{v:.5f}"))
        worst = c["plugin_gap_mcse"].abs().idxmax()
        print(f"largest gap: {abs(c.loc[worst, 'plugin_gap_mcse']):.2f} Monte Carlo SEs ({worst})")


def _fit_file(args: argparse.Namespace, formula: str | None = None):
    """Read FILE (one clear line when it cannot be read) and fit it: the formula, summary data
    (--se) or the one-way model (--y, --group)."""
    from .fitting import fit, fit_summary

    path = Path(args.file)
    try:
        df = read_table(path, args.engine)
        check_separator(df, path)
        if formula is not None:
            return fit(df, formula=formula, method=args.method, missing=args.missing)
        if args.se is not None:
            return fit_summary(
                df, estimate=args.y, se=args.se, group=args.group, method=args.method
            )
        return fit(df, y=args.y, group=args.group, method=args.method, missing=args.missing)
    except BayeshrinkError:
        raise
    except reading_errors() as exc:  # the file itself could not be read: say so in one line
        raise DataError(reading_message(path, exc)) from exc


def _fit(args: argparse.Namespace) -> int:

    if args.formula is not None:
        if args.y is not None or args.group is not None or args.se is not None:
            raise DataError(
                "`--formula` names the response and the group itself; drop --y, --group and --se."
            )
    elif args.y is None or args.group is None:
        raise DataError(
            "`fit` needs --y and --group (the one-way model), or --formula, e.g. "
            "--formula 'Reaction ~ Days + (Days | Subject)'."
        )
    _check_unused_options(args)
    if args.level is None:
        args.level = 0.95
    if args.n_boot is None:
        args.n_boot = 500
    result = _fit_file(args, getattr(args, "formula", None))
    if result.data_kind == "summary":
        info = None
    elif hasattr(result, "information"):  # several grouping factors
        info = result.information()
    else:
        info = information(result)
    if args.predict is None:
        unused = [
            opt
            for opt, value in (
                ("--out", args.out),
                ("--interval", args.interval),
                ("--allow-new-levels", args.allow_new_levels),
                ("--population", args.population),
            )
            if value
        ]
        if unused:
            raise DataError(
                f"`{unused[0]}` must come with --predict NEWDATA (it shapes the predictions); "
                f"got {', '.join(unused)} without --predict. Add --predict FILE, or drop "
                f"{'it' if len(unused) == 1 else 'them'}."
            )
    if args.predict is not None or args.confint is not None:
        _after_fit(result, args)
        return 0
    if args.json:
        out = result.to_dict()
        out.setdefault("n_obs", int(result.n_obs))
        # one shape for every fit: the levels of each grouping factor, by lme4's factor name;
        # n_groups is that count when there is one factor, else the count per factor
        out["n_levels"] = {f: len(result.ranef(factor=f)) for f in result.factors}
        if len(result.factors) > 1:
            out["n_groups"] = dict(out["n_levels"])
        else:
            out.setdefault("n_groups", int(result.n_groups))
        if info is not None:
            out.update({k: info[k] for k in ("aic", "bic", "n_params", "deviance")})
        json.dump(_jsonable(out), sys.stdout, indent=2, allow_nan=False)
        print()
    else:
        print(result.summary())
        if info is not None:
            print(
                f"logLik {info['loglik']:.4f} (df = {info['n_params']})   "
                f"AIC {info['aic']:.4f}   BIC {info['bic']:.4f}"
                + ("   (REML: compare fixed effects by ML)" if result.method == "reml" else "")
            )
    return 0


def _explore(args: argparse.Namespace) -> int:
    from .explorer import write_page

    if args.demo:
        if args.file is not None or args.y or args.group or args.se or args.formula:
            raise DataError(
                "`--demo` explores the bundled worked example; drop FILE, --y, --group, --se and "
                "--formula."
            )
        from .demo import SCENARIOS, demo_fits

        if args.method not in ("reml", "ml"):
            raise DataError(
                f"`--method` must be reml or ml for the worked example; got {args.method!r}. "
                "DL is for summary data (FILE with --se)."
            )
        fits = {SCENARIOS[k].title: f for k, f in demo_fits(args.method).items()}
        title = args.title or "Shrinkage explorer: the worked example (bundled seed_demo)"
    else:
        if args.formula is not None and (args.y or args.group or args.se):
            raise DataError(
                "`--formula` names the response and the group itself; drop --y, --group and --se."
            )
        if args.file is None or (args.formula is None and (args.y is None or args.group is None)):
            raise DataError(
                "`explore` needs FILE, --y and --group (with --se for estimates with known "
                "standard errors) or FILE and --formula (one random intercept, e.g. "
                "'y ~ x + (1 | g)'), or --demo for the worked example."
            )

        fits = _fit_file(args, args.formula)
        title = args.title
    path = write_page(fits, args.out, title=title)
    print(f"wrote {path}")
    return 0


def _jsonable(obj):
    """Plain JSON values: NaN and infinities become null, numpy scalars Python numbers."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if pd.isna(obj) is True:
        return None
    return str(obj)


def _check_out_file(out: Path) -> None:
    """``--out`` of --predict: a file whose folder exists and that can be written."""
    if out.is_dir():
        raise DataError(
            f"`--out` must name a file for the predictions; got {str(out)!r}, which is a "
            "folder. Add a file name, e.g. predictions.csv."
        )
    if not out.parent.is_dir():
        raise DataError(
            f"`--out` must be a file in an existing folder; got {str(out)!r}, whose folder "
            f"{str(out.parent)!r} does not exist. Create it first, or choose another path."
        )


def _check_unused_options(args: argparse.Namespace) -> None:
    """Options that would shape nothing in this call are refused, not silently ignored."""
    if args.json and args.predict is not None:
        raise DataError(
            "`--json` prints the fit; got it with --predict, which writes the predictions as "
            "CSV. Drop --json (or fit once with --json and once with --predict)."
        )
    interval = args.confint is not None or (args.predict is not None and args.interval)
    if args.level is not None and not interval:
        raise DataError(
            f"`--level` must come with --confint or with --predict and --interval (it is an "
            f"interval's level); got --level {args.level:g} without them. Add one, or drop "
            "--level."
        )
    if args.confint != "bootstrap":
        given = [o for o, v in (("--n-boot", args.n_boot), ("--seed", args.seed)) if v is not None]
        if given:
            raise DataError(
                f"`{given[0]}` must come with --confint bootstrap (it shapes the bootstrap); got "
                f"{' and '.join(given)} without it. Add --confint bootstrap, or drop "
                f"{'it' if len(given) == 1 else 'them'}."
            )


def _after_fit(result, args: argparse.Namespace) -> None:
    """--predict NEWDATA (to --out or stdout as CSV) and --confint METHOD (printed)."""
    if args.predict is not None:
        path = Path(args.predict)
        if not path.exists():
            raise DataError(
                f"`--predict` must name an existing CSV or Parquet file; got {str(path)!r}."
            )
        if args.out:
            _check_out_file(Path(args.out))
        if path.is_file() and path.suffix.lower() not in (".parquet", ".pq"):
            check_text(path, "`--predict`")
            check_delimiter(path, "`--predict`")
        try:
            if path.is_dir() or path.stat().st_size == 0:
                raise pd.errors.EmptyDataError("the file is empty or a folder")
            new = (
                pd.read_parquet(path)
                if path.suffix.lower() in (".parquet", ".pq")
                else (pd.read_csv(path))
            )
        except reading_errors() as exc:
            raise DataError(reading_message(path, exc).replace("`FILE`", "`--predict`", 1)) from exc
        if len(new) == 0:
            raise DataError(
                f"`--predict` must hold at least one row to predict for; got {str(path)!r} "
                "with column names only. Add the rows (their covariates and group)."
            )
        pred = result.predict(
            new,
            random=not args.population,
            allow_new_levels=args.allow_new_levels,
            interval=args.interval,
            level=args.level,
        )
        table = new.copy()
        if isinstance(pred, pd.Series):
            table["fit"] = pred.to_numpy()
        else:
            for col in pred.columns:
                table[col] = pred[col].to_numpy()
        if args.out:
            try:
                table.to_csv(args.out, index=False)
            except OSError as exc:
                raise DataError(
                    f"`--out` must be a writable file; got {args.out!r} "
                    f"({exc.strerror or exc}). Choose a path you can write to."
                ) from None
            print(f"wrote {len(table)} predictions to {args.out}", file=sys.stderr)
        else:
            table.to_csv(sys.stdout, index=False)
    if args.confint is not None:
        ci = result.confint(
            method=args.confint, level=args.level, n_boot=args.n_boot, random_seed=args.seed
        )
        if args.json:
            out = {
                "method": args.confint,
                "level": args.level,
                "intervals": {
                    str(name): {c: row[c] for c in ci.columns} for name, row in ci.iterrows()
                },
            }
            json.dump(_jsonable(out), sys.stdout, indent=2, allow_nan=False)
            print()
            return
        print(f"{args.confint} intervals, level {args.level:g}:")
        print(ci.to_string())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayeshrink",
        description="Linear mixed models fitted exactly as lme4 does (REML or ML), with their "
        "BLUPs, shrinkage and Bayesian reading: the one-way model (--y, --group), lme4-style "
        "formulas with covariates, random slopes and several crossed or nested grouping factors "
        "(--formula), and group estimates with known standard errors (--se). `fit` also "
        "predicts (--predict) and gives confidence intervals (--confint); `explore` writes an "
        "interactive page; `demo` runs the worked example.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"bayeshrink {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit the bundled worked example and explain the shrinkage")
    demo.add_argument("--method", default="reml", choices=["reml", "ml"])
    demo.add_argument(
        "--out",
        default=None,
        help="folder for the figures (default: bayeshrink-demo/)",
    )
    demo.add_argument("--no-figures", action="store_true", help="write no figures")
    demo.add_argument("--no-pymc", action="store_true", help="skip the PyMC plug-in check")
    demo.add_argument(
        "--draws", type=int, default=None, help="draws per chain (PyMC check; default 1000)"
    )
    demo.add_argument("--seed", type=int, default=None, help="random seed (PyMC check; default 1)")
    demo.set_defaults(func=_demo)

    f = sub.add_parser(
        "fit", help="fit y ~ 1 + (1 | group), or an lme4-style formula, to a CSV or Parquet file"
    )
    f.add_argument("file", help="CSV or Parquet file")
    f.add_argument("--y", help="response column (or the estimate, with --se)")
    f.add_argument("--group", help="grouping column")
    f.add_argument(
        "--formula",
        help="lme4-style formula with covariates and random slopes on one or more grouping "
        "factors, e.g. 'Reaction ~ Days + (Days | Subject)' or 'y ~ x + (1 | subj) + "
        "(1 | item)' (instead of --y/--group; the columns it "
        "uses are read into memory)",
    )
    f.add_argument("--se", help="standard-error column: the rows are group estimates")
    f.add_argument("--method", default="reml", help="reml (default) or ml; dl with --se")
    f.add_argument(
        "--missing",
        default="raise",
        choices=["raise", "drop"],
        help="rows with missing values: raise (default) or drop with a warning",
    )
    f.add_argument("--json", action="store_true", help="print machine-readable JSON")
    f.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "polars", "duckdb", "pandas"],
        help="how to read FILE: lazily with polars or DuckDB (auto: whichever is "
        "installed), or eagerly with pandas",
    )
    f.add_argument(
        "--predict",
        metavar="NEWDATA",
        help="CSV or Parquet file of rows to predict for (covariates and group); writes them "
        "with a 'fit' column (and sd, lo, hi with --interval) as CSV to --out or stdout",
    )
    f.add_argument("--out", help="where --predict writes its CSV (default: stdout)")
    f.add_argument(
        "--interval",
        choices=["prediction", "confidence"],
        help="add an interval to --predict: for a new observation, or for the row's mean",
    )
    f.add_argument(
        "--level",
        type=float,
        default=None,
        help="level of --confint and --predict --interval (default 0.95)",
    )
    f.add_argument(
        "--allow-new-levels",
        action="store_true",
        help="rows of groups not in the fit get the population prediction (else an error)",
    )
    f.add_argument(
        "--population",
        action="store_true",
        help="population-level predictions x'beta, ignoring the groups (lme4's re.form = NA)",
    )
    f.add_argument(
        "--confint",
        choices=["wald", "profile", "bootstrap"],
        help="print confidence intervals for the fixed effects and variance parameters",
    )
    f.add_argument("--n-boot", type=int, default=None, help="bootstrap replications (default 500)")
    f.add_argument("--seed", type=int, default=None, help="bootstrap random seed")
    f.set_defaults(func=_fit)

    e = sub.add_parser(
        "explore",
        help="write the interactive shrinkage explorer as one self-contained HTML page",
    )
    e.add_argument("file", nargs="?", help="CSV or Parquet file (or use --demo)")
    e.add_argument("--y", help="response column (or the estimate, with --se)")
    e.add_argument("--group", help="grouping column")
    e.add_argument("--se", help="standard-error column: the rows are group estimates")
    e.add_argument(
        "--formula",
        help="lme4-style formula whose only random term is one intercept, e.g. "
        "'log_radon ~ floor + (1 | county)' (instead of --y/--group); the other fixed effects "
        "are held at their estimates",
    )
    e.add_argument("--method", default="reml", help="reml (default) or ml; dl with --se")
    e.add_argument(
        "--demo", action="store_true", help="the bundled worked example, with its four models"
    )
    e.add_argument("--out", required=True, help="the HTML page to write")
    e.add_argument("--title", help="the page's heading")
    e.add_argument(
        "--missing",
        default="raise",
        choices=["raise", "drop"],
        help="rows with missing values: raise (default) or drop with a warning",
    )
    e.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "polars", "duckdb", "pandas"],
        help="how to read FILE (as for `fit`)",
    )
    e.set_defaults(func=_explore)
    return parser


#: The Python names in bayeshrink's messages and the command line's words for them. A message
#: keeps one wording for both, and the command line translates it here.
_CLI_WORDS: tuple[tuple[str, str], ...] = (
    (r"pass `missing='drop'`", "pass `--missing drop`"),
    (r"unless `?allow_new_levels=True`?", "unless `--allow-new-levels` is given"),
    (r"`?allow_new_levels=True`?", "`--allow-new-levels`"),
    (r"pass `?random=False`?", "pass `--population`"),
    (r"`newdata`", "`--predict` NEWDATA"),
    (r"E\.g\. n_boot=(\d+)", r"E.g. --n-boot \1"),
    (r"`bs\.fit_summary\([^`]*\)`|`bs\.fit_summary`", "--se (the rows are group estimates)"),
    (
        r"`(y|group|se|method|level|interval|formula|n_boot|out)`",
        lambda m: f"`--{m[1]}`".replace("_", "-"),
    ),
    (r"`estimate`", "`--y`"),
    (r"E\.g\. level=([\d.]+)", r"E.g. --level \1"),
    # predict and profile/bootstrap intervals of summary data (--se)
    (
        r"`fit` must be fitted to long data \(one row per observation\) for ([^;]+); got a fit to "
        r"group estimates with known standard errors \(bs\.fit_summary\)",
        r"`FILE` must hold long data (one row per observation) for \1; got group estimates with "
        r"known standard errors (--se)",
    ),
    # the explorer's refusals: on the command line the fit comes from --formula
    (r"`fit` must have", "`--formula` must have"),
    (r"got a (?:MultiFit|FactorFit) of ", "got "),
    (r", and see bs\.plot_shrinkage_2d for the joint move", ""),
    (r", or draw the slopes with bs\.plot_forest\(fit\)", ""),
    (r"bs\.fit\(df, formula=('[^']*')\)", r"--formula \1"),
    (
        r"silence this warning with warnings\.filterwarnings\([^)]*\)\.",
        "read this warning as a note.",
    ),
    # the engines' and pandas' conversion snippets: on the command line the reader found text
    (
        r"(Cast it in [\w.\[\]-]+ first, e\.g\. `[^`]*`|Convert it, e\.g\. `df\[[^`]*`)\.",
        "The file holds text in that column: fix its values that are not numbers (a missing "
        "value is an empty field or NA).",
    ),
)


def cli_words(message: str) -> str:
    """A bayeshrink message with its Python keywords replaced by the command line's flags."""

    for pattern, repl in _CLI_WORDS:
        message = re.sub(pattern, repl, message)
    return message


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """bayeshrink's warnings on the command line: one line each, like its errors."""
    print(f"bayeshrink: warning: {cli_words(str(message))}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import warnings

    from .errors import BayeshrinkWarning

    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        # rows dropped, divergences, chains that did not converge: said in one line, not as a
        # Python warning with its source line
        warnings.simplefilter("always", BayeshrinkWarning)
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except BayeshrinkError as exc:
            print(f"bayeshrink: error: {cli_words(str(exc))}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            # the reader closed the pipe (`bayeshrink fit ... | head`): it has what it wanted.
            # Point stdout at devnull so that the interpreter's final flush does not fail again.
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
