"""The seed-style script: one pass, ``StandardScaler().fit_transform`` on each
chunk. STATISTICALLY WRONG: every chunk is standardized with its own mean and
standard deviation instead of the dataset's, so the same raw value maps to
different outputs in different chunks, and the saved scaler (the last
chunk's) does not describe the data. It is here as the baseline that users
start from.

Each cleaned chunk is appended (``to_json(mode="a")``) to the current JSONL
shard, which moves on to a new file when the chunk would take it past
``--shard-rows`` rows; Parquet cannot be appended to, so each chunk becomes
its own Parquet shard.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import pandas_chunks, parse_args, write_pandas, write_scaler  # noqa: E402


def main() -> int:
    args = parse_args(__doc__)
    from sklearn.preprocessing import StandardScaler

    shard, shard_rows = 0, 0
    scaler = None
    for chunk in pandas_chunks(args):
        chunk = chunk.dropna()
        if not len(chunk):
            continue
        scaler = StandardScaler()
        chunk[args.scale] = scaler.fit_transform(chunk[args.scale])
        if args.format == "parquet":
            write_pandas(chunk, os.path.join(args.out, "part-%05d.parquet" % shard), "parquet")
            shard += 1
        else:
            if shard_rows and shard_rows + len(chunk) > args.shard_rows:
                shard, shard_rows = shard + 1, 0
            path = os.path.join(args.out, "part-%05d.jsonl" % shard)
            write_pandas(chunk, path, "jsonl", mode="a")
            shard_rows += len(chunk)
    if scaler is not None:
        write_scaler(args.out, args.scale, scaler.mean_, scaler.var_, scaler.scale_,
                     scaler.n_samples_seen_, args.inputs, "seed-style (last chunk only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
