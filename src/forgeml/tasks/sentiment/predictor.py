"""A text classifier as one object: raw texts in, class probabilities out. The same object is
evaluated, saved beside the checkpoint, and logged to MLflow (as a pyfunc taking a `text` column),
so what is served is exactly what was measured."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from forgeml.data.text_batches import encode, length_sorted_batches, load_tokenizer, pad
from forgeml.errors import DataError, ModelFileError

META = "predictor.json"
PREDICTOR_DIR = "predictor"  # inside paths.models: what evaluate scores and MLflow serves
BASELINE_MODEL_DIR = "model"  # inside paths.baselines/<name>: a baseline's paths.models
MAIN = "model"  # the evaluation's key of the pipeline's own model (the others: its baselines)
ESTIMATOR_FILE = "estimator.skops"


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
        from forgeml.saved_network import ARTIFACT, save_network

        folder.mkdir(parents=True, exist_ok=True)
        save_network(self.network, folder / ARTIFACT)
        shutil.copyfile(self.tokenizer_file, folder / "tokenizer.json")
        (folder / META).write_text(json.dumps({"kind": "neural",
                                               "class_names": self.class_names}))
        return folder

    @classmethod
    def load(cls, folder: Path, class_names: list[str]) -> NeuralTextPredictor:
        from forgeml.saved_network import ARTIFACT, load_network

        return cls(load_network(folder / ARTIFACT), folder / "tokenizer.json", class_names)


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
        import skops.io

        folder.mkdir(parents=True, exist_ok=True)
        skops.io.dump(self.estimator, folder / ESTIMATOR_FILE)
        (folder / META).write_text(json.dumps({"kind": "estimator",
                                               "class_names": self.class_names}))
        return folder

    @classmethod
    def load(cls, folder: Path, class_names: list[str]) -> EstimatorTextPredictor:
        """skops, never pickle: only the scikit-learn/NumPy/SciPy types skops trusts by
        default are rebuilt (TRUSTED_TYPES adds none); anything else is refused by name."""
        import skops.io
        from sklearn.pipeline import Pipeline

        path = folder / ESTIMATOR_FILE
        if not path.is_file():
            raise ModelFileError(f"{path} is missing (estimators saved by older ForgeML "
                                 "versions were pickled and are no longer loaded; retrain).")
        try:
            untrusted = skops.io.get_untrusted_types(file=path)
            if set(untrusted) - set(TRUSTED_TYPES):
                raise ModelFileError(f"{path} holds types ForgeML does not trust: "
                                     f"{', '.join(sorted(untrusted))}; refusing to load it.")
            estimator = skops.io.load(path, trusted=list(TRUSTED_TYPES))
        except ModelFileError:
            raise
        except Exception as err:  # noqa: BLE001 - not a zip, damaged, wrong schema
            raise ModelFileError(f"{path} is not a skops estimator file "
                                 f"({str(err).splitlines()[0][:200]}).") from None
        if not isinstance(estimator, Pipeline):
            raise ModelFileError(f"{path} holds a {type(estimator).__name__}, not a "
                                 "scikit-learn Pipeline.")
        return cls(estimator, class_names)


# Types trusted beyond skops' defaults: none (the TF-IDF + logistic regression pipeline is made
# only of types skops already trusts).
TRUSTED_TYPES: tuple[str, ...] = ()


def load_predictor(folder: str | Path) -> TextPredictor:
    folder = Path(folder)
    if not (folder / META).is_file():
        raise DataError(f"{folder} holds no saved text classifier ({META} is missing).")
    try:
        meta = json.loads((folder / META).read_text())
        kind = {"neural": NeuralTextPredictor, "estimator": EstimatorTextPredictor}[meta["kind"]]
        class_names = [str(name) for name in meta["class_names"]]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ModelFileError(f"{folder / META} is not a ForgeML predictor description "
                             f"({type(err).__name__}: {err}).") from None
    return kind.load(folder, class_names)


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

    from forgeml.errors import TrackingError
    from forgeml.tracking import display_uri, download

    try:
        path = download(uri, run_id, "model/artifacts/predictor")
    except Exception as err:  # noqa: BLE001 - MLflow raises several kinds for a missing run
        raise TrackingError(f"Run {run_id} in {display_uri(uri)} has no logged sentiment "
                            f"model ({str(err).splitlines()[0][:200]}). Pass "
                            "the run id printed by the train stage (models/sentiment/run.json)."
                            ) from None
    return load_predictor(path)
