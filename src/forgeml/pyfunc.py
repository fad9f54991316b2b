"""The MLflow model every ForgeML run logs: a pyfunc whose artifacts are ForgeML model files
(safetensors + JSON, see saved_network) and whose code is forgeml's own (`pyfunc_entry.py`, logged
as MLflow "models from code"). Nothing in it is pickled.

- networks (digits, recommender, language model): array in, the network's output out (class
  probabilities when logged with `output: softmax`);
- text classifiers (sentiment): a DataFrame with a `text` column in; label, probability and one
  p_<class> column per class out.
"""

from __future__ import annotations

import warnings

import mlflow.pyfunc

# The input is an array or a DataFrame, and the signature is logged explicitly.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")

ENTRY = "pyfunc_entry.py"


class ForgeMLModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        artifacts = context.artifacts
        self.predictor = self.network = None
        if "predictor" in artifacts:
            from forgeml.tasks.sentiment.predictor import load_predictor

            self.predictor = load_predictor(artifacts["predictor"])
        else:
            from forgeml.saved_network import load_network

            self.network = load_network(artifacts["network"])
        self.output = (context.model_config or {}).get("output")

    def predict(self, context, model_input, params=None):
        if self.predictor is not None:
            from forgeml.tasks.sentiment.predictor import predictions_frame

            texts = model_input["text"] if hasattr(model_input, "columns") else model_input
            return predictions_frame(self.predictor, [str(t) for t in list(texts)])
        import numpy as np
        import torch

        with torch.inference_mode():
            output = self.network(torch.as_tensor(np.asarray(model_input)))
            if self.output == "softmax":
                output = torch.softmax(output, dim=-1)
        return output.numpy()
