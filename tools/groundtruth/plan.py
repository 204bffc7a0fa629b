"""The plan step of the generator: which source picture becomes which output file, of
what kind, variant, label and split. Pure: it lists and reads source pictures (to filter
them and to learn their sizes) but writes nothing; ``generate.write`` renders a plan.

Deterministic per seed: the same arguments give the same rows, in the same order.

Kinds (one per file):

original        a distinct picture of a regular class
lookalike       a distinct picture that closely resembles the other members of its
                ``lookalike_set`` (animation frames of one character, icons of one theme
                and context, one flag layout, a symbol and its rotation/mirror image):
                a hard negative, never a duplicate of the others
exact_copy      the same bytes as its family's original (or look-alike)
near_duplicate  the same picture after an edit (``variant``)
flipped_label   an original or look-alike put in a wrong class folder (``true_label`` is
                the right one; ``flipped_to_sibling`` when the wrong class looks alike)
outlier         a picture unlike the dataset (``anomaly_type`` blank | noise | document |
                foreign); members of a small cluster of near-identical anomalies share an
                ``anomaly_cluster``
broken          bytes that do not decode (``broken_reason``)

``source_id`` is the duplicate family: files that show the same picture share it (an
original, its copies and near duplicates; a blank or a photo repeated in an anomaly
cluster); every other file has one of its own.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field

import numpy as np

from . import images
from .sources import (CLASS_BY_LABEL, CLASSES, MIN_SIDE, Candidate, ClassSource, list_candidates, load_ref,
                      siblings)

log = logging.getLogger("tools.groundtruth")

BROKEN_REASONS = ("zero_byte", "truncated_png", "truncated_jpeg", "random_bytes", "html_as_png")
KINDS = ("original", "lookalike", "exact_copy", "near_duplicate", "broken", "outlier", "flipped_label")
NEAR_VARIANTS = ("jpeg40", "jpeg70", "downscale50", "resize", "crop", "brightness", "watermark", "format", "mode")
TRANSFORMS = ("rot90", "rot180", "rot270", "mirror", "flip")
ANOMALY_TYPES = ("blank", "noise", "document", "foreign")
SINGLE_TYPES = ("foreign", "blank", "foreign", "noise", "foreign", "document")  # singles cycle through these
NOISE_KINDS = ("uniform", "blobs", "salt")  # single noise images; clusters use 'gauss'
SPLITS = ("train", "val")
# distinct uniform colours for blank anomalies (one family per colour)
BLANK_COLOURS = (
    (255, 255, 255), (0, 0, 0), (128, 128, 128), (200, 30, 30), (30, 160, 40), (30, 60, 200), (240, 220, 40),
    (250, 140, 20), (120, 40, 160), (20, 180, 190), (220, 120, 180), (90, 60, 20), (190, 190, 190),
    (60, 60, 60), (150, 200, 120), (120, 150, 220),
)

# Default classes for small sets: regular and look-alike classes mixed so that every hard
# case is present, with sibling pairs side by side (devices/documents: two oxygen
# contexts; papirus mimetypes/places: two contexts of one theme). A set of n originals
# uses the first ceil(n / ORIGINALS_PER_CLASS) of them (at least MIN_DEFAULT_CLASSES);
# the others (and then every class) join only when those run out of distinct pictures.
DEFAULT_ORDER = (
    "fruit", "devices", "road_signs", "animals", "papirus_mimetypes", "supertux_snowball", "documents",
    "papirus_places", "freeciv_flags", "playing_cards", "flags", "supertux_tux_small", "pictograms", "arrows",
    "tango_actions", "breeze_devices", "hedgewars_hats", "people", "food", "pingus_signposts",
)
MIN_DEFAULT_CLASSES = 9
ORIGINALS_PER_CLASS = 12
SMALL_CLASS_WEIGHT = 0.1  # a small class gets this share of a normal class's originals
MAX_DEFAULT_ANOMALIES = 40  # default single anomalies and anomaly clusters grow with n up to this
ROTATED_MIN_RMS = 0.08  # a rotation/mirror image counts as another picture only when its thumbnail differs this much


@dataclass(frozen=True)
class PlanRow:
    """One output file: where it goes, what it is, and how write() makes its bytes."""

    rel_path: str
    kind: str
    variant: str
    source_id: str
    split: str
    given_label: str
    true_label: str | None
    source_file: str | None  # the source ref (file, sheet frame, SVG@width) or skimage.data.<name>
    base: dict = field(default_factory=dict)  # the picture: {"ref", "upscale_to", "transform"} | {"anomaly"}
    edit: dict = field(default_factory=dict)  # what to do with it: {"op": "encode" | near edit | "broken"}
    lookalike_set: str | None = None
    anomaly_cluster: str | None = None
    anomaly_type: str | None = None
    flipped_to_sibling: bool | None = None
    broken_reason: str | None = None


@dataclass
class Original:
    """A source picture chosen as an original (or look-alike)."""

    cand: Candidate
    ref: str
    size: int  # icon size used (0 when the source has one size)
    upscale_to: int
    width: int
    height: int
    set_id: str = ""  # look-alike set ('' for a regular original)
    idx: int = 0
    split: str = "train"
    flipped_to: str | None = None
    to_sibling: bool = False
    fmt: str = "PNG"
    transform: str | None = None  # a generated rotation/mirror of another original
    parent: int | None = None

    @property
    def label(self) -> str:
        return self.cand.label

    @property
    def source_id(self) -> str:
        return f"o{self.idx:06d}"

    def base(self) -> dict:
        b = {"ref": self.ref, "upscale_to": self.upscale_to}
        if self.transform:
            b["transform"] = self.transform
        return b


def _count(fraction: float, total: int) -> int:
    return max(0, min(total, int(round(fraction * total))))


def default_tiers(n: int) -> list[list[ClassSource]]:
    k = min(len(DEFAULT_ORDER), max(MIN_DEFAULT_CLASSES, -(-n // ORIGINALS_PER_CLASS)))
    first = [CLASS_BY_LABEL[c] for c in DEFAULT_ORDER[:k]]
    rest = [c for c in CLASSES if c not in first]
    return [first, rest]


def select_originals(n: int, rng: random.Random, tiers: list[list[ClassSource]], max_side: int,
                     small: set[str]) -> list[Original]:
    """Draw n originals by weighted round robin over the first tier's classes (a class in
    ``small`` gets SMALL_CLASS_WEIGHT of the others' share), refusing near-identical ones;
    a later tier's classes join only when all earlier ones ran dry."""
    index = images.SignatureIndex()
    lookalikes = images.LookalikeIndex()
    keys: set[tuple[str, str]] = set()
    pixels: set[str] = set()
    taken: list[Original] = []
    iters: dict[str, object] = {}
    credit: dict[str, float] = {}
    active: list[str] = []
    pending = [list(t) for t in tiers if t]
    first_tier = pending[0] if pending else None

    def take_one(src: ClassSource) -> Original | None:
        for cand in iters[src.label]:
            if cand.key and (src.label, cand.key) in keys:
                continue
            if 0 in cand.files:
                size = 0
            elif src.theme:
                size = max(cand.files)
            else:  # an oxygen icon: one of its sizes >= 128 px (>= 64 px when it has no bigger one)
                big = sorted(s for s in cand.files if s >= 128) or sorted(s for s in cand.files if s >= 64)
                size = rng.choice(big)
            ref = cand.files[size]
            img = load_ref(ref, max_side, src.upscale_to)
            if img is None:
                continue
            digest = images.sha256(img.tobytes())
            if digest in pixels:
                continue
            sig = images.signature(img)
            if index.too_close(sig, src.label, cand.set_id):
                continue
            if cand.set_id:
                lsig = lookalikes.signature(img)
                if lookalikes.too_close(lsig, cand.set_id):
                    continue
                lookalikes.add(lsig, cand.set_id)
            index.add(sig, src.label, cand.set_id)
            pixels.add(digest)
            if cand.key:
                keys.add((src.label, cand.key))
            return Original(cand, ref, size, src.upscale_to, img.size[0], img.size[1], cand.set_id)
        return None

    by_label: dict[str, ClassSource] = {}
    while len(taken) < n:
        if not active:
            if not pending:
                break
            tier = pending.pop(0)
            for src in tier:
                cands = list_candidates(src)
                if not cands and tier is first_tier:
                    raise ValueError(f"class {src.label} has no source pictures: install the Debian image "
                                     "packages with scripts/setup.sh")
                rng.shuffle(cands)
                iters[src.label] = iter(cands)
                by_label[src.label] = src
                credit[src.label] = 0.9 if src.label in small else 0.0  # a small class still gets its first at once
                active.append(src.label)
        for label in list(active):
            credit[label] += SMALL_CLASS_WEIGHT if label in small else 1.0
            while credit[label] >= 1.0 and len(taken) < n:
                got = take_one(by_label[label])
                if got is None:
                    active.remove(label)
                    break
                credit[label] -= 1.0
                taken.append(got)
            if len(taken) >= n:
                break
    if len(taken) < n:
        raise ValueError(
            f"only {len(taken)} distinct originals are available from classes "
            f"{[c.label for t in tiers for c in t]}; asked for {n}"
        )
    return taken


def _rotated(originals: list[Original], rng: random.Random, fraction: float, max_side: int) -> list[Original]:
    """Rotated/mirrored versions of some originals of rotatable classes (arrows, signs, signposts,
    action icons): each a distinct picture in the original's look-alike set."""
    pool = [o for o in originals if o.flipped_to is None and CLASS_BY_LABEL[o.label].rotatable]
    out = []
    for o in rng.sample(pool, _count(fraction, len(pool))):
        img = load_ref(o.ref, max_side, o.upscale_to)
        if img is None:
            continue
        fine = images.signature(img)[0]
        chosen, want = [], rng.choice([1, 2])
        for how in rng.sample(TRANSFORMS, len(TRANSFORMS)):
            t = images.signature(images.transform(img, how))[0]
            if np.sqrt(((t - fine) ** 2).mean()) >= ROTATED_MIN_RMS and all(
                    np.sqrt(((t - c) ** 2).mean()) >= ROTATED_MIN_RMS for _, c in chosen):
                chosen.append((how, t))
            if len(chosen) == want:
                break
        if not chosen:
            continue
        if not o.set_id:
            o.set_id = f"rotated/{o.source_id}"
        for how, _ in chosen:
            w, h = (o.height, o.width) if how in ("rot90", "rot270") else (o.width, o.height)
            out.append(Original(o.cand, o.ref, o.size, o.upscale_to, w, h, o.set_id, transform=how, parent=o.idx))
    return out


def _near_edit(variant: str, o: Original, rng: random.Random) -> tuple[dict, str]:
    """The edit for one near-duplicate variant, its parameters drawn here; returns (edit, name)."""
    if variant == "jpeg40":
        return {"op": "jpeg", "quality": rng.randint(40, 55)}, "jpeg40"
    if variant == "jpeg70":
        return {"op": "jpeg", "quality": rng.randint(65, 85)}, "jpeg70"
    if variant == "downscale50":
        return {"op": "resize", "factor": 0.5}, "downscale50"
    if variant == "resize":
        return {"op": "resize", "factor": round(rng.choice([rng.uniform(0.6, 0.8), rng.uniform(1.25, 1.5)]), 3)}, "resize"
    if variant == "crop":
        return {"op": "crop", "keep": round(rng.uniform(0.85, 0.95), 3), "x": round(rng.random(), 3),
                "y": round(rng.random(), 3)}, "crop"
    if variant == "brightness":
        return {"op": "brightness", "factor": round(rng.choice([rng.uniform(0.9, 0.95), rng.uniform(1.05, 1.1)]), 3)}, "brightness"
    if variant == "watermark":
        text = rng.choice(["(c) 2024", "sample", "stock", "DRAFT", "© photo", "www"])
        return {"op": "watermark", "text": text, "corner": rng.randrange(4)}, "watermark"
    if variant == "format":
        new = rng.choice(["WEBP", "BMP"] if o.fmt == "PNG" else ["PNG", "WEBP"])
        return {"op": "format", "to": new}, new.lower()
    if variant == "mode":
        to = rng.choice(["RGBA", "P", "L"])
        return {"op": "mode", "to": to}, {"RGBA": "rgba", "P": "palette", "L": "grayscale"}[to]
    raise ValueError(variant)


def _edit_format(edit: dict, fmt: str) -> str:
    op = edit["op"]
    if op == "jpeg":
        return "JPEG"
    if op == "format":
        return edit["to"]
    if op == "mode":
        return "PNG"
    return fmt


def plan(
    n_originals: int = 40,
    seed: int = 0,
    *,
    classes: list[str] | None = None,
    val_fraction: float = 0.2,
    exact_fraction: float = 0.15,
    near_fraction: float = 0.3,
    multisize_fraction: float = 0.5,
    leak_fraction: float = 0.3,
    flipped_fraction: float = 0.05,
    sibling_flip_share: float = 0.6,
    rotated_fraction: float = 0.15,
    small_classes: int | None = None,
    n_outliers: int | None = None,
    anomaly_clusters: int | None = None,
    n_broken: int | None = None,
    jpeg_fraction: float = 0.3,
    max_side: int = 384,
) -> list[PlanRow]:
    """Plan a dataset; see generate.generate for the arguments. Returns the rows in write order."""
    rng = random.Random(seed)
    if n_originals < 1:
        raise ValueError("n_originals must be at least 1")
    if not 0.0 <= flipped_fraction <= 0.5:
        raise ValueError("flipped_fraction must be within 0..0.5 (3-10 % is realistic)")
    if classes is None:
        tiers = default_tiers(n_originals)
    else:
        unknown = [c for c in classes if c not in CLASS_BY_LABEL]
        if unknown:
            raise ValueError(f"unknown classes {unknown}; known: {list(CLASS_BY_LABEL)}")
        tiers = [[CLASS_BY_LABEL[c] for c in dict.fromkeys(classes)]]
    first = [c.label for c in tiers[0]]
    if small_classes is None:
        small_classes = len(first) // 8 if len(first) >= 5 else 0
    # which classes are small: drawn from the first tier (never the first two, kept full-size)
    small = set(rng.sample(first[2:], min(small_classes, max(0, len(first) - 2))))

    originals = select_originals(n_originals, rng, tiers, max_side, small)
    for i, o in enumerate(originals):
        o.idx = i
    labels_used = sorted({o.label for o in originals})

    # flipped labels (never with duplicates): at least sibling_flip_share of them into a sibling class
    n_flip = _count(flipped_fraction, len(originals)) if len(labels_used) > 1 else 0
    if flipped_fraction > 0 and n_flip == 0 and len(originals) >= 10 and len(labels_used) > 1:
        n_flip = 1
    with_sib = [o for o in originals if siblings(o.label, labels_used)]
    n_sib = min(len(with_sib), math.ceil(n_flip * sibling_flip_share))
    flip_sib = rng.sample(with_sib, n_sib)
    chosen = {o.idx for o in flip_sib}
    rest = rng.sample([o for o in originals if o.idx not in chosen], n_flip - n_sib)
    for o in flip_sib:
        o.flipped_to, o.to_sibling = rng.choice(siblings(o.label, labels_used)), True
    for o in rest:
        others = [lab for lab in labels_used if lab != o.label]
        o.flipped_to = rng.choice(others)
        o.to_sibling = o.flipped_to in siblings(o.label, labels_used)
    if n_flip and sum(o.to_sibling for o in originals) * 2 < n_flip:
        log.warning("only %d of %d flipped labels go to a sibling class (too few sibling classes)",
                    sum(o.to_sibling for o in originals), n_flip)

    # rotated / mirrored symbols: more distinct pictures, in their original's look-alike set
    extra = _rotated(originals, rng, rotated_fraction, max_side)
    for j, o in enumerate(extra):
        o.idx = len(originals) + j
    everyone = originals + extra

    # splits: per class, a val_fraction share of the pictures in val
    by_class: dict[str, list[Original]] = {}
    for o in everyone:
        by_class.setdefault(o.label, []).append(o)
    for label in sorted(by_class):
        members = by_class[label]
        order = list(range(len(members)))
        rng.shuffle(order)
        n_val = _count(val_fraction, len(members))
        for j, pos in enumerate(order):
            members[pos].split = "val" if j < n_val else "train"

    families = [o for o in originals if o.flipped_to is None]
    exact_set = {o.idx for o in rng.sample(families, _count(exact_fraction, len(families)))}
    near_set = {o.idx for o in rng.sample(families, _count(near_fraction, len(families)))}
    multi_ok = [o for o in families if o.size and any(s >= MIN_SIDE and s != o.size for s in o.cand.files)]
    multi_set = {o.idx for o in rng.sample(multi_ok, _count(multisize_fraction, len(multi_ok)))}

    rows: list[PlanRow] = []
    used_names: set[str] = set()

    def name(ext: str) -> str:
        while True:
            nm = f"{rng.getrandbits(48):012x}{ext}"
            if nm not in used_names:
                used_names.add(nm)
                return nm

    def add(split: str, label: str, ext: str, **kw) -> None:
        rows.append(PlanRow(rel_path=f"images/{split}/{label}/{name(ext)}", split=split, given_label=label, **kw))

    def other(split: str) -> str:
        return "val" if split == "train" else "train"

    for o in everyone:
        label = o.label
        o.fmt = "PNG" if (o.size or o.cand.set_id or o.transform) else ("JPEG" if rng.random() < jpeg_fraction else "PNG")
        common = dict(source_id=o.source_id, true_label=label, source_file=o.ref, lookalike_set=o.set_id or None)
        encode = {"op": "encode", "fmt": o.fmt}
        ext = images.EXT[o.fmt]
        if o.flipped_to:
            add(o.split, o.flipped_to, ext, kind="flipped_label", variant="original", base=o.base(), edit=encode,
                flipped_to_sibling=o.to_sibling, **common)
            continue
        kind = "lookalike" if o.set_id else "original"
        add(o.split, label, ext, kind=kind, variant=o.transform or "original", base=o.base(), edit=encode, **common)

        def place() -> str:
            return other(o.split) if rng.random() < leak_fraction else o.split

        if o.idx in exact_set:
            for _ in range(2 if rng.random() < 0.2 else 1):
                add(place(), label, ext, kind="exact_copy", variant="copy", base=o.base(), edit=encode, **common)
        if o.idx in near_set:
            k = rng.choice([1, 1, 2, 2, 3])
            pool = [v for v in NEAR_VARIANTS if v != "downscale50" or min(o.width, o.height) >= 2 * MIN_SIDE]
            for variant in rng.sample(pool, min(k, len(pool))):
                edit, vname = _near_edit(variant, o, rng)
                edit["fmt"] = o.fmt  # the container the edits that keep one reuse
                add(place(), label, images.EXT[_edit_format(edit, o.fmt)], kind="near_duplicate", variant=vname,
                    base=o.base(), edit=edit, **common)
        if o.idx in multi_set:
            sizes = sorted(s for s in o.cand.files if s >= MIN_SIDE and s != o.size)
            for s in sorted(rng.sample(sizes, min(len(sizes), rng.choice([1, 2])))):
                ref = o.cand.files[s]
                add(place(), label, ".png", kind="near_duplicate", variant=f"size{s}",
                    base={"ref": ref, "upscale_to": o.upscale_to}, edit={"op": "encode", "fmt": "PNG"},
                    **{**common, "source_file": ref})

    _plan_anomalies(rows, add, rng, n_originals, labels_used, val_fraction, n_outliers, anomaly_clusters, max_side)

    # broken files
    if n_broken is None:
        n_broken = max(len(BROKEN_REASONS), _count(0.02, n_originals))
    for i in range(n_broken):
        reason = BROKEN_REASONS[i % len(BROKEN_REASONS)]
        donor = originals[rng.randrange(len(originals))]
        bseed = rng.getrandbits(32)
        ext = {"zero_byte": (".jpg", ".png")[bseed % 2], "truncated_png": ".png", "html_as_png": ".png"}.get(reason, ".jpg")
        split = "val" if rng.random() < val_fraction else "train"
        add(split, rng.choice(labels_used), ext, kind="broken", variant=reason, source_id=f"b{i:06d}",
            true_label=None, broken_reason=reason, base=donor.base() if reason.startswith("truncated") else {},
            edit={"op": "broken", "reason": reason, "seed": bseed, "i": i},
            source_file=donor.ref if reason.startswith("truncated") else None)
    return rows


def _plan_anomalies(rows, add, rng: random.Random, n: int, labels: list[str], val_fraction: float,
                    n_single: int | None, n_clusters: int | None, max_side: int) -> None:
    """Single outliers (cycling SINGLE_TYPES) and small clusters (2-5) of near-identical
    anomalies (cycling ANOMALY_TYPES). Blanks of one colour and a photo repeated in a
    cluster are one duplicate family; noise images and document pages are each a picture
    of their own (look-alikes of each other)."""
    if n_single is None:
        n_single = min(MAX_DEFAULT_ANOMALIES, max(3, round(n / 25)))
    if n_clusters is None:
        n_clusters = min(MAX_DEFAULT_ANOMALIES, max(2, round(n / 40)))
    photos = [p for p in images.PHOTO_SOURCES if images.photo(p) is not None]
    rng.shuffle(photos)
    colours = list(BLANK_COLOURS)
    rng.shuffle(colours)
    side = min(max_side, 320)
    counter = {"x": 0}

    def sid() -> str:
        counter["x"] += 1
        return f"x{counter['x'] - 1:06d}"

    def size() -> tuple[int, int]:
        return (rng.randint(side * 2 // 3, side), rng.randint(side * 2 // 3, side))

    def put(split: str, atype: str, spec: dict, source_id: str, cluster: str | None, variant: str) -> None:
        add(split, rng.choice(labels), ".png" if atype in ("blank", "noise", "document") else ".jpg",
            kind="outlier", variant=variant, source_id=source_id, true_label=None,
            source_file=f"skimage.data.{spec['photo']}" if atype == "foreign" else None,
            base={"anomaly": spec},
            edit={"op": "encode", "fmt": "PNG"} if atype != "foreign" else {"op": "encode", "fmt": "JPEG", "quality": 90},
            anomaly_cluster=cluster, anomaly_type=atype)

    def split() -> str:
        return "val" if rng.random() < val_fraction else "train"

    for j in range(n_clusters):
        atype = ANOMALY_TYPES[j % len(ANOMALY_TYPES)]
        if atype == "foreign" and not photos or atype == "blank" and not colours:
            atype = "document"
        cid, sp, k = f"a{j:04d}", split(), rng.randint(2, 5)
        if atype == "blank":
            colour, fam = colours.pop(), sid()
            for _ in range(k):
                put(sp, "blank", {"type": "blank", "colour": colour, "size": size(), "jitter": rng.choice([0, 1, 2]),
                                  "seed": rng.getrandbits(32)}, fam, cid, "blank")
        elif atype == "foreign":
            photo, fam = photos.pop(), sid()
            for m in range(k):
                keep = 1.0 if m == 0 else round(rng.uniform(0.9, 1.0), 3)
                factor = 1.0 if m == 0 else round(rng.uniform(0.92, 1.08), 3)
                put(sp, "foreign", {"type": "foreign", "photo": photo, "keep": keep, "factor": factor}, fam, cid, photo)
        else:
            dims, layout = size(), {"font_div": round(rng.uniform(30, 45), 2), "line_div": round(rng.uniform(20, 30), 2)}
            for _ in range(k):  # one size and layout, another seed (text, noise) each
                spec = {"type": atype, "size": dims, "seed": rng.getrandbits(32)}
                spec.update({"dist": "gauss"} if atype == "noise" else layout)
                put(sp, atype, spec, sid(), cid, atype)
    made = 0
    types = list(SINGLE_TYPES)
    while made < n_single:
        atype = types[made % len(types)]
        if atype == "foreign" and not photos or atype == "blank" and not colours:
            atype = "noise" if made % 2 else "document"
        if atype == "foreign":
            p = photos.pop()
            put(split(), "foreign", {"type": "foreign", "photo": p}, sid(), None, p)
        elif atype == "blank":
            put(split(), "blank", {"type": "blank", "colour": colours.pop(), "size": size()}, sid(), None, "blank")
        else:
            spec = {"type": atype, "size": size(), "seed": rng.getrandbits(32)}
            if atype == "noise":  # single noise images differ in kind, not only in seed
                spec["dist"] = NOISE_KINDS[made % len(NOISE_KINDS)]
            put(split(), atype, spec, sid(), None, atype)
        made += 1
