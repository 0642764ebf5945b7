#!/usr/bin/env python3
"""Summarises a PREP_TRACE file: per thread, how much of the run it was busy
and in which stages, and its longest idle gaps.

    PREP_TRACE=/tmp/t.json prep run pipeline.toml --overwrite --quiet
    python3 benches/trace_summary.py /tmp/t.json
"""
import json
import sys
from collections import defaultdict


def main() -> None:
    events = json.load(open(sys.argv[1]))["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M"}
    spans = [e for e in events if e["ph"] == "X"]
    if not spans:
        raise SystemExit("no spans")
    t0 = min(s["ts"] for s in spans)
    t1 = max(s["ts"] + s["dur"] for s in spans)
    wall = (t1 - t0) / 1e6
    print(f"traced {wall:.2f} s, {len(spans)} spans on {len(names)} threads\n")
    print(f"{'thread':<24} {'busy s':>7} {'busy %':>7}  stages (s)                 longest gaps (s)")
    by_thread = defaultdict(list)
    for s in spans:
        by_thread[s["tid"]].append(s)
    for tid, ss in sorted(by_thread.items(), key=lambda kv: -sum(s["dur"] for s in kv[1])):
        ss.sort(key=lambda s: s["ts"])
        busy = sum(s["dur"] for s in ss) / 1e6
        stages = defaultdict(float)
        for s in ss:
            stages[s["name"]] += s["dur"] / 1e6
        gaps = sorted(
            ((b["ts"] - (a["ts"] + a["dur"])) / 1e6 for a, b in zip(ss, ss[1:])), reverse=True
        )[:3]
        st = ", ".join(f"{k} {v:.2f}" for k, v in sorted(stages.items(), key=lambda kv: -kv[1]))
        print(f"{names.get(tid, tid):<24} {busy:7.2f} {100 * busy / wall:6.0f}%  {st:<26} {' '.join(f'{g:.2f}' for g in gaps)}")


if __name__ == "__main__":
    main()
