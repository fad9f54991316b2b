"""Text from a language model: seeded sampling, and loading a model + tokenizer that MLflow logged
(by run id, or the registry's `champion` of a pipeline)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from forgeml.data.tokenizer import Tokenizer, load_tokenizer
from forgeml.errors import DataError, TrackingError
from forgeml.models.gpt import GPT


def generate_text(network: GPT, tokenizer: Tokenizer, prompt: str, max_new_tokens: int,
                  temperature: float = 1.0, top_k: int | None = None, seed: int = 1337
                  ) -> tuple[str, float]:
    """The sampled continuation of `prompt` (same seed, same text) and tokens/s."""
    ids = tokenizer.encode(prompt)
    if not ids:
        raise DataError("The prompt is empty: give at least one character to continue from.")
    generator = torch.Generator().manual_seed(seed)
    network.eval()
    start = time.perf_counter()
    out = network.generate(torch.tensor([ids], dtype=torch.long), max_new_tokens, temperature,
                           top_k, generator=generator)
    seconds = time.perf_counter() - start
    return tokenizer.decode(out[0, len(ids):].tolist()), max_new_tokens / max(seconds, 1e-9)


def load_logged(uri: str, run_id: str) -> tuple[GPT, Tokenizer]:
    """The logged network and the tokenizer it was trained with (both artifacts of the run)."""

    from forgeml.saved_network import download_network
    from forgeml.tracking import display_uri, download

    network = download_network(uri, run_id)
    if not isinstance(network, GPT):
        raise TrackingError(f"Run {run_id} did not log a language model "
                            f"(its model is a {type(network).__name__}).")
    try:
        path = download(uri, run_id, "config/tokenizer.json")
    except Exception as err:  # noqa: BLE001 - MLflow raises several kinds for a missing file
        raise TrackingError(f"Cannot load the tokenizer of run {run_id} from "
                            f"{display_uri(uri)}: {str(err).splitlines()[0][:200]}") from None
    return network, load_tokenizer(Path(path))
