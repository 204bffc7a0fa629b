"""Linear projection of embedding batches onto fixed axes (pure numpy, no Spark).

The label model reduces 1280-d embeddings to a few principal axes before its logistic
regression: the gradient of a multinomial model costs rows × dimensions × classes per
L-BFGS iteration, which at 1280 dimensions and 118 classes was 4 CPU s per iteration for
8,000 images. The axes come from a covariance computed by Spark (sparkdup.findings.
label_model); this function applies them to one Arrow batch.
"""
from __future__ import annotations

import numpy as np


def project(vectors: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(vectors - mean) @ axes as float32: n × d rows onto d × k axes -> n × k."""
    return ((np.asarray(vectors, dtype=np.float64) - mean) @ axes).astype(np.float32)

