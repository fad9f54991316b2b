"""One answer from the command line (`forgeml predict --text`): through the run's exported ONNX
model when it has one — ONNX Runtime and the tokenizer only, no torch, and no MLflow once the
export is in the local cache (forgeml.serving.cache) — else through the logged PyTorch /
scikit-learn predictor."""

from __future__ import annotations


def predict_text(uri: str, run_id: str, text: str) -> tuple[str, float]:
    from forgeml.serving.cache import bundle_for

    bundle = bundle_for(uri, run_id)
    if bundle is not None and bundle.manifest.get("task") == "sentiment":
        from forgeml.tasks.sentiment.endpoint import TextEndpoint

        answer = TextEndpoint(bundle, threads=1).answer({"text": text}, max_batch=1)
        best = answer["predictions"][0]
        return best["label"], best["probability"]
    from forgeml.tasks.sentiment.predictor import load_logged, predictions_frame

    row = predictions_frame(load_logged(uri, run_id), [text]).iloc[0]
    return row["label"], float(row["probability"])
