"""What sampling crossed random effects costs: the InstEval model in PyMC, plug-in and full Bayes.

    python benchmarks/bench_sample_multi.py                 # 2 chains x (200 tune + 200 draws)
    python benchmarks/bench_sample_multi.py --draws 1000 --tune 1000 --chains 4

Crossed factors cannot be integrated out group by group (a row belongs to a level of every
factor), so ``bs.plugin_model`` and ``bs.hierarchical_model`` of a several-factor fit sample all
random effects non-centred, with the likelihood on the rows. On lme4's InstEval (73,421 ratings;
2,972 students, 1,128 lecturers, 14 departments: 4,114 effects) this prints the wall time
(compilation included), the mean number of leapfrog steps per draw and the smallest bulk ESS of
each factor's effects and SDs; ``bs.sample`` itself warns when the chains have not converged.
The exact plug-in posterior needs no sampling: ``bs.plugin_posterior(fit)``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

import bayeshrink as bs

DATA = Path(__file__).resolve().parent.parent / "tests" / "reference" / "multi_insteval.csv.gz"
FORMULA = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"


def main() -> None:
    import arviz as az

    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--tune", type=int, default=200)
    parser.add_argument("--chains", type=int, default=2)
    args = parser.parse_args()
    fit = bs.fit(pd.read_csv(DATA), formula=FORMULA)
    print(
        f"InstEval: {fit.n_obs:,} rows, factors {fit.factors}; {args.chains} chains x "
        f"({args.tune} tune + {args.draws} draws)"
    )
    for name, make in (("plug-in", bs.plugin_model), ("full Bayes", bs.hierarchical_model)):
        model = make(fit)
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idata = bs.sample(
                model, draws=args.draws, tune=args.tune, chains=args.chains, random_seed=1
            )
        elapsed = time.perf_counter() - t
        post = idata["posterior"]
        names = [v for v in post.data_vars if v.startswith(("b:", "sd:")) or v == "sigma"]
        ess = az.ess(idata, var_names=names)
        low = ", ".join(f"{v} {float(ess[v].min()):.0f}" for v in names)
        steps = float(idata["sample_stats"]["n_steps"].mean())
        print(
            f"  {name:10s} {elapsed:7.1f} s, {steps:5.1f} leapfrog steps per draw; "
            f"smallest bulk ESS: {low}"
        )
        for w in caught:
            print(f"    warning: {str(w.message)[:160]}")


if __name__ == "__main__":
    main()
