"""ForgeML's model file format: `network.json` (which registered network, its plain constructor
arguments, the weights' SHA-256) beside `weights.safetensors`. Loading never unpickles: the
class comes from forgeml.models.registry, the weights from safetensors, and the file's hash is
checked first, so a wrong or tampered model is refused with its name."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from torch import nn

from forgeml.errors import ModelFileError
from forgeml.io import readable_mode
from forgeml.models import registry

FORMAT = "forgeml-network/1"
SPEC_FILE = "network.json"
WEIGHTS_FILE = "weights.safetensors"
ARTIFACT = "network"  # the folder's name, also inside a logged MLflow model's artifacts
# The MLflow model's code file (it loads with forgeml.pyfunc), beside this module.
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_network(network: nn.Module, folder: Path) -> Path:
    from safetensors.torch import save_model

    spec = registry.spec_of(network)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    save_model(network, str(weights))  # keeps one copy of tied weights (the GPT's embedding)
    os.chmod(weights, readable_mode())  # safetensors writes 0600; the team reads the store
    document = {"format": FORMAT, **spec, "weights": WEIGHTS_FILE, "sha256": sha256(weights)}
    (folder / SPEC_FILE).write_text(json.dumps(document, indent=1))
    return folder


def read_spec(folder: Path) -> dict:
    path = folder / SPEC_FILE
    if not path.is_file():
        raise ModelFileError(f"{path} is missing: {folder} holds no ForgeML model (models "
                             "logged by older ForgeML versions were pickled and are no longer "
                             "loaded; retrain them).")
    try:
        spec = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path} is not a ForgeML model description ({err}).") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not in ForgeML's model format '{FORMAT}'.")
    return spec


def load_network(folder: str | Path) -> nn.Module:
    """The saved network, rebuilt from the registry, in eval mode on the CPU."""
    from safetensors.torch import load_model

    folder = Path(folder)
    spec = read_spec(folder)
    weights = folder / WEIGHTS_FILE
    if spec.get("weights") != WEIGHTS_FILE or not weights.is_file():
        raise ModelFileError(f"{weights} is missing.")
    if sha256(weights) != spec.get("sha256"):
        raise ModelFileError(f"{weights} does not match the SHA-256 in {folder / SPEC_FILE}: "
                             "the file was changed or damaged; refusing to load it.")
    try:
        network = registry.build(spec)
    except ModelFileError as err:
        raise ModelFileError(f"{folder / SPEC_FILE}: {err}") from None
    try:
        load_model(network, str(weights), strict=True, device="cpu")
    except Exception as err:  # noqa: BLE001 - safetensors raises several kinds for a bad file
        first = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ModelFileError(f"{weights} is not a safetensors file of {spec['target']} "
                             f"weights ({first}).") from None
    return network.eval()


def log_network(uri: str, run_id: str, network, input_example,
                output_transform: str | None = None) -> str:
    """Log `network` as the run's MLflow model with its signature; `output_transform="softmax"`
    describes (and serves) the output as class probabilities."""
    import tempfile

    import torch
    from mlflow.models import infer_signature

    from forgeml import tracking

    network = network.eval().cpu()
    with torch.no_grad():
        output = network(torch.as_tensor(input_example))
        if output_transform == "softmax":
            output = torch.softmax(output, dim=-1)
    signature = infer_signature(input_example, output.numpy())
    with tempfile.TemporaryDirectory() as scratch:
        folder = save_network(network, Path(scratch) / ARTIFACT)
        return tracking.log_model(uri, run_id, PYFUNC_ENTRY,
                                  {"network": folder}, signature, input_example,
                                  model_config={"output": output_transform}
                                  if output_transform else None)


def download_network(uri: str, run_id: str, artifact_path: str = f"model/artifacts/{ARTIFACT}"
                     ) -> nn.Module:
    """The network logged with a run (its MLflow model), from the store at `uri`."""

    from forgeml.errors import TrackingError
    from forgeml.tracking import display_uri, download

    try:
        folder = download(uri, run_id, artifact_path)
    except Exception as err:  # noqa: BLE001 - MLflow raises several kinds for a missing run
        raise TrackingError(f"Run {run_id} in {display_uri(uri)} has no ForgeML model at "
                            f"'{artifact_path}' ({str(err).splitlines()[0][:200]}). Runs logged "
                            "before the safe model format need retraining.") from None
    return load_network(folder)
