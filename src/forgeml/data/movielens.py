"""User-item interactions for the recommender pipeline.

`movielens100k`: MovieLens-100k as shipped inside the PyPI package `recbole==1.2.1` (atomic files
`ml-100k.inter` / `.item`; located without importing the library). GroupLens licence: research
use only, NO REDISTRIBUTION — it is read from the installed package and must never be committed
or pushed to a DVC remote. `atomic_files`: the same tab-separated format from any folder.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forgeml.errors import DataError
from forgeml.io import sha256_file

ML100K_LICENCE = ("GroupLens MovieLens-100k terms: research use only; no redistribution "
                  "(never commit it or push it to a DVC remote)")


@dataclass
class Interactions:
    name: str
    origin: str
    licence: str
    users: np.ndarray  # original user ids (strings)
    items: np.ndarray  # original item ids (strings)
    ratings: np.ndarray  # float
    timestamps: np.ndarray  # int64 seconds
    item_titles: dict[str, str] = field(default_factory=dict)
    item_genres: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256


def _columns(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines:
        raise DataError(f"{path} is empty.")
    header = [h.split(":")[0] for h in lines[0].split("\t")]
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    return header, rows


def read_atomic(inter_path: Path, item_path: Path | None, name: str, origin: str,
                licence: str) -> Interactions:
    """RecBole's atomic files: `.inter` with user_id, item_id, rating, timestamp columns."""
    if not inter_path.is_file():
        raise DataError(f"Interaction file {inter_path} not found.")
    header, rows = _columns(inter_path)
    need = ["user_id", "item_id", "rating", "timestamp"]
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(f"{inter_path}: missing columns {missing} (has {header}).")
    if not rows:
        raise DataError(f"{inter_path} holds no interactions.")
    index = {c: header.index(c) for c in need}
    bad = [i + 2 for i, r in enumerate(rows) if len(r) < len(header)]
    if bad:
        raise DataError(f"{inter_path}: lines {bad[:5]} have fewer than {len(header)} fields.")
    try:
        ratings = np.array([float(r[index["rating"]]) for r in rows])
        stamps = np.array([float(r[index["timestamp"]]) for r in rows])
    except ValueError as err:
        raise DataError(f"{inter_path}: a rating or timestamp is not a number ({err}).") from None
    if not np.isfinite(stamps).all() or (stamps < 0).any():
        raise DataError(f"{inter_path}: timestamps must be finite and non-negative.")
    if not np.isfinite(ratings).all():
        raise DataError(f"{inter_path}: ratings must be finite numbers.")
    users = np.array([r[index["user_id"]].strip() for r in rows])
    items = np.array([r[index["item_id"]].strip() for r in rows])
    if (users == "").any() or (items == "").any():
        raise DataError(f"{inter_path}: empty user or item ids.")
    titles, genres = {}, {}
    files = {inter_path.name: sha256_file(inter_path)}
    if item_path is not None and item_path.is_file():
        item_header, item_rows = _columns(item_path)
        title_col = next((i for i, h in enumerate(item_header) if "title" in h), None)
        genre_col = next((i for i, h in enumerate(item_header) if h in ("class", "genre")), None)
        for row in item_rows:
            if title_col is not None and len(row) > title_col:
                titles[row[0]] = row[title_col]
            if genre_col is not None and len(row) > genre_col:
                genres[row[0]] = row[genre_col]
        files[item_path.name] = sha256_file(item_path)
    return Interactions(name, origin, licence, users, items, ratings,
                        stamps.astype(np.int64), titles, genres, files)


def movielens100k() -> Interactions:
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("MovieLens-100k is read from the `recbole` package, which is not "
                        "installed: `pip install --no-deps recbole==1.2.1` (scripts/setup.sh "
                        "does this), or point data.source at your own atomic files.")
    folder = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    return read_atomic(folder / "ml-100k.inter", folder / "ml-100k.item", "movielens-100k",
                       "PyPI package recbole 1.2.1 (recbole/dataset_example/ml-100k)",
                       ML100K_LICENCE)


def atomic_files(inter_path: str, item_path: str | None = None,
                 licence: str = "unknown (your own data)") -> Interactions:
    inter = Path(inter_path)
    return read_atomic(inter, Path(item_path) if item_path else None, inter.stem, str(inter),
                       licence)
