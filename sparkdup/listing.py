"""List the files of an input the way its owner sees them, with counts of what was skipped.

Spark's file index and Hadoop's input formats hide names starting with `_` or `.` and
take every input string as a glob; a dataset may hold a camera's `_DSC1234.JPG`, a folder
named `a[1]`, a symlink loop or a name that is not UTF-8. So sparkdup lists by itself:

* `file:` and plain local paths: an OS walk (``os.scandir`` on bytes, so any name the
  filesystem holds comes back exactly). Symlinks are followed, to files and folders; each
  real file is listed once, by its resolved path (real entries are walked before symlinked
  ones, so a file keeps its own name when it is also reached through a link); a folder
  already being walked is not entered again (loops end); a dangling link is listed with
  the reason it cannot be read.
* any other Hadoop filesystem (s3a://, hdfs://, abfss://, …): ``FileSystem.listFiles``
  (recursive, no name filter), whose paths cross to Python in one call per listing.

Names starting with `_` are ordinary files. Dot-names (POSIX hidden files and folders) are
skipped unless ``ingest.include_hidden``; they are counted, never silently dropped. Files
whose extension is not wanted are counted by extension.

How a path is written (the `images.path` column): ``file:`` + the absolute path for local
files whose path is valid UTF-8 (the spelling Spark's file sources use, so later stages
find the same string); a local path that is not valid UTF-8 is written as a URI,
``file://`` + the path percent-encoded byte by byte (RFC 3986), which cannot collide with
the first form. Other filesystems: Hadoop's ``Path.toString()`` of the listed path.
The bytes to open are carried next to the path (never recovered by parsing it back).
"""
from __future__ import annotations

import collections
import os
import re
import stat
import urllib.parse
from dataclasses import dataclass, field

from sparkdup.errors import InputError

LOCAL_SCHEME = "file:"


@dataclass
class Entry:
    """One listed file: `path` as stored in `images`, `local` the raw OS path (bytes) to
    open when the file is local, size/mtime from the listing, `error` when it cannot be read."""
    path: str
    local: bytes | None
    size: int | None
    mtime: float | None
    error: str | None = None


@dataclass
class Listing:
    """The files to ingest and what was seen but not taken, for the run summary and `runs`."""
    entries: list[Entry] = field(default_factory=list)
    listed: int = 0                       # files seen (before the extension and hidden filters)
    skipped_extension: collections.Counter = field(default_factory=collections.Counter)
    skipped_hidden: int = 0               # dot-files and dot-folders not entered
    aliases: int = 0                      # links to a file or folder already listed
    non_utf8: int = 0                     # paths written percent-encoded

    def counts(self, top: int = 5) -> dict[str, int]:
        out = {"files_listed": self.listed, "files_skipped_extension": sum(self.skipped_extension.values()),
               "files_skipped_hidden": self.skipped_hidden, "files_aliased": self.aliases,
               "paths_percent_encoded": self.non_utf8}
        for ext, n in self.skipped_extension.most_common(top):
            out[f"skipped_ext_{ext or '(none)'}"] = n
        return out


def is_local(source: str) -> bool:
    """A path without a scheme, or a file: URI."""
    return source.startswith(LOCAL_SCHEME) or "://" not in source and ":" not in source.split("/", 1)[0]


def local_path(source: str) -> str:
    """The OS path of a local input argument (file:/x, file:///x or /x, relative ok)."""
    if source.startswith("file://"):
        source = urllib.parse.unquote(source[len("file://"):])
    elif source.startswith(LOCAL_SCHEME):
        source = source[len(LOCAL_SCHEME):]
    return os.path.abspath(source)


def spell_local(raw: bytes) -> tuple[str, bool]:
    """(images.path for an absolute local path given as bytes, whether it was percent-encoded)."""
    try:
        return LOCAL_SCHEME + raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return "file://" + urllib.parse.quote_from_bytes(raw, safe="/"), True


def spark_literal(path: str) -> str:
    """A Hadoop path string Spark's file sources take literally: they glob every path they
    are given, so glob characters are escaped with a backslash."""
    return re.sub(r"([\\*?\[\]{}])", r"\\\1", path)


def os_path_of(path: str) -> bytes:
    """The raw OS path of a local `images.path` (the inverse of spell_local)."""
    if path.startswith("file://"):
        return urllib.parse.unquote_to_bytes(path[len("file://"):])
    return os.fsencode(path[len(LOCAL_SCHEME):])


def extension_of(name: bytes | str) -> str:
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base.lstrip(".") else ""


def wanted_extensions(extensions, all_pillow_formats: bool) -> frozenset[str] | None:
    """Lower-case extensions without dots; with all_pillow_formats, every extension Pillow
    registers a reader for is added."""
    if isinstance(extensions, str) or not all(isinstance(e, str) for e in extensions or []):
        raise InputError("ingest.extensions must be a list of file extensions, e.g. [jpg, png]")
    wanted = {e.lower().lstrip(".") for e in extensions}
    if all_pillow_formats:
        from PIL import Image

        Image.init()
        wanted |= {ext.lower().lstrip(".") for ext, fmt in Image.registered_extensions().items()
                   if fmt in Image.OPEN}
    return frozenset(wanted)


class _LocalWalk:
    """One OS walk; see the module docstring for the rules."""

    def __init__(self, extensions: frozenset[str] | None, include_hidden: bool, out: Listing) -> None:
        self.extensions, self.include_hidden, self.out = extensions, include_hidden, out
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: set[bytes] = set()

    def add_file(self, raw: bytes, st: os.stat_result | None, via_link: bool, error: str | None = None) -> None:
        self.out.listed += 1
        ext = extension_of(os.path.basename(raw))
        if self.extensions is not None and ext not in self.extensions:
            self.out.skipped_extension[ext] += 1
            return
        if error is None:
            key = os.path.realpath(raw) if via_link else raw
            if key in self.seen_files:
                self.out.aliases += 1
                return
            self.seen_files.add(key)
        path, encoded = spell_local(raw)
        self.out.non_utf8 += encoded
        self.out.entries.append(Entry(path, raw, st.st_size if st else None, st.st_mtime if st else None, error))

    def walk(self, root: bytes) -> None:
        st = os.stat(root)
        self.seen_dirs.add((st.st_dev, st.st_ino))
        real_dirs, linked = [(root, False)], []
        while real_dirs or linked:
            folder, via_link = real_dirs.pop() if real_dirs else linked.pop(0)
            try:
                with os.scandir(folder) as it:
                    children = sorted(it, key=lambda e: e.name, reverse=True)
            except OSError as exc:  # a folder we may not read: say so on one row
                self.add_file(folder, None, via_link, f"folder could not be listed: {exc.strerror}")
                continue
            deferred_files = []
            for entry in children:
                if entry.name.startswith(b".") and not self.include_hidden:
                    self.out.skipped_hidden += 1
                    continue
                link = entry.is_symlink()
                try:
                    target = entry.stat(follow_symlinks=True)
                except OSError:
                    target = None
                if target is None:
                    if link:
                        dest = os.readlink(entry.path).decode("utf-8", "backslashreplace")
                        self.add_file(entry.path, None, True, f"broken symbolic link: its target {dest} does not exist")
                    else:
                        self.add_file(entry.path, None, via_link, "file could not be read (vanished or no access)")
                elif stat.S_ISDIR(target.st_mode):
                    ident = (target.st_dev, target.st_ino)
                    if ident in self.seen_dirs:
                        self.out.aliases += 1
                        continue
                    self.seen_dirs.add(ident)
                    (linked.append((entry.path, True)) if link or via_link else real_dirs.append((entry.path, False)))
                elif link:
                    deferred_files.append((entry.path, target))
                else:
                    self.add_file(entry.path, target, via_link)
            for raw, target in reversed(deferred_files):
                self.add_file(raw, target, True)


def list_local(source: str, extensions: frozenset[str] | None, include_hidden: bool) -> Listing:
    """Walk a local folder (or take a single local file) as the module docstring says."""
    out = Listing()
    path = local_path(source)
    raw = os.fsencode(path)
    if os.path.isdir(raw):
        _LocalWalk(extensions, include_hidden, out).walk(raw)
    elif os.path.isfile(raw):
        _LocalWalk(extensions, include_hidden, out).add_file(raw, os.stat(raw), os.path.islink(raw))
    else:
        raise InputError(f"input not found: {source}")
    out.entries.sort(key=lambda e: e.path)
    return out


def _listed_paths(spark, statuses) -> list[str]:
    """Path.toString() of every FileStatus of a java List, in a few py4j calls whatever the
    count (py4j passes a Path[] only where exactly Path[] or a Scala generic array is taken;
    joined with NUL, which no path holds)."""
    jvm = spark._jvm  # noqa: SLF001
    objects = statuses.toArray()
    typed = jvm.java.util.Arrays.copyOf(objects, len(objects), jvm.java.lang.Class.forName("[Lorg.apache.hadoop.fs.FileStatus;"))
    paths = jvm.org.apache.hadoop.fs.FileUtil.stat2Paths(typed)
    joined = jvm.scala.collection.immutable.ArraySeq.unsafeWrapArray(paths).mkString("\0")
    return joined.split("\0") if joined else []


def _hidden_below(root: str, path: str) -> bool:
    rel = path[len(root):] if path.startswith(root) else path.rsplit("/", 1)[-1]
    return any(part.startswith(".") for part in rel.split("/") if part)


def list_remote(spark, sources: list[str], extensions: frozenset[str] | None, include_hidden: bool) -> Listing:
    """List Hadoop paths (folders recursively, or files) with FileSystem.listFiles, no name filter.

    `sources` are qualified Hadoop paths (from globStatus or the user's literal path, turned
    into a Path object from a URI, never globbed). Sizes and times come later from the scan."""
    jvm = spark._jvm  # noqa: SLF001
    out = Listing()
    conf = spark._jsc.hadoopConfiguration()  # noqa: SLF001
    for source in sources:
        hpath = jvm.org.apache.hadoop.fs.Path(source)  # a Path, never a glob
        fs = hpath.getFileSystem(conf)
        if not fs.exists(hpath):
            raise InputError(f"input not found: {source}")
        files = jvm.org.apache.hadoop.util.functional.RemoteIterators.toList(fs.listFiles(hpath, True))
        root = str(fs.makeQualified(hpath).toString()).rstrip("/") + "/"
        for path in _listed_paths(spark, files):
            out.listed += 1
            if not include_hidden and _hidden_below(root, path):
                out.skipped_hidden += 1
                continue
            ext = extension_of(path)
            if extensions is not None and ext not in extensions:
                out.skipped_extension[ext] += 1
                continue
            out.entries.append(Entry(path, None, None, None))
    out.entries.sort(key=lambda e: e.path)
    return out


def expand_glob(spark, pattern: str) -> list[str]:
    """Hadoop glob syntax (* ? [ab] {a,b}), only when the user asked for a glob (--glob).
    Returns qualified paths of the matches; none is a one-line InputError."""
    if spark is None:
        raise InputError("--glob needs a Spark session")
    jvm = spark._jvm  # noqa: SLF001
    hpath = jvm.org.apache.hadoop.fs.Path(pattern)
    fs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())  # noqa: SLF001
    matches = fs.globStatus(hpath)
    if matches is None or len(matches) == 0:
        raise InputError(f"the glob {pattern} matches nothing (Hadoop glob syntax: * ? [abc] {{a,b}})")
    return [str(m.getPath().toString()) for m in matches]


def list_input(spark, source: str, extensions: frozenset[str] | None, include_hidden: bool,
               glob: bool = False) -> Listing:
    """The files of one input argument: a literal folder/file, or a glob when asked."""
    if not glob:
        if is_local(source):
            return list_local(source, extensions, include_hidden)
        return list_remote(spark, [source], extensions, include_hidden)
    matches = expand_glob(spark, source if not is_local(source) else LOCAL_SCHEME + local_path(source))
    if is_local(source):
        merged = Listing()
        for m in matches:
            part = list_local(m, extensions, include_hidden)
            merged.entries += part.entries
            merged.listed += part.listed
            merged.skipped_extension += part.skipped_extension
            merged.skipped_hidden += part.skipped_hidden
            merged.aliases += part.aliases
            merged.non_utf8 += part.non_utf8
        seen, unique = set(), []
        for e in sorted(merged.entries, key=lambda e: e.path):
            if e.path in seen:
                merged.aliases += 1
                continue
            seen.add(e.path)
            unique.append(e)
        merged.entries = unique
        return merged
    return list_remote(spark, matches, extensions, include_hidden)
