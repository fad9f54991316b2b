"""A plain-PyTorch fine-tuning loop for the sentiment benchmark: the same MiniLM classifier,
batches, layer-wise learning rates, warm-up + linear decay and clipping as `forgeml train`, with
nothing else. Prints one JSON line: tokens/s and texts/s over the training loop.

    python benchmarks/plain_minilm.py pipelines/sentiment/params.yaml
"""

from __future__ import annotations

import json
import sys
import time

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from forgeml.data.reviews import package_file
from forgeml.data.text_batches import encode, load_tokenizer, read_split
from forgeml.models.minilm_classifier import MiniLMClassifier
from forgeml.training.text_datamodule import BucketedTextBatches


def main(params_path: str) -> None:
    cfg = OmegaConf.load(params_path)
    torch.manual_seed(cfg.seed)
    model_cfg = {k: v for k, v in OmegaConf.to_container(cfg.model).items() if k != "_target_"}
    network = MiniLMClassifier(**model_cfg)
    tokenizer = load_tokenizer(package_file(cfg.data.tokenizer.package, cfg.data.tokenizer.file),
                               network.max_length)
    texts, labels = read_split(cfg.paths.prepared, "train")
    limit = cfg.train.train_limit or len(texts)
    batches = BucketedTextBatches(encode(tokenizer, texts[:limit]), labels[:limit],
                                  cfg.train.batch_size, cfg.seed)
    groups = network.parameter_groups(cfg.optimizer.lr, cfg.train.layer_lr_decay,
                                      cfg.train.head_lr_multiplier)
    optimizer = torch.optim.AdamW(groups, lr=cfg.optimizer.lr,
                                  weight_decay=cfg.optimizer.weight_decay)
    total = len(batches) * cfg.trainer.max_epochs
    warmup = max(1, int(total * cfg.train.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (
        (step + 1) / warmup if step < warmup else max(0.0, (total - step) / (total - warmup))))
    network.train()
    tokens = seen = 0
    start = time.perf_counter()
    for _ in range(cfg.trainer.max_epochs):
        for (ids, mask), y in batches:
            loss = F.cross_entropy(network(ids, mask), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), cfg.trainer.gradient_clip_val)
            optimizer.step()
            scheduler.step()
            tokens += int(mask.sum())
            seen += len(y)
    seconds = time.perf_counter() - start
    print(json.dumps({"train_tokens_per_second": tokens / seconds,
                      "train_samples_per_second": seen / seconds, "train_seconds": seconds,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main(sys.argv[1])
