#!/usr/bin/env python3
"""CPU seconds zstd needs for the text of the benchmark data, alone.

Any tool that writes the job's Parquet output must zstd-compress the text
column, so this is a lower bound on its CPU time, next to the parse floor.
docs/benchmarks.md uses it to show which targets are out of reach.

    benches/e2e/.venv/bin/python benches/e2e/compress_bound.py \
        /tmp/prep-bench/data/rows5000000-seed1-null0.03-files8/reviews.parquet

Writes the non-null values of `text` as Parquet PLAIN encodes them (a
4-byte length, then the bytes) to a temp file, then times `zstd -T1` at
levels 1 and 3 (the CLI must be on PATH) and prints CPU seconds per level.
"""

import os
import resource
import struct
import subprocess
import sys
import tempfile

import polars as pl


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    src = sys.argv[1]
    column = sys.argv[2] if len(sys.argv) > 2 else "text"
    values = pl.read_parquet(src, columns=[column])[column].drop_nulls().to_list()
    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "plain")
        with open(plain, "wb") as f:
            for s in values:
                b = s.encode()
                f.write(struct.pack("<I", len(b)))
                f.write(b)
        size = os.path.getsize(plain)
        print(f"{column}: {len(values):,} values, {size / 1e6:.1f} MB PLAIN-encoded")
        for level in (1, 3):
            before = child_cpu()
            out = subprocess.run(
                ["zstd", f"-{level}", "-T1", "-q", "-c", plain],
                check=True,
                stdout=subprocess.PIPE,
            ).stdout
            cpu = child_cpu() - before
            print(f"zstd -{level} -T1: {cpu:.2f} CPU s, {len(out) / 1e6:.1f} MB out")


if __name__ == "__main__":
    main()
