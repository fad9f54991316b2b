"""The MLflow model of a network run (digits, recommender, language model): a pyfunc whose
artifact is a ForgeML model file (safetensors + JSON, see saved_network) and whose code is
forgeml's own (`pyfunc_entry.py`, logged as MLflow "models from code"). Nothing in it is
pickled. Array in, the network's output out (class probabilities with `output: softmax`).
The sentiment task's text model is forgeml.tasks.sentiment.serving."""

from __future__ import annotations

import warnings

import mlflow.pyfunc

# The input is an array or a DataFrame, and the signature is logged explicitly.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")

class ForgeMLModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from forgeml.saved_network import load_network

        self.network = load_network(context.artifacts["network"])
        self.output = (context.model_config or {}).get("output")

    def predict(self, context, model_input, params=None):
        import numpy as np
        import torch

        with torch.inference_mode():
            output = self.network(torch.as_tensor(np.asarray(model_input)))
            if self.output == "softmax":
                output = torch.softmax(output, dim=-1)
        return output.numpy()
