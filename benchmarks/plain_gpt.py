"""The plain-PyTorch reference for the LM benchmark: nanoGPT's training loop (random windows,
AdamW with warm-up + cosine decay, gradient clipping) on a prepared ForgeML project's tokens,
with the same GPT module, hyper-parameters and seeds as `forgeml train`.

    python benchmarks/plain_gpt.py pipelines/lm/params.yaml OUT.pt   # run in a prepared project

Prints one JSON line: steps, training seconds (loop only) and tokens/s.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.nn import functional as F

from forgeml.data.token_stream import load_tokens, windows
from forgeml.models.gpt import GPT
from forgeml.training.language_model import decay_groups, warmup_cosine


def main() -> None:
    params = yaml.safe_load(Path(sys.argv[1]).read_text())
    card = json.loads((Path(params["paths"]["prepared"]) / "data_card.json").read_text())
    model_cfg = {k: v for k, v in params["model"].items() if k != "_target_"}
    train_cfg, opt_cfg = params["train"], params["optimizer"]
    steps, clip = params["trainer"]["max_steps"], params["trainer"]["gradient_clip_val"]
    block, batch = model_cfg["block_size"], train_cfg["batch_size"]
    tokens = load_tokens(params["paths"]["prepared"], "train", card["tokenizer"]["vocab_size"])

    torch.manual_seed(params["seed"])
    model = GPT(vocab_size=card["tokenizer"]["vocab_size"], **model_cfg)
    optimizer = torch.optim.AdamW(decay_groups(model, opt_cfg["weight_decay"]), lr=opt_cfg["lr"],
                                  betas=tuple(opt_cfg["betas"]))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(
        train_cfg["warmup_steps"], steps, train_cfg["min_lr_ratio"]))
    generator = torch.Generator().manual_seed(params["seed"])
    high = len(tokens) - block

    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        x, y = windows(tokens, torch.randint(high, (batch,), generator=generator), block)
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        schedule.step()
    seconds = time.perf_counter() - start
    torch.save(model.state_dict(), sys.argv[2])
    print(json.dumps({"steps": steps, "train_seconds": seconds,
                      "train_tokens_per_second": steps * batch * block / seconds,
                      "final_train_loss": float(loss), "threads": torch.get_num_threads(),
                      "numpy": np.__version__}))


if __name__ == "__main__":
    main()
