"""The shape of every setting: one frozen dataclass per section of conf/default.yaml.

Each field declares its type and, beside it, what values are allowed (a range, a list of
choices, a pattern). Values and their explanations stay in ``conf/default.yaml``; a test
checks that the file and these classes name exactly the same settings.

Sections are read-only mappings as well as dataclasses, so ``cfg["neighbors"]["k"]`` and
``cfg.neighbors.k`` are the same value.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from sparkdup.errors import ConfigError

log = logging.getLogger("sparkdup")

IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
QUALITY_FLAGS = ("dark", "bright", "blurry", "low_information", "tiny", "odd_aspect")


@dataclass(frozen=True)
class Rule:
    """What a value must be, beyond its type: bounds (inclusive unless `open_*`), choices,
    a regular expression, or allowed list items; `describe()` says it in words."""
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    pattern: str | None = None
    items: tuple | None = None
    hint: str | None = None  # what to say instead of the pattern, e.g. "is not a valid name: ..."

    def allows(self, v: Any) -> bool:
        if self.ge is not None and v < self.ge or self.le is not None and v > self.le:
            return False
        if self.gt is not None and v <= self.gt or self.lt is not None and v >= self.lt:
            return False
        if self.choices is not None and v not in self.choices:
            return False
        if self.pattern is not None and not re.fullmatch(self.pattern, v):
            return False
        return not (self.items is not None and any(x not in self.items for x in v))

    def describe(self) -> str:
        parts = []
        for op, bound in ((">=", self.ge), ("<=", self.le), (">", self.gt), ("<", self.lt)):
            if bound is not None:
                parts.append(f"{op} {bound:g}")
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(str, self.choices)))
        if self.items is not None:
            parts.append("items from " + ", ".join(self.items))
        if self.pattern is not None:
            parts.append(f"matching {self.pattern}")
        return " and ".join(parts)


def rule(**kw) -> Any:
    """A dataclass field carrying its Rule (fields have no defaults: default.yaml has them)."""
    return field(metadata={"rule": Rule(**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})})


class Section(Mapping):
    """A read-only mapping view of a frozen dataclass section."""

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:  # type: ignore[attr-defined]
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self.__dataclass_fields__)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)  # type: ignore[attr-defined]

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, Section) else (list(v) if isinstance(v, tuple) else v)
                for k, v in ((f, getattr(self, f)) for f in self.__dataclass_fields__)}  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class SparkSettings(Section):
    app_name: str = rule(pattern=r".+")
    master: str = rule(pattern=r"local(\[(\*|\d+)(,\d+)?\])?|(spark|yarn|k8s|mesos)(://.*)?",
                       hint="is not a Spark master: local, local[N], local[*], spark://..., yarn, k8s://...")
    driver_memory: str = rule(pattern=r"\d+[kKmMgGtT]?", hint="is not a memory size such as 4g or 512m")
    metastore_dir: Optional[str] = rule()
    checkpoint_dir: Optional[str] = rule()
    images_per_partition: int = rule(ge=1)
    quick_jit: bool = rule()


@dataclass(frozen=True)
class OutputSettings(Section):
    format: str = rule(choices=("delta", "parquet"))
    database: Optional[str] = rule(pattern=rf"{IDENTIFIER}(\.{IDENTIFIER})?",
                                   hint="is not a valid name: use letters, digits and _ (optionally "
                                        "catalog.schema), not starting with a digit")


@dataclass(frozen=True)
class DecodeSettings(Section):
    """Read by every stage that opens image files: ingest, embed, report, export."""
    max_file_bytes: int = rule(ge=1)
    max_pixels: int = rule(ge=1)
    arrow_batch_rows: int = rule(ge=1, le=100_000)


@dataclass(frozen=True)
class FlagSettings(Section):
    dark_p99_max: float = rule(ge=0, le=255)
    bright_p01_min: float = rule(ge=0, le=255)
    blurry_max: float = rule(ge=0)
    low_information_max: float = rule(ge=0, le=8)
    tiny_min_side: int = rule(ge=0)
    odd_aspect_ratio: float = rule(ge=1)


@dataclass(frozen=True)
class IngestSettings(Section):
    extensions: tuple[str, ...] = rule()
    all_pillow_formats: bool = rule()
    include_hidden: bool = rule()
    glob: bool = rule()
    manifest_separator: str = rule(pattern=r"(?s).")
    manifest_encoding: str = rule(pattern=r"[A-Za-z0-9_.:-]+")
    keep_decoded: bool = rule()
    layout: str = rule(choices=("none", "label", "split/label"))
    stats_max_side: int = rule(ge=16)
    flags: FlagSettings = rule()


@dataclass(frozen=True)
class EmbedSettings(Section):
    model: str = rule(pattern=r".+")
    weights: Optional[str] = rule()
    input_size: Optional[int] = rule(ge=32, le=1024)
    resize: str = rule(choices=("center_crop", "letterbox"))
    batch_size: int = rule(ge=1, le=4096)


@dataclass(frozen=True)
class AnnoySettings(Section):
    trees: int = rule(ge=1)
    search_k: int = rule(ge=-1)


@dataclass(frozen=True)
class FaissHnswSettings(Section):
    m: int = rule(ge=2, le=512)
    ef_construction: int = rule(ge=1)
    ef_search: int = rule(ge=1)


@dataclass(frozen=True)
class NeighborsSettings(Section):
    k: int = rule(ge=1, le=1000)
    backend: str = rule(choices=("faiss_hnsw", "annoy", "exact"))
    sample_size: int = rule(ge=1)
    buckets: int = rule(ge=0)
    probe_buckets: int = rule(ge=1)
    bucket_target_size: int = rule(ge=1)
    max_bucket_size: int = rule(ge=1)
    annoy: AnnoySettings = rule()
    faiss_hnsw: FaissHnswSettings = rule()
    exact_block_rows: int = rule(ge=1)
    exact_max_rows: int = rule(ge=1)
    hash_group_max: int = rule(ge=2)
    query_rows_per_partition: int = rule(ge=1)
    index_copies: int = rule(ge=1, le=1024)
    arrow_batch_rows: int = rule(ge=1, le=1_000_000)
    kmeans_iterations: int = rule(ge=1)
    seed: int = rule()
    index_dir: Optional[str] = rule()
    vector_dtype: str = rule(choices=("float32", "float16"))
    keep_index: bool = rule()
    append_refit_growth: float = rule(ge=0.0)
    build_threads: int = rule(ge=0)


@dataclass(frozen=True)
class AnalyzeSettings(Section):
    duplicate_similarity: float = rule(ge=-1, le=1)
    verify_min_fine: float = rule(ge=-1, le=1)
    verify_max_changed: float = rule(ge=0, le=1)
    verify_max_local: float = rule(ge=0)
    verify_max_local_rest: float = rule(ge=0)
    verify_max_chroma: float = rule(ge=0, le=255)
    verify_min_coarse: float = rule(ge=-1, le=1)
    components_method: str = rule(choices=("auto", "graphframes", "dataframe", "driver"))
    driver_max_edges: int = rule(ge=0)
    outlier_fraction: float = rule(ge=0, le=1)
    label_min_confidence: float = rule(ge=0, le=1)
    label_min_similarity: float = rule(ge=-1, le=1)
    label_vote_k: int = rule(ge=1)
    label_vote_power: float = rule(ge=0)
    outlier_k: int = rule(ge=1)
    outlier_lof_weight: float = rule(ge=0)
    outlier_label_weight: float = rule(ge=0)
    outlier_label_min_members: int = rule(ge=2)
    outlier_label_entropy_weight: float = rule(ge=0)
    outlier_quantile_error: float = rule(gt=0, lt=1)
    blank_max_contrast: float = rule(ge=0, le=255)
    noise_min_ratio: float = rule(gt=0)
    outlier_pixel_z: float = rule(ge=0)
    label_folds: int = rule(ge=2, le=20)
    label_standardize: bool = rule()
    label_reg: float = rule(ge=0)
    label_max_iter: int = rule(ge=1)
    label_tol: float = rule(ge=0)
    label_pca_dim: int = rule(ge=0)
    label_pca_sample: int = rule(ge=10)
    label_seed: int = rule()
    label_min_class_size: int = rule(ge=2)
    label_class_balance: float = rule(ge=0, le=1)
    label_vote_weight: float = rule(ge=0, le=1)
    label_rank_by: str = rule(choices=("self_confidence", "normalized_margin"))


@dataclass(frozen=True)
class ExportSettings(Section):
    drop_flags: tuple[str, ...] = rule(items=QUALITY_FLAGS)
    drop_leak_splits: tuple[str, ...] = rule()
    drop_outliers: bool = rule()
    image_size: int = rule(ge=16, le=4096)


@dataclass(frozen=True)
class ReportSettings(Section):
    max_per_section: int = rule(ge=1)
    max_pages: int = rule(ge=1)
    thumbnail_side: int = rule(ge=16, le=1024)


@dataclass(frozen=True)
class Settings(Section):
    spark: SparkSettings = rule()
    output: OutputSettings = rule()
    decode: DecodeSettings = rule()
    ingest: IngestSettings = rule()
    embed: EmbedSettings = rule()
    neighbors: NeighborsSettings = rule()
    analyze: AnalyzeSettings = rule()
    export: ExportSettings = rule()
    report: ReportSettings = rule()

    def replace(self, values: Mapping[str, Any], where: str = "the caller") -> "Settings":
        """A checked copy with some settings changed (dotted names); self is unchanged."""
        return build_settings([("current settings", flatten(self.to_dict())), (where, dict(values))])


# Old names that still work (with a warning naming the new one).
RENAMED = {
    "spark.arrow_batch_rows": "decode.arrow_batch_rows",
    "embed.arrow_batch_rows": "decode.arrow_batch_rows",
    "ingest.max_file_bytes": "decode.max_file_bytes",
    "ingest.max_pixels": "decode.max_pixels",
    # the cosine from which pairs are verified; cosine alone no longer makes a duplicate
    "analyze.verify_min_similarity": "analyze.duplicate_similarity",
}


def _cross_checks(s: Settings) -> None:
    """Rules that relate two settings."""
    if s.neighbors.max_bucket_size < s.neighbors.bucket_target_size:
        raise ConfigError("setting 'neighbors.max_bucket_size' must be >= 'neighbors.bucket_target_size'")
    from sparkdup.models.registry import check_model_name

    check_model_name(s.embed.model, setting="embed.model")


# ------------------------------------------------------------------------- building
def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _schema_keys(cls=Settings, prefix: str = "") -> dict[str, tuple[Any, Rule]]:
    """{'neighbors.k': (int, Rule), ...} for every leaf setting."""
    out: dict[str, tuple[Any, Rule]] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and issubclass(tp, Section):
            out.update(_schema_keys(tp, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (tp, f.metadata["rule"])
    return out


SCHEMA = _schema_keys()
SECTIONS = {k.rsplit(".", 1)[0] for k in SCHEMA} | {
    p for k in SCHEMA for p in (".".join(k.split(".")[:i]) for i in range(1, k.count(".") + 1))}


def _convert(key: str, tp: Any, value: Any, where: str) -> Any:
    """The value as type `tp`, or a ConfigError naming the key and the expected type."""
    optional = typing.get_origin(tp) is typing.Union and type(None) in typing.get_args(tp)
    if optional:
        if value is None:
            return None
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    def bad(what: str) -> ConfigError:
        return ConfigError(f"setting '{key}' ({where}) must be {what}{' or null' if optional else ''}")
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad("text")
        return value
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
            raise bad("a list of text, e.g. [a, b]")
        return tuple(value)
    raise TypeError(f"unsupported setting type {tp} for {key}")  # a bug in this module


def _unknown(key: str, where: str) -> ConfigError:
    if key in SECTIONS:
        return ConfigError(f"setting '{key}' ({where}) is a section, not a value: set one of its keys")
    close = difflib.get_close_matches(key, list(SCHEMA), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown setting '{key}' ({where}){hint}")


def _build(cls, values: dict[str, Any], prefix: str = ""):
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and issubclass(tp, Section):
            kwargs[f.name] = _build(tp, values, f"{prefix}{f.name}.")
        else:
            kwargs[f.name] = values[f"{prefix}{f.name}"]
    return cls(**kwargs)


def build_settings(layers: list[tuple[str, Mapping[str, Any]]]) -> Settings:
    """Merge flattened layers (the first is the full defaults), check each value where it
    was given, and build the frozen Settings."""
    (_, defaults), rest = layers[0], layers[1:]
    missing = set(SCHEMA) - set(defaults)
    extra = set(defaults) - set(SCHEMA)
    if missing or extra:  # the package's own files disagree: a bug, not a user mistake
        raise RuntimeError(f"conf/default.yaml and settings_schema disagree: missing {sorted(missing)}, "
                           f"extra {sorted(extra)}")
    merged = {k: (v, "conf/default.yaml") for k, v in defaults.items()}
    for where, layer in rest:
        for key, value in layer.items():
            if key in RENAMED:
                log.warning("setting '%s' (%s) is now '%s'; the old name still works", key, where, RENAMED[key])
                key = RENAMED[key]
            if key not in SCHEMA:
                raise _unknown(key, where)
            merged[key] = (value, where)
    checked: dict[str, Any] = {}
    for key, (value, where) in merged.items():
        tp, r = SCHEMA[key]
        v = _convert(key, tp, value, where)
        if v is not None and not r.allows(v):
            raise ConfigError(f"setting '{key}' ({where}) {r.hint or 'must be ' + r.describe()}")
        checked[key] = v
    settings = _build(Settings, checked)
    _cross_checks(settings)
    return settings
