#!/usr/bin/env python3
"""Idle core-seconds during one prep run, and where in the run they fall.

    python3 benches/idle_cores.py [--window 0.1] -- prep run pipeline.toml --quiet

Samples the machine's idle and iowait time (/proc/stat, every 5 ms) while the
command runs with PREP_TRACE set, then prints, per window, how many cores
sat idle and which stages had a span open then (from the trace). The
machine should be otherwise quiet: /proc/stat counts every process. A
trace's spans alone cannot say this: a span that waits inside a parallel
call (rayon) still counts as busy. Linux only.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections import defaultdict


def cpu_times():
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return fields[3] + fields[4], sum(fields)  # idle + iowait, total (ticks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=float, default=0.1, help="seconds per printed window")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the command after --")
    cores = os.cpu_count() or 1
    trace = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    env = dict(os.environ, PREP_TRACE=trace)
    samples = []
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    while p.poll() is None:
        samples.append((time.time() - t0, *cpu_times()))
        time.sleep(0.005)
    wall = time.time() - t0
    spans = []
    try:
        events = json.load(open(trace))["traceEvents"]
        names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M"}
        spans = [(e["ts"] / 1e6, (e["ts"] + e["dur"]) / 1e6, f'{names.get(e["tid"], "?")}:{e["name"]}')
                 for e in events if e["ph"] == "X"]
    except (OSError, ValueError, KeyError):
        pass
    finally:
        os.unlink(trace)
    windows = defaultdict(lambda: [0, 0])
    for (t, idle, total), (_, idle2, total2) in zip(samples, samples[1:]):
        w = windows[int(t / a.window)]
        w[0] += idle2 - idle
        w[1] += total2 - total
    idle_core_s = 0.0
    print(f"{'from s':>6} {'idle cores':>10}  open spans")
    for k in sorted(windows):
        idle, total = windows[k]
        if total == 0:
            continue
        idle_cores = cores * idle / total
        idle_core_s += idle_cores * a.window
        lo, hi = k * a.window, (k + 1) * a.window
        stages = sorted({s for x, y, s in spans if x < hi and y > lo})
        print(f"{lo:6.2f} {idle_cores:10.2f}  {' '.join(stages)}")
    print(f"\nwall {wall:.2f} s, exit {p.returncode}, idle {idle_core_s:.2f} core-s of {cores * wall:.2f}")


if __name__ == "__main__":
    main()
