"""Builders of the awkward files ingest must survive, each made from a real image.

Every builder writes one file and returns the status ingest must give it, so tests
can check a whole folder of them at once against this expectation.
"""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def make_bad_folder(folder: str, real_png: str) -> tuple[dict[str, str], tuple[int, int]]:
    """Write every awkward case into folder.

    Returns ({file name: expected status}, (width, height) of the upright base image).
    """
    os.makedirs(folder, exist_ok=True)
    base = Image.open(real_png).convert("RGB")
    base.thumbnail((256, 256))
    w, h = base.size
    jpeg = _encode(base, "JPEG", quality=90)
    png = _encode(base, "PNG")
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    base.save(rotated, "JPEG", exif=exif.tobytes())
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    anim = io.BytesIO()
    frames[0].save(anim, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    sixteen = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)  # infers I;16
    bomb = _encode(Image.new("1", (12_000, 12_000)), "PNG")  # 144 Mpx, tiny file

    cases = {
        "empty.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "broken"),
        "truncated.png": (png[: len(png) // 2], "broken"),
        "random_bytes.jpg": (np.random.default_rng(0).bytes(5000), "unsupported"),
        "html page.png": (b"<!doctype html><html><body>404 not found</body></html>", "unsupported"),
        "bomb.png": (bomb, "too_large"),
        "huge_dimensions.png": (_png_header_only(1_000_000, 1_000_000), "too_large"),
        "cmyk.jpg": (_encode(base.convert("CMYK"), "JPEG"), "ok"),
        "sixteen_bit.png": (_encode(sixteen, "PNG"), "ok"),
        "palette_transparent.png": (_encode(palette, "PNG", transparency=0), "ok"),
        "animated.gif": (anim.getvalue(), "ok"),
        "grayscale.png": (_encode(base.convert("L"), "PNG"), "ok"),
        "exif_rotated.jpg": (rotated.getvalue(), "ok"),
        "photo.webp": (_encode(base, "WEBP"), "ok"),
        "photo.tiff": (_encode(base, "TIFF"), "ok"),
        "photo.bmp": (_encode(base, "BMP"), "ok"),
        "name with spaces 'quotes' \"double\".png": (png, "ok"),
        "ünïcödé 日本.png": (png, "ok"),
    }
    for name, (data, _) in cases.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return {name: status for name, (_, status) in cases.items()}, (w, h)
