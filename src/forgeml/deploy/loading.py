"""The model a server or a batch prediction uses: the run's exported bundle (the local copy, else
downloaded; verified either way), exported first when the run has none (or lacks the int8
model asked for)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from forgeml.serving.bundle import Bundle
from forgeml.serving.cache import bundle_for

FORMATS = ("onnx", "int8", "torch")


def bundle_of(uri: str, run_id: str, pipeline: str, model_format: str,
              params: Path | None, echo=print) -> Bundle:
    from forgeml.errors import ConfigError

    if model_format not in FORMATS:
        raise ConfigError(f"--format {model_format!r}: choose one of {', '.join(FORMATS)}.")
    needs = "onnx" if model_format == "torch" else model_format
    bundle = bundle_for(uri, run_id, needs)
    if bundle is None or needs not in bundle.manifest["models"]:
        from forgeml.deploy.export import export_run, load_pipeline_params

        echo(f"run {run_id} has no exported {model_format} model yet: exporting it")
        export_run(load_pipeline_params(pipeline, params), uri, run_id, pipeline,
                   quantize=True, examples=256)
        bundle = bundle_for(uri, run_id, needs)
    if bundle.manifest.get("pipeline") != pipeline:
        raise ConfigError(f"Run {run_id} was exported as a '{bundle.manifest.get('pipeline')}' "
                          f"model, not '{pipeline}'; pass the right --pipeline.")
    module = None
    if model_format == "torch":
        module = hooks_of(bundle).exportable(uri, run_id).module
    return dataclasses.replace(bundle, model_format=model_format, torch_module=module)


def hooks_of(bundle: Bundle):
    from forgeml.tasks import task_named

    return task_named(bundle.manifest["task"]).serving_hooks(bundle.manifest["pipeline"])


def endpoint_of(bundle: Bundle, threads: int) -> Any:
    return hooks_of(bundle).endpoint(bundle, threads)


def version_of(bundle: Bundle) -> dict[str, Any]:
    served = "onnx" if bundle.model_format == "torch" else bundle.model_format
    return {"pipeline": bundle.manifest["pipeline"], "task": bundle.manifest["task"],
            "run_id": bundle.run_id, "model_format": bundle.model_format,
            # torch serves the network the ONNX file was exported from and checked against
            "sha256": bundle.sha256(served), "inputs": bundle.manifest["inputs"],
            "parity": bundle.manifest["parity"],
            "exported_with": bundle.manifest["exported_with"],
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
