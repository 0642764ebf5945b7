#!/usr/bin/env python3
"""S3 at real latency: prep reading from moto behind a proxy that caps each
connection's bandwidth and adds a first-byte latency, against the same run on
local files.

    cargo build --release --examples
    python3 benches/s3/run.py --rows 1000000 --runs 3 [--mbps 50 --latency-ms 30] [--prep BINARY]

Needs moto[server] and boto3 (tests/requirements.txt; PREP_VENV or
~/.cache/prep-venv is used when present). It generates the reviews dataset
(sample_data/generate_reviews.py), uploads it to a fresh moto server as one
object and as --split objects, starts examples/latency_proxy in front of the
server, and times `prep run` (input from S3 through the proxy, output to a
local folder) against the same pipeline on local files and against moto
with no proxy (what the test server itself costs on this machine: on a
small machine moto's own CPU competes with prep's); each case alternates
the three runs. Prints a Markdown table (medians) with the
S3 ÷ local ratio and peak RSS; --out appends it to a file. The proxy keeps
moto's answers after a warm-up run (see examples/latency_proxy.rs), so the
S3 column measures the modelled link: per-connection bandwidth and
first-byte latency, as real S3 has, without moto's CPU cost per request.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/prep-target"))
PREP = TARGET / "release" / "prep"
PROXY = TARGET / "release" / "examples" / "latency_proxy"


def venv_python() -> str:
    venv = Path(os.environ.get("PREP_VENV", Path.home() / ".cache/prep-venv"))
    py = venv / "bin" / "python"
    return str(py) if py.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and system CPU seconds of one process.

    System time is worth watching here: on a VM, first touches of fresh
    memory (the read window, network buffers) show up as system time."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024, usage.ru_stime


def pipeline(path: Path, input_uri: str, out: Path) -> None:
    path.write_text(
        f'name = "bench"\n[input]\nuri = "{input_uri}"\n'
        '[scale]\nexclude = ["review_id", "label"]\n'
        f'[output]\nuri = "{out}"\nformat = "parquet"\ncompression = "snappy"\n'
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--split", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mbps", type=float, default=50)
    ap.add_argument("--latency-ms", type=int, default=30)
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "prep-s3-bench"))
    ap.add_argument("--out")
    ap.add_argument("--prep", default=str(PREP), help="prep binary (default: the release build)")
    ap.add_argument("--trace", help="folder for PREP_TRACE files of the last run of each case and kind "
                    "(summarize with benches/trace_summary.py)")
    a = ap.parse_args()
    prep = Path(a.prep)
    for exe in (prep, PROXY):
        if not exe.exists():
            raise SystemExit(f"{exe} is missing: run `cargo build --release --examples` first")
    work = Path(a.work) / f"rows-{a.rows}"
    (work / "one").mkdir(parents=True, exist_ok=True)
    one = work / "one" / "reviews.csv"
    if not one.exists():
        subprocess.run([sys.executable, str(REPO / "sample_data/generate_reviews.py"), "--rows", str(a.rows),
                        "--seed", "1", "--out", str(one)], check=True)
    many = work / f"many-{a.split}"
    if not many.exists():
        subprocess.run([sys.executable, str(REPO / "sample_data/generate_reviews.py"), "--rows", str(a.rows),
                        "--seed", "1", "--files", str(a.split), "--out", str(many)], check=True)

    py = venv_python()
    moto_port, proxy_port = free_port(), free_port()
    moto_bin = Path(py).parent / "moto_server"
    moto = subprocess.Popen([str(moto_bin) if moto_bin.exists() else "moto_server", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy = subprocess.Popen([str(PROXY), f"127.0.0.1:{proxy_port}", f"127.0.0.1:{moto_port}",
                              str(a.mbps), str(a.latency_ms)], stdout=subprocess.DEVNULL)
    try:
        wait_port(moto_port)
        wait_port(proxy_port)
        upload = (
            "import boto3,sys,pathlib\n"
            f"s3=boto3.client('s3',endpoint_url='http://127.0.0.1:{moto_port}',aws_access_key_id='k',"
            "aws_secret_access_key='s',region_name='us-east-1')\n"
            "s3.create_bucket(Bucket='bench')\n"
            f"s3.upload_file('{one}','bench','one/reviews.csv')\n"
            f"for p in sorted(pathlib.Path('{many}').iterdir()): s3.upload_file(str(p),'bench','many/'+p.name)\n"
        )
        subprocess.run([py, "-c", upload], check=True)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s", AWS_REGION="us-east-1",
                   AWS_ALLOW_HTTP="true", AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy_port}")
        rows = []
        for label, local_uri, s3_uri in [
            ("one object", str(one), "s3://bench/one/reviews.csv"),
            (f"{a.split} objects", str(many) + "/", "s3://bench/many/"),
        ]:
            res = {"local": [], "s3": [], "direct": []}
            direct_env = dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}")
            # Warm-up: the proxy keeps moto's answers, so the timed runs
            # measure the modelled link rather than moto's CPU.
            out = work / "out-warm"
            shutil.rmtree(out, ignore_errors=True)
            pipeline(work / "warm.toml", s3_uri, out)
            timed([str(prep), "run", str(work / "warm.toml"), "--quiet"], env)
            # The slow moto-direct runs come after the timed rounds, so the
            # local and proxied runs alternate with each other only.
            rounds = [("local", local_uri, env), ("s3", s3_uri, env)] * a.runs + [("direct", s3_uri, direct_env)] * a.runs
            for kind, uri, e in rounds:
                out = work / f"out-{kind}"
                shutil.rmtree(out, ignore_errors=True)
                p = work / f"{kind}.toml"
                pipeline(p, uri, out)
                if a.trace:
                    Path(a.trace).mkdir(parents=True, exist_ok=True)
                    name = label.replace(" ", "-") + f"-{kind}.json"
                    e = dict(e, PREP_TRACE=str(Path(a.trace) / name))
                res[kind].append(timed([str(prep), "run", str(p), "--quiet"], e))
                wall, rss, system = res[kind][-1]
                print(f"{label} {kind}: {wall:.2f} s, {rss:.0f} MiB, {system:.2f} system s", file=sys.stderr)
            med = {
                k: (statistics.median(w for w, _, _ in v), max(r for _, r, _ in v), statistics.median(t for _, _, t in v))
                for k, v in res.items()
            }
            rows.append((label, med["local"], med["s3"], med["direct"]))
        cpu = platform.processor() or platform.machine()
        table = [
            f"S3 through a proxy capping each connection at {a.mbps:g} MB/s with {a.latency_ms} ms to first byte; "
            f"{a.rows} rows, CSV → Parquet (snappy), medians of {a.runs} alternating runs, {os.cpu_count()} cores ({cpu}).",
            f"Command: `python3 benches/s3/run.py --rows {a.rows} --split {a.split} --runs {a.runs} --mbps {a.mbps:g} --latency-ms {a.latency_ms}`",
            "",
            "| input | local files | S3 through the proxy | S3 ÷ local | moto on loopback, no proxy | peak RSS local / S3 | system CPU local / S3 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, (lw, lr, lt), (sw, sr, st), (dw, _, _) in rows:
            table.append(
                f"| {label} | {lw:.2f} s | {sw:.2f} s | {sw / lw:.2f}× | {dw:.2f} s ({dw / lw:.2f}×) | {lr:.0f} / {sr:.0f} MiB "
                f"| {lt:.2f} / {st:.2f} s |"
            )
        text = "\n".join(table) + "\n"
        print(text)
        if a.out:
            with open(a.out, "a") as f:
                f.write(text)
    finally:
        proxy.kill()
        moto.kill()


if __name__ == "__main__":
    main()
