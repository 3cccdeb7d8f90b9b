"""Speed and memory of crossed random effects: bayeshrink vs lme4, in the same run.

    python benchmarks/bench_multi.py                 # InstEval, then 1,000,000 rows
    python benchmarks/bench_multi.py --only insteval
    python benchmarks/bench_multi.py --only sim --rows 1000000 --subjects 10000
    python benchmarks/bench_multi.py --threads 2     # BLAS threads for bayeshrink (default 1)

1. lme4's InstEval (73,421 ratings; 2,972 students x 1,128 lecturers crossed, 14 departments),
   ``y ~ service + (1 | s) + (1 | d) + (1 | dept)`` by REML, with the conditional modes and
   conditional SDs of all three factors. lme4 is the default ``lmer()`` (its default optimizer
   and tolerances) plus ``ranef(condVar = TRUE)``, timed inside R, so reading the CSV is not
   counted (nor is loading lme4); bayeshrink is timed around ``fit_multi`` (formula evaluation
   included), which computes the conditional modes and SDs of every factor, with the libraries
   it calls (formulae, which loads scipy.optimize, about 0.3 s) imported before the clock starts
   as R's ``library(lme4)`` is.
2. A simulated subjects x items design, every subject answering every item,
   ``y ~ x + (1 + x | subj) + (1 | item)``: time as above, and the peak resident memory of each
   process (VmHWM; each side runs in its own process and reads the same CSV).

BLAS threads: bayeshrink runs with one OpenBLAS thread unless ``--threads`` says otherwise, set
before numpy is loaded. lme4's dense and sparse factorisations (Eigen, CHOLMOD) are
single-threaded too. On a machine shared with other jobs, two spinning OpenBLAS threads can make
the fit several times slower, not faster.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTEVAL_CSV = ROOT / "tests" / "reference" / "multi_insteval.csv.gz"
INSTEVAL = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"
SIM = "y ~ x + (1 + x | subj) + (1 | item)"

R_INSTEVAL = r"""
suppressPackageStartupMessages(library(lme4))
d <- read.csv(commandArgs(TRUE)[1], colClasses = c(s = "character", d = "character",
                                                   dept = "character"))
t <- system.time({
  m <- lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept), data = d, REML = TRUE)
  re <- ranef(m, condVar = TRUE)
})
hwm <- as.numeric(sub("[^0-9]*([0-9]+).*", "\\1",
                      grep("VmHWM", readLines("/proc/self/status"), value = TRUE)))
cat(sprintf("%.12g", c(t[["elapsed"]], hwm / 1024, fixef(m), as.data.frame(VarCorr(m))$sdcor,
                      as.numeric(logLik(m)))), "\n")
"""

R_SIM = r"""
suppressPackageStartupMessages(library(lme4))
d <- read.csv(commandArgs(TRUE)[1], colClasses = c(subj = "character", item = "character"))
t <- system.time({
  m <- lmer(y ~ x + (1 + x | subj) + (1 | item), data = d, REML = TRUE)
  re <- ranef(m, condVar = TRUE)
})
hwm <- as.numeric(sub("[^0-9]*([0-9]+).*", "\\1",
                      grep("VmHWM", readLines("/proc/self/status"), value = TRUE)))
cat(sprintf("%.12g", c(t[["elapsed"]], hwm / 1024, fixef(m), as.data.frame(VarCorr(m))$sdcor,
                      as.numeric(logLik(m)))), "\n")
"""

CHILD = r"""
import os, sys, time
import pandas as pd
from bayeshrink.lmm.multi import fit_multi
import formulae, scipy.linalg, scipy.sparse  # loaded before the clock, as R's library(lme4)
csv, formula, labels = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
df = pd.read_csv(csv, dtype={c: str for c in labels})
t0 = time.perf_counter()
fit = fit_multi(df, formula)
sds = [fit.ranef_sd(f) for f in fit.factors]
modes = [fit.ranef(f) for f in fit.factors]
elapsed = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
vc = fit.varcorr()
print(elapsed, int(hwm) / 1024, *fit.fixef, *vc.sdcor, fit.loglik, fit.components.n_evals)
"""


def run_child(csv: Path, formula: str, labels: list[str], threads: int) -> list[float]:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(csv), formula, ",".join(labels)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return [float(v) for v in proc.stdout.split()]


def run_r(csv: Path, script: str) -> list[float] | None:
    import shutil

    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit.R"
        path.write_text(script)
        proc = subprocess.run(["Rscript", str(path), str(csv)], capture_output=True, text=True)
    if proc.returncode != 0:
        print("  lme4 failed:", proc.stderr.strip().splitlines()[-1:])
        return None
    return [float(v) for v in proc.stdout.split()]


def report(name: str, ours: list[float], r: list[float] | None, n_fixed: int) -> None:
    t, mem = ours[0], ours[1]
    est = ours[2:-1]
    print(f"  bayeshrink  {t:8.2f} s  peak RSS {mem:7.0f} MB  ({int(ours[-1])} evaluations)")
    print("              fixef " + " ".join(f"{v:.6f}" for v in est[:n_fixed]))
    print("              sdcor " + " ".join(f"{v:.6f}" for v in est[n_fixed:-1]))
    print(f"              logLik {est[-1]:.6f}")
    if r is None:
        print("  lme4        (Rscript with lme4 not installed: skipped)")
        return
    print(f"  lme4        {r[0]:8.2f} s  peak RSS {r[1]:7.0f} MB   ratio {r[0] / t:5.1f}x faster")
    print("              fixef " + " ".join(f"{v:.6f}" for v in r[2 : 2 + n_fixed]))
    print("              sdcor " + " ".join(f"{v:.6f}" for v in r[2 + n_fixed : -1]))
    print(f"              logLik {r[-1]:.6f}")


def make_sim(path: Path, n_rows: int, n_subj: int, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd

    n_items = n_rows // n_subj
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subj), n_items)
    item = np.tile(np.arange(n_items), n_subj)
    x = rng.normal(3.0, 1.0, size=len(subj))
    bs = rng.normal(size=(n_subj, 2)) @ np.array([[0.8, 0.0], [-0.3, 0.35]]).T
    bi = rng.normal(0, 0.5, size=n_items)
    y = 1 + 0.4 * x + bs[subj, 0] + bs[subj, 1] * x + bi[item] + rng.normal(0, 0.9, len(x))
    pd.DataFrame(
        {
            "subj": [f"S{v:05d}" for v in subj],
            "item": [f"i{v:04d}" for v in item],
            "x": np.round(x, 6),
            "y": np.round(y, 6),
        }
    ).to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["insteval", "sim"], default=None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-lme4", action="store_true")
    args = parser.parse_args()

    if args.only in (None, "insteval"):
        print(f"InstEval, 73,421 rows: {INSTEVAL}, REML + conditional modes and SDs")
        ours = run_child(INSTEVAL_CSV, INSTEVAL, ["s", "d", "dept"], args.threads)
        r = None if args.no_lme4 else run_r(INSTEVAL_CSV, R_INSTEVAL)
        report("insteval", ours, r, n_fixed=2)
    if args.only in (None, "sim"):
        n_items = args.rows // args.subjects
        print(
            f"\nSimulated {args.subjects * n_items:,} rows, {args.subjects:,} subjects x "
            f"{n_items} items: {SIM}, REML + conditional modes and SDs"
        )
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "sim.csv"
            t0 = time.perf_counter()
            make_sim(csv, args.rows, args.subjects)
            print(f"  (data written in {time.perf_counter() - t0:.1f} s)")
            ours = run_child(csv, SIM, ["subj", "item"], args.threads)
            r = None if args.no_lme4 else run_r(csv, R_SIM)
        report("sim", ours, r, n_fixed=2)


if __name__ == "__main__":
    main()
