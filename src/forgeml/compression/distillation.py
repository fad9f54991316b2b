"""Knowledge distillation (Hinton et al., 2015) and plain fine-tuning for small networks: a few
epochs of Adam on in-memory tensors. The student learns from the teacher's
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


def fit(network: nn.Module, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor,
        epochs: int, batch_size: int, lr: float, seed: int,
        teacher_logits: torch.Tensor | None = None, temperature: float = 1.0,
        alpha: float = 0.0) -> nn.Module:
    """Train `network` in place on `inputs` (tensors indexed by example, e.g. images, or token
    ids and mask); with the teacher's logits for the same examples, on the distillation loss."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    network.train()
    for _ in range(epochs):
        for index in torch.randperm(len(labels), generator=generator).split(batch_size):
            logits = network(*(x[index] for x in inputs))
            loss = (F.cross_entropy(logits, labels[index]) if teacher_logits is None else
                    distillation_loss(logits, teacher_logits[index], labels[index],
                                      temperature, alpha))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return network.eval()


@torch.inference_mode()
def logits_of(network: nn.Module, inputs: tuple[torch.Tensor, ...],
              batch: int = 1024) -> torch.Tensor:
    network.eval()
    return torch.cat([network(*(x[i:i + batch] for x in inputs))
                      for i in range(0, len(inputs[0]), batch)])
