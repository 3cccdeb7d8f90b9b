"""What the ArviZ groups cost: pointwise log-likelihood, observed/constant data and posterior
predictive draws, against the sampling they follow; and tau's ESS per second against bambi.

    python benchmarks/bench_workflow.py                      # 100k rows / 10k groups, bambi at 20k
    python benchmarks/bench_workflow.py --draws 1000 --chains 4 --bambi 50000:5000
    python benchmarks/bench_workflow.py --repeat 4             # the groups again, memory warm

bayeshrink fits y ~ 1 + (1 | g) by full Bayes (marginalized: theta drawn exactly after
sampling) with the rows given (``data=``), so the log-likelihood and the predictive draws are
per row: draws x rows numbers each. Reported: the sampler's own time (nutpie's
``sampling_time``, no compilation), the wall time of bs.sample, and the time to compute the
log-likelihood group (with observed and constant data) and the posterior predictive draws
after sampling, as a share of each.

bambi builds a dense rows x groups matrix and at 100,000 rows x 10,000 groups did not finish
within 1,500 s here (bench_bayes.py), so its tau ESS per second is measured at a size where it
finishes (--bambi ROWS:GROUPS, 10 rows per group as above), beside bayeshrink's at the same
size with the ArviZ groups included, in the same run.
"""

from __future__ import annotations

import argparse
import time

import arviz as az
import bench_bayes
import numpy as np  # benchmarks/ is on sys.path when run as a script
from _data import make_data

import bayeshrink as bs
from bayeshrink.bayes.workflow import add_workflow_groups


def run_ours(df, draws: int, tune: int, chains: int, repeat: int = 1) -> dict:
    t0 = time.perf_counter()
    fit = bs.fit(df, y="y", group="g")
    model = bs.hierarchical_model(fit, data=df)
    idata = bs.sample(model, draws=draws, tune=tune, chains=chains, random_seed=1)
    wall = time.perf_counter() - t0
    t_lls, t_pps = [], []
    for _ in range(repeat):
        t1 = time.perf_counter()
        add_workflow_groups(idata, model)  # what bs.sample did once already, timed alone
        t_lls.append(time.perf_counter() - t1)
        t2 = time.perf_counter()
        bs.sample_posterior_predictive(idata, random_seed=2)
        t_pps.append(time.perf_counter() - t2)
    t_ll, t_pp = t_lls[0], t_pps[0]
    ess_tau = float(az.ess(idata, var_names=["tau"])["tau"].values)
    # what writing the two groups' numbers into new memory costs by itself on this machine
    # (in a VM whose memory the host backs lazily, first touch can cost more than computing)
    shape = idata["log_likelihood"]["y"].shape
    t3 = time.perf_counter()
    blank = np.empty(shape)
    blank.fill(0.0)
    t_mem = time.perf_counter() - t3
    del blank
    return {
        "memory": t_mem,
        "repeats": [a + b for a, b in zip(t_lls, t_pps, strict=True)],
        "wall": wall,
        "sampling": float(idata["posterior"].attrs.get("sampling_time", float("nan"))),
        "loglik": t_ll,
        "predictive": t_pp,
        "ess_tau": ess_tau,
        "rows": len(df),
        "values": int(np.prod(shape)),
    }


def show(r: dict) -> None:
    extra = r["loglik"] + r["predictive"]
    before = r["wall"] - r["loglik"]  # bs.sample's wall time without its own log-likelihood
    print(
        f"  bs.sample wall {r['wall']:.1f} s (sampler alone {r['sampling']:.1f} s); "
        f"log-likelihood + data {r['loglik']:.2f} s, posterior predictive {r['predictive']:.2f} s"
    )
    print(
        f"  ArviZ groups: {extra:.2f} s = {100 * extra / before:.1f}% of the sampling wall time "
        f"(incl. compilation), {100 * extra / r['sampling']:.1f}% of the sampler's own time; "
        f"tau ESS {r['ess_tau']:.0f}"
    )
    if len(r["repeats"]) > 1:
        again = r["repeats"][1:]
        print(
            f"  the two groups again (memory already touched): {min(again):.2f}-{max(again):.2f}"
            f" s = {100 * min(again) / r['sampling']:.0f}-{100 * max(again) / r['sampling']:.0f}%"
            " of the sampler's own time"
        )
    print(
        f"  (writing one group's {r['values']:,} float64 numbers into new memory alone: "
        f"{r['memory']:.2f} s here, twice that for the two groups)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--bambi", default="20000:2000", metavar="ROWS:GROUPS")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--repeat", type=int, default=1, help="compute the groups this many times (100k run)"
    )
    args = parser.parse_args()
    print(
        f"y ~ 1 + (1 | g), full Bayes, {args.chains} chains x ({args.tune} tune + "
        f"{args.draws} draws)"
    )
    df = make_data(args.rows, args.groups)
    print(f"\n{args.rows:,} rows, {args.groups:,} groups: cost of the ArviZ groups")
    show(run_ours(df, args.draws, args.tune, args.chains, args.repeat))

    rows, groups = (int(v) for v in args.bambi.split(":"))
    df = make_data(rows, groups)
    print(f"\n{rows:,} rows, {groups:,} groups: tau ESS per second, bayeshrink vs bambi")
    ours = run_ours(df, args.draws, args.tune, args.chains)
    show(ours)
    total = ours["wall"] + ours["predictive"]  # with the ArviZ groups, incl. compilation
    print(f"  bayeshrink  tau ESS/s {ours['ess_tau'] / total:8.1f} ({total:.1f} s in all)")
    bench_bayes.DRAWS, bench_bayes.TUNE, bench_bayes.CHAINS = args.draws, args.tune, args.chains
    theirs = bench_bayes.run_bambi(df, args.timeout)
    if isinstance(theirs, str):
        print(f"  bambi       {theirs}")
        return
    print(
        f"  bambi       tau ESS/s {theirs['per_s_tau']:8.1f} ({theirs['seconds']:.1f} s, tau ESS "
        f"{theirs['ess_tau']:.0f}, its log-likelihood not computed)"
    )
    print(f"  ratio (tau ESS per second): {ours['ess_tau'] / total / theirs['per_s_tau']:.1f}x")


if __name__ == "__main__":
    main()
