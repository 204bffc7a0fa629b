"""Benchmark: the embedding model alone, per backend, on one thread.

Why: the embed stage runs one Python worker per core with one TensorFlow thread each, so
the number that matters is images per second per core for the model call itself
(decoding and resizing are measured elsewhere). This compares the default model's three
cached forms: Keras inside one ``tf.function``, TFLite fp32 and TFLite dynamic-range
int8; and how far int8 moves the embeddings from fp32 on real images.

Inputs: real clip-art PNGs from Debian's openclipart-png, composited on white and
letterboxed to 224x224 (pre-decoded once, outside the timing).

    python benchmarks/bench_model.py                  # 50 images, batch 32, ~3 s per backend
    python benchmarks/bench_model.py --batch-size 64 --seconds 5

Prints a markdown table. ``img/s`` is wall-clock; ``img/cpu-s`` divides by the
process's CPU time instead, which stays meaningful on a machine shared with other jobs
(the load average is printed with the table).
"""
from __future__ import annotations

import argparse
import glob
import os
import random
import sys
import time

import numpy as np
from PIL import Image

OPENCLIPART = "/usr/share/openclipart/png"
BACKENDS = {
    "keras (tf.function)": "efficientnet_lite0",
    "tflite fp32": "efficientnet_lite0:tflite",
    "tflite int8 (dynamic range)": "efficientnet_lite0:int8",
}


def real_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    from sparkdup.udfs.embed import fit_to_square

    files = sorted(glob.glob(os.path.join(OPENCLIPART, "**", "*.png"), recursive=True))
    files = [f for f in files if os.path.getsize(f) >= 2000]
    if len(files) < n:
        sys.exit(f"need {n} PNGs under {OPENCLIPART} (apt-get install openclipart-png), found {len(files)}")
    out = []
    for f in random.Random(seed).sample(files, n):
        img = Image.open(f)
        img.draft("RGB", (4 * size, 4 * size))
        rgba = img.convert("RGBA")
        rgba.thumbnail((4 * size, 4 * size))
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = np.asarray(Image.alpha_composite(canvas, rgba).convert("RGB"))
        out.append(fit_to_square(rgb, size, "letterbox"))
    return np.stack(out)


def throughput(embed, batch: np.ndarray, seconds: float) -> tuple[float, float, float]:
    """(images/s wall, images per CPU-second, ms per batch)."""
    embed(batch)  # warm-up: tracing, allocation
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        embed(batch)
        n += 1
        wall = time.perf_counter() - t0
        if wall >= seconds and n >= 3:
            break
    cpu = time.process_time() - c0
    imgs = n * len(batch)
    return imgs / wall, imgs / max(cpu, 1e-9), 1000 * wall / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=50, help="real images for the cosine comparison")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per backend")
    ap.add_argument("--threads", type=int, default=1, help="TF intra-op threads / TFLite threads")
    ap.add_argument("--sizes", default="224", help="comma-separated input sides, e.g. 224,192,160,128")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    if sizes != [224]:
        return by_size(args, sizes)

    from sparkdup.models import build_cache, registry

    registry.configure_tf_threads(args.threads, 1)
    build_cache.build(verbose=False)

    imgs = real_images(args.images, 224)
    reps = -(-args.batch_size // len(imgs))
    batch = np.concatenate([imgs] * reps)[: args.batch_size]

    rows, embs = [], {}
    for label, name in BACKENDS.items():
        t = time.perf_counter()
        embed = registry.load_embedder(name)
        load_s = time.perf_counter() - t
        ips, ipc, ms = throughput(embed, batch, args.seconds)
        embs[label] = np.concatenate([embed(imgs[i : i + args.batch_size]) for i in range(0, len(imgs), args.batch_size)])
        rows.append((label, load_s, ips, ipc, ms))

    keras_e = embs["keras (tf.function)"]
    fp32 = embs["tflite fp32"]
    int8 = embs["tflite int8 (dynamic range)"]
    cos_fp32 = (keras_e * fp32).sum(1)
    cos_int8 = (fp32 * int8).sum(1)

    sizes = {k: os.path.getsize(p) / 1e6 for k, p in build_cache.cached_paths().items()}
    size_of = {"keras (tf.function)": sizes["keras"], "tflite fp32": sizes["tflite_fp32"],
               "tflite int8 (dynamic range)": sizes["tflite_int8"]}
    print(f"EfficientNet-Lite0, 224x224, batch {args.batch_size}, {args.threads} thread(s); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| backend | file MB | load + trace s | img/s | img/cpu-s | ms/batch |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, load_s, ips, ipc, ms in rows:
        print(f"| {label} | {size_of[label]:.1f} | {load_s:.2f} | {ips:.1f} | {ipc:.1f} | {ms:.0f} |")
    print()
    print(f"| embeddings compared on {len(imgs)} openclipart images | mean cosine | min cosine |")
    print("|---|---:|---:|")
    print(f"| tflite fp32 vs keras | {cos_fp32.mean():.5f} | {cos_fp32.min():.5f} |")
    print(f"| tflite int8 vs tflite fp32 | {cos_int8.mean():.5f} | {cos_int8.min():.5f} |")
    # How much int8 noise matters for neighbours: does each image keep its nearest neighbour?
    nn_fp32 = np.argsort(-(fp32 @ fp32.T), axis=1)[:, 1]
    nn_int8 = np.argsort(-(int8 @ int8.T), axis=1)[:, 1]
    print(f"| same nearest neighbour, int8 vs fp32 | {np.mean(nn_fp32 == nn_int8):.3f} | |")
    return 0


def by_size(args, sizes: list[int]) -> int:
    """Speed of every backend at every input size (img/CPU-s is the steadier figure on a
    shared machine), and how close each size's embeddings stay to 224's."""
    from sparkdup.models import build_cache, registry

    registry.configure_tf_threads(args.threads, 1)
    build_cache.build(verbose=False)
    print(f"EfficientNet-Lite0, batch {args.batch_size}, {args.threads} thread(s); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| size | backend | load + trace s | img/s | img/CPU-s | CPU ms/img |")
    print("|---:|---|---:|---:|---:|---:|")
    for size in sizes:
        imgs = real_images(args.images, size)
        batch = np.concatenate([imgs] * -(-args.batch_size // len(imgs)))[: args.batch_size]
        for label, name in BACKENDS.items():
            t = time.perf_counter()
            embed = registry.load_embedder(registry.with_size(name, size))
            load_s = time.perf_counter() - t
            ips, ipc, _ = throughput(embed, batch, args.seconds)
            print(f"| {size} | {label} | {load_s:.2f} | {ips:.1f} | {ipc:.1f} | {1000 / ipc:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
