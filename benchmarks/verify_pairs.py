"""A labelled set of image pairs for choosing the duplicate verification signal, without Spark.

Positives ("the same picture after edits") are made with PIL from real images: resize,
JPEG q40/q70, crop up to 15 %, brightness +-10 %, a small text watermark, mode/format
changes, combinations, plus real icons redrawn at another size (oxygen's 32/48/64 vs 128).
Negatives ("look-alikes") are real pairs from one package and folder, picked as each
image's most similar sibling by a 16x16 colour thumbnail (the hard ones): animation frames
of one hedgewars sprite sheet, hedgewars hats, freeciv and hedgewars flags, oxygen icons of
one category, openclipart drawings of one folder; plus an asymmetric image against itself
rotated 90 degrees or mirrored. Pairs whose pixels are the same picture anyway (a theme
shipping one icon under two names) are left out of the negatives.

Every image goes through sparkdup's own decoder (alpha on white, at most 512 px a side),
as ingest does.
"""
from __future__ import annotations

import glob
import io
import os
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from sparkdup.udfs.decode import Limits, decode

HW = "/usr/share/games/hedgewars/Data/Graphics"
OXY = "/usr/share/icons/oxygen/base"
CLIP = "/usr/share/openclipart/png"
FREECIV = "/usr/share/games/freeciv/flags"


@dataclass
class Pair:
    a: np.ndarray  # decoded RGB, as ingest sees it
    b: np.ndarray
    label: int  # 1 = same picture after an edit, 0 = look-alike
    kind: str  # the edit or the look-alike family


def _rgb(img: Image.Image, fmt: str = "PNG", **save) -> np.ndarray | None:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    d = decode(buf.getvalue(), Limits())
    return d.rgb


def _load(path: str) -> Image.Image | None:
    try:
        img = Image.open(path)
        img.load()
        return img
    except Exception:  # noqa: BLE001 - a file the package ships broken is just skipped
        return None


def _flat(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def _informative(img: Image.Image) -> bool:
    arr = np.asarray(_flat(img).convert("L"), dtype=np.float32)
    return arr.std() > 12 and min(img.size) >= 16


def frames(sheet: Image.Image) -> list[Image.Image]:
    """Cut a sprite sheet (a vertical strip of square frames, or a grid of 32 px tiles)."""
    w, h = sheet.size
    side = w if h % w == 0 and h > w else (32 if w % 32 == 0 and h % 32 == 0 and (w > 32 or h > 32) else 0)
    if not side:
        return []
    out = []
    for y in range(0, h, side):
        for x in range(0, w, side):
            f = sheet.crop((x, y, x + side, y + side))
            if _informative(f):
                out.append(f)
    return out


def edits(img: Image.Image, rng: random.Random) -> list[tuple[str, np.ndarray]]:
    """(edit name, decoded RGB) for each edit of one original the issue calls "the same picture"."""
    rgb = _flat(img)
    w, h = rgb.size
    out: list[tuple[str, np.ndarray | None]] = []
    out.append(("resize50", _rgb(rgb.resize((max(8, w // 2), max(8, h // 2)), Image.Resampling.LANCZOS))))
    out.append(("resize_up150", _rgb(rgb.resize((int(w * 1.5), int(h * 1.5)), Image.Resampling.BICUBIC))))
    out.append(("jpeg40", _rgb(rgb, "JPEG", quality=40)))
    out.append(("jpeg70", _rgb(rgb, "JPEG", quality=70)))
    f = rng.uniform(0.08, 0.15)
    l, t = rng.uniform(0, f), rng.uniform(0, f)
    out.append(("crop15", _rgb(rgb.crop((int(w * l), int(h * t), int(w * (1 - f + l)), int(h * (1 - f + t)))))))
    out.append(("crop_side10", _rgb(rgb.crop((int(w * 0.10), 0, w, h)))))
    out.append(("bright+10", _rgb(ImageEnhance.Brightness(rgb).enhance(1.10))))
    out.append(("bright-10", _rgb(ImageEnhance.Brightness(rgb).enhance(0.90))))
    wm = rgb.copy()
    d = ImageDraw.Draw(wm)
    d.text((int(w * 0.05), int(h * 0.85)), "(c) 2024", fill=(rng.randint(0, 255), 40, 40))
    out.append(("watermark", _rgb(wm)))
    out.append(("palette", _rgb(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64))))
    out.append(("webp_rgba", _rgb(img.convert("RGBA"), "WEBP", quality=80)))
    combo = rgb.crop((int(w * 0.05), int(h * 0.05), int(w * 0.95), int(h * 0.95)))
    combo = ImageEnhance.Brightness(combo.resize((max(8, int(w * 0.6)), max(8, int(h * 0.6))))).enhance(0.93)
    out.append(("crop_resize_jpeg", _rgb(combo, "JPEG", quality=50)))
    return [(k, v) for k, v in out if v is not None]


def _thumb(img: Image.Image) -> np.ndarray:
    return np.asarray(_flat(img).resize((16, 16), Image.Resampling.BILINEAR), np.float32).ravel()


def hardest_siblings(images: list[Image.Image], per_image: int = 1) -> list[tuple[int, int]]:
    """For each image, its most similar other image(s) in the list by 16x16 colour thumbnail,
    left out when the two are the same picture anyway (64x64 mean abs difference < 3)."""
    if len(images) < 2:
        return []
    t = np.stack([_thumb(i) for i in images])
    t = t - t.mean(1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True) + 1e-9
    sim = t @ t.T
    np.fill_diagonal(sim, -2)
    pairs = set()
    for i in range(len(images)):
        for j in np.argsort(-sim[i])[:per_image]:
            a, b = sorted((i, int(j)))
            pairs.add((a, b))
    keep = []
    for a, b in sorted(pairs):
        x = np.asarray(_flat(images[a]).resize((64, 64)), np.float32)
        y = np.asarray(_flat(images[b]).resize((64, 64)), np.float32)
        if np.abs(x - y).mean() >= 3:
            keep.append((a, b))
    return keep


def _sample(paths: list[str], n: int, rng: random.Random) -> list[str]:
    return rng.sample(paths, min(n, len(paths)))


def build(seed: int = 0, n_originals: int = 160, n_neg_groups: int = 60) -> list[Pair]:
    rng = random.Random(seed)
    pairs: list[Pair] = []

    def add(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray, label: int, kind: str) -> None:
        ra = a if isinstance(a, np.ndarray) else _rgb(_flat(a))
        rb = b if isinstance(b, np.ndarray) else _rgb(_flat(b))
        if ra is not None and rb is not None:
            pairs.append(Pair(ra, rb, label, kind))

    # --- positives: edits of real originals from four families
    clip = sorted(glob.glob(f"{CLIP}/**/*.png", recursive=True))
    oxy128 = sorted(glob.glob(f"{OXY}/128x128/*/*.png"))
    flags = sorted(glob.glob(f"{FREECIV}/*.png"))
    sheets = sorted(glob.glob(f"{HW}/Hedgehog/*.png")) + sorted(glob.glob(f"{HW}/*.png"))
    originals: list[Image.Image] = []
    for p in _sample(clip, n_originals // 2, rng) + _sample(oxy128, n_originals // 4, rng) + _sample(flags, n_originals // 8, rng):
        img = _load(p)
        if img is not None and _informative(img):
            originals.append(img)
    for p in _sample(sheets, n_originals // 8, rng):
        img = _load(p)
        fr = frames(img) if img is not None else []
        if fr:
            originals.append(rng.choice(fr))
    for img in originals:
        base = _rgb(_flat(img))
        if base is None:
            continue
        for kind, edited in edits(img, rng):
            pairs.append(Pair(base, edited, 1, kind))
    # real redraws: one oxygen icon name at another size
    names = sorted({os.path.relpath(p, f"{OXY}/128x128") for p in oxy128})
    for rel in _sample(names, n_originals // 2, rng):
        big = _load(f"{OXY}/128x128/{rel}")
        for size in ("32x32", "48x48", "64x64"):
            small_p = f"{OXY}/{size}/{rel}"
            if big is not None and os.path.exists(small_p) and _informative(big):
                small = _load(small_p)
                if small is not None:
                    add(big, small, 1, f"redrawn{size.split('x')[0]}")

    # --- negatives: hardest siblings inside one package folder
    def neg_from(images: list[Image.Image], kind: str) -> None:
        for a, b in hardest_siblings(images):
            add(images[a], images[b], 0, kind)

    for p in _sample(sheets, n_neg_groups, rng):  # animation frames of one character
        img = _load(p)
        fr = frames(img) if img is not None else []
        if len(fr) >= 2:
            for a, b in hardest_siblings(fr)[:3]:
                add(fr[a], fr[b], 0, "animation_frames")
    hats = [i for i in (_load(p) for p in sorted(glob.glob(f"{HW}/Hats/*.png"))) if i is not None]
    hat_frames = [frames(h)[0] if frames(h) else h for h in hats]
    neg_from([h for h in hat_frames if _informative(h)], "hats")
    neg_from([i for i in (_load(p) for p in _sample(flags, 300, rng)) if i is not None], "flags_freeciv")
    neg_from([i for i in (_load(p) for p in sorted(glob.glob(f"{HW}/Flags/*.png"))) if i is not None], "flags_hedgewars")
    for cat in ("mimetypes", "actions", "places", "status", "devices"):
        icons = [i for i in (_load(p) for p in _sample(sorted(glob.glob(f"{OXY}/48x48/{cat}/*.png")), 120, rng))
                 if i is not None and _informative(i)]
        neg_from(icons, f"icons_{cat}")
    folders = sorted({os.path.dirname(p) for p in clip})
    for folder in _sample(folders, n_neg_groups, rng):
        imgs = [i for i in (_load(p) for p in sorted(glob.glob(f"{folder}/*.png"))[:40]) if i is not None and _informative(i)]
        neg_from(imgs, "clipart_series")
    for img in originals[: n_originals // 2]:  # rotated / mirrored symbols are other pictures
        rgb = _flat(img)
        for kind, other in (("rotated90", rgb.transpose(Image.Transpose.ROTATE_90)),
                            ("mirrored", rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT))):
            x = np.asarray(rgb.resize((64, 64)), np.float32)
            y = np.asarray(other.resize((64, 64)), np.float32)
            if np.abs(x - y).mean() >= 8:  # only asymmetric images
                add(rgb, other, 0, kind)
    return pairs
