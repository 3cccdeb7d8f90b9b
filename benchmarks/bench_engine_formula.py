"""A formula fit inside the engine, out of core: y ~ x + (x | g) on a big Parquet file.

    python benchmarks/bench_engine_formula.py                 # 50M rows, 100k groups
    python benchmarks/bench_engine_formula.py --rows 5000000  # a smaller run
    python benchmarks/bench_engine_formula.py --crossed       # y ~ x + (1 | a) + (1 | b)

Writes the Parquet file in chunks into a temporary folder, then fits it in a fresh process each
through DuckDB (a relation over ``read_parquet``) and polars (``scan_parquet``; bayeshrink
collects polars with its streaming engine), printing each process's wall time and peak
resident memory (the maximum of ``getrusage``'s ``ru_maxrss`` and a 20 ms sampling thread).
Only the per-group cross-products leave the engine. Then the same numbers for the pandas fit
(all rows in memory) when the file has at most ``--pandas-max`` rows, and the largest relative
difference between the fits (fixed effects, sigma, logLik, the random-effects covariance).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

CHILD = textwrap.dedent(
    """
    import json, resource, sys, threading, time
    peak = [0]
    def sample():
        while True:
            with open("/proc/self/statm") as f:
                peak[0] = max(peak[0], int(f.read().split()[1]) * resource.getpagesize())
            time.sleep(0.02)
    threading.Thread(target=sample, daemon=True).start()
    import numpy as np
    import bayeshrink as bs
    engine, path = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    if engine == "duckdb":
        import duckdb
        con = duckdb.connect()
        con.execute("SET threads = 2")
        data = con.read_parquet(path)
    elif engine == "polars":
        import polars as pl
        data = pl.scan_parquet(path)
    else:
        import pandas as pd
        data = pd.read_parquet(path)
    if len(sys.argv) > 3:  # crossed: bs.fit computes the blocks in the engine
        fit = bs.fit(data, formula="y ~ x + (1 | a) + (1 | b)")
        out = {"fixef": fit.fixef.tolist(), "sigma": fit.sigma, "loglik": fit.loglik,
               "cov": [float(fit.cov_re(f).iloc[0, 0]) for f in fit.factors]}
    else:
        fit = bs.fit(data, formula="y ~ x + (x | g)")
        out = {"fixef": fit.fixef.tolist(), "sigma": fit.sigma, "loglik": fit.loglik,
               "cov": np.asarray(fit.cov_re(), dtype=float).ravel().tolist()}
    out["wall"] = time.perf_counter() - t0
    out["rss"] = max(peak[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps(out))
    """
)


def write_crossed(path: Path, rows: int, n_a: int, n_b: int, seed: int = 2) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    ea, eb = rng.normal(0.0, 1.0, n_a), rng.normal(0.0, 0.5, n_b)
    chunk = 2_000_000
    schema = pa.schema(
        [("a", pa.int64()), ("b", pa.int64()), ("x", pa.float64()), ("y", pa.float64())]
    )
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            a, b = rng.integers(0, n_a, n), rng.integers(0, n_b, n)
            x = rng.normal(0.0, 1.0, n)
            y = 1.0 + 0.5 * x + ea[a] + eb[b] + rng.normal(0.0, 2.0, n)
            writer.write_table(pa.table({"a": a, "b": b, "x": x, "y": y}, schema=schema))


def write_parquet(path: Path, rows: int, groups: int, seed: int = 1) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, groups)
    b = rng.normal(0.0, 0.3, groups)
    chunk = 2_000_000
    schema = pa.schema([("g", pa.int64()), ("x", pa.float64()), ("y", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            g = rng.integers(0, groups, n)
            x = rng.normal(0.0, 1.0, n)
            y = 1.0 + 0.5 * x + a[g] + b[g] * x + rng.normal(0.0, 2.0, n)
            writer.write_table(pa.table({"g": g, "x": x, "y": y}, schema=schema))


def run(engine: str, path: Path, crossed: bool = False) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, engine, str(path), *(["crossed"] if crossed else [])],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"{engine} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rel_diff(a: dict, b: dict) -> float:
    diffs = []
    for key in ("fixef", "cov"):
        x, y = np.asarray(a[key]), np.asarray(b[key])
        diffs.append(float(np.max(np.abs(x - y)) / np.max(np.abs(y))))
    for key in ("sigma", "loglik"):
        diffs.append(abs(a[key] - b[key]) / abs(b[key]))
    return max(diffs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--groups", type=int, default=100_000)
    ap.add_argument("--pandas-max", type=int, default=10_000_000)
    ap.add_argument(
        "--crossed",
        action="store_true",
        help="fit y ~ x + (1 | a) + (1 | b) (20k x 500 levels) instead",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.parquet"
        if args.crossed:
            write_crossed(path, args.rows, 20_000, 500)
            what = "20,000 x 500 crossed levels"
        else:
            write_parquet(path, args.rows, args.groups)
            what = f"{args.groups:,} groups"
        size = path.stat().st_size / 2**20
        print(f"{args.rows:,} rows, {what}, Parquet {size:.0f} MiB")
        print(("y ~ x + (1 | a) + (1 | b)" if args.crossed else "y ~ x + (x | g)") + ", REML")
        results = {}
        engines = ["duckdb", "polars"] + (["pandas"] if args.rows <= args.pandas_max else [])
        for engine in engines:
            r = results[engine] = run(engine, path, args.crossed)
            print(
                f"  {engine:7s} wall {r['wall']:7.1f} s   peak RSS {r['rss'] / 2**30:5.2f} GB   "
                f"fixef {np.round(r['fixef'], 6).tolist()}  sigma {r['sigma']:.6f}"
            )
        ref = results.get("pandas", results["duckdb"])
        for engine, r in results.items():
            if r is not ref:
                print(
                    f"  {engine} vs {'pandas' if 'pandas' in results else 'duckdb'}: "
                    f"largest relative difference {rel_diff(r, ref):.1e}"
                )


if __name__ == "__main__":
    main()
