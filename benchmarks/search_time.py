"""Wall time of one `sparkdup search` query, split into Spark start, model load and the search.

Usage: python benchmarks/search_time.py OUTPUT QUERY [--master local[2]]
(OUTPUT: an existing sparkdup output with its neighbour index; QUERY: an image file.)

Two measurements, in this order: the command as a user runs it (a new process: `sparkdup
search`, which loads the model while the JVM starts and resolves the hit tables while it
embeds and searches), then its parts one after the other in this process (Spark start,
finding the index, the model, the query's decode and embedding, the bucket, the two
tables, the hits' lookup): where the time goes, without the overlaps.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("output")
    p.add_argument("query")
    p.add_argument("--master", default="local[2]")
    a = p.parse_args()
    started = time.time()
    cli = subprocess.run([sys.executable, "-m", "sparkdup.cli", "search", a.query, "--output", a.output,
                          "--set", f"spark.master={a.master}", "--set", "spark.driver_memory=2g", "-q"],
                         capture_output=True, text=True)
    command = time.time() - started
    if cli.returncode != 0:
        sys.exit(cli.stderr)
    t0 = time.time()
    from sparkdup.config import load_config
    from sparkdup.session import get_spark

    cfg = load_config(overrides=[f"spark.master={a.master}", "spark.driver_memory=2g"])
    spark = get_spark(cfg)
    parts = {"spark start": time.time() - t0}
    spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))  # as search.run
    import numpy as np

    from sparkdup import indexes
    from sparkdup.jobs import search
    from sparkdup.udfs.embed import get_model
    from sparkdup.udfs.search import embed_queries

    def timed(name, fn, *args):
        t = time.time()
        value = fn(*args)
        parts[name] = time.time() - t
        return value

    root = timed("find the index", search.index_root, spark, a.output)
    meta = timed("read meta.json", indexes.read_meta, spark, root)
    model = timed("model name", search.model_of, spark, a.output, meta)
    timed("model load", get_model, model)
    queries = timed("read + decode query", search.read_queries, spark, [a.query], cfg)
    timed("embed query", embed_queries, queries, model, int(cfg["embed"]["batch_size"]), cfg["embed"]["resize"])
    nb = cfg["neighbors"]
    ids, sims = timed("open bucket + query", search.query_index, spark, root,
                      np.stack([q.vector for q in queries]), int(nb["k"]), nb, meta)
    tables = timed("resolve images, duplicate_groups", search.hit_tables, spark, a.output)
    hits = timed("look up hits", search.hits_of, spark, a.output,
                 sorted({int(i) for i, s in zip(ids.ravel(), sims.ravel()) if np.isfinite(s)}),
                 tables, search.to_verify(ids, sims, cfg["analyze"]["duplicate_similarity"]))
    print(f"sparkdup search: {command:.1f} s ({len(cli.stdout.splitlines()) - 1} hits printed); one after the "
          f"other in one process ({len(hits)} hits): " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items())
          + f", total {sum(parts.values()):.1f} s")


if __name__ == "__main__":
    main()
