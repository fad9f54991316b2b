"""The exported image classifier: raw [0, 1] pixels in (`images`, batch first), class
probabilities out (`probabilities`), checked on the prepared test split."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from forgeml.serving.export import Exportable


def logged_config(uri: str, run_id: str) -> dict:
    """The composed config the run was trained with (logged as config/config.yaml)."""
    import yaml

    from forgeml.errors import TrackingError
    from forgeml.tracking import display_uri, download

    try:
        path = download(uri, run_id, "config/config.yaml")
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception as err:  # noqa: BLE001 - MLflow raises several kinds for a missing file
        raise TrackingError(f"Run {run_id} in {display_uri(uri)} has no readable "
                            f"config/config.yaml ({str(err).splitlines()[0][:200]}).") from None


def exportable_network(network, class_names: list, image_shape: list) -> Exportable:
    """A pixels-in network (NormalizedNetwork) with softmax, as the ONNX model's graph."""
    from torch import nn

    return Exportable(
        module=nn.Sequential(network.eval(), nn.Softmax(dim=-1)), input_names=["images"],
        output_name="probabilities", dynamic_axes={"images": {0: "batch"}},
        meta={"class_names": [str(name) for name in class_names],
              "image_shape": list(image_shape)})


def exportable(uri: str, run_id: str) -> Exportable:
    from forgeml.saved_network import download_network

    data = logged_config(uri, run_id)["data"]
    return exportable_network(download_network(uri, run_id), data["class_names"],
                              data["image_shape"])


def test_inputs(cfg: DictConfig, count: int) -> dict[str, np.ndarray]:
    from forgeml.data.tensors import load_split

    images, _ = load_split(cfg.paths.prepared, "test")
    return {"images": images[:count].numpy().astype(np.float32)}
