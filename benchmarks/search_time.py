"""Wall time of one `sparkdup search` query, split into Spark start, model load and the search.

Usage: python benchmarks/search_time.py OUTPUT QUERY [--master local[2]]
(OUTPUT: an existing sparkdup output with its neighbour index; QUERY: an image file.)

Two measurements, in this order: the command as a user runs it (a new process: `sparkdup
search`, which loads the model while the JVM starts), then the parts one after the other
in this process (Spark start, model load, the search), which is what the command would
cost without the overlap.
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
    t1 = time.time()
    from sparkdup import indexes
    from sparkdup.jobs.search import find, index_root, model_of
    from sparkdup.udfs.embed import get_model

    get_model(model_of(spark, a.output, indexes.read_meta(spark, index_root(spark, a.output))))
    t2 = time.time()
    rows = find(spark, cfg, a.output, [a.query], int(cfg["neighbors"]["k"]))
    t3 = time.time()
    print(f"sparkdup search: {command:.1f} s ({len(cli.stdout.splitlines()) - 1} hits printed); one after the "
          f"other: spark start {t1 - t0:.1f} s, model load {t2 - t1:.1f} s, search {t3 - t2:.1f} s "
          f"({len(rows)} rows), total {t3 - t0:.1f} s")


if __name__ == "__main__":
    main()
