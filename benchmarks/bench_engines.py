"""Sufficient statistics inside the engine: pandas vs polars (lazy) vs DuckDB, and a big Parquet.

    python benchmarks/bench_engines.py             # 10M rows in 100k groups, then 100M from Parquet
    python benchmarks/bench_engines.py --quick     # 1M rows, then 10M from Parquet
    python benchmarks/bench_engines.py --no-lme4   # skip lme4 (run through Rscript when found)

Part 1 fits y ~ 1 + (1 | g) by REML on the same in-memory data through each engine and prints
the times and ratios against pandas (and lme4 through Rscript when R with lme4 is installed,
its time measured inside R around lmer(), so reading the CSV is not counted). Part 2 writes a
Parquet file in chunks, then fits it in a fresh process through DuckDB and through polars
(lazy scans: only one row per group is collected) and prints each process's peak memory (RSS).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from _data import make_data  # benchmarks/ is on sys.path when run as a script

import bayeshrink as bs


def timed(fn, repeats=3):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def part1(n_rows: int, n_groups: int, with_lme4: bool) -> None:
    import duckdb
    import polars as pl

    df = make_data(n_rows, n_groups)
    lazy = pl.from_pandas(df).lazy()
    con = duckdb.connect()
    con.register("df_view", df)
    rel = con.sql("select * from df_view")
    print(f"\nIn memory: {n_rows:,} rows, {n_groups:,} groups (REML fit incl. the GROUP BY)")
    results = {}
    for name, data in (("pandas", df), ("polars lazy", lazy), ("duckdb", rel)):
        t, fit = timed(lambda data=data: bs.fit(data, y="y", group="g"))
        results[name] = (t, fit)
    t_pd = results["pandas"][0]
    for name, (t, fit) in results.items():
        print(
            f"  {name:<12} {t * 1e3:8.0f} ms   tau={fit.tau:.6f}   {t_pd / t:5.2f}x pandas' speed"
        )
    if with_lme4 and shutil.which("Rscript"):
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "d.csv"
            df.to_csv(csv, index=False)
            code = (
                "suppressPackageStartupMessages(library(lme4));"
                " d <- read.csv(commandArgs(TRUE)[1]); d$g <- factor(d$g);"
                " t <- system.time(m <- lmer(y ~ 1 + (1 | g), d));"
                " cat(t[['elapsed']], '\\n')"
            )
            out = subprocess.run(["Rscript", "-e", code, str(csv)], capture_output=True, text=True)
            if out.returncode == 0:
                t_r = float(out.stdout.split()[0])
                print(
                    f"  {'lme4':<12} {t_r * 1e3:8.0f} ms   (slower than pandas "
                    f"{t_r / t_pd:.0f}x, polars lazy {t_r / results['polars lazy'][0]:.0f}x, "
                    f"DuckDB {t_r / results['duckdb'][0]:.0f}x)"
                )
            else:
                print("  lme4 failed:", out.stderr.strip().splitlines()[-1:])


def write_parquet(path: Path, n_rows: int, n_groups: int, chunk: int = 5_000_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    effects = rng.normal(0, 1.0, size=n_groups)
    writer = None
    for start in range(0, n_rows, chunk):
        m = min(chunk, n_rows - start)
        g = rng.integers(0, n_groups, size=m, dtype=np.int32)
        y = 50.0 + effects[g] + rng.normal(0, 3.0, size=m)
        table = pa.table({"g": g, "y": y})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


CHILD = textwrap.dedent("""
    import resource, sys, time
    import bayeshrink as bs
    engine, path = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    if engine == "duckdb":
        import duckdb
        data = duckdb.read_parquet(path)
    else:
        import polars as pl
        data = pl.scan_parquet(path)
    fit = bs.fit(data, y="y", group="g")
    t = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    print(f"{t:.2f} {peak:.0f} {fit.tau:.6f} {fit.n_groups}")
""")


def part2(n_rows: int, n_groups: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.parquet"
        t0 = time.perf_counter()
        write_parquet(path, n_rows, n_groups)
        size = path.stat().st_size / 2**20
        print(
            f"\nParquet file: {n_rows:,} rows, {n_groups:,} groups, {size:,.0f} MiB "
            f"(written in {time.perf_counter() - t0:.0f} s)"
        )
        for engine in ("duckdb", "polars"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, engine, str(path)], capture_output=True, text=True
            )
            if out.returncode != 0:
                print(f"  {engine}: failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            t, peak, tau, k = out.stdout.strip().splitlines()[-1].split()
            print(
                f"  {engine:<7} {float(t):7.1f} s   peak memory {float(peak):7.0f} MiB "
                f"(goal < 2048)   tau={tau}  groups={k}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-lme4", action="store_true", help="skip lme4 even if installed")
    args = parser.parse_args()
    if args.quick:
        part1(1_000_000, 10_000, not args.no_lme4)
        part2(10_000_000, 100_000)
    else:
        part1(10_000_000, 100_000, not args.no_lme4)
        part2(100_000_000, 100_000)


if __name__ == "__main__":
    main()
