"""Checks before any image is read: what a user can get wrong fails here, in one line.

``preflight(spark_or_none, cfg, args)`` is called by `sparkdup ingest` and must be called by
`sparkdup run` before its first stage. Local paths need no Spark session; remote ones
(s3a://, hdfs://, …) are checked when a session is given.

* the input exists, taken literally (brackets, braces, `*` in a folder name are just
  characters) unless ``--glob``; exactly one of INPUT and ``--manifest``;
* ``--output`` is a folder this user can write (created when missing), not a file;
* one run at a time per output: a local output is locked with ``flock`` on
  ``<output>/_sparkdup.lock`` for the life of the process (the kernel releases it when the
  process ends, even on ``kill -9``, so a dead run never leaves a stale lock). On object
  stores there is no lock; Delta's own conflict detection stops the second writer and
  ``concurrent_write_error`` turns that into one line;
* leftover checkpoints of finished or dead runs under ``<output>/_checkpoints`` are
  removed (safe: the lock says no other run uses this output).

No message here tells the user to delete anything sparkdup wrote, and none echoes a
setting's value.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import time

from sparkdup.errors import InputError, OutputError
from sparkdup.listing import is_local, local_path, wanted_extensions

log = logging.getLogger("sparkdup")

LOCK_NAME = "_sparkdup.lock"
CHECKPOINTS = "_checkpoints"
_HELD: dict[str, int] = {}  # output folder (real path) -> open, locked file descriptor


def check_input(spark, args) -> None:
    source, manifest = getattr(args, "input", None), getattr(args, "manifest", None)
    if bool(source) == bool(manifest):
        raise InputError("give either an INPUT folder/glob or --manifest FILE (exactly one)")
    target = source or manifest
    what = "input" if source else "manifest"
    if source and getattr(args, "glob", False):
        return  # a pattern: matched (or refused when it matches nothing) by the listing
    if is_local(target):
        path = local_path(target)
        if os.path.islink(path) and not os.path.exists(path):
            raise InputError(f"{what} is a broken symbolic link: {target}")
        if not os.path.exists(path):
            hint = " (it looks like a glob: add --glob)" if source and any(c in source for c in "*?[{") else ""
            raise InputError(f"{what} not found: {target}{hint}")
        if manifest and os.path.isdir(path) and not os.path.isdir(os.path.join(path, "_delta_log")) \
                and not any(n.endswith(".parquet") for n in os.listdir(path)):
            raise InputError(f"manifest {target} is a folder holding no Delta or Parquet table")
    elif spark is not None:
        from sparkdup.tables import path_exists

        if not path_exists(spark, target):
            raise InputError(f"{what} not found: {target}")


def check_output_local(output: str) -> str:
    """The output folder's OS path, created when missing; refused when it is not a writable folder."""
    path = local_path(output)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"--output {output} is a file, not a folder: give a folder (it is created when missing)")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise OutputError(f"--output {output}: {existing} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"--output {output}: no permission to write in {existing}")
    os.makedirs(path, exist_ok=True)
    return path


def check_output_remote(spark, output: str) -> None:
    from sparkdup.tables import hadoop_fs

    fs, hpath = hadoop_fs(spark, output)
    if fs.exists(hpath) and not fs.getFileStatus(hpath).isDirectory():
        raise OutputError(f"--output {output} is a file, not a folder")


def lock_output(folder: str, output: str) -> None:
    """Hold an exclusive lock on the output for this process (re-entrant within it)."""
    key = os.path.realpath(folder)
    if key in _HELD:
        return
    fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise OutputError(f"--output {output}: cannot lock it ({exc.strerror})") from None
        raise OutputError(f"another sparkdup run ({holder or 'unknown process'}) is writing to --output {output}: "
                          "wait for it to finish, or use another --output") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}".encode(), 0)
    _HELD[key] = fd


def release_output(output: str) -> None:
    """Give the lock back (tests, notebooks; a process that ends releases it anyway)."""
    if not is_local(output):
        return
    fd = _HELD.pop(os.path.realpath(local_path(output)), None)
    if fd is not None:
        os.close(fd)


def clean_checkpoints(spark, cfg: dict, output: str) -> int:
    """Remove checkpoint folders of earlier runs under <output>/_checkpoints (only there: a
    user-set spark.checkpoint_dir may be shared and is left alone). Returns how many."""
    if cfg["spark"].get("checkpoint_dir"):
        return 0
    current = spark.sparkContext.getCheckpointDir() if spark is not None else None
    current = current.rstrip("/").rsplit("/", 1)[-1] if current else None
    removed = 0
    if is_local(output):
        folder = os.path.join(local_path(output), CHECKPOINTS)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if name != current:
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
                removed += 1
    elif spark is not None:
        from sparkdup.tables import hadoop_fs

        fs, hpath = hadoop_fs(spark, output.rstrip("/") + "/" + CHECKPOINTS)
        if fs.exists(hpath):
            for st in fs.listStatus(hpath):
                if st.getPath().getName() != current:
                    fs.delete(st.getPath(), True)
                    removed += 1
    if removed:
        log.info("removed %d leftover checkpoint folder(s) of earlier runs under %s/%s", removed, output, CHECKPOINTS)
    return removed


def preflight(spark, cfg: dict, args) -> None:
    """All checks of the module docstring, in order; raises a one-line UserError."""
    ing = cfg["ingest"]
    wanted_extensions(ing["extensions"], bool(ing.get("all_pillow_formats")))
    if not isinstance(ing.get("include_hidden", False), bool):
        raise InputError("ingest.include_hidden must be true or false")
    check_input(spark, args)
    output = args.output
    if is_local(output):
        lock_output(check_output_local(output), output)
    elif spark is not None:
        check_output_remote(spark, output)
    clean_checkpoints(spark, cfg, output)


def concurrent_write_error(exc: BaseException, output: str) -> OutputError | None:
    """A one-line OutputError when exc is Delta's conflict with another writer, else None."""
    text = str(exc)
    if any(k in text for k in ("ConcurrentAppend", "ConcurrentWrite", "ProtocolChanged", "MetadataChanged",
                               "ConcurrentDelete", "DELTA_CONCURRENT", "ConcurrentTransaction")):
        return OutputError(f"another sparkdup run wrote to --output {output} at the same time and won; "
                           "this run's tables were not written: run again when it has finished")
    return None
