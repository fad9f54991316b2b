"""`forgeml predict --text`: the one check made before a sentiment model is loaded (batch
prediction over files is forgeml.serving.batch, through the exported model)."""

from __future__ import annotations

from forgeml.errors import DataError


def check_text(text: str) -> str:
    if not text.strip():
        raise DataError("The text is empty: there is nothing to classify.")
    return text
