"""scikit-learn's bundled 1,797 real 8x8 handwritten digits (UCI Optical Recognition)."""

from __future__ import annotations

import numpy as np

from forgeml.data.base import ImageSource


def load() -> ImageSource:
    import sklearn
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return ImageSource(
        name="scikit-learn digits (8x8)",
        images=images,
        labels=bunch.target.astype(np.int64),
        licence="UCI ML Optical Recognition of Handwritten Digits, CC BY 4.0",
        origin=f"scikit-learn {sklearn.__version__}: sklearn.datasets.load_digits",
    )
