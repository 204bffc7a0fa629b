"""Embed stage vs the model alone, on the same cores, and Python worker memory.

    python benchmarks/bench_embed.py --images 2000 [--model efficientnet_lite0] [--write]

(a) model alone: N processes (N = cores), one TF thread each, each embedding pre-decoded
    224x224 batches — the ceiling for the stage on this machine;
(a2) the same per-image work without Spark: decode + fit + model from bytes in memory,
    N processes — what the stage could reach if Spark cost nothing;
(b) the embed stage end to end (read bytes, decode, resize, model, write the table) with
    warm Spark in local[N] on real openclipart PNGs (or JPEGs of them, --jpeg);
(c) peak RSS of each Python worker during (b), and CPU ms per image of workers and JVM.
Target: (b) >= 80% of (a); (c) < 1.5 GB. On CPU, (a2) bounds (b): decoding shares the
cores with the model.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PeakRSS, copy_real_images, machine, update_benchmarks_md  # noqa: E402


def _model_alone(args: tuple) -> float:
    model, seconds, batch_size = args
    from bench_model import real_images
    from sparkdup.udfs.embed import get_model

    embed = get_model(model)
    batch = real_images(batch_size, embed.input_size, seed=os.getpid())
    embed(batch)  # warm-up: load, trace
    n, start = 0, time.time()
    while time.time() - start < seconds:
        embed(batch)
        n += len(batch)
    return n / (time.time() - start)


def _decode_and_model(args: tuple) -> float:
    """Images/s of the stage's per-image work without Spark: decode + fit + model, from bytes
    already in memory, one process per core. Stage / this = what Spark itself costs."""
    model, seconds, batch_size, files = args
    from sparkdup.udfs.decode import Limits
    from sparkdup.udfs.embed import embed_contents, get_model

    spec_size = get_model(model).input_size
    limits = Limits(50 * 2**20, 100_000_000, max_side=2 * spec_size)  # as the embed job sets them
    datas = [open(f, "rb").read() for f in files]
    embed_contents(model, datas[:batch_size], limits, batch_size)  # warm-up
    n, start, i = 0, time.time(), 0
    while time.time() - start < seconds:
        chunk = datas[i:i + 64] or datas[:64]
        i = (i + 64) % len(datas)
        embed_contents(model, chunk, limits, batch_size)
        n += len(chunk)
    return n / (time.time() - start)


def decode_fit_ms(files: list[str], size: int = 224) -> float:
    """CPU ms per image to decode and fit to the model's input, in this process (no model)."""
    from sparkdup.udfs.decode import Limits, decode
    from sparkdup.udfs.embed import fit_to_square

    limits = Limits(50 * 2**20, 100_000_000, max_side=2 * size)
    datas = [open(f, "rb").read() for f in files]
    start = time.process_time()
    for data in datas:
        d = decode(data, limits)
        if d.rgb is not None:
            fit_to_square(d.rgb, size)
    return 1000 * (time.process_time() - start) / max(len(datas), 1)


def as_jpeg(folder: str) -> None:
    """Replace every PNG in folder by a JPEG of it (transparency flattened on white)."""
    from PIL import Image

    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        with Image.open(path) as img:
            rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        flat.save(os.path.splitext(path)[0] + ".jpg", quality=90)
        os.remove(path)


def per_file_costs(folder: str, n: int, size: int, thumb_side: int = 160) -> str:
    """CPU ms per file of each piece of ingest's one decode (no Spark): what decode-once
    makes each image cost on the Python side before the model."""
    import glob
    import random

    from sparkdup.udfs.decode import Limits, decode
    from sparkdup.udfs.embed import fit_to_square
    from sparkdup.udfs.image_stats import image_stats
    from sparkdup.udfs.thumbnails import thumbnail_jpeg

    files = sorted(f for f in glob.glob(os.path.join(folder, "**", "*"), recursive=True) if os.path.isfile(f))
    datas = [open(f, "rb").read() for f in random.Random(0).sample(files, min(n, len(files)))]
    limits = Limits(100 * 2**20, 89_478_485, 512)  # ingest's defaults
    steps = {"decode": lambda d, rgb: decode(d, limits), "statistics + signature": lambda d, rgb: image_stats(rgb),
             f"model input {size}": lambda d, rgb: fit_to_square(rgb, size).tobytes(),
             f"thumbnail {thumb_side} (JPEG)": lambda d, rgb: thumbnail_jpeg(rgb, thumb_side)}
    cpu = dict.fromkeys(steps, 0.0)
    for data in datas:
        rgb = decode(data, limits).rgb
        if rgb is None:
            continue
        for name, step in steps.items():
            c = time.process_time()
            step(data, rgb)
            cpu[name] += time.process_time() - c
    rows = "\n".join(f"| {k} | {1000 * v / len(datas):.2f} |" for k, v in cpu.items())
    return (f"CPU ms per file, {len(datas)} files of {folder} (`python benchmarks/bench_embed.py --costs {folder}`)\n\n"
            f"| step | CPU ms / file |\n|---|---:|\n{rows}\n| total | {1000 * sum(cpu.values()) / len(datas):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--costs", metavar="FOLDER", help="only: CPU ms per file of each step of ingest's decode")
    ap.add_argument("--size", type=int, default=160, help="model input side for --costs")
    ap.add_argument("--jpeg", action="store_true",
                    help="re-encode the sample as JPEG (quality 90), as most photo datasets are stored")
    args = ap.parse_args()
    if args.costs:
        print(per_file_costs(args.costs, args.images, args.size))
        return

    with mp.get_context("spawn").Pool(args.cores) as pool:
        alone = sum(pool.map(_model_alone, [(args.model, args.seconds, 32)] * args.cores))

    work = tempfile.mkdtemp(prefix="bench_embed_")
    src = copy_real_images(os.path.join(work, "images"), args.images)
    if args.jpeg:
        as_jpeg(src)
    files = sorted(os.path.join(src, f) for f in os.listdir(src))
    with mp.get_context("spawn").Pool(args.cores) as pool:
        shares = [(args.model, args.seconds, 32, files[i::args.cores]) for i in range(args.cores)]
        per_image_work = sum(pool.map(_decode_and_model, shares))
    decode_ms = decode_fit_ms(files[:500])

    from sparkdup.config import load_config
    from sparkdup.jobs.embed import build_embeddings
    from sparkdup.jobs.ingest import build_images
    from sparkdup.session import get_spark
    from sparkdup.tables import read_table, write_table

    cfg = load_config(overrides=[f"spark.master=local[{args.cores}]", f"embed.model={args.model}"])
    spark = get_spark(cfg)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg["decode"]["arrow_batch_rows"]))
    out = os.path.join(work, "out")
    write_table(build_images(spark, cfg, src, None, "b"), out, "images", "parquet")
    images = read_table(spark, out, "images")
    # warm-up on a slice: Python workers start, load and trace the model once
    write_table(build_embeddings(spark, cfg, images.limit(64), "warm"), os.path.join(work, "warm"), "embeddings", "parquet")
    with PeakRSS() as mem:
        start = time.time()
        write_table(build_embeddings(spark, cfg, images, "b"), out, "embeddings", "parquet")
        seconds = time.time() - start
    n = read_table(spark, out, "embeddings").count()
    stage = n / seconds
    mb, cpu = mem.as_mb(), mem.cpu_seconds()
    per_image = {k: 1000 * v / max(n, 1) for k, v in cpu.items()}
    table = (
        "| model | images | model alone, img/s | decode + model, no Spark, img/s | embed stage, img/s | stage / alone "
        "| stage / (decode + model) | decode + fit CPU ms/image | Python worker peak RSS MB "
        "| driver JVM MB | CPU ms/image: Python workers | JVM | driver Python |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {args.model} | {n} | {alone:.1f} | {per_image_work:.1f} | {stage:.1f} | {stage / alone:.0%} "
        f"| {stage / per_image_work:.0%} | {decode_ms:.1f} | {mb['python_worker']} "
        f"| {mb['driver_jvm']} | {per_image['python_worker']:.1f} | {per_image['jvm']:.1f} "
        f"| {per_image['driver_python']:.1f} |"
    )
    kind = "JPEG" if args.jpeg else "PNG"
    flag = " --jpeg" if args.jpeg else ""
    body = (f"### Embed stage vs model alone ({args.model}, {kind} input)\n\nCommand: `python benchmarks/bench_embed.py "
            f"--images {args.images} --model {args.model}{flag} --write` (local[{args.cores}], warm Spark; "
            f"machine: {machine()})\n\n{table}")
    print(body)
    if args.write:
        update_benchmarks_md(f"embed-{args.model.replace(':', '-')}{'-jpeg' if args.jpeg else ''}", body)


if __name__ == "__main__":
    main()
