"""The result tables' contract in code: one spec per table (name, columns, types, meaning).

``write_table`` checks every DataFrame against its table's spec before writing (missing
columns, wrong types and unexpected columns are bugs, raised before any data is
written) and writes the columns in the spec's order. ``tests/test_schemas.py`` checks the
specs against ``docs/schema.md``, so the documentation and the code cannot drift.

``image_id`` is computed by :func:`image_id`, the one definition every stage uses.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def image_id(path: Column | str = "path") -> Column:
    """The stable 64-bit id of an image: Spark's xxhash64 of its path exactly as stored in
    `images.path`, so users can compute it over their own tables (`xxhash64(path)`)."""
    return F.xxhash64(path)


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # Spark SQL's simpleString: bigint, string, array<float>, map<string,bigint>, ...
    meaning: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    meaning: str
    columns: tuple[ColumnSpec, ...]
    # images passes a manifest's own columns through; no other table takes extra columns
    extra_columns_allowed: bool = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _spec(name: str, meaning: str, body: str, extra_columns_allowed: bool = False) -> TableSpec:
    """A spec from lines 'column type: meaning'."""
    cols = []
    for line in body.strip().splitlines():
        head, text = line.split(":", 1)
        col, typ = head.split()
        cols.append(ColumnSpec(col, typ, text.strip()))
    return TableSpec(name, meaning, tuple(cols), extra_columns_allowed)


TABLES = {t.name: t for t in (
    _spec("images", "every input file, one row each", """
image_id bigint: xxhash64(path)
path string: the file's URI
label string: from the manifest or the folder layout
split string: from the manifest or the folder layout
size_bytes bigint: file size; null when not found
modified_at timestamp: file modification time
content_hash string: SHA-256 of the bytes (hex)
format string: Pillow's format name
width int: pixels after EXIF orientation
height int: pixels after EXIF orientation
mode string: the file's own pixel mode
frames int: frames in the file
status string: ok, empty, unsupported, broken, too_large, unreadable
error string: why, when status is not ok
brightness double: mean luminance 0-255
contrast double: standard deviation of luminance
blur double: variance of the Laplacian of luminance
entropy double: luminance entropy, bits
is_grayscale boolean: channels nearly equal everywhere
luma_p01 double: 1st percentile of luminance
luma_p99 double: 99th percentile of luminance
signature binary: 64x64 8-bit RGB thumbnail, the pixels duplicate verification aligns
flags array<string>: quality flags
ingested_at timestamp: when this row was computed
run_id string: the run that wrote the row
manifest_line bigint: the manifest line (or row position) of a manifest input
""", extra_columns_allowed=True),
    _spec("embeddings", "one row per ok image", """
image_id bigint: the image
embedding array<float>: L2-normalised vector
model string: registry name of the model
dim int: length of embedding
run_id string: the run that wrote the row
"""),
    _spec("neighbors", "the k nearest neighbours of each embedded image", """
src bigint: the query image
dst bigint: a neighbour
rank int: 1 = nearest
similarity double: cosine similarity
source string: ann, exact or hash
run_id string: the run that wrote the row
"""),
    _spec("duplicate_pairs", "one row per verified candidate pair", """
image_id_a bigint: one side
path_a string: one side
image_id_b bigint: the other side
path_b string: the other side
hash_match boolean: same bytes
similarity double: embedding cosine (1.0 when hash_match)
verify_status string: ok, hash or no_signature
align_coarse double: best 16x16 aligned thumbnail correlation
align_fine double: 32x32 correlation of the best aligned windows
align_changed double: share of aligned pixels still differing locally
align_local double: worst tile's residual after alignment, relative to the contrast
align_local_rest double: second-worst tile's residual (what differs beyond one tile)
align_chroma double: largest tile mean of the residual in opponent colour (0-255)
is_duplicate boolean: the duplicate rule's decision
reason string: hash, verified, pixels_differ, local_change, colour_change or no_signature
run_id string: the run that wrote the row
"""),
    _spec("duplicate_groups", "one row per member of each group", """
group_id bigint: the group
image_id bigint: the member
path string: the member's path
group_size int: members in the group
kind string: exact or near
representative_id bigint: the member to keep
is_representative boolean: this member is the one to keep
evidence string: representative, hash or verified
similarity_to_representative double: cosine to the representative
align_fine_to_representative double: align_fine of the verified pair with the representative
align_changed_to_representative double: align_changed of that pair
align_local_to_representative double: align_local of that pair
content_hash string: from images
label string: from images
split string: from images
run_id string: the run that wrote the row
"""),
    _spec("outliers", "one row per embedded image, ranked", """
image_id bigint: the image
path string: its path
score double: weighted robust z-scores of the evidence; higher = more unusual
rank int: 1 = most unusual
percentile double: 100 = most unusual
is_outlier boolean: in the top outlier_fraction
reason string: the evidence that decided, in words
knn_distance double: cosine distance to the k-th nearest neighbour
lof double: local outlier factor over the same k
label_distance double: cosine distance to its label's mean embedding
label_z double: label_distance as a robust z-score within its label
label_entropy double: entropy of its k nearest neighbours' labels over log k (1 = all differ)
contrast double: from images
entropy double: from images
noise_ratio double: Laplacian variance relative to luminance variance (about 1 for noise)
low_information boolean: the ingest flag
nn_similarity double: similarity to the nearest neighbour
mean_similarity double: mean similarity to the k nearest
in_degree bigint: images listing it among their k nearest
degree bigint: distinct neighbours in the undirected kNN graph
label string: from images
split string: from images
run_id string: the run that wrote the row
"""),
    _spec("leaks", "duplicate pairs across splits", """
group_id bigint: the duplicate group
image_id_a bigint: one side
path_a string: one side
split_a string: one side
image_id_b bigint: the other side
path_b string: the other side
split_b string: the other side
similarity double: cosine between the two
kind string: exact or near
run_id string: the run that wrote the row
"""),
    _spec("label_issues", "labels the data disagrees with", """
image_id bigint: the image
path string: its path
label string: its given label
suggested_label string: the label the evidence points to
label_quality double: 0-1, lower = more likely wrong
p_given double: out-of-sample classifier probability of the given label
p_suggested double: classifier probability of suggested_label
vote_share double: neighbours' weighted vote share for suggested_label
confidence double: the evidence's probability of suggested_label
rank int: 1 = most likely wrong, over the whole table
issue string: the strongest kind that fired
issues array<string>: every kind that fired
group_id bigint: the duplicate group, for mixed_duplicate_group
voters array<bigint>: neighbours that voted for suggested_label
reason string: the evidence in words
run_id string: the run that wrote the row
"""),
    _spec("runs", "one row per run and stage, appended", """
run_id string: the run
stage string: the stage
started_at timestamp: UTC
seconds double: wall time of the stage
counts map<string,bigint>: rows and findings the stage produced
settings string: the full settings as JSON
sparkdup_version string: sparkdup's version
spark_version string: Spark's version
"""),
    _spec("curated", "the images kept for training (export --to)", """
image_id bigint: the image
path string: its path
label string: its label
split string: its split
run_id string: the run that wrote the row
"""),
    _spec("petastorm", "training images for petastorm (export --to, Parquet)", """
image_id bigint: the image
path string: its path
label string: its label
split string: its split
label_index int: position of label in the sorted labels; -1 when unlabelled
image binary: PNG at export.image_size
run_id string: the run that wrote the row
"""),
)}


class SchemaMismatch(RuntimeError):
    """A DataFrame about to be written does not match its table's spec: a bug in sparkdup."""


def conform(df: DataFrame, name: str) -> DataFrame:
    """df with its table's columns in the spec's order (extra columns last where allowed);
    raises SchemaMismatch naming every difference."""
    spec = TABLES[name]
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    problems = [f"missing {c.name}" for c in spec.columns if c.name not in types]
    problems += [f"{c.name} is {types[c.name]}, not {c.type}" for c in spec.columns
                 if c.name in types and types[c.name] != c.type]
    extra = [c for c in df.columns if c not in spec.names]
    if extra and not spec.extra_columns_allowed:
        problems.append("unexpected " + ", ".join(extra))
    if problems:
        raise SchemaMismatch(f"table '{name}' does not match its spec: " + "; ".join(problems))
    return df.select(*spec.names, *extra)
