#!/usr/bin/env python3
"""End-to-end benchmark: prep against pandas + scikit-learn, Polars and DuckDB.

One command, from the repository root (build prep first):

    cargo build --release
    python3 benches/e2e/run.py --rows 5000000 --runs 3

It creates benches/e2e/.venv with the Python peers (requirements.txt),
generates a seeded reviews dataset with sample_data/generate_reviews.py as one
CSV, the same rows split into several CSV files, and Parquet (cached under
--work), then times the same job on every tool, input and output format: drop
rows with nulls, standardize the numeric columns (all but review_id and label)
with global statistics, save the scaler as JSON, write ~100k-row shards. Each
run is a fresh process; wall time, CPU time (user + sys) and peak RSS come
from wait4(2) on it. The table (median of --runs runs), the machine and the
command go to --out (default docs/benchmarks.md) and to stdout; every single
measurement goes to --json. See benches/e2e/README.md.

This script needs only the standard library; the peers run in the venv.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PEERS = HERE / "peers"
VENV = HERE / ".venv"
GENERATOR = REPO / "sample_data" / "generate_reviews.py"

# Numeric columns of generate_reviews.py's output except review_id and label:
# what prep's `columns = "numeric"`, `exclude = ["review_id", "label"]` picks
# (verified against prep's scaler.json after each prep run).
SCALE_COLUMNS = [
    "rating",
    "helpful_votes",
    "price",
    "review_length",
    "days_since_purchase",
    "sentiment_score",
    "constant_feature",
]

TOOLS = {
    # name: (peer script or None for prep, label in the table)
    "prep": (None, "prep"),
    "pandas-sklearn": ("pandas_sklearn.py", "pandas + scikit-learn, chunked"),
    "seed-style": ("seed_style.py", "seed-style (statistically wrong)"),
    "polars": ("polars_lazy.py", "Polars lazy/streaming"),
    "duckdb": ("duckdb_sql.py", "DuckDB SQL"),
    "floor": ("floor.py", "floor: Polars parse only"),
}
INPUTS = ["csv", "csv-split", "parquet"]
FORMATS = ["parquet", "jsonl"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def die(msg: str) -> None:
    log("error: " + msg)
    sys.exit(2)


def csv_list(value: str, allowed) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise argparse.ArgumentTypeError("unknown %s (choose from %s)" % (", ".join(bad), ", ".join(allowed)))
    return items


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="End-to-end benchmark of prep against pandas+sklearn, Polars and DuckDB.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows in the generated dataset")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per configuration (the median is reported)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed")
    ap.add_argument("--null-rate", type=float, default=0.03, help="generator --null-rate")
    ap.add_argument("--files", type=int, default=8, help="files in the split-CSV input")
    ap.add_argument("--work", default="/tmp/prep-bench", help="work dir: cached data, pipelines, outputs, logs")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="markdown report")
    ap.add_argument("--json", default=None, help="raw measurements (default: WORK/results.json)")
    ap.add_argument("--prep", default=str(REPO / "target" / "release" / "prep"), help="prep binary")
    ap.add_argument("--tools", type=lambda v: csv_list(v, TOOLS), default=list(TOOLS),
                    help="comma-separated subset of: " + ",".join(TOOLS))
    ap.add_argument("--inputs", type=lambda v: csv_list(v, INPUTS), default=INPUTS,
                    help="comma-separated subset of: " + ",".join(INPUTS))
    ap.add_argument("--formats", type=lambda v: csv_list(v, FORMATS), default=FORMATS,
                    help="comma-separated subset of: " + ",".join(FORMATS))
    ap.add_argument("--shard-rows", type=int, default=100_000, help="rows per output shard")
    ap.add_argument("--compression", choices=["zstd", "snappy"], default="zstd",
                    help="Parquet shard compression for every tool (snappy: the setting of issue 15's table)")
    ap.add_argument("--chunk-rows", type=int, default=100_000,
                    help="rows per chunk for the pandas peers (prep runs with its defaults)")
    ap.add_argument("--threads", default=None,
                    help="comma-separated thread counts to sweep (sets RAYON_NUM_THREADS, POLARS_MAX_THREADS, "
                         "OMP_NUM_THREADS and DuckDB's threads); default: each tool's own default")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before a single run is killed")
    ap.add_argument("--python", default=None, help="use this Python for the peers instead of creating the venv")
    ap.add_argument("--keep-outputs", action="store_true", help="keep each configuration's last output")
    args = ap.parse_args()
    if args.rows < 1 or args.runs < 1 or args.files < 1 or args.shard_rows < 1 or args.chunk_rows < 1:
        ap.error("--rows, --runs, --files, --shard-rows and --chunk-rows must be >= 1")
    args.threads = [int(t) for t in args.threads.split(",")] if args.threads else [None]
    args.work = Path(args.work).resolve()
    args.json = Path(args.json) if args.json else args.work / "results.json"
    return args


# ---------------------------------------------------------------------------
# Environment: the venv, the prep binary, the dataset.
# ---------------------------------------------------------------------------

def ensure_venv(args) -> str:
    if args.python:
        return args.python
    py = VENV / "bin" / "python"
    req = (HERE / "requirements.txt").read_bytes()
    stamp = VENV / ".requirements.sha256"
    digest = hashlib.sha256(req).hexdigest()
    if py.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return str(py)
    log("setting up %s (pandas, scikit-learn, polars, duckdb, pyarrow) ..." % VENV)
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    logf = args.work / "logs" / "pip-install.log"
    logf.parent.mkdir(parents=True, exist_ok=True)
    with open(logf, "wb") as f:
        rc = subprocess.run([str(py), "-m", "pip", "install", "-r", str(HERE / "requirements.txt")],
                            stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = logf.read_text(errors="replace").splitlines()[-15:]
        die("pip install into %s failed (exit %d); last lines of %s:\n  %s"
            % (VENV, rc, logf, "\n  ".join(tail)))
    stamp.write_text(digest + "\n")
    return str(py)


def check_prep(args) -> None:
    prep = Path(args.prep)
    if not (prep.is_file() and os.access(prep, os.X_OK)):
        die("prep binary not found at %s: build it first with `cargo build --release` "
            "(or pass --prep PATH, or leave prep out with --tools)" % prep)
    newest = max((p.stat().st_mtime for p in (REPO / "src").rglob("*.rs")), default=0)
    if newest > prep.stat().st_mtime:
        log("warning: %s is older than the sources in src/; rebuild with `cargo build --release` "
            "to benchmark the current code" % prep)


def ensure_data(args, py: str) -> dict:
    """Generates (once) the split CSV, the single CSV (the split files
    concatenated, which is byte-identical to generating it whole) and Parquet."""
    d = args.work / "data" / ("rows%d-seed%d-null%g-files%d" % (args.rows, args.seed, args.null_rate, args.files))
    meta_path = d / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    split = d / "split"
    log("generating %d rows (seed %d) into %s ..." % (args.rows, args.seed, d))
    t0 = time.time()
    gen = [sys.executable, str(GENERATOR), "--rows", str(args.rows), "--seed", str(args.seed),
           "--null-rate", str(args.null_rate)]
    if args.files > 1:
        subprocess.run(gen + ["--files", str(args.files), "--out", str(split)], check=True,
                       stderr=subprocess.DEVNULL)
        parts = sorted(split.glob("*.csv"))
        with open(d / "reviews.csv", "wb") as out:
            for i, p in enumerate(parts):
                with open(p, "rb") as f:
                    header = f.readline()
                    if i == 0:
                        out.write(header)
                    shutil.copyfileobj(f, out, 1 << 24)
    else:
        split.mkdir()
        subprocess.run(gen + ["--out", str(d / "reviews.csv")], check=True, stderr=subprocess.DEVNULL)
        shutil.copyfile(d / "reviews.csv", split / "reviews-000.csv")
    log("converting to Parquet ...")
    subprocess.run([py, str(PEERS / "to_parquet.py"), str(d / "reviews.csv"), str(d / "reviews.parquet")],
                   check=True)
    split_files = sorted(str(p) for p in split.glob("*.csv"))
    meta = {
        "rows": args.rows,
        "seed": args.seed,
        "null_rate": args.null_rate,
        "generate_seconds": round(time.time() - t0, 1),
        "inputs": {
            "csv": {"files": [str(d / "reviews.csv")], "uri": str(d / "reviews.csv"), "format": "csv"},
            "csv-split": {"files": split_files, "uri": str(split) + "/", "format": "csv"},
            "parquet": {"files": [str(d / "reviews.parquet")], "uri": str(d / "reviews.parquet"),
                        "format": "parquet"},
        },
    }
    for spec in meta["inputs"].values():
        spec["bytes"] = sum(os.path.getsize(f) for f in spec["files"])
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


# ---------------------------------------------------------------------------
# Running and measuring one process.
# ---------------------------------------------------------------------------

def measure(cmd, env, log_path: Path, timeout: float) -> dict:
    """Runs cmd as a fresh process; wall time from the parent, CPU time and
    peak RSS of the process (and any children it waited for) from wait4."""
    with open(log_path, "wb") as logf:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
                             start_new_session=True)
        killed = []

        def kill():
            killed.append(True)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": p.returncode,
        "timed_out": bool(killed),
        "wall_s": wall,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "peak_rss_mib": ru.ru_maxrss / 1024.0,  # KiB on Linux
    }


def prep_pipeline(args, spec: dict, fmt: str, out_dir: Path, path: Path) -> None:
    toml = "\n".join([
        "# written by benches/e2e/run.py",
        'name = "bench"',
        "",
        "[input]",
        "uri = %s" % json.dumps(spec["uri"]),
        'format = "%s"' % spec["format"],
        "",
        "[clean]",
        'drop_nulls = "any"',
        "",
        "[scale]",
        'columns = "numeric"',
        'exclude = ["review_id", "label"]',
        "",
        "[output]",
        "uri = %s" % json.dumps(str(out_dir) + "/"),
        'format = "%s"' % fmt,
        *(['compression = "%s"' % args.compression] if fmt == "parquet" else []),
        "shard_max_rows = %d" % args.shard_rows,
        "",
        "[artifacts]",
        "scaler = %s" % json.dumps(str(out_dir / "scaler.json")),
        "",
    ])
    path.write_text(toml)


def command(args, py: str, tool: str, inp: str, spec: dict, fmt: str | None, out_dir: Path) -> list[str]:
    if tool == "prep":
        toml = args.work / "pipelines" / ("prep-%s-%s.toml" % (inp, fmt))
        toml.parent.mkdir(parents=True, exist_ok=True)
        prep_pipeline(args, spec, fmt, out_dir, toml)
        return [args.prep, "run", str(toml), "--overwrite", "--quiet"]
    script = TOOLS[tool][0]
    cmd = [py, str(PEERS / script), "--input-format", spec["format"], "--inputs", *spec["files"],
           "--scale", ",".join(SCALE_COLUMNS), "--chunk-rows", str(args.chunk_rows)]
    if fmt is not None:
        cmd += ["--out", str(out_dir), "--format", fmt, "--shard-rows", str(args.shard_rows),
                "--compression", args.compression]
    return cmd


def thread_env(threads: int | None) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if threads is not None:
        for k in ("RAYON_NUM_THREADS", "POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                  "MKL_NUM_THREADS", "PREP_BENCH_THREADS"):
            env[k] = str(threads)
    return env


def check_output(py: str, out_dir: Path) -> dict:
    r = subprocess.run([py, str(PEERS / "check.py"), str(out_dir)], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-500:]}
    return json.loads(r.stdout)


# ---------------------------------------------------------------------------
# Machine description and the report.
# ---------------------------------------------------------------------------

def machine_info(args, py: str) -> dict:
    info = {"date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        info["nproc"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["nproc"] = os.cpu_count()
    info["cpu"] = "unknown"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    os_name = platform.system()
    try:
        for line in open("/etc/os-release", encoding="utf-8"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    info["os"] = "%s, kernel %s, %s" % (os_name, platform.release(), platform.machine())
    try:
        quota = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota and quota[0] != "max":
            info["cgroup_cpus"] = round(int(quota[0]) / int(quota[1]), 2)
    except (OSError, ValueError, IndexError):
        pass
    info["loadavg_at_start"] = os.getloadavg()
    r = subprocess.run([py, "-c", (
        "import json, platform, importlib.metadata as m\n"
        "v = {p: m.version(p) for p in ['pandas', 'scikit-learn', 'polars', 'duckdb', 'pyarrow', 'numpy']}\n"
        "v['python'] = platform.python_version()\n"
        "print(json.dumps(v))")], capture_output=True, text=True)
    info["versions"] = json.loads(r.stdout) if r.returncode == 0 else {}
    if "prep" in args.tools:
        r = subprocess.run([args.prep, "--version"], capture_output=True, text=True)
        info["versions"]["prep"] = r.stdout.strip() or "?"
    r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True)
    info["git"] = r.stdout.strip() if r.returncode == 0 else "?"
    return info


def fmt_s(x) -> str:
    if x is None:
        return "—"
    return "%.2f" % x if x < 100 else "%.0f" % x


def fmt_rate(x) -> str:
    if x is None:
        return "—"
    if x >= 1e6:
        return "%.2f M" % (x / 1e6)
    return "%.0f k" % (x / 1e3)


def rel_diff(a, b) -> float:
    worst = 0.0
    for x, y in zip(a, b):
        d = abs(x - y) / max(abs(y), 1e-300)
        worst = max(worst, d)
    return worst


def summarize(res: dict, rows: int) -> dict:
    ok = [r for r in res["runs"] if r["rc"] == 0]
    if len(ok) != len(res["runs"]) or not ok:
        bad = next(r for r in res["runs"] if r["rc"] != 0)
        return {"failed": "timed out" if bad["timed_out"] else "exit %d" % bad["rc"]}
    s = {k: statistics.median(r[k] for r in ok) for k in ("wall_s", "cpu_s", "peak_rss_mib")}
    s["rows_per_s"] = rows / s["wall_s"]
    return s


def render(args, meta: dict, info: dict, results: list, cmdline: str) -> str:
    rows = meta["rows"]
    for r in results:
        r["summary"] = summarize(r, rows)

    def find(tool, inp, fmt, thr):
        for r in results:
            if r["tool"] == tool and r["input"] == inp and r["format"] == fmt and r["threads"] == thr:
                return r
        return None

    sweep = args.threads != [None]
    v = info.get("versions", {})
    L = []
    L.append("# Benchmarks")
    L.append("")
    L.append("Generated by `benches/e2e/run.py` (see `benches/e2e/README.md`) on %s." % info["date_utc"])
    L.append("")
    L.append("```sh")
    L.append(cmdline)
    L.append("```")
    L.append("")
    L.append("## Machine")
    L.append("")
    cpu = "%s, %s CPUs available (`nproc`)" % (info["cpu"], info["nproc"])
    if "cgroup_cpus" in info:
        cpu += ", cgroup CPU quota %s" % info["cgroup_cpus"]
    L.append("- CPU: " + cpu)
    L.append("- RAM: %s GiB" % info.get("ram_gib", "?"))
    L.append("- OS: " + info["os"])
    L.append("- Load average when the benchmark started: %s" % ", ".join("%.2f" % x for x in info["loadavg_at_start"]))
    L.append("- prep: %s (git %s), binary `%s`" % (v.get("prep", "not run"), info["git"],
                                                   os.path.relpath(args.prep, REPO)))
    L.append("- Python %s: pandas %s, scikit-learn %s, polars %s, duckdb %s, pyarrow %s, numpy %s" % tuple(
        v.get(k, "?") for k in ("python", "pandas", "scikit-learn", "polars", "duckdb", "pyarrow", "numpy")))
    L.append("")
    L.append("## Data and job")
    L.append("")
    ins = meta["inputs"]
    L.append("- %s rows from `sample_data/generate_reviews.py --rows %d --seed %d --null-rate %g` "
             "(review_id, product_id, text of 20–400 chars with commas, quotes and newlines, label, "
             "8 numeric columns with nulls, one constant, a bool)."
             % ("{:,}".format(rows), rows, meta["seed"], meta["null_rate"]))
    L.append("- Inputs: `csv` one file (%.1f MB); `csv-split` the same rows in %d files (%.1f MB); "
             "`parquet` one file written by Polars `sink_parquet` defaults (zstd, %.1f MB)."
             % (ins["csv"]["bytes"] / 1e6, len(ins["csv-split"]["files"]), ins["csv-split"]["bytes"] / 1e6,
                ins["parquet"]["bytes"] / 1e6))
    L.append("- Job: drop rows with a null in any column (NaN and `NA` count as null); standardize %s "
             "with statistics over the whole cleaned table (ddof = 0, a constant column gets scale 1); "
             "save the scaler as JSON; write shards of about %s rows as Parquet (%s) or JSON Lines."
             % (", ".join("`%s`" % c for c in SCALE_COLUMNS), "{:,}".format(args.shard_rows), args.compression))
    L.append("- Each number is the median of %d runs, each a fresh process with a warm page cache; "
             "the tools of a case run in rounds (each once a round, the order reversed every other round). "
             "Wall time is measured by the parent; CPU time (user + sys) and peak RSS come from "
             "`wait4(2)` on the process. rows/s = input rows / wall time. "
             "pandas peers read %s-row chunks; every other tool runs with its defaults%s."
             % (args.runs, "{:,}".format(args.chunk_rows),
                "" if not sweep else ", except the thread count in the `threads` column"))
    L.append("")
    L.append("## Results")
    L.append("")
    head = ["tool", "input", "output"] + (["threads"] if sweep else []) + [
        "wall (s)", "CPU (s)", "peak RSS (MiB)", "rows/s", "wall ÷ prep", "rows out", "shards", "scaler Δ"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "|".join(["---"] * (3 + sweep) + ["---:"] * 8) + "|")
    for r in results:
        s = r["summary"]
        c = r.get("check") or {}
        cells = [TOOLS[r["tool"]][1], r["input"], r["format"] or "—"]
        if sweep:
            cells.append(str(r["threads"]))
        if "failed" in s:
            cells += ["failed: " + s["failed"]] + ["—"] * 7
            L.append("| " + " | ".join(cells) + " |")
            continue
        prep = find("prep", r["input"], r["format"], r["threads"])
        ratio = "—"
        if r["tool"] != "prep" and prep and "wall_s" in prep["summary"] and r["format"]:
            ratio = "%.1f×" % (s["wall_s"] / prep["summary"]["wall_s"])
        rows_out = shards = delta = "—"
        if r["format"] and "rows" in c:
            rows_out, shards = "{:,}".format(c["rows"]), str(c["shards"])
            ref = find("pandas-sklearn", r["input"], r["format"], r["threads"]) or prep
            ref_c = (ref or {}).get("check") or {}
            if ref is r:
                delta = "ref."
            elif c.get("scaler") and ref_c.get("scaler"):
                a, b = c["scaler"], ref_c["scaler"]
                if a["feature_names"] != b["feature_names"]:
                    delta = "columns differ"
                else:
                    delta = "%.0e" % max(rel_diff(a["mean"], b["mean"]), rel_diff(a["scale"], b["scale"]))
            if ref_c.get("rows") is not None and ref_c["rows"] != c["rows"]:
                rows_out += " (≠ %s)" % "{:,}".format(ref_c["rows"])
        cells += [fmt_s(s["wall_s"]), fmt_s(s["cpu_s"]), "%.0f" % s["peak_rss_mib"], fmt_rate(s["rows_per_s"]),
                  ratio, rows_out, shards, delta]
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    L.append("- *wall ÷ prep*: the tool's wall time over prep's for the same input and output.")
    L.append("- *scaler Δ*: largest relative difference of the saved means and scales from scikit-learn's "
             "(`ref.`: the pandas + scikit-learn run of the same input and output).")
    L.append("- The seed-style script is **statistically wrong**: it standardizes each chunk with that "
             "chunk's own mean and deviation, so its output differs from the others and its scaler.json "
             "(the last chunk's) does not describe the data. It is the speed baseline, not a correct peer.")
    L.append("- The floor only parses the input and sums its numeric columns (nothing cleaned, scaled or "
             "written; for Parquet only the numeric columns are decoded).")

    # prep's own per-phase timings (from its _SUCCESS run report).
    phase_rows = []
    for r in results:
        if r["tool"] != "prep" or "failed" in r["summary"]:
            continue
        phases = [run.get("phases") or {} for run in r["runs"]]
        keys = sorted({k for p in phases for k in p if k != "total"})
        if not keys:
            continue
        med = {k: statistics.median(p.get(k, 0.0) for p in phases) for k in keys}
        phase_rows.append((r, keys, med))
    if phase_rows:
        keys = sorted({k for _, ks, _ in phase_rows for k in ks})
        L.append("")
        L.append("### prep's phases")
        L.append("")
        L.append("Median seconds per phase, from the run report (`_SUCCESS`).")
        L.append("")
        L.append("| " + " | ".join(["input", "output"] + (["threads"] if sweep else []) + keys) + " |")
        L.append("|---|---|" + ("---|" if sweep else "") + "---:|" * len(keys))
        for r, _, med in phase_rows:
            cells = [r["input"], r["format"]] + ([str(r["threads"])] if sweep else [])
            cells += [fmt_s(med.get(k)) for k in keys]
            L.append("| " + " | ".join(cells) + " |")

    # prep's busy seconds per stage (summed over threads), from the same reports.
    busy_rows = []
    for r in results:
        if r["tool"] != "prep" or "failed" in r["summary"]:
            continue
        busy = [run.get("busy") or {} for run in r["runs"]]
        keys = {k for b in busy for k in b}
        if keys:
            busy_rows.append((r, {k: statistics.median(b.get(k, 0.0) for b in busy) for k in keys}))
    if busy_rows:
        order = ["read", "parse", "clean", "stats", "spill_write", "spill_read", "scale", "encode", "write"]
        keys = [k for k in order if any(k in med for _, med in busy_rows)]
        L.append("")
        L.append("### prep's stages")
        L.append("")
        L.append("Median busy seconds per stage (`busy_seconds` in `_SUCCESS`): the time each stage's "
                 "calls took, summed over the threads that ran them, so stages that overlap add up to "
                 "more than the wall time.")
        L.append("")
        L.append("| " + " | ".join(["input", "output"] + (["threads"] if sweep else []) + keys) + " |")
        L.append("|---|---|" + ("---|" if sweep else "") + "---:|" * len(keys))
        for r, med in busy_rows:
            cells = [r["input"], r["format"]] + ([str(r["threads"])] if sweep else [])
            cells += [fmt_s(med.get(k)) for k in keys]
            L.append("| " + " | ".join(cells) + " |")

    # The targets of issue 5.
    lines = []
    for thr in args.threads:
        for inp in args.inputs:
            floor = find("floor", inp, None, thr)
            for fmt in args.formats:
                p = find("prep", inp, fmt, thr)
                if not p or "wall_s" not in p["summary"]:
                    continue
                pw = p["summary"]["wall_s"]
                where = "%s → %s%s" % (inp, fmt, "" if not sweep else ", %s threads" % thr)
                peers = [find(t, inp, fmt, thr) for t in ("polars", "duckdb")]
                peers = [x["summary"]["wall_s"] for x in peers if x and "wall_s" in x["summary"]]
                if peers:
                    best = min(peers)
                    lines.append((where, "wall ≤ ½ × fastest of Polars, DuckDB", "%.2f s vs %.2f s (%.2f×)"
                                  % (pw, best, pw / best), pw <= best / 2))
                seed = find("seed-style", inp, fmt, thr)
                if seed and "wall_s" in seed["summary"]:
                    k = seed["summary"]["wall_s"] / pw
                    lines.append((where, "≥ 25× faster than seed-style", "%.1f×" % k, k >= 25))
                rss = p["summary"]["peak_rss_mib"]
                lines.append((where, "peak RSS ≤ 512 MiB", "%.0f MiB" % rss, rss <= 512))
                if floor and "wall_s" in floor["summary"]:
                    fw = floor["summary"]["wall_s"]
                    lines.append((where, "wall ≤ 1.5 × parse-only floor", "%.2f s vs %.2f s (%.2f×)"
                                  % (pw, fw, pw / fw), pw <= 1.5 * fw))
    if lines:
        L.append("")
        L.append("### Targets (issue 5)")
        L.append("")
        if rows < 5_000_000:
            L.append("The targets are set for 5M rows; this run has %s, so fixed start-up costs weigh more."
                     % "{:,}".format(rows))
            L.append("")
        L.append("| case | target | measured | |")
        L.append("|---|---|---:|---|")
        for where, what, measured, met in lines:
            L.append("| %s | %s | %s | %s |" % (where, what, measured, "met" if met else "**missed**"))
    L.append("")
    return "\n".join(L)


def main() -> int:
    args = parse_args()
    cmdline = "python3 %s %s" % (shlex.quote(os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd())),
                                 shlex.join(sys.argv[1:]))
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "logs").mkdir(exist_ok=True)
    if "prep" in args.tools:
        check_prep(args)
    py = ensure_venv(args)
    meta = ensure_data(args, py)
    info = machine_info(args, py)

    plan = []
    for thr in args.threads:
        for inp in args.inputs:
            for tool in args.tools:
                for fmt in ([None] if tool == "floor" else args.formats):
                    plan.append((thr, inp, tool, fmt))
    # The tools of one case run in rounds (one run each, the order reversed
    # every other round), so a slow spell of a shared machine falls on every
    # tool of the case rather than on one tool's runs.
    res_by = {key: {"tool": key[2], "input": key[1], "format": key[3], "threads": key[0], "runs": []}
              for key in plan}
    cases = {}
    for key in plan:
        cases.setdefault((key[0], key[1], key[3]), []).append(key)
    index = {key: i for i, key in enumerate(plan, 1)}
    for keys in cases.values():
        for run in range(args.runs):
            for key in (keys if run % 2 == 0 else keys[::-1]):
                thr, inp, tool, fmt = key
                res = res_by[key]
                if any(m["rc"] != 0 for m in res["runs"]):
                    continue
                spec = meta["inputs"][inp]
                tag = "%s-%s-%s%s" % (tool, inp, fmt or "none", "" if thr is None else "-t%d" % thr)
                out_dir = args.work / "out" / tag
                if out_dir.exists():
                    shutil.rmtree(out_dir)
                cmd = command(args, py, tool, inp, spec, fmt, out_dir)
                log_path = args.work / "logs" / ("%s-run%d.log" % (tag, run))
                m = measure(cmd, thread_env(thr), log_path, args.timeout)
                m["log"] = str(log_path)
                if m["rc"] == 0 and fmt is not None:
                    check = check_output(py, out_dir)
                    report = check.get("report") or {}
                    m["phases"] = report.get("seconds")
                    m["busy"] = report.get("busy_seconds")
                    res["check"] = {k: check.get(k) for k in ("rows", "shards", "scaler", "error")}
                res["runs"].append(m)
                status = "%.2f s wall, %.2f s CPU, %.0f MiB" % (m["wall_s"], m["cpu_s"], m["peak_rss_mib"])
                if m["rc"] != 0:
                    status = "FAILED (%s), see %s" % ("timed out" if m["timed_out"] else "exit %d" % m["rc"], log_path)
                log("[%d/%d] %-14s %-9s -> %-7s%s run %d/%d: %s" % (
                    index[key], len(plan), tool, inp, fmt or "-", "" if thr is None else " t=%d" % thr,
                    run + 1, args.runs, status))
                if out_dir.exists() and not args.keep_outputs:
                    shutil.rmtree(out_dir)
    results = [res_by[key] for key in plan]
    for res in results:
        if res["tool"] == "prep" and res.get("check", {}).get("scaler"):
            names = res["check"]["scaler"]["feature_names"]
            if names != SCALE_COLUMNS:
                log("warning: prep scaled %s, the peers scale %s" % (names, SCALE_COLUMNS))

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": cmdline, "machine": info, "data": meta, "results": results},
                                    indent=2))
    md = render(args, meta, info, results, cmdline)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    print(md)
    log("wrote %s and %s" % (out, args.json))
    return 0 if all("failed" not in r["summary"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
