"""Generate a messy, labelled image dataset with known ground truth, from real Debian images.

    python -m tools.groundtruth.generate OUT_DIR --originals 40 --seed 0   (from the repo root)

writes ``OUT_DIR/images/<split>/<label>/<file>`` (splits ``train`` and ``val``) and
``OUT_DIR/ground_truth.parquet`` with one row per file written:

================== ===========================================================================
path               ``"file:" + absolute path``, exactly as Spark's ``binaryFile`` source reports it
rel_path           path relative to OUT_DIR (``images/train/flags/3f2a....png``)
kind               original | lookalike | exact_copy | near_duplicate | broken | outlier |
                   flipped_label (see tools.groundtruth.plan)
variant            how the file was made: ``original``, ``copy``, ``jpeg40``/``jpeg70`` (JPEG
                   quality 40-55 / 65-85), ``downscale50``, ``resize``, ``crop`` (up to 15 % per
                   side), ``brightness`` (+-5-10 %), ``watermark``, ``webp``/``bmp``/``png``
                   (container change), ``rgba``/``palette``/``grayscale`` (mode change),
                   ``size<N>`` (the same icon drawn at another size), ``rot90``/``rot180``/
                   ``rot270``/``mirror``/``flip`` (a look-alike made by rotating a symbol), the
                   anomaly type or photo name for outliers, the reason for broken files
source_id          the duplicate family: files showing the same picture share it
split              train | val (the folder)
given_label        the label folder the file sits in
true_label         the class the picture really belongs to (None for outliers and broken files)
broken_reason      zero_byte | truncated_png | truncated_jpeg | random_bytes | html_as_png, else None
content_sha256     SHA-256 of the file's bytes (byte-identical files share it)
source_file        the source ref: a Debian file (``PATH#i/n`` a sprite-sheet frame, ``PATH@W`` an
                   SVG rendered W px wide), ``skimage.data.<name>``, or None (synthetic)
width, height      pixel size of the written picture (None for broken files)
lookalike_set      the look-alike set of the family's picture (None for regular pictures)
anomaly_cluster    outliers in one small cluster of near-identical anomalies share it (None: single)
anomaly_type       blank | noise | document | foreign for outliers, else None
flipped_to_sibling for flipped labels: whether the wrong class is a sibling of the true one
================== ===========================================================================

The work is two steps: ``plan.plan`` decides every file (pure: it reads sources but writes
nothing) and ``write`` renders a plan. Everything is deterministic for a seed (same files,
same bytes, same table).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections import OrderedDict

import pandas as pd
from PIL import Image

from . import images
from .plan import BROKEN_REASONS, KINDS, NEAR_VARIANTS, SPLITS, PlanRow, plan
from .sources import CLASS_BY_LABEL, CLASSES, load_ref

log = logging.getLogger("tools.groundtruth")

# the public names (tests and benchmarks import the plan's and sources' constants from here too)
__all__ = ["BROKEN_REASONS", "CLASSES", "CLASS_BY_LABEL", "COLUMNS", "KINDS", "NEAR_VARIANTS", "SPLITS",
           "PlanRow", "generate", "main", "plan", "render", "summarize", "write"]

COLUMNS = [
    "path", "rel_path", "kind", "variant", "source_id", "split", "given_label", "true_label",
    "broken_reason", "content_sha256", "source_file", "width", "height",
    "lookalike_set", "anomaly_cluster", "anomaly_type", "flipped_to_sibling",
]


class _Pictures:
    """A few decoded base pictures (a family's rows are consecutive in a plan)."""

    def __init__(self, max_side: int, keep: int = 8) -> None:
        self.max_side = max_side
        self.keep = keep
        self.cache: OrderedDict[str, Image.Image | None] = OrderedDict()

    def get(self, base: dict) -> Image.Image | None:
        if not base:
            return None
        key = repr(sorted(base.items()))
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        if "anomaly" in base:
            img = images.anomaly(base["anomaly"])
            if img is not None and max(img.size) > self.max_side:
                img.thumbnail((self.max_side, self.max_side), Image.LANCZOS)
        else:
            img = load_ref(base["ref"], self.max_side, base.get("upscale_to", 0))
            if img is not None and base.get("transform"):
                img = images.transform(img, base["transform"])
        self.cache[key] = img
        if len(self.cache) > self.keep:
            self.cache.popitem(last=False)
        return img


def render(row: PlanRow, pictures: _Pictures) -> bytes | None:
    """The bytes of one planned file (None when its source picture cannot be read)."""
    img = pictures.get(row.base)
    edit = row.edit
    if edit["op"] == "broken":
        if img is None and edit["reason"].startswith("truncated"):
            return None
        return images.broken_bytes(edit["reason"], img, edit["seed"], edit["i"])[0]
    if img is None:
        return None
    if edit["op"] == "encode":
        return images.encode(img, edit["fmt"], **({"quality": edit["quality"]} if "quality" in edit else {}))
    return images.near_variant(img, edit["fmt"], edit)[0]


def write(rows: list[PlanRow], out_dir: str, max_side: int = 384) -> pd.DataFrame:
    """Render a plan under out_dir (replacing images/ and ground_truth.parquet there);
    returns the ground truth. A near duplicate whose bytes equal another file of its
    family (an edit that changed nothing) is left out, as is a file whose source vanished."""
    out_dir = os.path.abspath(out_dir)
    img_root = os.path.join(out_dir, "images")
    gt_path = os.path.join(out_dir, "ground_truth.parquet")
    if os.path.isdir(img_root):
        shutil.rmtree(img_root)
    if os.path.exists(gt_path):
        os.remove(gt_path)
    os.makedirs(img_root, exist_ok=True)
    pictures = _Pictures(max_side)
    family_hashes: dict[str, set[str]] = {}
    records, skipped = [], 0
    for row in rows:
        data = render(row, pictures)
        if data is None:
            skipped += 1
            continue
        digest = images.sha256(data)
        hashes = family_hashes.setdefault(row.source_id, set())
        if row.kind == "near_duplicate" and digest in hashes:
            skipped += 1
            continue
        hashes.add(digest)
        full = os.path.join(out_dir, row.rel_path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(data)
        width = height = None
        if row.kind != "broken":
            with Image.open(full) as check:
                width, height = check.size
        records.append({
            "path": "file:" + full, "rel_path": row.rel_path, "kind": row.kind, "variant": row.variant,
            "source_id": row.source_id, "split": row.split, "given_label": row.given_label,
            "true_label": row.true_label, "broken_reason": row.broken_reason, "content_sha256": digest,
            "source_file": row.source_file, "width": width, "height": height,
            "lookalike_set": row.lookalike_set, "anomaly_cluster": row.anomaly_cluster,
            "anomaly_type": row.anomaly_type, "flipped_to_sibling": row.flipped_to_sibling,
        })
    if skipped:
        log.info("left out %d planned files (unreadable source, or an edit that changed no byte)", skipped)
    df = pd.DataFrame(records, columns=COLUMNS).sort_values("rel_path").reset_index(drop=True)
    df["width"] = df["width"].astype("Int64")
    df["height"] = df["height"].astype("Int64")
    df["flipped_to_sibling"] = df["flipped_to_sibling"].astype("boolean")
    df.to_parquet(gt_path, index=False)
    return df


def generate(out_dir: str, n_originals: int = 40, seed: int = 0, **settings) -> pd.DataFrame:
    """Write a labelled dataset with known duplicates, look-alikes, leaks, broken files,
    outliers and flipped labels under out_dir, and return (and write) its ground truth.

    n_originals    distinct pictures drawn from the classes (originals, look-alikes and
                   flipped ones; rotated look-alikes come on top)
    classes        labels from sources.CLASSES to draw from. Default: the first
                   ceil(n/12) of plan.DEFAULT_ORDER (at least 9: regular classes, look-alike
                   classes and sibling pairs mixed); every other class joins only when those
                   run out of distinct pictures (19,700 source pictures in all, of which the
                   filters keep at least 11,200: see BENCHMARKS.md)
    val_fraction   share of pictures (per class) in the val split
    exact_fraction share of originals that get a byte-identical copy (1, sometimes 2)
    near_fraction  share of originals that get 1-3 near duplicates (plan.NEAR_VARIANTS)
    multisize_fraction  share of multi-size icons that get the same icon at 1-2 other sizes
    leak_fraction  share of copies / near duplicates placed in the other split
    flipped_fraction share of originals (without duplicates) put in a wrong class folder
                   (0..0.5; 0.03-0.10 is realistic)
    sibling_flip_share  share of the flips that go to a sibling class (when one is present)
    rotated_fraction share of rotatable symbols that get 1-2 rotated/mirrored look-alikes
    small_classes  how many classes of the first tier get a tenth of the others' share
                   (default: one per 8 classes)
    n_outliers     single anomalies (default max(3, n/25)), cycling plan.SINGLE_TYPES
    anomaly_clusters  clusters of 2-5 near-identical anomalies (default max(4, n/150)),
                   cycling blank, noise, document, foreign
    n_broken       broken files (default max(5, 2% of n)), cycling through BROKEN_REASONS
    jpeg_fraction  share of clip-art originals saved as JPEG (the rest PNG)
    max_side       pictures are downscaled to at most this many pixels per side
    """
    t0 = time.time()
    rows = plan(n_originals, seed, **settings)
    t1 = time.time()
    df = write(rows, out_dir, settings.get("max_side", 384))
    log.info("generated %d files (%d originals): plan %.1fs, write %.1fs", len(df), n_originals, t1 - t0,
             time.time() - t1)
    return df


def summarize(df: pd.DataFrame) -> str:
    """A few lines describing a generated ground truth (what the CLI prints)."""
    def counts(s: pd.Series) -> str:
        return ", ".join(f"{k}={v}" for k, v in s.value_counts().sort_index().items())

    pictures = df[df.kind.isin(["original", "lookalike", "flipped_label"])]
    lines = [f"{len(df)} files", "kinds: " + counts(df["kind"]), "splits: " + counts(df["split"])]
    per_class = pictures["true_label"].value_counts()
    lines.append(f"classes: {len(per_class)} (pictures per class: min {per_class.min()}, "
                 f"median {int(per_class.median())}, max {per_class.max()})")
    lines.append("variants: " + counts(df.loc[df.kind == "near_duplicate", "variant"]))
    la = df["lookalike_set"].dropna()
    lines.append(f"look-alike sets: {la.nunique()} ({len(la)} files)")
    outl = df[df.kind == "outlier"]
    lines.append(f"outliers: {counts(outl['anomaly_type'])}; in {outl['anomaly_cluster'].nunique()} clusters: "
                 f"{int(outl['anomaly_cluster'].notna().sum())}")
    flips = df[df.kind == "flipped_label"]
    lines.append(f"flipped labels: {len(flips)} ({int(flips['flipped_to_sibling'].sum())} into a sibling class)")
    fam = df[df.kind != "broken"].groupby("source_id")
    sizes = fam["path"].size()
    leaks = fam["split"].nunique()
    lines.append(f"duplicate families: {(sizes > 1).sum()} (largest {sizes.max()}), "
                 f"crossing splits: {(leaks > 1).sum()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.groundtruth.generate",
        description="Generate a messy labelled image dataset with ground truth from Debian images.",
    )
    p.add_argument("out_dir")
    p.add_argument("--originals", type=int, default=40, help="distinct originals (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", default=None,
                   help=f"comma-separated subset of: {','.join(CLASS_BY_LABEL)}")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--exact-fraction", type=float, default=0.15)
    p.add_argument("--near-fraction", type=float, default=0.3)
    p.add_argument("--multisize-fraction", type=float, default=0.5)
    p.add_argument("--leak-fraction", type=float, default=0.3)
    p.add_argument("--flipped-fraction", type=float, default=0.05)
    p.add_argument("--sibling-flip-share", type=float, default=0.6)
    p.add_argument("--rotated-fraction", type=float, default=0.15)
    p.add_argument("--small-classes", type=int, default=None)
    p.add_argument("--outliers", type=int, default=None, help="single anomalies")
    p.add_argument("--anomaly-clusters", type=int, default=None)
    p.add_argument("--broken", type=int, default=None)
    p.add_argument("--max-side", type=int, default=384)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.time()
    try:
        df = generate(
            a.out_dir, a.originals, a.seed,
            classes=a.classes.split(",") if a.classes else None,
            val_fraction=a.val_fraction, exact_fraction=a.exact_fraction,
            near_fraction=a.near_fraction, multisize_fraction=a.multisize_fraction,
            leak_fraction=a.leak_fraction, flipped_fraction=a.flipped_fraction,
            sibling_flip_share=a.sibling_flip_share, rotated_fraction=a.rotated_fraction,
            small_classes=a.small_classes, n_outliers=a.outliers, anomaly_clusters=a.anomaly_clusters,
            n_broken=a.broken, max_side=a.max_side,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summarize(df))
    print(f"wrote {os.path.join(os.path.abspath(a.out_dir), 'ground_truth.parquet')} in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
