"""DuckDB, in SQL: a view over ``read_csv``/``read_parquet``, a ``WHERE`` that
drops nulls (and NaN), one aggregate query for ``avg``/``var_pop``, then one
``COPY ... TO`` directory that rotates files: Parquet with
``ROW_GROUP_SIZE``/``ROW_GROUPS_PER_FILE 1``; JSON with ``FILE_SIZE_BYTES``
sized from a 10k-row sample (DuckDB has no rows-per-file option for JSON), so
JSON shards hold about ``--shard-rows`` rows.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import NULL_VALUES, parse_args, scale_of, write_scaler  # noqa: E402


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def main() -> int:
    args = parse_args(__doc__)
    import duckdb

    con = duckdb.connect()
    threads = os.environ.get("PREP_BENCH_THREADS")
    if threads:
        con.execute("SET threads = %d" % int(threads))
    files = "[" + ", ".join(lit(p) for p in args.inputs) + "]"
    if args.input_format == "csv":
        nulls = "[" + ", ".join(lit(v) for v in NULL_VALUES) + "]"
        src = "read_csv(%s, header = true, nullstr = %s)" % (files, nulls)
    else:
        src = "read_parquet(%s)" % files
    con.execute("CREATE VIEW src AS SELECT * FROM " + src)
    cols = con.execute("DESCRIBE src").fetchall()
    conds = ["%s IS NOT NULL" % q(c[0]) for c in cols]
    conds += ["NOT isnan(%s)" % q(c[0]) for c in cols if c[1] in ("DOUBLE", "FLOAT")]
    con.execute("CREATE VIEW clean AS SELECT * FROM src WHERE " + " AND ".join(conds))

    aggs = ["count(*)"]
    for c in args.scale:
        aggs += ["avg(CAST(%s AS DOUBLE))" % q(c), "var_pop(CAST(%s AS DOUBLE))" % q(c)]
    row = con.execute("SELECT " + ", ".join(aggs) + " FROM clean").fetchone()
    n = row[0]
    mean = list(row[1::2])
    var = list(row[2::2])
    scale = [scale_of(v, m, n) for v, m in zip(var, mean)]

    repl = ", ".join("(CAST(%s AS DOUBLE) - %r) / %r AS %s" % (q(c), m, s, q(c))
                     for c, m, s in zip(args.scale, mean, scale))
    select = "SELECT * REPLACE (%s) FROM clean" % repl if repl else "SELECT * FROM clean"
    if args.format == "parquet":
        opts = "FORMAT parquet, COMPRESSION %s, ROW_GROUP_SIZE %d, ROW_GROUPS_PER_FILE 1" % (
            args.compression, args.shard_rows)
    else:
        per_row = con.execute(
            "SELECT avg(strlen(to_json(t)::VARCHAR)) + 1 FROM (%s LIMIT 10000) t" % select
        ).fetchone()[0] or 100.0
        opts = "FORMAT json, FILE_SIZE_BYTES %d" % int(per_row * args.shard_rows)
    con.execute("COPY (%s) TO %s (%s, OVERWRITE_OR_IGNORE true)" % (select, lit(args.out), opts))
    write_scaler(args.out, args.scale, mean, var, scale, n, args.inputs, "duckdb %s" % duckdb.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
