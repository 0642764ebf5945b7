"""Not timed: counts the shards and rows a run wrote and prints them with its
scaler, as one JSON object, so run.py can check every tool did the job."""

import json
import os
import sys

# prep also writes transform.json (every fitted step, issue 14): not a shard.
SIDE_FILES = {"scaler.json", "manifest.json", "transform.json", "_SUCCESS"}


def main() -> int:
    out = sys.argv[1]
    shards, rows = 0, 0
    for root, _dirs, files in os.walk(out):
        for name in sorted(files):
            path = os.path.join(root, name)
            if name in SIDE_FILES or name.startswith("."):
                continue
            if name.endswith(".parquet"):
                import pyarrow.parquet as pq

                rows += pq.ParquetFile(path).metadata.num_rows
            elif name.endswith((".jsonl", ".json", ".ndjson")):
                with open(path, "rb") as f:
                    while True:
                        block = f.read(1 << 24)
                        if not block:
                            break
                        rows += block.count(b"\n")
            else:
                continue
            shards += 1
    scaler = None
    path = os.path.join(out, "scaler.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            scaler = json.load(f)
    report = None
    path = os.path.join(out, "_SUCCESS")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    print(json.dumps({"shards": shards, "rows": rows, "scaler": scaler, "report": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
