"""Read a manifest (CSV, Parquet or Delta table with a `path` column) into one row per line.

CSV is read with Python's csv module: RFC 4180 quoting (doubled quotes, quoted separators
and newlines, as Excel and pandas write), CRLF or LF line ends, a UTF-8 byte-order mark.
The separator and encoding are settings (`ingest.manifest_separator`,
`ingest.manifest_encoding`). Manifests are read on the driver: a few million rows fit.

Every manifest row becomes exactly one `images` row, by these rules (docs/schema.md):

* an empty path, or a web/FTP URL (http:, https:, ftp:, …), or a scheme this Spark has no
  filesystem for: status `unsupported`, the reason in `error`; never a job failure;
* the same file named again (after resolving relative paths and `..`): the first row is
  ingested; each later one gets status `duplicate` and an error naming the first line, keeps
  its own label and columns, and its `image_id` is ``xxhash64(path, manifest_line)`` so ids
  stay unique (the first row's stays ``xxhash64(path)``);
* relative paths are resolved against the manifest's own folder.

User columns whose names are sparkdup's own output columns are refused before any work,
naming them (only `path`, `label`, `split` are inputs).
"""
from __future__ import annotations

import csv
import io
import os
import posixpath
import re

import pandas as pd

from sparkdup.errors import InputError
from sparkdup.listing import is_local, local_path, spell_local

WEB_SCHEMES = ("http", "https", "ftp", "ftps", "sftp", "scp", "ssh", "data", "mailto")
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
INPUT_COLUMNS = ("path", "label", "split")


def read_bytes(spark, manifest: str) -> bytes:
    """The manifest file's bytes: local open, or Hadoop FileSystem for other URIs."""
    if is_local(manifest):
        with open(local_path(manifest), "rb") as f:
            return f.read()
    jvm = spark._jvm  # noqa: SLF001
    hpath = jvm.org.apache.hadoop.fs.Path(manifest)
    stream = hpath.getFileSystem(spark._jsc.hadoopConfiguration()).open(hpath)  # noqa: SLF001
    try:
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
    finally:
        stream.close()


def parse_csv(data: bytes, name: str, separator: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    """Rows of a CSV manifest as strings, with `manifest_line` (1-based line where each row starts)."""
    if not isinstance(separator, str) or len(separator) != 1:
        raise InputError("ingest.manifest_separator must be one character, e.g. ',' ';' or '\\t'")
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = data.decode(codec)
    except LookupError:
        raise InputError("ingest.manifest_encoding is not an encoding Python knows (e.g. utf-8, latin-1)") from None
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"manifest {name} is not valid {encoding} at line {line}: set ingest.manifest_encoding "
                         "(e.g. latin-1, cp1252)") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True)
    try:
        header = next(reader, None)
        rows, lines, start = [], [], reader.line_num + 1
        for record in reader:
            if record:
                if len(record) > len(header):
                    raise InputError(f"manifest {name} line {start} has {len(record)} fields, the header "
                                     f"{len(header)}: quote values holding '{separator}' (RFC 4180)")
                rows.append(record + [None] * (len(header) - len(record)))
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"manifest {name} line {reader.line_num}: {exc} (RFC 4180 CSV expected)") from None
    if not header or "path" not in [h.strip() for h in header]:
        found = ", ".join(header or []) or "none"
        hint = next((f"; its separator looks like {s!r}: set ingest.manifest_separator" for s in (";", "\t", "|")
                     if header and len(header) == 1 and s in header[0]), "")
        raise InputError(f"manifest {name} has no 'path' column (columns: {found}){hint}")
    header = [h.strip() for h in header]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise InputError(f"manifest {name} repeats column(s) {', '.join(repeated)}")
    df = pd.DataFrame(rows, columns=header, dtype=object)
    df.insert(0, "manifest_line", pd.Series(lines, dtype="int64"))
    return df


def refuse_colliding(columns, output_columns, name: str) -> None:
    """User columns that would shadow sparkdup's own output columns are refused, named."""
    clash = [c for c in columns if c in output_columns and c not in INPUT_COLUMNS]
    if clash:
        raise InputError(f"manifest {name} has column(s) named like sparkdup's own output: {', '.join(clash)}; "
                         "rename them (e.g. user_" + clash[0] + ")")


def _scheme_supported(spark, scheme: str, cache: dict) -> str | None:
    """None when Hadoop has a filesystem for scheme, else the reason."""
    if scheme not in cache:
        if scheme.lower() in WEB_SCHEMES:
            cache[scheme] = (f"{scheme}: URLs are not read: sparkdup reads files from filesystems "
                             "(local, s3a, hdfs, abfss, gs, dbfs); download them first")
        elif spark is None:
            cache[scheme] = None
        else:
            try:
                spark._jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(  # noqa: SLF001
                    scheme, spark._jsc.hadoopConfiguration())  # noqa: SLF001
                cache[scheme] = None
            except Exception:  # py4j wraps UnsupportedFileSystemException
                cache[scheme] = f"this Spark has no filesystem for {scheme}: paths"
    return cache[scheme]


def resolve_paths(spark, df: pd.DataFrame, manifest: str) -> pd.DataFrame:
    """Add `local` (raw OS path bytes or None), `list_status`/`list_error` (unsupported,
    duplicate) and `id_salt`; `path` becomes the stored spelling."""
    local_base = os.path.dirname(local_path(manifest)) if is_local(manifest) else None
    remote_base = manifest.rsplit("/", 1)[0] if local_base is None else None
    cache: dict = {}
    paths, locals_, statuses, errors = [], [], [], []
    for given in df["path"]:
        value = "" if given is None or (isinstance(given, float) and pd.isna(given)) else str(given)
        status = error = raw = None
        m = SCHEME.match(value)
        if not value.strip():
            path, status, error = "", "unsupported", "empty path in the manifest"
        elif m and m.group(1).lower() != "file" and len(m.group(1)) > 1:
            path = value
            reason = _scheme_supported(spark, m.group(1), cache)
            if reason:
                status, error = "unsupported", reason
        elif m or value.startswith("/") or local_base is not None:
            absolute = local_path(value) if m or value.startswith("/") else os.path.join(local_base, value)
            raw = os.fsencode(os.path.normpath(absolute))
            path = spell_local(raw)[0]
        else:
            path = posixpath.join(remote_base, value)
            scheme, rest = path.split("://", 1)
            host, _, tail = rest.partition("/")
            path = f"{scheme}://{host}{posixpath.normpath('/' + tail)}"
        paths.append(path)
        locals_.append(raw)
        statuses.append(status)
        errors.append(error)
    out = df.copy()
    out["path"], out["local"], out["list_status"], out["list_error"] = paths, locals_, statuses, errors
    first_line = {}
    salts = []
    for i, (path, line) in enumerate(zip(out["path"], out["manifest_line"])):
        if path in first_line:
            salts.append(int(line))
            if out.at[i, "list_status"] is None:
                out.at[i, "list_status"] = "duplicate"
                out.at[i, "list_error"] = (f"same file as manifest line {first_line[path]}: this row is kept "
                                           "with its own columns, the file is read once")
        else:
            first_line[path] = int(line)
            salts.append(None)
    out["id_salt"] = pd.Series(salts, dtype="Int64")
    return out


def read_manifest_rows(spark, manifest: str, settings: dict, output_columns):
    """(rows, typed_columns): the manifest's rows resolved (see module docstring), with the
    user columns as strings for CSV (typed_columns None); for Delta (a _delta_log folder)
    or Parquet, paths are collected and the user columns stay a Spark DataFrame keyed by
    manifest_line (their position in the table)."""
    lower = manifest.lower().rstrip("/")
    if lower.endswith((".csv", ".tsv", ".txt")):
        df = parse_csv(read_bytes(spark, manifest), manifest, settings.get("manifest_separator", ","),
                       settings.get("manifest_encoding", "utf-8"))
    else:
        if spark is None:
            raise InputError("a Parquet/Delta manifest needs a Spark session")
        from sparkdup.tables import path_exists

        reader = spark.read.format("delta") if path_exists(spark, manifest.rstrip("/") + "/_delta_log") else spark.read.format("parquet")
        sdf = reader.load(manifest)
        if "path" not in sdf.columns:
            raise InputError(f"manifest {manifest} has no 'path' column (columns: {', '.join(sdf.columns)})")
        refuse_colliding(sdf.columns, output_columns, manifest)
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        # a row's position in the table (stable: a file scan reads in the same order each
        # time), numbered by zipWithIndex: distributed, unlike a window over the whole table
        schema = T.StructType(sdf.schema.fields + [T.StructField("manifest_line", T.LongType())])
        numbered = spark.createDataFrame(sdf.rdd.zipWithIndex().map(lambda r: (*r[0], r[1] + 1)), schema)
        df = numbered.select("manifest_line", F.col("path").cast("string")).toPandas()
        df["path"] = df["path"].astype(object).where(df["path"].notna(), None)
        # user columns keep their types in Spark and are joined back by manifest_line
        return resolve_paths(spark, df, manifest), numbered.drop("path")
    refuse_colliding(df.columns[1:], output_columns, manifest)
    return resolve_paths(spark, df.reset_index(drop=True), manifest), None
