"""Pixels for the generator: the thumbnail filter that keeps originals apart, encoders, the
edits that make near duplicates, broken files and synthetic anomalies.

Every function here is deterministic: randomness comes in as parameters chosen by the
plan (factors, seeds), so rendering a plan twice gives the same bytes.
"""
from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from .sources import on_white

# Thumbnail filter thresholds (grey 16x16, values 0..1).
SIG_SIZE = 16  # fine thumbnail, compared with every original taken (and its mirror image)
SIG_COARSE = 8  # coarse thumbnail, compared within the class under rotations/reflections
RMS_SAME = 0.06  # refused when the root-mean-square difference of fine thumbnails is below
CORR_SAME = 0.97  # ... or brightness/contrast-normalised fine thumbnails correlate above
RMS_SAME_COARSE = 0.07  # refused when a rotated/reflected coarse thumbnail of the class is this close
CORR_SAME_COARSE = 0.95  # ... or correlates above this
CORR_MIN_STD = 0.04  # correlation is only trusted for thumbnails with this much contrast
# Look-alike sets keep members that differ this little: only a frame whose 32x32 grey
# thumbnail is within this RMS of a taken member (the same frame exported twice) is refused.
SIG_LOOKALIKE = 32
RMS_SAME_LOOKALIKE = 0.015
# ... or whose brightness/contrast-normalised thumbnail correlates above this: a recolouring
# (folder icons in ten colours) or a blink is too close to call a different picture.
CORR_SAME_LOOKALIKE = 0.99

def signature(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Grey thumbnails (values 0..1): fine (SIG_SIZE square) and coarse (SIG_COARSE square)."""
    g = img.convert("L")
    fine = np.asarray(g.resize((SIG_SIZE, SIG_SIZE), Image.BOX), dtype=np.float32) / 255.0
    coarse = np.asarray(g.resize((SIG_COARSE, SIG_COARSE), Image.BOX), dtype=np.float32) / 255.0
    return fine, coarse


def _dihedral(sig: np.ndarray, flips_only: bool = False) -> np.ndarray:
    """Rotations/reflections of a square thumbnail, flattened, identity first: (8 or 2, S*S)."""
    if flips_only:
        return np.stack([sig.ravel(), np.fliplr(sig).ravel()])
    out = []
    for k in range(4):
        r = np.rot90(sig, k)
        out.append(r.ravel())
        out.append(np.fliplr(r).ravel())
    return np.stack(out)


def _normalised(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean, unit-norm copy of each row, and each row's standard deviation."""
    z = v - v.mean(axis=-1, keepdims=True)
    std = z.std(axis=-1)
    n = np.linalg.norm(z, axis=-1, keepdims=True)
    return z / np.maximum(n, 1e-9), std


class _Bank:
    """Flattened thumbnails of one resolution, with their normalised copies (grown in place)."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.raw = np.zeros((64, dim), np.float32)
        self.sq = np.zeros(64, np.float32)  # squared norms of raw
        self.norm = np.zeros((64, dim), np.float32)  # zero-mean unit-norm rows; 0 when low contrast

    def add(self, v: np.ndarray) -> None:
        v = v.reshape(1, -1).astype(np.float32)
        if self.n == len(self.raw):
            grow = lambda a: np.concatenate([a, np.zeros_like(a)])  # noqa: E731
            self.raw, self.sq, self.norm = grow(self.raw), grow(self.sq), grow(self.norm)
        z, std = _normalised(v)
        self.raw[self.n] = v[0]
        self.sq[self.n] = float((v[0] ** 2).sum())
        self.norm[self.n] = z[0] if std[0] >= CORR_MIN_STD else 0.0
        self.n += 1

    def close(self, variants: np.ndarray, rms_max: float, corr_max: float, keep: np.ndarray | None = None) -> bool:
        """Is any variant (row) within rms_max, or correlated above corr_max, of an entry?
        keep: a boolean mask of the entries to compare with (default: all)."""
        if not self.n:
            return False
        raw = self.raw[: self.n]
        d2 = self.sq[: self.n, None] + (variants ** 2).sum(1)[None, :] - 2.0 * (raw @ variants.T)
        if keep is not None:
            if not keep.any():
                return False
            d2 = d2[keep]
        if d2.min() < rms_max * rms_max * variants.shape[1]:
            return True
        z, std = _normalised(variants)
        if std[0] < CORR_MIN_STD:
            return False
        corr = self.norm[: self.n] @ z.T
        return bool((corr[keep] if keep is not None else corr).max() > corr_max)


class SignatureIndex:
    """Thumbnails of the originals taken so far; answers 'is this one too close?'.

    Against every original taken: the fine thumbnail and its mirror image (CNN embeddings
    hardly tell a picture from its mirror). Within a regular class: the coarse thumbnail
    under all 8 rotations/reflections (arrow sets drawn in four directions, mirrored signs).
    A look-alike is compared with every original outside its own look-alike set only (its
    set has its own, much tighter test: LookalikeIndex).
    """

    def __init__(self) -> None:
        self.fine = _Bank(SIG_SIZE * SIG_SIZE)
        self.owner = np.zeros(64, np.int32)  # look-alike set code of each fine entry (0: regular)
        self.codes: dict[str, int] = {"": 0}
        self.coarse: dict[str, _Bank] = {}

    def too_close(self, sig: tuple[np.ndarray, np.ndarray], label: str, set_id: str = "") -> bool:
        fine, coarse = sig
        keep = None
        if set_id:
            keep = self.owner[: self.fine.n] != self.codes.get(set_id, -1)
        if self.fine.close(_dihedral(fine, flips_only=True), RMS_SAME, CORR_SAME, keep):
            return True
        if set_id:
            return False
        bank = self.coarse.get(label)
        return bank is not None and bank.close(_dihedral(coarse), RMS_SAME_COARSE, CORR_SAME_COARSE)

    def add(self, sig: tuple[np.ndarray, np.ndarray], label: str, set_id: str = "") -> None:
        if self.fine.n == len(self.owner):
            self.owner = np.concatenate([self.owner, np.zeros_like(self.owner)])
        self.owner[self.fine.n] = self.codes.setdefault(set_id, len(self.codes))
        self.fine.add(sig[0])
        if not set_id:
            self.coarse.setdefault(label, _Bank(SIG_COARSE * SIG_COARSE)).add(sig[1])


class LookalikeIndex:
    """32x32 grey thumbnails of a look-alike set: refuses only practically identical frames
    and recolourings."""

    def __init__(self) -> None:
        self.banks: dict[str, _Bank] = {}

    @staticmethod
    def signature(img: Image.Image) -> np.ndarray:
        g = img.convert("L").resize((SIG_LOOKALIKE, SIG_LOOKALIKE), Image.BOX)
        return (np.asarray(g, dtype=np.float32) / 255.0).ravel()

    def too_close(self, sig: np.ndarray, set_id: str) -> bool:
        bank = self.banks.get(set_id)
        return bank is not None and bank.close(sig.reshape(1, -1), RMS_SAME_LOOKALIKE, CORR_SAME_LOOKALIKE)

    def add(self, sig: np.ndarray, set_id: str) -> None:
        self.banks.setdefault(set_id, _Bank(sig.size)).add(sig)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode).save(buf, "JPEG", quality=kw.get("quality", 92))
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=kw.get("quality", 85), method=4)
    elif fmt == "PNG":
        img.save(buf, "PNG", optimize=False, compress_level=6)
    else:
        img.save(buf, fmt)
    return buf.getvalue()


EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def transform(img: Image.Image, how: str) -> Image.Image:
    """rot90 | rot180 | rot270 | mirror | flip: a rotated or mirrored symbol (another picture)."""
    ops = {"rot90": Image.Transpose.ROTATE_90, "rot180": Image.Transpose.ROTATE_180,
           "rot270": Image.Transpose.ROTATE_270, "mirror": Image.Transpose.FLIP_LEFT_RIGHT,
           "flip": Image.Transpose.FLIP_TOP_BOTTOM}
    return img.transpose(ops[how])


# ----------------------------------------------------------------------------------------
# near-duplicate edits: the same picture after edits a dataset picks up


def near_variant(img: Image.Image, fmt: str, edit: dict) -> tuple[bytes, str]:
    """Apply one edit (chosen by the plan) and encode; returns (bytes, format).

    jpeg       re-encode as JPEG at ``quality`` (40..90)
    resize     scale both sides by ``factor`` (0.5..0.8 or 1.25..1.5), same format
    crop       keep a ``keep`` share (0.85..0.95) of each side, at ``x``/``y`` (0..1) of the slack
    brightness multiply brightness by ``factor`` (0.9..1.1)
    watermark  a small semi-transparent ``text`` in a corner (``corner`` 0..3)
    format     the same pixels in another container (``to``: WEBP, BMP, PNG)
    mode       ``to``: RGBA (opaque alpha added), P (256-colour palette), L (greyscale)
    """
    op = edit["op"]
    w, h = img.size
    if op == "jpeg":
        return encode(img, "JPEG", quality=edit["quality"]), "JPEG"
    if op == "resize":
        f = edit["factor"]
        return encode(img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS), fmt), fmt
    if op == "crop":
        cw, ch = max(1, round(w * edit["keep"])), max(1, round(h * edit["keep"]))
        left, top = round((w - cw) * edit["x"]), round((h - ch) * edit["y"])
        return encode(img.crop((left, top, left + cw, top + ch)), fmt), fmt
    if op == "brightness":
        return encode(ImageEnhance.Brightness(img).enhance(edit["factor"]), fmt), fmt
    if op == "watermark":
        return encode(watermark(img, edit["text"], edit["corner"]), fmt), fmt
    if op == "format":
        return encode(img, edit["to"]), edit["to"]
    if op == "mode":
        to = edit["to"]
        if to == "RGBA":
            out = img.convert("RGBA")
        elif to == "P":
            out = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        else:
            out = img.convert("L")
        return encode(out, "PNG"), "PNG"
    raise ValueError(op)


def watermark(img: Image.Image, text: str, corner: int) -> Image.Image:
    """A small semi-transparent text (about 1/25 of the area) in one corner."""
    w, h = img.size
    size = max(8, min(w, h) // 12)
    font = ImageFont.load_default(size=size)
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    tw, th = draw.textbbox((0, 0), text, font=font)[2:]
    pad = max(2, size // 3)
    x = pad if corner in (0, 2) else w - tw - pad
    y = pad if corner in (0, 1) else h - th - pad
    draw.text((x, y), text, font=font, fill=(255, 255, 255, 150), stroke_width=1, stroke_fill=(0, 0, 0, 150))
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


# ----------------------------------------------------------------------------------------
# broken files


def broken_bytes(reason: str, img: Image.Image, seed: int, i: int) -> tuple[bytes, str]:
    """Returns (bytes, extension)."""
    rng = np.random.default_rng(seed)
    if reason == "zero_byte":
        return b"", (".jpg", ".png")[seed % 2]
    if reason == "truncated_png":
        data = encode(img, "PNG")
        return data[: max(64, int(len(data) * rng.uniform(0.3, 0.6)))], ".png"
    if reason == "truncated_jpeg":
        data = encode(img, "JPEG", quality=90)
        return data[: max(700, int(len(data) * rng.uniform(0.3, 0.6)))], ".jpg"
    if reason == "random_bytes":
        return rng.integers(0, 256, int(rng.integers(2_000, 20_000)), dtype=np.uint8).tobytes(), ".jpg"
    if reason == "html_as_png":
        html = (
            "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
            f"<body><h1>Not Found</h1><p>The requested image /img/{i:05d}.png was not found "
            "on this server.</p></body></html>\n"
        )
        return html.encode(), ".png"
    raise ValueError(reason)


# ----------------------------------------------------------------------------------------
# anomalies: pictures unlike any class of a natural dataset


# Foreign-domain outliers: photographs and micrographs bundled with scikit-image, unlike
# the clip-art and unlike each other (skimage's ``cat`` is ``chelsea`` again, so not both).
PHOTO_SOURCES: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
    "camera", "retina", "coins", "moon", "motorcycle_left", "brick", "clock", "grass", "gravel", "cell",
)

_WORDS = ("the", "of", "and", "data", "report", "section", "page", "total", "account", "invoice", "date",
          "number", "meeting", "notes", "review", "item", "amount", "signed", "office", "copy", "summary")


def photo(name: str) -> Image.Image | None:
    """A scikit-image sample photo (RGB), or None when it is not available offline."""
    try:
        import skimage.data as skd
    except ImportError:  # pragma: no cover - scikit-image is a test dependency here
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = skd.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skd, name)()
    except Exception:  # noqa: BLE001 - a photo that needs a download is skipped
        return None
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        lo, hi = arr.min(), arr.max()
        arr = ((arr - lo) * (255.0 / (hi - lo if hi > lo else 1))).astype(np.uint8)
    return on_white(Image.fromarray(arr))


def anomaly(spec: dict) -> Image.Image | None:
    """Render a synthetic anomaly from its plan spec.

    blank     a uniform ``colour`` (RGB) at ``size``, with +-``jitter`` grey levels of noise
    noise     ``dist``: 'uniform' colour noise, 'gauss' grey noise, 'blobs' (low-frequency
              colour noise), 'salt' (salt-and-pepper on grey)
    document  a scanned-looking page: lines of words on off-white paper, a slight tilt, speckle
              (``font_div``/``line_div``: font size and line height as fractions of the height)
    foreign   a scikit-image ``photo``, optionally cropped to ``keep`` and brightened by ``factor``
    """
    kind = spec["type"]
    w, h = spec.get("size", (256, 256))
    rng = np.random.default_rng(spec.get("seed", 0))
    if kind == "blank":
        arr = np.empty((h, w, 3), np.float32)
        arr[:] = spec["colour"]
        if spec.get("jitter"):
            arr += rng.uniform(-spec["jitter"], spec["jitter"], (h, w, 1))
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if kind == "noise":
        dist = spec.get("dist", "uniform")
        if dist == "gauss":
            g = np.clip(rng.normal(128, 50, (h, w)), 0, 255).astype(np.uint8)
            return Image.fromarray(g).convert("RGB")
        if dist == "blobs":  # low-frequency colour noise: random cells enlarged smoothly
            cell = int(rng.integers(6, 24))
            small = rng.integers(0, 256, (max(2, h // cell), max(2, w // cell), 3), dtype=np.uint8)
            return Image.fromarray(small).resize((w, h), Image.BICUBIC)
        if dist == "salt":  # salt-and-pepper on mid grey
            g = np.full((h, w), 128, np.uint8)
            u = rng.random((h, w))
            g[u < 0.2] = 0
            g[u > 0.8] = 255
            return Image.fromarray(g).convert("RGB")
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    if kind == "document":
        paper = Image.new("L", (w, h), int(rng.integers(225, 245)))
        draw = ImageDraw.Draw(paper)
        font = ImageFont.load_default(size=max(8, int(h / spec.get("font_div", rng.uniform(30, 45)))))
        y = h // 12
        line_h = max(11, int(h / spec.get("line_div", rng.uniform(20, 30))))
        while y < h - h // 12:
            x = w // 10
            while x < w - w // 8:
                word = _WORDS[int(rng.integers(len(_WORDS)))]
                draw.text((x, y), word, fill=int(rng.integers(20, 70)), font=font)
                x += draw.textbbox((0, 0), word + " ", font=font)[2]
            y += line_h
        paper = paper.rotate(float(rng.uniform(-2, 2)), fillcolor=235, resample=Image.BICUBIC)
        arr = np.asarray(paper, np.float32) + rng.normal(0, 6, (h, w))
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB")
    if kind == "foreign":
        img = photo(spec["photo"])
        if img is None:
            return None
        if spec.get("keep", 1.0) < 1.0:
            pw, ph = img.size
            cw, ch = round(pw * spec["keep"]), round(ph * spec["keep"])
            img = img.crop(((pw - cw) // 2, (ph - ch) // 2, (pw - cw) // 2 + cw, (ph - ch) // 2 + ch))
        if spec.get("factor", 1.0) != 1.0:
            img = ImageEnhance.Brightness(img).enhance(spec["factor"])
        return img
    raise ValueError(kind)
