"""Text from a language model: seeded sampling (the evaluate stage's samples and `forgeml
generate`; loading a logged model is in logged.py)."""

from __future__ import annotations

import time

import torch

from forgeml.data.tokenizer import Tokenizer
from forgeml.errors import DataError
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
