"""Keras (tf.function), TFLite (XNNPACK) on TensorFlow's tf.lite and TFLite on the
standalone LiteRT package for the default model: same embeddings? How much CPU per
image, how much to start, how much memory?

    python benchmarks/bench_embed_runtime.py [--images 300] [--size 224] [--batch-size 32] [--rounds 3]

Each runtime runs in a fresh Python process (as a Spark Python worker would), on one
thread (configure_tf_threads), over the same real images (Debian openclipart-png and
oxygen icons, fitted to the input with the embed stage's own center crop). Reported per
runtime: CPU seconds from a bare process to a loaded model (every import, the model load
and its first call: what each Spark Python worker pays once), whether TensorFlow got
imported, CPU ms per image over all batches, peak RSS; and against Keras the cosine of
each image's two embeddings (min, 1st percentile, mean). "tflite (tf.lite)" is the
default model with LiteRT hidden from the process (what runs where it is not installed). CPU ms per image is measured twice:
each runtime alone in its process, and both in one process with batches alternating
(the fairer comparison on a machine whose load changes). CPU is process CPU time, which stays
meaningful on a shared machine.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOTS = ("/usr/share/openclipart/png", "/usr/share/icons/oxygen")

# Both runtimes in one process, batches alternating, so both see the same machine load.
INTERLEAVED = r"""
import json, sys, time
import numpy as np
from sparkdup.udfs.embed import get_model
names, batch_path, batch_size, rounds = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
x = np.load(batch_path)
models = [get_model(n) for n in names]
cpu = [0.0] * len(models)
for _ in range(rounds):
    for i in range(0, len(x), batch_size):
        for j, m in enumerate(models):
            t = time.process_time()
            m(x[i:i + batch_size])
            cpu[j] += time.process_time() - t
print(json.dumps([1000 * c / (rounds * len(x)) for c in cpu]))
"""

CHILD = r"""
import json, resource, sys, time
t = time.process_time()
name, batch_path, out_path, batch_size, hide = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
if hide == "1":
    sys.modules["ai_edge_litert"] = None  # import fails: the tf.lite fallback
import numpy as np
from sparkdup.udfs.embed import get_model
model = get_model(name)
start_cpu = time.process_time() - t
x = np.load(batch_path)
t = time.process_time()
vecs = np.concatenate([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
run_cpu = time.process_time() - t
np.save(out_path, vecs)
print(json.dumps({"backend": model.backend, "start_cpu_s": start_cpu, "tensorflow": "tensorflow" in sys.modules,
                  "ms_per_image": 1000 * run_cpu / len(x),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def real_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    from PIL import Image

    from sparkdup.udfs.embed import fit_to_square

    files = sorted(f for root in ROOTS for f in glob.glob(os.path.join(root, "**", "*.png"), recursive=True))
    random.Random(seed).shuffle(files)
    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                rgba = np.asarray(im.convert("RGBA"))
        except Exception:  # noqa: BLE001 - skip a file Pillow cannot read
            continue
        if min(rgba.shape[:2]) < 16:
            continue
        out.append(fit_to_square(rgba, size))
        if len(out) == n:
            break
    return np.stack(out)


def run_child(name: str, batch: str, out: str, batch_size: int, hide_litert: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + sys.path[1:]), TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run([sys.executable, "-c", CHILD, name, batch, out, str(batch_size), str(int(hide_litert))], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def interleaved(names: list[str], batch: str, batch_size: int, rounds: int) -> list[float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + sys.path[1:]), TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run([sys.executable, "-c", INTERLEAVED, ",".join(names), batch, str(batch_size), str(rounds)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="passes over the images, alternating runtimes per batch")
    a = ap.parse_args()
    sys.path.insert(0, REPO)
    from sparkdup.models.registry import with_size

    x = real_images(a.images, a.size)
    rows, vecs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        batch = os.path.join(tmp, "x.npy")
        np.save(batch, x)
        size = a.size if a.size != 224 else None
        runs = {"keras": (with_size("efficientnet_lite0:keras", size), False),
                "tflite (tf.lite)": (with_size("efficientnet_lite0", size), True),
                "tflite (LiteRT)": (with_size("efficientnet_lite0", size), False)}
        for label, (name, hide) in runs.items():
            out = os.path.join(tmp, "v.npy")
            rows[label] = run_child(name, batch, out, a.batch_size, hide)
            vecs[label] = np.load(out)
        # Keras and the default (TFLite, LiteRT when installed) in one process, batches alternating.
        both = [runs["keras"][0], runs["tflite (LiteRT)"][0]]
        for label, ms in zip(("keras", "tflite (LiteRT)"), interleaved(both, batch, a.batch_size, a.rounds)):
            rows[label]["interleaved_ms"] = ms
    print(f"{len(x)} real images at {a.size}x{a.size}, batch {a.batch_size}, one thread, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| runtime | backend | start: imports + load + first call (CPU s) | imports TensorFlow | CPU ms / image, "
          f"alone | CPU ms / image, interleaved x{a.rounds} with Keras | peak RSS MB | cosine to Keras: min / 1st pct |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        cos = np.sum(vecs["keras"] * vecs[label], axis=1)
        inter = f"{r['interleaved_ms']:.2f}" if "interleaved_ms" in r else "–"
        print(f"| {label} | {r['backend']} | {r['start_cpu_s']:.2f} | {'yes' if r['tensorflow'] else 'no'} | "
              f"{r['ms_per_image']:.2f} | {inter} | {r['peak_rss_mb']:.0f} | "
              f"{cos.min():.6f} / {np.percentile(cos, 1):.6f} |")


if __name__ == "__main__":
    main()
