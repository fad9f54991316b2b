"""The MLflow model of a sentiment run: ForgeML's pyfunc (forgeml.pyfunc) over the saved
predictor; it takes a DataFrame with a `text` column and returns label, probability and
per-class probabilities. Loading it needs forgeml installed, as `mlflow models serve
--env-manager local` has."""

from __future__ import annotations

from pathlib import Path

from forgeml import tracking
from forgeml.tasks.sentiment.predictor import TextPredictor, predictions_frame


def log_model(uri: str, run_id: str, predictor: TextPredictor, folder: Path,
              examples: list[str]) -> str:
    import pandas as pd
    import sklearn
    from mlflow.models import infer_signature

    example = pd.DataFrame({"text": examples})
    signature = infer_signature(example, predictions_frame(predictor, examples))
    return tracking.log_model(uri, run_id, {"predictor": folder}, signature, example,
                              requirements=(f"scikit-learn=={sklearn.__version__}", "skops",
                                            "transformers", "tokenizers"))
