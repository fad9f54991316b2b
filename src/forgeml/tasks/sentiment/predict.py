"""`forgeml predict`: label and probability for one text, or a CSV / JSONL file of texts, from a
sentiment model that MLflow logged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forgeml.errors import DataError
from forgeml.io import atomic_write_text
from forgeml.tasks.sentiment.predictor import TextPredictor, predictions_frame


def read_texts(path: Path, column: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path} does not exist.")
    if path.suffix not in (".csv", ".jsonl"):
        raise DataError(f"{path}: give a .csv or .jsonl file.")
    try:
        frame = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
    except ValueError as err:
        raise DataError(f"{path} could not be read: {err}") from None
    if column not in frame.columns:
        raise DataError(f"{path} has no '{column}' column (it has {list(frame.columns)}); "
                        "name the text column with --column.")
    return frame


def read_file_texts(source: Path, output: Path, column: str) -> tuple[pd.DataFrame, list[str]]:
    """The input rows and their texts, checked before any model is loaded."""
    if output.suffix not in (".csv", ".jsonl"):
        raise DataError(f"{output}: the output must be a .csv or .jsonl file.")
    frame = read_texts(source, column)
    texts = frame[column].tolist()
    empty = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if empty:
        raise DataError(f"{source}: {len(empty)} row(s) have no text (first: row {empty[0] + 1})"
                        "; nothing was written. Remove them and retry.")
    return frame, texts


def check_text(text: str) -> str:
    if not text.strip():
        raise DataError("The text is empty: there is nothing to classify.")
    return text


def write_predictions(predictor: TextPredictor, frame: pd.DataFrame, texts: list[str],
                      output: Path) -> int:
    """The input rows with label, probability and p_<class> columns added (written atomically)."""
    result = pd.concat([frame.reset_index(drop=True),
                        predictions_frame(predictor, texts)], axis=1)
    text = result.to_json(orient="records", lines=True, force_ascii=False) \
        if output.suffix == ".jsonl" else result.to_csv(index=False)
    atomic_write_text(output, text)
    return len(result)
