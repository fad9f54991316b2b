"""Knowledge distillation (Hinton et al., 2015) and plain fine-tuning for small image networks:
a few epochs of Adam on in-memory tensors. The student learns from the teacher's
temperature-softened probabilities (KL, scaled by T^2) and from the labels (cross-entropy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    soft = F.kl_div(F.log_softmax(student_logits / temperature, -1),
                    F.log_softmax(teacher_logits / temperature, -1),
                    log_target=True, reduction="batchmean") * temperature ** 2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def fit(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int,
        batch_size: int, lr: float, seed: int, teacher: nn.Module | None = None,
        temperature: float = 1.0, alpha: float = 0.0) -> nn.Module:
    """Train `network` in place; with a teacher, on the distillation loss."""
    generator = torch.Generator().manual_seed(seed)
    teacher_logits = None
    if teacher is not None:
        with torch.inference_mode():
            teacher_logits = torch.cat([teacher.eval()(images[i:i + 1024])
                                        for i in range(0, len(images), 1024)])
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    network.train()
    for _ in range(epochs):
        for index in torch.randperm(len(images), generator=generator).split(batch_size):
            logits = network(images[index])
            loss = (F.cross_entropy(logits, labels[index]) if teacher_logits is None else
                    distillation_loss(logits, teacher_logits[index], labels[index],
                                      temperature, alpha))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return network.eval()
