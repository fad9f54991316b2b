"""TextCNN (Kim, 2014): word-piece embeddings -> parallel 1-D convolutions of several widths ->
max over time -> dropout -> linear. Trained from scratch: the cheap neural baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TextCNN(nn.Module):
    def __init__(self, vocab_size: int = 30522, num_classes: int = 2, embed_dim: int = 128,
                 kernel_sizes: tuple[int, ...] = (3, 4, 5), channels: int = 100,
                 dropout: float = 0.5, max_length: int = 64, pad_id: int = 0):
        super().__init__()
        self.max_length, self.pad_id = max_length, pad_id
        self.kernel_sizes = tuple(kernel_sizes)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels * len(self.kernel_sizes), num_classes)
        self.spec = {"vocab_size": vocab_size, "num_classes": num_classes,
                     "embed_dim": embed_dim, "kernel_sizes": list(self.kernel_sizes),
                     "channels": channels, "dropout": dropout, "max_length": max_length,
                     "pad_id": pad_id}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        widest = max(self.kernel_sizes)
        if input_ids.shape[1] < widest:  # texts shorter than the widest filter
            extra = widest - input_ids.shape[1]
            input_ids = F.pad(input_ids, (0, extra), value=self.pad_id)
            attention_mask = F.pad(attention_mask, (0, extra), value=0)
        x = self.embedding(input_ids).transpose(1, 2)  # (B, E, T)
        pooled = []
        for conv, k in zip(self.convs, self.kernel_sizes, strict=True):
            h = F.relu(conv(x))  # (B, C, T - k + 1)
            # Only windows that end on a real token count, so padding never changes the output;
            # the first window always counts (texts shorter than k have no other).
            valid = attention_mask[:, k - 1:].bool().clone()
            valid[:, 0] = True
            pooled.append(h.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(dim=2))
        return self.head(self.dropout(torch.cat(pooled, dim=1)))

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
