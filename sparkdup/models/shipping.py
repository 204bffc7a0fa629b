"""Getting the embedding model's files from the driver to every executor.

On a cluster an executor sees neither the driver's model cache (``~/.cache/sparkdup/models``,
built there by scripts/setup.sh or on first use) nor a model file the user named by a
path on the driver. Left to themselves, executors would each build the default model into
their own home folder (minutes, and only where the weights package is installed) or fail
to find the user's file. So the driver:

1. resolves the model name to the local file it needs (building the default model's cache
   once, on the driver, if missing);
2. publishes it with ``SparkContext.addFile`` (a folder, such as a SavedModel, as a zip with
   ``addArchive``, which executors unpack) under a name unique to that file's path, size
   and modification time, so two models with the same base name, or a rebuilt model, never
   clash with what the session published before (Spark refuses a second file of the same
   name, and ignores the same path added again);
3. hands the executors a :class:`ShippedModel`: the name to load, with the file replaced by
   where ``SparkFiles`` put it on that machine (:meth:`ShippedModel.local_name`).

Models that need no local file (``keras:<App>`` with ``imagenet`` or ``none`` weights) ship
nothing and load by name, as before. The same route runs in local mode, so the tests
exercise it. Files stay published for the whole session: Spark has no way to withdraw
one, and an executor that joins later fetches every file published so far.
"""
from __future__ import annotations

import atexit
import dataclasses
import hashlib
import os
import shutil
import tempfile
import urllib.parse
import zipfile
from typing import Callable

from sparkdup.models import registry

# Built-in names whose file lives in the driver's model cache (sparkdup.models.build_cache).
CACHED = {
    registry.DEFAULT_MODEL: "tflite_fp32",
    registry.DEFAULT_MODEL + ":keras": "keras",
    registry.DEFAULT_MODEL + ":tflite": "tflite_fp32",
    registry.DEFAULT_MODEL + ":int8": "tflite_int8",
}

_staging: str | None = None


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    """What an executor needs to load the model: small, picklable with the UDF.

    ``name`` is the model's name as the user gave it (it goes into the ``model`` column).
    When ``file`` is set, executors load ``prefix + <local path of file> + suffix``
    instead, the path URL-quoted when ``quote`` (it sits inside a query string).
    """

    name: str
    file: str | None = None
    prefix: str = ""
    suffix: str = ""
    quote: bool = False

    def local_name(self, get: Callable[[str], str] | None = None) -> str:
        """The registry name to load on this machine (executor side)."""
        if self.file is None:
            return self.name
        if get is None:
            from pyspark import SparkFiles

            get = SparkFiles.get
        path = get(self.file)
        return self.prefix + (urllib.parse.quote(path, safe="/:~") if self.quote else path) + self.suffix


def _staging_dir() -> str:
    """A folder of links to published files, kept until the driver exits (see module doc)."""
    global _staging
    if _staging is None:
        _staging = tempfile.mkdtemp(prefix="sparkdup-models-")
        atexit.register(shutil.rmtree, _staging, True)
    return _staging


def _published_name(path: str, is_dir: bool) -> str:
    """<hash of path, sizes and modification times>-<base name>: a changed model, or another
    one with the same base name, is published under a name of its own."""
    files = [os.path.join(root, f) for root, _, names in os.walk(path) for f in names] if is_dir else [path]
    stats = [os.stat(f) for f in files]
    size, newest = sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)
    key = f"{os.path.abspath(path)}|{size}|{newest}".encode()
    base = os.path.basename(os.path.normpath(path))
    return f"{hashlib.sha1(key).hexdigest()[:12]}-{base}" + (".zip" if is_dir else "")


def _zip_folder(folder: str, dest: str) -> None:
    tmp = dest + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for root, _, files in os.walk(folder):
            for name in files:
                full = os.path.join(root, name)
                zf.write(full, os.path.relpath(full, folder))
    os.replace(tmp, dest)


def publish(spark, path: str) -> str:
    """Publish a local file or folder to every executor; returns its name for SparkFiles.get."""
    is_dir = os.path.isdir(path)
    name = _published_name(path, is_dir)
    staged = os.path.join(_staging_dir(), name)
    sc = spark.sparkContext
    published = sc.listArchives if is_dir else sc.listFiles
    if any(uri.rstrip("/").endswith("/" + name) for uri in published):  # earlier in this session
        return name
    if not os.path.exists(staged):
        if is_dir:
            _zip_folder(path, staged)
        else:  # a link, not a symlink: Spark would publish a symlink under its target's name
            try:
                os.link(path, staged)
            except OSError:  # another filesystem
                shutil.copy2(path, staged)
    (sc.addArchive if is_dir else sc.addFile)(staged)
    return name


def _local_source(name: str, spec: registry.ModelSpec) -> tuple[str, str, str, bool] | None:
    """(local path, prefix, suffix, quote) of the file a model loads from, or None."""
    base = name.partition("?")[0]
    if base in CACHED:  # efficientnet_lite0, also at another size (efficientnet_lite0?size=160)
        from sparkdup.models import build_cache

        path = build_cache.ensure_built()[CACHED[base]]
        return path, "", f"?preprocess=raw&size={spec.input_size}", False
    if spec.preprocessing.startswith("keras:"):
        app, weights = spec.source.split("|", 1)
        local = os.path.expanduser(weights)
        if weights.lower() in ("imagenet", "none") or not os.path.exists(local):
            return None
        return local, f"keras:{app}?size={spec.input_size}&weights=", "", True
    if spec.source and os.path.exists(spec.source):
        return spec.source, "", f"?preprocess={spec.preprocessing}&size={spec.input_size}", False
    return None


def ship_model(spark, name: str) -> ShippedModel:
    """Publish the model's file (if it has one) and say how executors load it (driver side)."""
    spec = registry.resolve(name)
    source = _local_source(name, spec)
    if source is None:
        return ShippedModel(name)
    path, prefix, suffix, quote = source
    return ShippedModel(name, publish(spark, path), prefix, suffix, quote)
