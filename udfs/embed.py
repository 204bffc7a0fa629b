"""Per-batch embedding: fit images to the model's square input, run the model, normalise.

Pure functions, no Spark. The embed job's iterator pandas UDF calls :func:`embed_contents`
(decode, then :func:`embed_arrays`) for each Arrow batch.

The model is cached in :data:`_MODELS`, a dict at module level in this importable
module, keyed by model name. A Python worker imports this module once and keeps it, so
the model is loaded once per worker and reused by every task it runs. (A model held in
a global of the driver script would be pickled with the UDF and rebuilt for every task:
8x slower, measured.)
"""
from __future__ import annotations

import threading

import numpy as np
from PIL import Image

METHODS = ("center_crop", "letterbox")
WHITE = (255, 255, 255)

# model name -> loaded Embedder, one per Python worker process.
_MODELS: dict = {}
_LOCK = threading.Lock()


def _as_rgb(arr: np.ndarray) -> np.ndarray:
    """HxWx3 uint8; grey (HxW / HxWx1) is replicated and RGBA composited on white."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    c = arr.shape[2]
    if c == 3:
        return arr
    if c == 1:
        return np.repeat(arr, 3, axis=2)
    if c == 4:
        rgba = Image.fromarray(arr)  # HxWx4 uint8 -> RGBA
        canvas = Image.new("RGBA", rgba.size, WHITE + (255,))
        return np.asarray(Image.alpha_composite(canvas, rgba).convert("RGB"))
    raise ValueError(f"expected 1, 3 or 4 channels, got {c}")


def fit_to_square(rgb: np.ndarray, size: int, method: str = "center_crop") -> np.ndarray:
    """Resize an RGB uint8 image to ``size x size x 3`` (Pillow bilinear, antialiased).

    ``center_crop``: scale so the short side is ``size``, keep the centre (the whole
    image when it is already square). ``letterbox``: scale so the long side is ``size``,
    centre it on white (nothing is cut off).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    size = int(size)
    arr = _as_rgb(rgb)
    h, w = arr.shape[:2]
    if h == size and w == size:
        return arr
    img = Image.fromarray(arr)  # HxWx3 uint8 -> RGB
    if method == "center_crop":
        # Crop the central square in source coordinates and resample it in one pass
        # (Pillow's resize antialiases when shrinking; box keeps sub-pixel accuracy).
        s = min(h, w)
        left, top = (w - s) / 2.0, (h - s) / 2.0
        out = img.resize((size, size), Image.BILINEAR, box=(left, top, left + s, top + s))
        return np.asarray(out)
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = img.resize((nw, nh), Image.BILINEAR)
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(resized, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas)


def get_model(model_name: str | None = None):
    """The loaded :class:`sparkdup.models.registry.Embedder` for a name, once per process.

    TensorFlow's thread pools are pinned to one intra-op and one inter-op thread before
    the first model is loaded (one core per Spark task slot).
    """
    from sparkdup.models import registry
    from sparkdup.models.quiet import native_stderr_filtered

    key = model_name or registry.DEFAULT_MODEL
    model = _MODELS.get(key)
    if model is None:
        with _LOCK:
            model = _MODELS.get(key)
            if model is None:
                with native_stderr_filtered():  # TensorFlow's start-up notices stay off the console
                    if not _MODELS:
                        registry.configure_tf_threads()
                    model = registry.load_embedder(key)
                    s = model.input_size
                    model(np.zeros((1, s, s, 3), np.uint8))  # the first run prints notices too
                _MODELS[key] = model
    return model


def embed_arrays(model_name: str | None, arrays, batch_size: int = 32, method: str = "center_crop") -> np.ndarray:
    """Embed a list of RGB uint8 images: ``float32 [len(arrays), dim]``, rows of unit length.

    Each image is fitted to the model's input size with :func:`fit_to_square`, then the
    model runs on batches of ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    model = get_model(model_name)
    n = len(arrays)
    out = np.empty((n, model.dim), np.float32)
    size = model.input_size
    for start in range(0, n, batch_size):
        chunk = arrays[start : start + batch_size]
        batch = np.stack([fit_to_square(a, size, method) for a in chunk])
        out[start : start + len(chunk)] = model(batch)
    # The models normalise already; do it again in float32 here so every row is unit
    # length whatever the backend (a quantised model's output included).
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, np.maximum(norms, 1e-12), out=out)
    return out


def configured_model(cfg) -> str:
    """The registry name of the model the settings choose: ``embed.model`` with
    ``embed.weights`` and ``embed.input_size`` applied (e.g. ``efficientnet_lite0?size=160``)."""
    from sparkdup.models.registry import model_name, with_size

    emb = cfg["embed"]
    return with_size(model_name(emb["model"], emb["weights"]), emb["input_size"])


def embed_images(cfg, arrays) -> np.ndarray:
    """Embed decoded images (RGB/RGBA/grey uint8 arrays of any size) with the configured
    model, resize method and batch size, in this process: what the embed stage computes
    for the same pixels, for callers outside Spark (a query image in the driver)."""
    emb = cfg["embed"]
    return embed_arrays(configured_model(cfg), list(arrays), int(emb["batch_size"]), emb["resize"])


def embed_contents(model_name: str | None, contents, limits, batch_size: int = 32,
                   method: str = "center_crop") -> list:
    """Embed raw file bytes: a unit vector per input, or None where the bytes don't decode.

    Each image is decoded once (bounded by ``limits``, see :mod:`sparkdup.udfs.decode`)
    and fitted to the model's input once.
    """
    from sparkdup.udfs.decode import decode

    decoded = [decode(data, limits) for data in contents]
    arrays = [d.rgb for d in decoded if d.rgb is not None]
    vectors = iter(embed_arrays(model_name, arrays, batch_size, method)) if arrays else iter(())
    return [next(vectors) if d.rgb is not None else None for d in decoded]
