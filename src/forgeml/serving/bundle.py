"""An exported model as it is logged and served: a folder with `export.json` (what was exported
from which run, the inputs and outputs, the parity measured against PyTorch, every file's
SHA-256), the ONNX model(s) and the side files an endpoint needs (tokenizer, catalog). Loading
checks every hash first, so a damaged or swapped file is refused by name; nothing is unpickled."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeml.errors import ModelFileError, TrackingError
from forgeml.io import sha256_file

FORMAT = "forgeml-onnx/1"
MANIFEST = "export.json"
ARTIFACT_PATH = "onnx"  # inside the run's artifacts
MODEL_FILES = {"onnx": "model.onnx", "int8": "model.int8.onnx"}


@dataclass(frozen=True)
class Bundle:
    folder: Path
    manifest: dict[str, Any]
    model_format: str = "onnx"  # what `runner` serves: onnx (fp32), int8, or torch
    torch_module: Any = None  # the PyTorch model, for model_format "torch"

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @property
    def meta(self) -> dict[str, Any]:
        return self.manifest["meta"]

    def model_file(self, model_format: str) -> Path:
        models = self.manifest["models"]
        if model_format not in models:
            hint = (" Export it with `forgeml export --quantize int8`."
                    if model_format == "int8" else "")
            raise ModelFileError(f"Run {self.run_id} has no '{model_format}' model (it has "
                                 f"{', '.join(models)}).{hint}")
        return self.folder / models[model_format]

    def runner(self, threads: int):
        """inputs by name -> the model's output, in the chosen format."""
        from forgeml.serving.runtime import onnx_runner, torch_runner

        if self.model_format == "torch":
            names = [node["name"] for node in self.manifest["inputs"]]
            return torch_runner(self.torch_module, names, threads)
        return onnx_runner(self.model_file(self.model_format), threads)

    def file(self, name: str) -> Path:
        return self.folder / name

    def sha256(self, model_format: str) -> str:
        return self.manifest["files"][self.manifest["models"][model_format]]


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Bundle:
    """Hash every file in `folder` into the manifest and write it."""
    files = {path.name: sha256_file(path) for path in sorted(folder.iterdir())
             if path.is_file() and path.name != MANIFEST}
    manifest = {"format": FORMAT, **manifest, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return Bundle(folder, manifest)


def read_bundle(folder: str | Path) -> Bundle:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelFileError(f"{path} is missing: {folder} holds no exported ForgeML model.")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path} is not an export manifest ({err}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not in ForgeML's export format '{FORMAT}'.")
    for name, digest in manifest.get("files", {}).items():
        file = folder / name
        if Path(name).name != name or not file.is_file():
            raise ModelFileError(f"{file} is missing from the exported model.")
        if sha256_file(file) != digest:
            raise ModelFileError(f"{file} does not match the SHA-256 in {path}: the file was "
                                 "changed or damaged; refusing to load it.")
    return Bundle(folder, manifest)


def download_bundle(uri: str, run_id: str) -> Bundle | None:
    """The run's exported model, or None when it was never exported."""
    from forgeml.tracking import client, display_uri, download

    try:
        listed = [item.path for item in client(uri).list_artifacts(run_id, ARTIFACT_PATH)]
    except Exception as err:  # noqa: BLE001 - MLflow raises several kinds for a missing run
        raise TrackingError(f"Cannot read run {run_id} in {display_uri(uri)}: "
                            f"{str(err).splitlines()[0][:200]}") from None
    if f"{ARTIFACT_PATH}/{MANIFEST}" not in listed:
        return None
    return read_bundle(download(uri, run_id, ARTIFACT_PATH))
