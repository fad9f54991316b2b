"""Answering text requests with the exported classifier: texts in, label and class
probabilities out. The WordPiece tokenizer (the `tokenizers` library) pads each request to its
longest text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forgeml.errors import DataError
from forgeml.serving.answers import labelled, labelled_columns
from forgeml.serving.bundle import Bundle
from forgeml.serving.requests import RequestError, input_column, items

MAX_CHARS = 20_000  # far beyond max_length tokens: longer texts are refused, not truncated


class TextEndpoint:
    default_column = "text"

    def __init__(self, bundle: Bundle, threads: int):
        from tokenizers import Tokenizer

        self.bundle, self.run = bundle, bundle.runner(threads)
        self.class_names = bundle.meta["class_names"]
        self.pad_id = int(bundle.meta["pad_id"])
        self.tokenizer = Tokenizer.from_file(str(bundle.file("tokenizer.json")))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=int(bundle.meta["max_length"]))

    def problem(self, texts: list) -> str | None:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                return f"text {i} is not a string"
            if not text.strip():
                return f"text {i} is empty: there is nothing to classify"
            if len(text) > MAX_CHARS:
                return f"text {i} has {len(text):,} characters (limit {MAX_CHARS:,})"
        return None

    def probabilities(self, texts: list[str]) -> np.ndarray:
        encoded = [e.ids for e in self.tokenizer.encode_batch(texts)]
        longest = max(len(ids) for ids in encoded)
        ids = np.full((len(texts), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), longest), dtype=np.int64)
        for row, seq in enumerate(encoded):
            ids[row, :len(seq)], mask[row, :len(seq)] = seq, 1
        return self.run({"input_ids": ids, "attention_mask": mask})

    def answer(self, body, max_batch: int) -> dict:
        texts = items(body, "texts", "text", max_batch)
        if problem := self.problem(texts):
            raise RequestError(422, problem[0].upper() + problem[1:] + ".")
        return {"predictions": labelled(self.probabilities(texts), self.class_names)}

    def rows(self, frame: pd.DataFrame, column: str | None, first_row: int,
             k: int = 10) -> pd.DataFrame:
        texts = input_column(frame, column or self.default_column, "text")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"row {first_row + i} has no text; nothing was written. Remove "
                                "it and retry.")
        if problem := self.problem(texts):
            raise DataError(f"rows from {first_row}: {problem}; nothing was written.")
        columns = labelled_columns(self.probabilities(texts), self.class_names)
        return pd.concat([frame.reset_index(drop=True), pd.DataFrame(columns)], axis=1)
