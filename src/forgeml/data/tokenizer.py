"""Tokenizers for the language-model pipeline: character-level, or byte-level BPE trained with the
`tokenizers` library. Both are fitted on the train split only and saved as one JSON file."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from forgeml.errors import ConfigError, DataError

KINDS = ("char", "bpe")
UNKNOWN = "\ufffd"  # what a character never seen in training decodes to


class Tokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def to_json(self) -> str: ...


class CharTokenizer:
    """One token per character; id 0 stands for characters absent from the train split."""

    kind = "char"

    def __init__(self, chars: list[str]):
        self.chars = [UNKNOWN, *chars]
        self.ids = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text) - {UNKNOWN}))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(c, 0) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "chars": self.chars[1:]})


class BPETokenizer:
    """Byte-level BPE (GPT-2 style): any text encodes, and decoding gives it back exactly."""

    kind = "bpe"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        tokenizer = HFTokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator(texts, trainer)
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(list(ids))

    def to_json(self) -> str:
        return self.tokenizer.to_str()


def fit_tokenizer(kind: str, train_texts: list[str], vocab_size: int,
                  min_frequency: int = 2) -> Tokenizer:
    if kind == "char":
        return CharTokenizer.fit("".join(train_texts))
    if kind == "bpe":
        if vocab_size < 257:
            raise ConfigError("data.tokenizer.vocab_size must be > 256 for byte-level BPE "
                              f"(got {vocab_size}).")
        return BPETokenizer.fit(train_texts, vocab_size, min_frequency)
    raise ConfigError(f"Unknown data.tokenizer.kind '{kind}'. Choose one of: {', '.join(KINDS)}.")


def tokenizer_from_json(text: str) -> Tokenizer:
    data = json.loads(text)
    if data.get("kind") == "char":
        return CharTokenizer(data["chars"])
    from tokenizers import Tokenizer as HFTokenizer

    return BPETokenizer(HFTokenizer.from_str(text))


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: run the prepare stage first (`dvc repro`).")
    return tokenizer_from_json(path.read_text(encoding="utf-8"))
