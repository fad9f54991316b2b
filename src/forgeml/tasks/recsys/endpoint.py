"""Answering recommendation requests with the exported recommender: user ids in, each user's
top-k unseen items out (the seen items are masked, as `forgeml recommend` does)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from forgeml.errors import DataError
from forgeml.privacy.pseudonyms import translator
from forgeml.serving.bundle import Bundle
from forgeml.serving.requests import RequestError, input_column, items, whole_number


class RecommenderEndpoint:
    default_column = "user"

    def __init__(self, bundle: Bundle, threads: int):
        self.bundle, self.run = bundle, bundle.runner(threads)
        self.catalog = json.loads(bundle.file("catalog.json").read_text(encoding="utf-8"))
        self.user_codes = {u: i for i, u in enumerate(self.catalog["user_ids"])}
        self.catalog_id = translator(self.catalog, "user")  # raw id -> pseudonym, if used
        self.n_items = len(self.catalog["item_ids"])
        with np.load(bundle.file("seen.npz"), allow_pickle=False) as arrays:
            users, items = arrays["user"], arrays["item"]
        # Each user's seen items as one slice of a user-sorted array (looked up per request).
        order = np.argsort(users, kind="stable")
        self.seen_items = items[order]
        self.seen_start = np.concatenate([[0], np.cumsum(np.bincount(
            users, minlength=len(self.user_codes)))])

    def codes(self, users: list) -> np.ndarray:
        ids = [self.catalog_id(u) for u in users]
        unknown = [u for u, known in zip(users, ids, strict=True) if known not in self.user_codes]
        if unknown:
            raise RequestError(404, f"Unknown user id '{unknown[0]}': the model knows "
                                    f"{len(self.user_codes):,} users; new users need a retrained "
                                    "model.")
        return np.array([self.user_codes[u] for u in ids], dtype=np.int64)

    def top_k(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.run({"users": codes}).copy()
        # Each user's seen items are never recommended again.
        for row, code in enumerate(codes.tolist()):
            scores[row, self.seen_items[self.seen_start[code]:self.seen_start[code + 1]]] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return top, np.take_along_axis(scores, top, axis=1)

    def listing(self, user: str, top: np.ndarray, scores: np.ndarray) -> list[dict]:
        return [{"user_id": user, "rank": rank, "item_id": self.catalog["item_ids"][item],
                 "title": self.catalog["titles"][item], "score": round(float(score), 6)}
                for rank, (item, score) in enumerate(zip(top, scores, strict=True), 1)]

    def answer(self, body, max_batch: int) -> dict:
        users = items(body, "users", "user", max_batch)
        if any(isinstance(u, bool) or not isinstance(u, str | int) for u in users):
            raise RequestError(422, "User ids must be strings (or whole numbers).")
        k = whole_number(body, "k", 10, 1, self.n_items)
        top, scores = self.top_k(self.codes(users), k)
        return {"recommendations": [
            {"user_id": str(user), "items": [{key: row[key] for key in
                                              ("rank", "item_id", "title", "score")}
                                             for row in self.listing(str(user), t, s)]}
            for user, t, s in zip(users, top, scores, strict=True)]}

    def rows(self, frame: pd.DataFrame, column: str | None, first_row: int,
             k: int = 10) -> pd.DataFrame:
        users = [str(u) for u in input_column(frame, column or self.default_column, "user")]
        try:
            codes = self.codes(users)
        except RequestError as err:
            raise DataError(f"rows from {first_row}: {err}") from None
        top, scores = self.top_k(codes, min(k, self.n_items))
        return pd.DataFrame([row for user, t, s in zip(users, top, scores, strict=True)
                             for row in self.listing(user, t, s)])
