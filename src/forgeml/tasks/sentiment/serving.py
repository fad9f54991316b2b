"""The MLflow model of a sentiment run: a pyfunc that takes a DataFrame with a `text` column and
returns label, probability and per-class probabilities. Loading it needs forgeml installed (the
pyfunc's class and the networks live here), as `mlflow models serve --env-manager local` has."""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow.pyfunc

from forgeml import tracking
from forgeml.tasks.sentiment.predictor import TextPredictor, load_predictor, predictions_frame

# The input is a DataFrame (or a list of texts) and the signature is logged explicitly.
warnings.filterwarnings("ignore", message="Add type hints to the `predict` method")


class SentimentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.predictor = load_predictor(context.artifacts["predictor"])

    def predict(self, context, model_input, params=None):
        texts = model_input["text"] if hasattr(model_input, "columns") else model_input
        return predictions_frame(self.predictor, [str(t) for t in list(texts)])


def log_model(uri: str, run_id: str, predictor: TextPredictor, folder: Path,
              examples: list[str]) -> str:
    import mlflow
    import pandas as pd
    import sklearn
    import torch
    from mlflow.models import infer_signature

    example = pd.DataFrame({"text": examples})
    signature = infer_signature(example, predictions_frame(predictor, examples))
    requirements = [f"mlflow=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}",
                    f"torch=={torch.__version__.split('+')[0]}", "transformers", "tokenizers"]
    with tracking.run_context(uri, run_id):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=SentimentModel(), artifacts={"predictor": str(folder)},
            signature=signature, input_example=example, pip_requirements=requirements)
    return info.model_uri
