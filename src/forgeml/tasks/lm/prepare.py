"""prepare (lm): split a corpus by whole works, fit the tokenizer on the train split, write
memory-mappable token arrays and a data card."""

from __future__ import annotations

import hashlib
from collections import Counter

from omegaconf import DictConfig

from forgeml.config import instantiate
from forgeml.data.text_corpus import TextCorpus
from forgeml.data.token_stream import token_dtype, write_tokens
from forgeml.data.tokenizer import fit_tokenizer
from forgeml.errors import DataError
from forgeml.io import atomic_dir, atomic_write_json, atomic_write_text, sha256_file

SPLITS = ("train", "val", "test")
WORK_SEPARATOR = "\n\n\n"


def split_works(corpus: TextCorpus, val_works: list[str], test_works: list[str]
                ) -> dict[str, list[str]]:
    """Work ids per split; every work not named for val or test trains, so no work straddles
    two splits."""
    empty = sorted(k for k, text in corpus.works.items() if not text.strip())
    if not corpus.works or len(empty) == len(corpus.works):
        raise DataError(f"The corpus '{corpus.name}' ({corpus.origin}) holds no text.")
    unknown = sorted(w for w in (*val_works, *test_works) if w not in corpus.works)
    if unknown:
        raise DataError(f"data.split names works the corpus does not have: {unknown}. "
                        f"Available: {sorted(corpus.works)}.")
    both = sorted(set(val_works) & set(test_works))
    if both:
        raise DataError(f"Works in both data.split.val_works and test_works: {both}.")
    held_out = set(val_works) | set(test_works)
    splits = {"train": [w for w in sorted(corpus.works) if w not in held_out and w not in empty],
              "val": [w for w in val_works if w not in empty],
              "test": [w for w in test_works if w not in empty]}
    for name, works in splits.items():
        if not works:
            raise DataError(f"The {name} split has no (non-empty) works; check data.split.")
    return splits


def prepare(cfg: DictConfig) -> dict:
    """Write <paths.prepared>/{train,val,test}.bin, tokenizer.json and data_card.json."""
    data = cfg.data
    corpus: TextCorpus = instantiate(data.source, "data.source")
    works = split_works(corpus, list(data.split.val_works), list(data.split.test_works))
    texts = {name: WORK_SEPARATOR.join(corpus.works[w] for w in ids) for name, ids in works.items()}

    tok = data.tokenizer
    tokenizer = fit_tokenizer(tok.kind, [corpus.works[w] for w in works["train"]],
                              tok.vocab_size, tok.min_frequency)
    tokens = {name: tokenizer.encode(text) for name, text in texts.items()}
    block_size = cfg.model.block_size
    for name, ids in tokens.items():
        if len(ids) <= block_size:
            raise DataError(
                f"The {name} split has {len(ids):,} tokens, not more than model.block_size "
                f"({block_size}): lower model.block_size or give the split more text.")

    train_chars = Counter(texts["train"])
    card = {
        "source": corpus.name,
        "origin": corpus.origin,
        "licence": corpus.licence,
        "tokenizer": {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size,
                      "dtype": token_dtype(tokenizer.vocab_size).name},
        "counts": {name: len(ids) for name, ids in tokens.items()},  # tokens per split
        "chars": {name: len(text) for name, text in texts.items()},
        "works": works,
        "titles": {w: corpus.titles.get(w, w) for ids in works.values() for w in ids},
        "raw_count": sum(len(t) for t in corpus.works.values()),
        "removed": {"empty_works": sum(not t.strip() for t in corpus.works.values())},
        # Characters of val/test that the train split never shows (char tokens map them to id 0).
        "unseen_chars": {name: sum(c not in train_chars for c in texts[name])
                         for name in ("val", "test")},
        "distinct_chars_train": len(train_chars),
        "split": {"protocol": "by whole work: val and test works named in data.split, every "
                              "other work trains", "seed": None},
    }
    with atomic_dir(cfg.paths.prepared) as out:
        for name, ids in tokens.items():
            write_tokens(out / f"{name}.bin", ids, tokenizer.vocab_size)
        atomic_write_text(out / "tokenizer.json", tokenizer.to_json())
        files = [f"{name}.bin" for name in SPLITS] + ["tokenizer.json"]
        card["files"] = {name: sha256_file(out / name) for name in files}
        card["data_hash"] = hashlib.sha256(
            "".join(card["files"][name] for name in files).encode()).hexdigest()
        atomic_write_json(out / "data_card.json", card)
    return card


def summarize(cfg: DictConfig, card: dict) -> str:
    counts = ", ".join(f"{k} {v:,}" for k, v in card["counts"].items())
    return (f"prepared {card['source']} ({card['tokenizer']['kind']} tokens, vocabulary "
            f"{card['tokenizer']['vocab_size']:,}): {counts} tokens; works "
            + ", ".join(f"{k} {len(v)}" for k, v in card["works"].items()))
