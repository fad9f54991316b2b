"""A masked autoencoder (He et al., 2021, "Masked Autoencoders Are Scalable Vision Learners") and
the Vision Transformer classifier built on its encoder, in one file.

An image is cut into square patches; a random `mask_ratio` of them is hidden. The encoder (a
small ViT: patch embedding + fixed 2-D sine-cosine positions, pre-norm transformer blocks) sees
the visible patches only. A light decoder gets the encoded visible patches back in place, a
shared learned mask token everywhere else, and predicts every patch's pixels; the loss is the
mean squared error on the hidden patches only, each patch's pixels normalised by its own mean
and variance (the paper's best target). After pre-training, `ViTClassifier` puts a head on the
same encoder (all patches visible, tokens mean-pooled) — fine-tuned end to end, or frozen for a
linear probe — and the identical network from random initialisation is the scratch baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class ViTConfig:
    """The encoder's shape; its values come from conf/model/vit.yaml (the one source)."""

    image_shape: list[int]  # (C, H, W)
    patch_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0

    @property
    def grid(self) -> tuple[int, int]:
        channels, height, width = self.image_shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} does not divide the image size "
                             f"{height}x{width}")
        return height // self.patch_size, width // self.patch_size

    @property
    def patch_dim(self) -> int:
        return self.image_shape[0] * self.patch_size ** 2


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C*patch*patch), patches in row-major order."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, (H // patch) * (W // patch), patch * patch * C)


def unpatchify(patches: torch.Tensor, patch: int, image_shape: list[int]) -> torch.Tensor:
    """(B, N, C*patch*patch) -> (B, C, H, W); the inverse of `patchify`."""
    C, H, W = image_shape
    B = patches.shape[0]
    x = patches.reshape(B, H // patch, W // patch, patch, patch, C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(B, C, H, W)


def sincos_positions(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings (MAE's choice): (N, dim)."""
    assert dim % 4 == 0, "the embedding width must be divisible by 4"
    rows, cols = torch.meshgrid(torch.arange(grid[0], dtype=torch.float32),
                                torch.arange(grid[1], dtype=torch.float32), indexing="ij")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    parts = []
    for coord in (rows.flatten(), cols.flatten()):
        angles = coord[:, None] * freqs[None, :]  # (N, dim/4)
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1)  # (N, dim)


def random_masking(batch: int, patches: int, mask_ratio: float, device: torch.device,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, a random subset of patches to keep. Returns the kept patch indices (B, keep)
    and the mask (B, N) with 1 for hidden patches, 0 for visible ones."""
    keep = max(1, int(round(patches * (1 - mask_ratio))))
    noise = torch.rand(batch, patches, device=device, generator=generator)
    kept = noise.argsort(dim=1)[:, :keep].sort(dim=1).values  # (B, keep)
    mask = torch.ones(batch, patches, device=device)
    mask.scatter_(1, kept, 0.0)
    return kept, mask


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, dim: int, n_head: int, dropout: float):
        super().__init__()
        assert dim % n_head == 0, "n_embd must be divisible by n_head"
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim),
                                 nn.Dropout(dropout))
        self.n_head, self.dropout = n_head, dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """Patches -> tokens. `kept` selects the visible patches (MAE); None encodes them all."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Linear(config.patch_dim, config.n_embd)
        self.register_buffer("positions", sincos_positions(config.grid, config.n_embd),
                             persistent=False)
        self.blocks = nn.ModuleList(Block(config.n_embd, config.n_head, config.dropout)
                                    for _ in range(config.n_layer))
        self.norm = nn.LayerNorm(config.n_embd)
        init_weights(self)

    def forward(self, images: torch.Tensor, kept: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(patchify(images, self.config.patch_size)) + self.positions  # (B, N, C)
        if kept is not None:  # only the visible patches enter the transformer
            x = x.gather(1, kept[..., None].expand(-1, -1, x.shape[-1]))  # (B, keep, C)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class MaskedAutoencoder(nn.Module):
    def __init__(self, encoder: ViTEncoder, decoder_layer: int, decoder_embd: int,
                 decoder_head: int, mask_ratio: float, norm_pix_loss: bool = True):
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.encoder, self.mask_ratio, self.norm_pix_loss = encoder, mask_ratio, norm_pix_loss
        config = encoder.config
        self.to_decoder = nn.Linear(config.n_embd, decoder_embd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embd))
        self.register_buffer("positions", sincos_positions(config.grid, decoder_embd),
                             persistent=False)
        self.blocks = nn.ModuleList(Block(decoder_embd, decoder_head, 0.0)
                                    for _ in range(decoder_layer))
        self.norm = nn.LayerNorm(decoder_embd)
        self.to_pixels = nn.Linear(decoder_embd, config.patch_dim)
        init_weights(nn.ModuleList([self.to_decoder, self.blocks, self.norm, self.to_pixels]))
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (loss on the hidden patches, predicted patches (B, N, P), mask (B, N))."""
        B = images.shape[0]
        N = self.positions.shape[0]
        kept, mask = random_masking(B, N, self.mask_ratio, images.device, generator)
        latent = self.to_decoder(self.encoder(images, kept))  # (B, keep, D)
        # Every position starts as the mask token; the visible ones get their encoding back.
        x = self.mask_token.expand(B, N, -1).clone()  # (B, N, D)
        x.scatter_(1, kept[..., None].expand(-1, -1, x.shape[-1]), latent)
        x = x + self.positions
        for block in self.blocks:
            x = block(x)
        predicted = self.to_pixels(self.norm(x))  # (B, N, P)
        return self.loss(images, predicted, mask), predicted, mask

    def target(self, images: torch.Tensor) -> torch.Tensor:
        patches = patchify(images, self.encoder.config.patch_size)  # (B, N, P)
        if not self.norm_pix_loss:
            return patches
        mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
        return (patches - mean) / (var + 1e-6).sqrt()

    def loss(self, images: torch.Tensor, predicted: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        per_patch = ((predicted - self.target(images)) ** 2).mean(-1)  # (B, N)
        return (per_patch * mask).sum() / mask.sum()  # hidden patches only

    def reconstruct(self, images: torch.Tensor, predicted: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
        """The predicted pixels for the hidden patches (de-normalised with each real patch's
        statistics, as the paper's figures do) pasted among the visible real ones."""
        patch = self.encoder.config.patch_size
        real = patchify(images, patch)
        if self.norm_pix_loss:
            mean, var = real.mean(-1, keepdim=True), real.var(-1, keepdim=True)
            predicted = predicted * (var + 1e-6).sqrt() + mean
        mixed = torch.where(mask[..., None].bool(), predicted, real)
        return unpatchify(mixed, patch, self.encoder.config.image_shape)


class ViTClassifier(nn.Module):
    """The encoder on all patches, tokens mean-pooled, then LayerNorm + Linear. With
    `freeze_encoder` only the head learns (a linear probe)."""

    def __init__(self, image_shape: list[int], num_classes: int, patch_size: int, n_layer: int,
                 n_head: int, n_embd: int, dropout: float = 0.0, freeze_encoder: bool = False):
        super().__init__()
        self.encoder = build_vit(image_shape, patch_size, n_layer, n_head, n_embd, dropout)
        self.head = nn.Sequential(nn.LayerNorm(n_embd), nn.Linear(n_embd, num_classes))
        init_weights(self.head)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self.encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> ViTClassifier:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()  # no dropout in a frozen encoder
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images).mean(dim=1))  # (B, num_classes)

    def parameter_groups(self, lr: float, layer_lr_decay: float = 1.0) -> list[dict]:
        """Layer-wise learning rates (MAE's fine-tuning recipe): the head and the final norm at
        `lr`, each block `layer_lr_decay` times the one above it, the patch embedding lowest,
        so pre-trained low-level features move least. Frozen parameters are left out."""
        layers = [("embed", self.encoder.embed),  # bottom to top
                  *((f"block{i}", block) for i, block in enumerate(self.encoder.blocks))]
        groups = [("head", [*self.head.parameters(), *self.encoder.norm.parameters()], lr)]
        for depth, (name, layer) in enumerate(reversed(layers), start=1):
            groups.append((name, list(layer.parameters()), lr * layer_lr_decay ** depth))
        return [{"params": trainable, "lr": group_lr, "name": name}
                for name, params, group_lr in groups
                if (trainable := [p for p in params if p.requires_grad])]


def build_vit(image_shape: list[int], patch_size: int, n_layer: int, n_head: int, n_embd: int,
              dropout: float = 0.0) -> ViTEncoder:
    return ViTEncoder(ViTConfig(list(image_shape), patch_size, n_layer, n_head, n_embd, dropout))


def parameters_of(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def init_weights(module: nn.Module) -> None:
    """MAE's initialisation: Xavier-uniform Linear weights, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

