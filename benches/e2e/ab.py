#!/usr/bin/env python3
"""Two or more prep binaries (or environments) on the same pipelines, runs
alternating, for A/B comparisons on a noisy machine.

    python3 benches/e2e/ab.py --rounds 4 --pause 1 \\
        --cases prep-parquet-parquet,prep-csv-jsonl \\
        old=/tmp/prep-old new=target/release/prep \\
        'thp-off=target/release/prep:MIMALLOC_ALLOW_THP=0'

Each variant is LABEL=BINARY[:VAR=VALUE;VAR=VALUE]. A case is a pipeline
file `WORK/pipelines/CASE.toml`, as benches/e2e/run.py writes them (run it
once first; WORK defaults to /tmp/prep-bench). Round r runs every variant
once per case, in the given order on even rounds and reversed on odd ones,
after `--pause` seconds of idle (on a VM that hands free memory back to its
host, a pause decides what fresh memory costs: docs/benchmarks.md, "The
allocator"). Prints per case and variant: median wall seconds (min–max),
median user and system CPU seconds, and the largest peak RSS.
"""

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--pause", type=float, default=1.0)
    ap.add_argument("--cases", required=True, help="comma-separated pipeline names")
    ap.add_argument("--work", default="/tmp/prep-bench")
    ap.add_argument("variants", nargs="+", help="LABEL=BINARY[:VAR=VALUE;...]")
    a = ap.parse_args()
    variants = []
    for spec in a.variants:
        label, _, rest = spec.partition("=")
        binary, _, assignments = rest.partition(":")
        env = dict(os.environ)
        for kv in filter(None, assignments.split(";")):
            k, _, v = kv.partition("=")
            env[k] = v
        variants.append((label, binary, env))
    res: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    for r in range(a.rounds):
        for case in a.cases.split(","):
            toml = Path(a.work) / "pipelines" / f"{case}.toml"
            for label, binary, env in variants if r % 2 == 0 else variants[::-1]:
                time.sleep(a.pause)
                t0 = time.perf_counter()
                p = subprocess.Popen([binary, "run", str(toml), "--overwrite", "--quiet"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                _, status, usage = os.wait4(p.pid, 0)
                if status != 0:
                    raise SystemExit(f"{label} on {case} failed: {p.stderr.read().decode()}")
                res.setdefault((case, label), []).append(
                    (time.perf_counter() - t0, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024))
    for case in a.cases.split(","):
        for label, _, _ in variants:
            v = res[(case, label)]
            walls = [x[0] for x in v]
            print(f"{case:26s} {label:14s} wall {statistics.median(walls):.2f} s ({min(walls):.2f}–{max(walls):.2f}), "
                  f"user {statistics.median(x[1] for x in v):.2f} s, system {statistics.median(x[2] for x in v):.2f} s, "
                  f"peak RSS {max(x[3] for x in v):.0f} MiB")


if __name__ == "__main__":
    main()
