"""Ingest throughput (images/s, warm Spark, local[2]) and peak memory on real images;
listing speed on many files, local and on a local S3 server.

    python benchmarks/bench_ingest.py --images 2000 [--write]
    python benchmarks/bench_ingest.py --listing 10000,100000 [--s3 10000] [--write]

Runs ingest once to warm the JVM and Python workers, then times a second run writing
the images table (Parquet, to time ingest rather than the Delta log) and samples the
peak RSS of the driver (Python and JVM) and of each Python worker.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PeakRSS, copy_real_images, machine, update_benchmarks_md  # noqa: E402


def _many_files(folder: str, n: int) -> str:
    """n hard links of one real PNG (a fresh copy per 50,000: filesystems cap links per
    file), 1,000 per folder: real names, almost no disk used per file."""
    src = copy_real_images(os.path.join(folder, "src"), 1)
    first = os.path.join(src, sorted(os.listdir(src))[0])
    root = os.path.join(folder, "files")
    for i in range(n):
        sub = os.path.join(root, f"d{i // 1000:04d}")
        if i % 1000 == 0:
            os.makedirs(sub)
        if i % 50_000 == 0:
            one = os.path.join(folder, "src", f"copy_{i}.png")
            shutil.copy(first, one)
        os.link(one, os.path.join(sub, f"img_{i:07d}.png"))
    return root


def _spark_index_seconds(spark, path: str) -> tuple[float, int]:
    """What ingest used before: Spark's file index (binaryFile, recursive), its file list."""
    start = time.time()
    n = len(spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(path).inputFiles())
    return time.time() - start, n


def _listing_row(spark, where: str, n: int, source: str) -> str:
    from sparkdup.jobs.ingest import entries_frame
    from sparkdup.listing import list_input, wanted_extensions

    wanted = wanted_extensions(["png"], False)
    entries_frame(spark, list_input(spark, source, wanted, False).entries).count()  # warm JVM, workers, S3 pool
    start = time.time()
    found = list_input(spark, source, wanted, False)
    listed = time.time() - start
    start = time.time()
    rows = entries_frame(spark, found.entries).count()  # what ingest adds before reading starts
    framed = time.time() - start
    _spark_index_seconds(spark, source)
    old, n_old = _spark_index_seconds(spark, source)
    assert len(found.entries) == rows == n == n_old, (len(found.entries), rows, n, n_old)
    return (f"| {where} | {n:,} | {listed:.2f} | {1000 * listed / n:.3f} | {framed:.2f} | {old:.2f} "
            f"| {1000 * old / n:.3f} |")


def _s3_source(n: int, work: str) -> tuple[str, object]:
    """n objects in a moto S3 server (as tests/test_s3.py runs it), S3A pointed at it."""
    import boto3
    from concurrent.futures import ThreadPoolExecutor
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench-secret")
    client.create_bucket(Bucket="bench")
    src = copy_real_images(os.path.join(work, "s3src"), 1)
    body = open(os.path.join(src, sorted(os.listdir(src))[0]), "rb").read()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put_object(Bucket="bench", Key=f"files/d{i // 1000:04d}/img_{i:07d}.png",
                                                  Body=body), range(n)))
    settings = {"fs.s3a.endpoint": endpoint, "fs.s3a.endpoint.region": "us-east-1", "fs.s3a.path.style.access": "true",
                "fs.s3a.connection.ssl.enabled": "false", "fs.s3a.access.key": "bench",
                "fs.s3a.secret.key": "bench-secret"}
    return "s3a://bench/files", settings, server


def listing_bench(args) -> None:
    from sparkdup.config import load_config
    from sparkdup.session import get_spark

    spark = get_spark(load_config(overrides=[f"spark.master={args.master}", "spark.driver_memory=2g"]))
    work = tempfile.mkdtemp(prefix="bench_listing_")
    rows = []
    for n in (int(x) for x in args.listing.split(",")):
        root = _many_files(os.path.join(work, str(n)), n)
        rows.append(_listing_row(spark, "local", n, root))
        print(rows[-1], flush=True)
    if args.s3:
        source, settings, server = _s3_source(args.s3, work)
        conf = spark._jsc.hadoopConfiguration()  # noqa: SLF001
        for k, v in settings.items():
            conf.set(k, v)
        rows.append(_listing_row(spark, "S3 (local moto server)", args.s3, source))
        print(rows[-1], flush=True)
        server.stop()
    table = ("| where | files | sparkdup listing s | ms per 1,000 files... per file | to DataFrame s "
             "| Spark file index (before) s | ... per file ms |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    table = table.replace("ms per 1,000 files... per file", "ms per file").replace("... per file ms", "ms per file")
    body = (f"### Listing speed\n\nCommand: `python benchmarks/bench_ingest.py --listing {args.listing}"
            f"{f' --s3 {args.s3}' if args.s3 else ''} --write` ({args.master}, warm JVM, hard links of one PNG, "
            f"1,000 per folder; machine: {machine()})\n\n{table}")
    print(body)
    if args.write:
        update_benchmarks_md("listing", body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--listing", help="comma-separated file counts: time the listing alone")
    ap.add_argument("--s3", type=int, default=0, help="with --listing: also this many objects on a local S3 server")
    ap.add_argument("--write", action="store_true", help="record the result in BENCHMARKS.md")
    args = ap.parse_args()
    if args.listing:
        listing_bench(args)
        return

    from sparkdup.config import load_config
    from sparkdup.jobs.ingest import build_images
    from sparkdup.session import get_spark
    from sparkdup.tables import write_table

    work = tempfile.mkdtemp(prefix="bench_ingest_")
    src = copy_real_images(os.path.join(work, "images"), args.images)
    cfg = load_config(overrides=[f"spark.master={args.master}"])
    with PeakRSS() as mem:
        spark = get_spark(cfg)
        write_table(build_images(spark, cfg, src, None, "warmup"), os.path.join(work, "warm"), "images", "parquet")
        start = time.time()
        write_table(build_images(spark, cfg, src, None, "timed"), os.path.join(work, "out"), "images", "parquet")
        seconds = time.time() - start
    n = spark.read.parquet(os.path.join(work, "out", "images")).count()
    mb = mem.as_mb()
    table = (
        "| images | seconds | images/s | driver Python MB | driver JVM MB | Python worker MB (peak, each) |\n"
        "|---|---|---|---|---|---|\n"
        f"| {n} | {seconds:.1f} | {n / seconds:.0f} | {mb['driver_python']} | {mb['driver_jvm']} | {mb['python_worker']} |"
    )
    body = (f"### Ingest throughput\n\nCommand: `python benchmarks/bench_ingest.py --images {args.images} --write` "
            f"({args.master}, warm Spark, openclipart PNGs; machine: {machine()})\n\n{table}")
    print(body)
    if args.write:
        update_benchmarks_md("ingest", body)


if __name__ == "__main__":
    main()
