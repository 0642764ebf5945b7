"""Polars (Python), lazy and streaming: two scans of the input.

``scan_csv``/``scan_parquet`` -> ``drop_nulls`` (and NaN in float columns) ->
one streaming ``collect`` of count, mean and ``var(ddof=0)`` per scaled
column -> scaler.json -> ``sink_parquet``/``sink_ndjson`` of the scaled
frame into ``PartitionBy(max_rows_per_file=--shard-rows)`` shards, in order.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import NULL_VALUES, parse_args, scale_of, write_scaler  # noqa: E402


def main() -> int:
    args = parse_args(__doc__)
    import polars as pl

    if args.input_format == "csv":
        lf = pl.scan_csv(args.inputs, null_values=NULL_VALUES)
    else:
        lf = pl.scan_parquet(args.inputs)
    schema = lf.collect_schema()
    floats = [c for c, t in schema.items() if t.is_float()]
    lf = lf.drop_nulls()
    if floats:
        lf = lf.filter(pl.all_horizontal([pl.col(c).is_not_nan() for c in floats]))

    x = [pl.col(c).cast(pl.Float64) for c in args.scale]
    stats = lf.select(
        [pl.len().alias("__n")]
        + [e.mean().alias("m_" + c) for e, c in zip(x, args.scale)]
        + [e.var(ddof=0).alias("v_" + c) for e, c in zip(x, args.scale)]
    ).collect(engine="streaming").row(0, named=True)
    n = stats["__n"]
    mean = [stats["m_" + c] for c in args.scale]
    var = [stats["v_" + c] for c in args.scale]
    scale = [scale_of(v, m, n) for v, m in zip(var, mean)]
    write_scaler(args.out, args.scale, mean, var, scale, n, args.inputs, "polars %s" % pl.__version__)

    out = lf.with_columns(
        [((e - m) / s).alias(c) for e, c, m, s in zip(x, args.scale, mean, scale)]
    )
    ext = args.format
    target = pl.PartitionBy(
        args.out,
        max_rows_per_file=args.shard_rows,
        approximate_bytes_per_file=None,
        file_path_provider=lambda a: "part-%05d.%s" % (a.index_in_partition, ext),
    )
    if args.format == "parquet":
        out.sink_parquet(target, compression=args.compression, mkdir=True)
    else:
        out.sink_ndjson(target, mkdir=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
