"""pandas + scikit-learn, the careful way: two passes over the input in chunks.

Pass 1 reads chunks with ``pd.read_csv(chunksize=...)`` (or Parquet record
batches), drops null rows and calls ``StandardScaler.partial_fit`` on each, so
the statistics are global. Pass 2 reads the input again, drops nulls,
``transform``s each chunk and writes shards of exactly ``--shard-rows`` rows.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import PandasShards, pandas_chunks, parse_args, write_scaler  # noqa: E402


def main() -> int:
    args = parse_args(__doc__)
    import sklearn
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    for chunk in pandas_chunks(args):
        chunk = chunk.dropna()
        if len(chunk):
            scaler.partial_fit(chunk[args.scale])
    write_scaler(args.out, args.scale, scaler.mean_, scaler.var_, scaler.scale_,
                 scaler.n_samples_seen_, args.inputs, "scikit-learn %s" % sklearn.__version__)

    shards = PandasShards(args.out, args.format, args.shard_rows)
    for chunk in pandas_chunks(args):
        chunk = chunk.dropna()
        if not len(chunk):
            continue
        scaled = scaler.transform(chunk[args.scale])
        for i, c in enumerate(args.scale):
            chunk[c] = scaled[:, i]
        shards.add(chunk)
    shards.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
