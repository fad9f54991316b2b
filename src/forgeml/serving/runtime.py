"""ONNX Runtime sessions with a fixed thread count (what every latency figure is measured with),
and the PyTorch fp32 model behind the same call, for side-by-side comparisons."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from forgeml.errors import ModelFileError

Run = Callable[[dict[str, np.ndarray]], np.ndarray]


def onnx_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - ORT raises its own kinds for a bad file
        raise ModelFileError(f"{path} is not a loadable ONNX model "
                             f"({str(err).splitlines()[0][:200]}).") from None


def onnx_runner(path: Path, threads: int) -> Run:
    """inputs (by name) -> the model's single output."""
    session = onnx_session(path, threads)
    names = [node.name for node in session.get_inputs()]

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(None, {name: inputs[name] for name in names})[0]

    return run


def torch_runner(module, input_names: list[str], threads: int) -> Run:
    """The same call over the PyTorch module the ONNX model was exported from."""
    import torch

    torch.set_num_threads(threads)
    module = module.eval()

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return module(*(torch.from_numpy(inputs[name]) for name in input_names)).numpy()

    return run
