"""The MLflow model of a sentiment run: a pyfunc that takes a DataFrame with a `text` column and
returns label, probability and per-class probabilities. Loading it needs forgeml installed (the
pyfunc's class and the networks live here), as `mlflow models serve --env-manager local` has."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc

from forgeml.tasks.sentiment.predictor import TextPredictor, load_predictor, predictions_frame


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
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=SentimentModel(), artifacts={"predictor": str(folder)},
            signature=signature, input_example=example, pip_requirements=requirements)
    return info.model_uri


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
