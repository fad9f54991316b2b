"""A text classifier as one object: raw texts in, class probabilities out. The same object is
evaluated, saved beside the checkpoint, and logged to MLflow (as a pyfunc taking a `text` column),
so what is served is exactly what was measured."""

from __future__ import annotations

import importlib
import json
import pickle
import shutil
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from forgeml.data.text_batches import encode, length_sorted_batches, load_tokenizer, pad
from forgeml.errors import DataError

META = "predictor.json"


class TextPredictor(Protocol):
    class_names: list[str]

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...

    def save(self, folder: Path) -> Path: ...


class NeuralTextPredictor:
    """A network taking (token ids, attention mask), with its tokenizer."""

    def __init__(self, network, tokenizer_file: str | Path, class_names: list[str],
                 batch_size: int = 128):
        self.network = network.eval()
        self.tokenizer_file = Path(tokenizer_file)
        self.tokenizer = load_tokenizer(tokenizer_file, network.max_length)
        self.class_names, self.batch_size = list(class_names), batch_size

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        import torch

        sequences = encode(self.tokenizer, list(texts))
        out = np.zeros((len(sequences), len(self.class_names)), dtype=np.float32)
        device = next(self.network.parameters()).device
        with torch.inference_mode():
            for index in length_sorted_batches(np.array([len(s) for s in sequences]),
                                               self.batch_size):
                ids, mask = pad([sequences[i] for i in index])
                logits = self.network(ids.to(device), mask.to(device))
                out[index] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return out

    def save(self, folder: Path) -> Path:
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        cls = type(self.network)
        torch.save({"target": f"{cls.__module__}.{cls.__name__}", "spec": self.network.spec,
                    "state_dict": self.network.state_dict()}, folder / "network.pt")
        shutil.copyfile(self.tokenizer_file, folder / "tokenizer.json")
        (folder / META).write_text(json.dumps({"kind": "neural",
                                               "class_names": self.class_names}))
        return folder

    @classmethod
    def load(cls, folder: Path, class_names: list[str]) -> NeuralTextPredictor:
        import torch

        saved = torch.load(folder / "network.pt", map_location="cpu", weights_only=False)
        module, name = saved["target"].rsplit(".", 1)
        network = getattr(importlib.import_module(module), name)(**saved["spec"])
        network.load_state_dict(saved["state_dict"])
        return cls(network, folder / "tokenizer.json", class_names)


class EstimatorTextPredictor:
    """A scikit-learn pipeline over raw texts (e.g. TF-IDF + logistic regression)."""

    def __init__(self, estimator, class_names: list[str]):
        self.estimator, self.class_names = estimator, list(class_names)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        empty = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if empty:
            raise DataError(f"{len(empty)} text(s) are empty (first at position {empty[0]}): "
                            "there is nothing to classify.")
        return self.estimator.predict_proba(list(texts)).astype(np.float32)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "estimator.pkl", "wb") as handle:
            pickle.dump(self.estimator, handle)
        (folder / META).write_text(json.dumps({"kind": "estimator",
                                               "class_names": self.class_names}))
        return folder

    @classmethod
    def load(cls, folder: Path, class_names: list[str]) -> EstimatorTextPredictor:
        with open(folder / "estimator.pkl", "rb") as handle:
            return cls(pickle.load(handle), class_names)


def load_predictor(folder: str | Path) -> TextPredictor:
    folder = Path(folder)
    if not (folder / META).is_file():
        raise DataError(f"{folder} holds no saved text classifier ({META} is missing).")
    meta = json.loads((folder / META).read_text())
    kind = {"neural": NeuralTextPredictor, "estimator": EstimatorTextPredictor}[meta["kind"]]
    return kind.load(folder, meta["class_names"])


def seconds_per_1k(predictor: TextPredictor, texts: list[str]) -> float:
    """Wall time to classify 1,000 texts on this machine, measured on `texts` (after one warm-up
    batch), in batches as a service would."""
    predictor.predict_proba(texts[:32])
    start = time.perf_counter()
    predictor.predict_proba(texts)
    return (time.perf_counter() - start) / len(texts) * 1000


def predictions_frame(predictor: TextPredictor, texts: list[str]):
    """label, probability (of that label) and one p_<class> column per class."""
    import pandas as pd

    probs = predictor.predict_proba(texts)
    best = probs.argmax(1)
    frame = pd.DataFrame({"label": [predictor.class_names[i] for i in best],
                          "probability": probs[np.arange(len(best)), best]})
    for i, name in enumerate(predictor.class_names):
        frame[f"p_{name}"] = probs[:, i]
    return frame


def load_logged(uri: str, run_id: str) -> TextPredictor:
    """The predictor logged with a run (works for `runs:/` ids and champion-resolved runs)."""
    import mlflow.artifacts

    from forgeml.errors import TrackingError

    try:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"runs:/{run_id}/model/artifacts/predictor", tracking_uri=uri)
    except Exception as err:  # noqa: BLE001 - MLflow raises several kinds for a missing run
        raise TrackingError(f"Run {run_id} in {uri} has no logged sentiment model ({err}). Pass "
                            "the run id printed by the train stage (models/sentiment/run.json)."
                            ) from None
    return load_predictor(path)
