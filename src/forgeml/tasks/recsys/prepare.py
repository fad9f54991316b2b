"""prepare (recsys): validate interactions, make them implicit, remap ids, split (leave-last-out
or a global time cutoff), and freeze the evaluation candidates (sampled negatives)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
from omegaconf import DictConfig

from forgeml.config import instantiate
from forgeml.data.movielens import Interactions
from forgeml.errors import ConfigError, DataError
from forgeml.io import atomic_dir, atomic_write_json, sha256_file
from forgeml.privacy.pseudonyms import key_id, load_key, pseudonymise

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}
ACTIVITY_EDGES = [0, 1, 11, 31, 101, 301]
FILES = ("interactions.npz", "val_negatives.npy", "test_negatives.npy", "catalog.json")


def keep_latest(users: np.ndarray, items: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Indices that keep one interaction per (user, item): the latest (a re-rating)."""
    order = np.lexsort((stamps, items, users))  # by user, item, then time
    last = np.ones(len(order), dtype=bool)
    same = (users[order][1:] == users[order][:-1]) & (items[order][1:] == items[order][:-1])
    last[:-1] = ~same
    return np.sort(order[last])


def leave_last_out(users: np.ndarray, stamps: np.ndarray, val: str = "last",
                   seed: int = 0) -> np.ndarray:
    """Per user, the latest interaction → test; one more → val: the one before it (`last`) or a
    random earlier one (`random`, which leaves the most recent history in train, as the NCF
    protocol trains on everything but the held-out item). The rest → train. Users with fewer
    than 3 interactions keep all of them in train. Ties in time break by row order."""
    split = np.full(len(users), TRAIN)
    order = np.lexsort((np.arange(len(users)), stamps, users))
    sorted_users = users[order]
    ends = np.flatnonzero(np.r_[sorted_users[1:] != sorted_users[:-1], True])
    starts = np.r_[0, ends[:-1] + 1]
    enough = (ends - starts + 1) >= 3
    split[order[ends[enough]]] = TEST
    if val == "last":
        split[order[ends[enough] - 1]] = VAL
    elif val == "random":
        rng = np.random.default_rng(seed)
        lengths = ends[enough] - starts[enough]  # interactions before the test one
        picks = starts[enough] + np.floor(rng.random(len(lengths)) * lengths).astype(np.int64)
        split[order[picks]] = VAL
    else:
        raise ConfigError(f"data.split.val '{val}' is unknown: use last or random.")
    return split


def parse_cutoff(value: int | str) -> int:
    """A unix time in seconds, or an ISO date/time (UTC)."""
    if isinstance(value, int):
        return value
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"data.split.cutoff '{value}' is neither unix seconds nor an ISO date "
                          "(e.g. 1998-02-01).") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp())


def time_cutoff(users: np.ndarray, items: np.ndarray, stamps: np.ndarray, cutoff: int,
                test_days: float | None) -> tuple[np.ndarray, dict[str, int]]:
    """Before `cutoff` → train (its per-user last interaction → val); from `cutoff` (for
    `test_days`, if set) → test, keeping only users and items that train knows."""
    split = np.full(len(users), -1)
    before = stamps < cutoff
    end = cutoff + int(test_days * 86400) if test_days else np.iinfo(np.int64).max
    after = (stamps >= cutoff) & (stamps < end)
    if not before.any():
        raise DataError(f"No interactions before the cutoff {_date(cutoff)} (data starts "
                        f"{_date(stamps.min())}): nothing to train on.")
    inner = leave_last_out(users[before], stamps[before], "last")
    inner[inner == TEST] = TRAIN  # within the training window, only the val hold-out matters
    split[before] = inner
    known_users = set(users[split == TRAIN].tolist())
    known_items = set(items[split == TRAIN].tolist())
    cold = after & ~np.isin(users, list(known_users))
    unknown_item = after & ~cold & ~np.isin(items, list(known_items))
    test = after & ~cold & ~unknown_item
    split[test] = TEST
    if not test.any():
        raise DataError(
            f"The test split after the cutoff {_date(cutoff)} is empty (data ends "
            f"{_date(stamps.max())}; {int(after.sum())} interactions after it, "
            f"{int(cold.sum())} from users unseen before it): move data.split.cutoff earlier.")
    return split, {"test_from_users_unseen_in_train": int(cold.sum()),
                   "test_with_items_unseen_in_train": int(unknown_item.sum()),
                   "after_test_window": int((stamps >= end).sum())}


def _date(stamp: int) -> str:
    return dt.datetime.fromtimestamp(int(stamp), dt.UTC).strftime("%Y-%m-%d")


def sample_negatives(users: np.ndarray, positives: dict[int, set[int]], n_items: int, n: int,
                     seed: int) -> np.ndarray:
    """For each row's user, `n` distinct items the user never interacted with (any split)."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(users), n), dtype=np.int64)
    for row, user in enumerate(users.tolist()):
        seen = positives[user]
        if n_items - len(seen) < n:
            raise DataError(f"User {user} has interacted with all but {n_items - len(seen)} "
                            f"items: cannot sample {n} negatives (lower evaluate.num_negatives).")
        picked: list[int] = []
        chosen: set[int] = set()
        while len(picked) < n:
            for item in rng.integers(0, n_items, size=2 * n).tolist():
                if item not in seen and item not in chosen:
                    chosen.add(item)
                    picked.append(item)
                    if len(picked) == n:
                        break
        out[row] = picked
    return out


def prepare(cfg: DictConfig) -> dict:
    data = cfg.data
    raw: Interactions = instantiate(data.source, "data.source")
    removed: dict[str, int] = {}
    keep = keep_latest(raw.users, raw.items, raw.timestamps)
    removed["repeated_user_item_pairs"] = len(raw.users) - len(keep)
    users, items = raw.users[keep], raw.items[keep]
    ratings, stamps = raw.ratings[keep], raw.timestamps[keep]
    if data.implicit.min_rating is not None:
        positive = ratings >= data.implicit.min_rating
        removed[f"rating_below_{data.implicit.min_rating}"] = int((~positive).sum())
        users, items, ratings, stamps = (a[positive] for a in (users, items, ratings, stamps))
    if len(users) == 0:
        raise DataError("No interactions remain after cleaning; check data.implicit.min_rating.")

    titles, genres = raw.item_titles, raw.item_genres
    anonymise = data.anonymise
    key = None
    if anonymise.pseudonymise_ids:  # before anything is written: no raw id reaches an output
        key = load_key()
        pseudo_items = pseudonymise(key, "item", items)
        titles = {p: titles[r] for p, r in zip(pseudo_items, items, strict=True) if r in titles}
        genres = {p: genres[r] for p, r in zip(pseudo_items, items, strict=True) if r in genres}
        users, items = pseudonymise(key, "user", users), pseudo_items
    user_ids, user_codes = np.unique(users, return_inverse=True)
    item_ids, item_codes = np.unique(items, return_inverse=True)
    n_users, n_items = len(user_ids), len(item_ids)
    split_cfg = data.split
    if split_cfg.protocol == "leave_last_out":
        split = leave_last_out(user_codes, stamps, split_cfg.val, split_cfg.seed)
        extra: dict[str, int] = {}
    elif split_cfg.protocol == "time_cutoff":
        if split_cfg.cutoff is None:
            raise ConfigError("data.split.protocol=time_cutoff needs data.split.cutoff (unix "
                              "seconds or an ISO date).")
        split, extra = time_cutoff(user_codes, item_codes, stamps,
                                   parse_cutoff(split_cfg.cutoff), split_cfg.test_days)
    else:
        raise ConfigError(f"Unknown data.split.protocol '{split_cfg.protocol}': use "
                          "leave_last_out or time_cutoff.")
    removed.update(extra)
    used = split >= 0
    positives: dict[int, set[int]] = {u: set() for u in range(n_users)}
    for u, i in zip(user_codes[used].tolist(), item_codes[used].tolist(), strict=True):
        positives[u].add(i)
    # Frozen evaluation candidates: the same negatives for every model and every later run.
    n_neg = cfg.evaluate.num_negatives
    val_rows, test_rows = np.flatnonzero(split == VAL), np.flatnonzero(split == TEST)
    val_neg = sample_negatives(user_codes[val_rows], positives, n_items, n_neg, split_cfg.seed)
    test_neg = sample_negatives(user_codes[test_rows], positives, n_items, n_neg,
                                split_cfg.seed + 1)

    counts = {SPLIT_NAMES[s]: int((split == s).sum()) for s in (TRAIN, VAL, TEST)}
    train_per_user = np.bincount(user_codes[split == TRAIN], minlength=n_users)
    card = {
        "source": raw.name,
        "origin": raw.origin,
        "licence": raw.licence,
        "source_files": raw.files,
        "counts": counts,
        "users": n_users,
        "items": n_items,
        "users_in_test": int(len(np.unique(user_codes[test_rows]))),
        "density": float(used.sum() / (n_users * n_items)),
        "raw_count": int(len(raw.users)),
        "removed": removed,
        "implicit": "every interaction is a positive" if data.implicit.min_rating is None
        else f"rating >= {data.implicit.min_rating} is a positive",
        "train_interactions_per_user": {
            "min": int(train_per_user.min()), "median": float(np.median(train_per_user)),
            "max": int(train_per_user.max())},
        # Users per bucket of training activity: the reference distribution for drift checks.
        "activity_histogram": {"edges": ACTIVITY_EDGES, "users": np.histogram(
            train_per_user, bins=[*ACTIVITY_EDGES, np.inf])[0].tolist()},
        "time_range": {name: [_date(stamps[split == s].min()), _date(stamps[split == s].max())]
                       for s, name in SPLIT_NAMES.items() if (split == s).any()},
        "split": {"protocol": split_cfg.protocol, "seed": split_cfg.seed, "val": split_cfg.val,
                  "cutoff": None if split_cfg.cutoff is None
                  else _date(parse_cutoff(split_cfg.cutoff)),
                  "test_days": split_cfg.test_days},
        "num_negatives": n_neg,
        "anonymisation": anonymisation(key, anonymise.min_group_size, user_codes[used],
                                       item_codes[used], n_users, n_items),
    }
    catalog = {"user_ids": user_ids.tolist(), "item_ids": item_ids.tolist(),
               "titles": [titles.get(i, f"item {i}") for i in item_ids.tolist()],
               "genres": [genres.get(i, "") for i in item_ids.tolist()]}
    if key is not None:
        catalog |= {"pseudonymised": True, "pseudonym_key_id": key_id(key)}
    with atomic_dir(cfg.paths.prepared) as out:
        np.savez(out / "interactions.npz", user=user_codes[used].astype(np.int32),
                 item=item_codes[used].astype(np.int32), timestamp=stamps[used],
                 split=split[used].astype(np.int8))
        np.save(out / "val_negatives.npy", val_neg.astype(np.int32))
        np.save(out / "test_negatives.npy", test_neg.astype(np.int32))
        (out / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
        card["files"] = {name: sha256_file(out / name) for name in FILES}
        card["data_hash"] = hashlib.sha256(
            "".join(card["files"][name] for name in FILES).encode()).hexdigest()
        atomic_write_json(out / "data_card.json", card)
    return card


def anonymisation(key: bytes | None, k: int, users: np.ndarray, items: np.ndarray,
                  n_users: int, n_items: int) -> dict:
    """What the data card says about identifiability: whether ids are pseudonymous (and with
    which key, by its id), and the rare groups smaller than k (users with few interactions,
    items few users chose), which are the easiest to single out."""
    per_user = np.bincount(users, minlength=n_users)
    distinct = np.unique(np.stack([users, items]), axis=1)
    users_per_item = np.bincount(distinct[1], minlength=n_items)
    return {"pseudonymised_ids": key is not None,
            "key_id": key_id(key) if key is not None else None,
            "min_group_size": k,
            "users_below_k_interactions": int((per_user < k).sum()),
            "items_below_k_users": int((users_per_item < k).sum())}


def summarize(cfg: DictConfig, card: dict) -> str:
    counts = ", ".join(f"{k} {v:,}" for k, v in card["counts"].items())
    return (f"prepared {card['source']} ({card['split']['protocol']}): {card['users']:,} users, "
            f"{card['items']:,} items; {counts} interactions")
