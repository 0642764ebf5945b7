"""Shared plumbing for the peer implementations of the benchmark job.

Every peer is a standalone script run as its own process by ``run.py`` (so
its CPU time and peak RSS are measured alone). They all take the same
arguments, read the same input and do the same job as ``prep run``:

* drop every row with a null in any column (NaN counts as null);
* standardize the ``--scale`` columns with population statistics (ddof = 0)
  over the whole cleaned table; a (near-)constant column gets scale 1, by
  scikit-learn's rule;
* save the scaler as ``scaler.json`` in prep's format (CONTRACT §4);
* write shards of about ``--shard-rows`` rows in ``--format``.
"""

from __future__ import annotations

import argparse
import json
import math
import os

# prep's default [input.csv] null_values (CONTRACT §2).
NULL_VALUES = ["", "NA", "N/A", "NULL", "null", "NaN", "nan"]


def parse_args(description: str, output: bool = True) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--input-format", choices=["csv", "parquet"], required=True)
    ap.add_argument("--inputs", nargs="+", required=True, help="input files, read in this order")
    ap.add_argument("--scale", default="", help="comma-separated columns to standardize")
    ap.add_argument("--chunk-rows", type=int, default=100_000, help="rows per chunk (chunked peers)")
    if output:
        ap.add_argument("--out", required=True, help="output directory (created)")
        ap.add_argument("--format", choices=["parquet", "jsonl"], required=True)
        ap.add_argument("--shard-rows", type=int, default=100_000)
        ap.add_argument("--compression", choices=["zstd", "snappy"], default="zstd",
                        help="Parquet shard compression")
    args = ap.parse_args()
    global PARQUET_COMPRESSION
    PARQUET_COMPRESSION = getattr(args, "compression", "zstd")
    args.scale = [c for c in args.scale.split(",") if c]
    if output:
        os.makedirs(args.out, exist_ok=True)
    return args


def is_constant(var: float, mean: float, n: int) -> bool:
    """scikit-learn's ``_is_constant_feature`` (CONTRACT §5)."""
    eps = 2.220446049250313e-16
    return var <= n * eps * var + (n * mean * eps) ** 2


def scale_of(var: float, mean: float, n: int) -> float:
    if n == 0 or is_constant(var, mean, n):
        return 1.0
    s = math.sqrt(var)
    return 1.0 if s < 10 * 2.220446049250313e-16 else s


def write_scaler(out_dir, names, mean, var, scale, n, inputs, created_by) -> None:
    doc = {
        "format": "prep-scaler",
        "version": 1,
        "method": "standard",
        "with_mean": True,
        "with_std": True,
        "ddof": 0,
        "feature_names": list(names),
        "mean": [float(x) for x in mean],
        "var": [float(x) for x in var],
        "scale": [float(x) for x in scale],
        "n_samples_seen": int(n),
        "source": {"uri": inputs[0] if len(inputs) == 1 else os.path.dirname(inputs[0]),
                   "objects": [{"key": os.path.basename(p), "size": os.path.getsize(p), "etag": None}
                               for p in inputs]},
        "created_by": created_by,
    }
    with open(os.path.join(out_dir, "scaler.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


class PandasShards:
    """Buffers pandas frames and writes shards of exactly ``rows`` rows
    (the last one may be shorter), named ``part-00000.<ext>`` in order."""

    def __init__(self, out_dir: str, fmt: str, rows: int):
        self.out_dir, self.fmt, self.rows = out_dir, fmt, rows
        self.buf = []
        self.buffered = 0
        self.shards = 0

    def add(self, df) -> None:
        if len(df) == 0:
            return
        self.buf.append(df)
        self.buffered += len(df)
        while self.buffered >= self.rows:
            self._emit(self.rows)

    def close(self) -> int:
        if self.buffered:
            self._emit(self.buffered)
        return self.shards

    def _emit(self, k: int) -> None:
        import pandas as pd

        df = self.buf[0] if len(self.buf) == 1 else pd.concat(self.buf, ignore_index=True)
        head, rest = df.iloc[:k], df.iloc[k:]
        write_pandas(head, os.path.join(self.out_dir, "part-%05d.%s" % (self.shards, self.fmt)), self.fmt)
        self.shards += 1
        self.buf = [rest] if len(rest) else []
        self.buffered = len(rest)


# Parquet shard compression, set from --compression by parse_args.
PARQUET_COMPRESSION = "zstd"


def write_pandas(df, path: str, fmt: str, mode: str = "w") -> None:
    if fmt == "parquet":
        df.to_parquet(path, compression=PARQUET_COMPRESSION, index=False)
    else:
        # double_precision=15 is pandas' maximum (the default, 10, would round
        # the scaled values); still not always a round trip, unlike prep.
        df.to_json(path, orient="records", lines=True, double_precision=15, mode=mode)


def pandas_chunks(args):
    """Yields the input as pandas frames of about ``--chunk-rows`` rows, file by file."""
    import pandas as pd

    for path in args.inputs:
        if args.input_format == "csv":
            reader = pd.read_csv(path, chunksize=args.chunk_rows, na_values=NULL_VALUES,
                                 keep_default_na=False)
            with reader:
                yield from reader
        else:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            for batch in pf.iter_batches(batch_size=args.chunk_rows):
                yield batch.to_pandas()
