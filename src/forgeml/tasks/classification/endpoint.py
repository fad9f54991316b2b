"""Answering image requests with the exported classifier: images (flat pixel lists or nested
C x H x W / H x W lists of raw [0, 1] pixels) in, label and class probabilities out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forgeml.errors import DataError
from forgeml.serving.answers import labelled, labelled_columns
from forgeml.serving.bundle import Bundle
from forgeml.serving.requests import RequestError, items


class ImageEndpoint:
    default_column = "image"

    def __init__(self, bundle: Bundle, threads: int):
        self.bundle, self.run = bundle, bundle.runner(threads)
        self.class_names = bundle.meta["class_names"]
        self.shape = tuple(bundle.meta["image_shape"])  # (C, H, W)
        self.pixels = math.prod(self.shape)

    def images(self, values: list) -> np.ndarray:
        """(N, C, H, W) float32, or a RequestError naming the first bad image."""
        if _holds_booleans(values):  # numpy would take true/false as 1/0
            raise RequestError(422, "Pixels must be numbers, not true/false.")
        try:
            array = np.asarray(values, dtype=np.float32)
        except (ValueError, TypeError):
            raise RequestError(422, "Each image must be a list of numbers (or nested lists of "
                                    "one shape).") from None
        accepted = {(self.pixels,), self.shape, self.shape[1:] if self.shape[0] == 1 else None}
        if array.ndim < 2 or array.shape[1:] not in accepted:
            raise RequestError(422, f"Each image must have {self.pixels} pixels (flat, or "
                                    f"shaped {list(self.shape)}); got shape "
                                    f"{list(array.shape[1:])}.")
        bad = ~np.isfinite(array) | (array < 0) | (array > 1)
        if bad.any():
            first = int(np.flatnonzero(bad.reshape(len(array), -1).any(1))[0])
            raise RequestError(422, f"Image {first} has pixels outside [0, 1] (or NaN): send raw "
                                    "pixels scaled to [0, 1].")
        return array.reshape(len(array), *self.shape)

    def answer(self, body, max_batch: int) -> dict:
        images = self.images(items(body, "images", "image", max_batch))
        return {"predictions": labelled(self.run({"images": images}), self.class_names)}

    def rows(self, frame: pd.DataFrame, column: str | None, first_row: int,
             k: int = 10) -> pd.DataFrame:
        """Batch prediction: a JSON-list column (`image`), or else every column but `id` as
        the pixels in order."""
        if (column or self.default_column) in frame.columns:
            values = frame[column or self.default_column].tolist()
            keep = frame.drop(columns=[column or self.default_column])
        else:
            pixels = [c for c in frame.columns if c != "id"]
            values, keep = frame[pixels].to_numpy(dtype=np.float32, na_value=np.nan), \
                frame[[c for c in frame.columns if c == "id"]]
        try:
            images = self.images(values if isinstance(values, np.ndarray) else list(values))
        except RequestError as err:
            raise DataError(f"rows {first_row}-{first_row + len(frame) - 1}: {err}") from None
        columns = labelled_columns(self.run({"images": images}), self.class_names)
        return pd.concat([keep.reset_index(drop=True), pd.DataFrame(columns)], axis=1)


def _holds_booleans(values: list) -> bool:
    pending = [values]
    while pending:
        items = pending.pop()
        for item in items:
            if isinstance(item, bool):
                return True
            if isinstance(item, list):
                pending.append(item)
    return False
