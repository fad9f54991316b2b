"""The MLflow model of a sentiment run: a pyfunc over the saved predictor (safetensors/skops +
JSON), logged as "models from code" with `serving_entry.py`. It takes a DataFrame with a `text`
column and returns label, probability and per-class probabilities. Loading it needs forgeml
installed, as `mlflow models serve --env-manager local` has."""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow.pyfunc

from forgeml import tracking
from forgeml.tasks.sentiment.predictor import TextPredictor, load_predictor, predictions_frame

# The input is a DataFrame (or a list of texts), and the signature is logged explicitly.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")

ENTRY = Path(__file__).with_name("serving_entry.py")


class SentimentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.predictor = load_predictor(context.artifacts["predictor"])

    def predict(self, context, model_input, params=None):
        texts = model_input["text"] if hasattr(model_input, "columns") else model_input
        return predictions_frame(self.predictor, [str(t) for t in list(texts)])


def log_model(uri: str, run_id: str, predictor: TextPredictor, folder: Path,
              examples: list[str]) -> str:
    import pandas as pd
    import sklearn
    from mlflow.models import infer_signature

    example = pd.DataFrame({"text": examples})
    signature = infer_signature(example, predictions_frame(predictor, examples))
    return tracking.log_model(uri, run_id, ENTRY, {"predictor": folder}, signature, example,
                              requirements=(f"scikit-learn=={sklearn.__version__}", "skops",
                                            "transformers", "tokenizers"))
