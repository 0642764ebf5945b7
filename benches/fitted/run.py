#!/usr/bin/env python3
"""Fitted-steps benchmark (issue 14): the cost of an imputer + robust scaler
+ one-hot encoder beside the standard-only job, on the same rows.

    cargo build --release
    python3 benches/fitted/run.py --rows 5000000 --runs 3

Generates the seeded reviews CSV with sample_data/generate_reviews.py
(cached under --work), then runs prep on two pipelines, each a fresh process
timed with wait4(2) (wall, CPU = user + sys, peak RSS), rotated round by
round so both see the same machine state:

- standard: drop rows with a null anywhere, StandardScaler on every numeric
  column but review_id and label (the end-to-end benchmark's job);
- fitted: drop rows without text; median imputer (+ `_missing` indicators)
  on price, helpful_votes, days_since_purchase and sentiment_score; most
  frequent imputer on rating; one-hot rating and verified_purchase; robust
  scaler (exact quantiles, refinement passes) on price, helpful_votes and
  days_since_purchase; standard scaler on sentiment_score and review_length.

Both write snappy Parquet shards of 100k rows. Prints a markdown table of
the medians (for docs/benchmarks.md) and writes every measurement to
WORK/fitted-results.json. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
GENERATOR = REPO / "sample_data" / "generate_reviews.py"

PIPELINES = {
    "standard": """
[clean]
drop_nulls = "any"

[scale]
columns = "numeric"
exclude = ["review_id", "label"]
""",
    "fitted": """
[clean]
drop_nulls = ["text"]

[[impute]]
columns = ["price", "helpful_votes", "days_since_purchase", "sentiment_score"]
strategy = "median"
add_indicator = true

[[impute]]
columns = ["rating"]
strategy = "most_frequent"

[encode]
columns = ["rating", "verified_purchase"]
method = "onehot"

[[scale]]
columns = ["price", "helpful_votes", "days_since_purchase"]
method = "robust"

[[scale]]
columns = ["sentiment_score", "review_length"]
method = "standard"
""",
}


def measure(cmd: list[str], log: Path) -> dict:
    with open(log, "wb") as f:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=str(REPO))
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        sys.exit("run failed (exit %d), see %s" % (rc, log))
    return {
        "wall_s": wall,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "peak_rss_mib": ru.ru_maxrss / 1024.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default="/tmp/prep-bench-fitted")
    ap.add_argument("--prep", default=os.environ.get("PREP_BIN", str(REPO / "target" / "release" / "prep")))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = work / ("reviews-%d-s%d.csv" % (args.rows, args.seed))
    if not data.exists():
        print("generating %s ..." % data, flush=True)
        tmp = data.with_suffix(".tmp")
        subprocess.run([sys.executable, str(GENERATOR), "--rows", str(args.rows), "--seed", str(args.seed),
                        "--out", str(tmp)], check=True)
        tmp.rename(data)
    results: dict[str, list[dict]] = {name: [] for name in PIPELINES}
    for r in range(args.runs):
        order = list(PIPELINES) if r % 2 == 0 else list(reversed(PIPELINES))
        for name in order:
            out = work / ("out-" + name)
            toml = work / (name + ".toml")
            toml.write_text(
                'name = "%s"\n[input]\nuri = %s\n%s\n[output]\nuri = %s\nformat = "parquet"\ncompression = "snappy"\nshard_max_rows = 100000\n'
                % (name, json.dumps(str(data)), PIPELINES[name], json.dumps(str(out) + "/"))
            )
            m = measure([args.prep, "run", str(toml), "--overwrite", "--quiet"], work / (name + ".log"))
            report = json.loads((out / "_SUCCESS").read_text())
            m["rows_written"] = report.get("rows_written")
            results[name].append(m)
            print("round %d %-8s %.2f s wall, %.2f s CPU, %.0f MiB peak RSS" % (
                r + 1, name, m["wall_s"], m["cpu_s"], m["peak_rss_mib"]), flush=True)
    (work / "fitted-results.json").write_text(json.dumps(results, indent=1))
    med = {n: {k: statistics.median(m[k] for m in ms) for k in ("wall_s", "cpu_s", "peak_rss_mib")}
           for n, ms in results.items()}
    base = med["standard"]["wall_s"]
    print()
    print("Machine: %s, %d cores; %d rows (%.0f MiB CSV); medians of %d rotated rounds."
          % (platform.platform(), os.cpu_count() or 0, args.rows, data.stat().st_size / 2**20, args.runs))
    print()
    print("| pipeline | wall | CPU | peak RSS | rows written | wall ÷ standard |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in PIPELINES:
        m = med[n]
        print("| %s | %.2f s | %.2f s | %.0f MiB | %s | %.2f |" % (
            n, m["wall_s"], m["cpu_s"], m["peak_rss_mib"], results[n][-1]["rows_written"], m["wall_s"] / base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
