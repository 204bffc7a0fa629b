"""spark-submit main file for tests/test_cluster.py: run a packaged entry script, then
report where every executor imported sparkdup from.

    spark-submit ... tests/cluster_entry.py dist/sparkdup_main.py run INPUT --output OUT ...

The entry script runs unchanged (as __main__, with its own arguments). Afterwards, in the
same application, a small job asks each Python worker for ``sparkdup.__file__``, its
interpreter and working folder; one line ``EXECUTORS <json>`` and one ``DRIVER <json>`` go
to stdout. The exit code is the entry script's.
"""
import json
import os
import runpy
import sys


def _where(_):
    import os
    import sys

    import sparkdup

    yield {"sparkdup": sparkdup.__file__, "python": sys.executable, "cwd": os.getcwd(),
           "cache": os.environ.get("SPARKDUP_CACHE")}


def main() -> int:
    entry, args = sys.argv[1], sys.argv[2:]
    sys.argv = [entry, *args]
    try:
        runpy.run_path(entry, run_name="__main__")
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    from pyspark.sql import SparkSession

    import sparkdup

    spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
    n = 4 * spark.sparkContext.defaultParallelism
    rows = spark.sparkContext.parallelize(range(n), n).mapPartitions(_where).collect()
    print("EXECUTORS " + json.dumps(rows), flush=True)
    print("DRIVER " + json.dumps({"sparkdup": sparkdup.__file__, "python": sys.executable, "cwd": os.getcwd()}),
          flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
