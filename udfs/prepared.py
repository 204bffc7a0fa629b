"""What the later stages need from an image, made from the pixels ingest decodes anyway.

Each file is decoded once per run: ingest's decode gives the statistics and the pixel
signature, and from the same array :class:`Prepare` makes the model's input (the square
``size x size x 3`` uint8 array, as raw bytes) and the report's thumbnail (JPEG bytes).
sparkdup.decoded keeps them in a side table for the embed and report stages.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparkdup.udfs.embed import fit_to_square
from sparkdup.udfs.thumbnails import thumbnail_jpeg

COLUMNS = ("model_input", "thumbnail")


@dataclass(frozen=True)
class Prepare:
    model_size: int  # side of the model's square input
    resize: str  # embed.resize: center_crop | letterbox
    thumbnail_side: int  # report.thumbnail_side

    @property
    def key(self) -> str:
        """What the model input was made for; embed uses it only when its own settings agree."""
        return f"{self.model_size}/{self.resize}"

    def __call__(self, rgb: np.ndarray | None) -> dict:
        if rgb is None:
            return dict.fromkeys(COLUMNS)
        return {"model_input": fit_to_square(rgb, self.model_size, self.resize).tobytes(),
                "thumbnail": thumbnail_jpeg(rgb, self.thumbnail_side)}


def model_arrays(pixels, size: int) -> list[np.ndarray]:
    """The raw bytes of :meth:`Prepare.__call__`'s model input back as size x size x 3 arrays."""
    return [np.frombuffer(p, np.uint8).reshape(size, size, 3) for p in pixels]
