"""Top-k recommendations from a recommender that MLflow logged (by run id or the registry's
`champion`): for one user, or for every user into a CSV/JSONL file. Through the run's exported
ONNX model when it has one (no torch; no MLflow once it is in the local cache), else through
the logged PyTorch network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from forgeml.errors import DataError, TrackingError
from forgeml.io import atomic_write_text
from forgeml.privacy.pseudonyms import translator


class ExportedRecommender:
    """The same answers from the exported model (forgeml.tasks.recsys.endpoint)."""

    def __init__(self, endpoint):
        self.endpoint, self.catalog = endpoint, endpoint.catalog

    def for_user(self, user_id: str, k: int) -> list[dict]:
        from forgeml.serving.requests import RequestError

        try:
            codes = self.endpoint.codes([user_id])
        except RequestError as err:
            raise DataError(str(err)) from None
        top, scores = self.endpoint.top_k(codes, min(k, self.endpoint.n_items))
        return self.endpoint.listing(user_id, top[0], scores[0])

    def for_all(self, k: int, batch: int = 256) -> list[dict]:
        ids, rows = self.catalog["user_ids"], []
        for start in range(0, len(ids), batch):
            codes = np.arange(start, min(start + batch, len(ids)), dtype=np.int64)
            top, scores = self.endpoint.top_k(codes, min(k, self.endpoint.n_items))
            for code, items, values in zip(codes, top, scores, strict=True):
                rows += self.endpoint.listing(ids[code], items, values)
        return rows


class LoggedRecommender:
    def __init__(self, network, catalog: dict, seen: list[set[int]]):
        self.network, self.catalog, self.seen = network.eval(), catalog, seen
        self.user_codes = {u: i for i, u in enumerate(catalog["user_ids"])}
        self.catalog_id = translator(catalog, "user")  # raw id -> pseudonym, if used
        self.n_items = len(catalog["item_ids"])

    def user_code(self, user_id: str) -> int:
        if self.catalog_id(user_id) not in self.user_codes:
            known = self.catalog["user_ids"]
            raise DataError(f"Unknown user id '{user_id}': the model knows {len(known):,} users "
                            f"(e.g. {', '.join(known[:3])}). New users need a retrained model.")
        return self.user_codes[self.catalog_id(user_id)]

    def top_k(self, codes: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Item codes and scores (len(codes), k) of the best unseen items per user."""
        import torch

        from forgeml.models.ranker import score_candidates

        items = torch.arange(self.n_items).expand(len(codes), -1)
        with torch.no_grad():
            scores = score_candidates(self.network, torch.tensor(codes), items).numpy()
        for row, code in enumerate(codes):
            scores[row, list(self.seen[code])] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return top, np.take_along_axis(scores, top, axis=1)

    def for_user(self, user_id: str, k: int) -> list[dict]:
        top, scores = self.top_k([self.user_code(user_id)], k)
        return [self._row(user_id, rank, item, score)
                for rank, (item, score) in enumerate(zip(top[0], scores[0], strict=True), 1)]

    def for_all(self, k: int, batch: int = 256) -> list[dict]:
        rows = []
        ids = self.catalog["user_ids"]
        for start in range(0, len(ids), batch):
            codes = list(range(start, min(start + batch, len(ids))))
            top, scores = self.top_k(codes, k)
            for code, items, values in zip(codes, top, scores, strict=True):
                rows += [self._row(ids[code], rank, item, score)
                         for rank, (item, score) in enumerate(zip(items, values, strict=True), 1)]
        return rows

    def _row(self, user_id: str, rank: int, item: int, score: float) -> dict:
        return {"user_id": user_id, "rank": rank, "item_id": self.catalog["item_ids"][item],
                "title": self.catalog["titles"][item], "score": round(float(score), 6)}


def load_logged(uri: str, run_id: str) -> LoggedRecommender | ExportedRecommender:
    from forgeml.serving.cache import bundle_for

    bundle = bundle_for(uri, run_id)
    if bundle is not None and bundle.manifest.get("task") == "recsys":
        from forgeml.tasks.recsys.endpoint import RecommenderEndpoint

        return ExportedRecommender(RecommenderEndpoint(bundle, threads=1))
    return load_network_recommender(uri, run_id)


def logged_files(uri: str, run_id: str) -> tuple:
    """The run's network, its `recommender/` folder (catalog.json, seen.npz) and catalogue."""
    from forgeml.saved_network import download_network
    from forgeml.tracking import display_uri, download

    network = download_network(uri, run_id)
    try:
        folder = download(uri, run_id, "recommender")
        catalog = json.loads((folder / "catalog.json").read_text(encoding="utf-8"))
    except Exception as err:  # noqa: BLE001 - MLflow raises several kinds for a missing file
        raise TrackingError(f"Cannot load the catalog of run {run_id} from {display_uri(uri)}: "
                            f"{str(err).splitlines()[0][:200]}") from None
    return network, folder, catalog


def load_network_recommender(uri: str, run_id: str) -> LoggedRecommender:
    from forgeml.tasks.recsys.network import seen_items

    network, folder, catalog = logged_files(uri, run_id)
    return LoggedRecommender(network, catalog,
                             seen_items(folder / "seen.npz", len(catalog["user_ids"])))


def write_rows(rows: list[dict], path: Path) -> Path:
    """CSV, or JSON lines when the file name ends in .jsonl; written atomically."""
    if path.suffix == ".jsonl":
        text = "".join(json.dumps(r) + "\n" for r in rows)
    else:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["user_id", "rank", "item_id", "title",
                                                    "score"])
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    return atomic_write_text(path, text)
