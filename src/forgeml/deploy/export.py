"""`forgeml export`: a run's model exported to ONNX (fp32, int8), checked on real test inputs of its
task (the task registry supplies the network and the inputs), and logged to the run."""

from __future__ import annotations

import tempfile
from pathlib import Path

from forgeml.errors import ConfigError
from forgeml.serving.bundle import ARTIFACT_PATH, Bundle
from forgeml.serving.export import build_bundle, log_bundle


def export_run(cfg, uri: str, run_id: str, pipeline: str, quantize: bool,
               examples: int) -> Bundle:
    """Export the model of `run_id` (a run of `pipeline`), checked on `examples` test inputs of
    the data `cfg` names, and log it to the run."""
    from forgeml.tasks import task_of

    task = task_of(cfg)
    hooks = task.serving_hooks(pipeline)
    exportable = hooks.exportable(uri, run_id)
    inputs = hooks.test_inputs(cfg, examples)
    with tempfile.TemporaryDirectory() as scratch:
        bundle = build_bundle(exportable, inputs, Path(scratch) / ARTIFACT_PATH, quantize,
                              {"task": task.name, "pipeline": pipeline, "run_id": run_id})
        log_bundle(uri, run_id, bundle, {name: array[:2] for name, array in inputs.items()})
        return Bundle(Path(), bundle.manifest)


def params_for(pipeline: str, params: Path | None) -> Path:
    """The params file of `pipeline`: given, else pipelines/<pipeline>/params.yaml, else the
    root params.yaml (the default pipeline)."""
    from forgeml.tracking import project_root

    if params is not None:
        return params
    root = project_root()
    own = root / "pipelines" / pipeline / "params.yaml"
    return own if own.is_file() else root / "params.yaml"


def load_pipeline_params(pipeline: str, params: Path | None):
    from omegaconf import OmegaConf

    from forgeml.tasks import load_params

    path = params_for(pipeline, params)
    cfg = load_params(path)
    if OmegaConf.select(cfg, "pipeline.name") != pipeline:
        raise ConfigError(f"{path} is the params file of pipeline '{cfg.pipeline.name}', not "
                          f"'{pipeline}'; pass the right one with --params.")
    return cfg


def export_command(uri: str, run: str, pipeline: str, fmt: str, quantize: str | None,
                   params: Path | None, examples: int, console) -> Bundle:
    from forgeml.tracking import resolve_run

    if fmt != "onnx":
        raise ConfigError(f"--format {fmt!r} is not supported; ONNX ('onnx') is.")
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize {quantize!r} is not supported; int8 is.")
    cfg = load_pipeline_params(pipeline, params)
    run_id = resolve_run(uri, run, pipeline)
    bundle = export_run(cfg, uri, run_id, pipeline, quantize == "int8", examples)
    for kind, check in bundle.manifest["parity"].items():
        console.print(f"{kind}: max |ONNX - PyTorch| {check['max_abs_diff']:.2e}, top-1 "
                      f"agreement {check['top1_agreement']:.2%} on {check['examples']} test "
                      f"inputs; sha256 {bundle.sha256(kind)[:16]}…", highlight=False,
                      soft_wrap=True)
    console.print(f"logged to run {run_id} under {ARTIFACT_PATH}/ and as the ONNX model "
                  "'onnx-model'")
    return bundle
