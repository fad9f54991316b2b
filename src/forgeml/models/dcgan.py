"""A class-conditional DCGAN in one file (Radford et al., 2015), for small grey or colour images.

Generator: noise z and a learned class embedding -> Linear to a (4·width, H/4, W/4) map ->
two stride-2 transposed convolutions with batch norm and ReLU -> tanh pixels in [-1, 1].
Discriminator: two stride-2 convolutions with LeakyReLU (batch norm on the second) -> a
real/fake logit; the class enters by projection (Miyato & Koyama, 2018): logit = ψ(h) +
<embed(y), h>, which conditions more reliably than concatenating labels to the pixels.
`num_classes=0` makes both unconditional.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DCGANConfig:
    """The networks' shape; its values come from conf/model/dcgan.yaml (the one source)."""

    image_shape: list[int]  # (channels, height, width); height and width divisible by 4
    num_classes: int  # 0: unconditional
    latent_dim: int  # size of the noise vector z
    width: int  # channels of the widest generator layer / 4 and of the first critic layer


def _init_dcgan(module: nn.Module) -> None:
    # DCGAN's initialisation: N(0, 0.02) weights, batch-norm scales N(1, 0.02).
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    def __init__(self, image_shape: list[int], num_classes: int, latent_dim: int, width: int):
        super().__init__()
        self.config = config = DCGANConfig(list(image_shape), num_classes, latent_dim, width)
        channels, height, w = config.image_shape
        if height % 4 or w % 4:
            raise ValueError(f"image height and width must be divisible by 4, not {height}x{w}")
        self.start = (4 * width, height // 4, w // 4)
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        inputs = 2 * latent_dim if num_classes else latent_dim
        self.project = nn.Sequential(
            nn.Linear(inputs, 4 * width * (height // 4) * (w // 4), bias=False),
            nn.BatchNorm1d(4 * width * (height // 4) * (w // 4)),
            nn.ReLU(),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )
        self.apply(_init_dcgan)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixels in [-1, 1] for noise z (B, latent) and class ids (B,). Called with one array
        (the logged MLflow model), a conditional generator reads the class from its last column:
        (B, latent + 1)."""
        if self.embed is not None:
            if labels is None:
                z, labels = z[:, :-1], z[:, -1].round().long()
            z = torch.cat([z, self.embed(labels)], dim=1)  # (B, 2·latent)
        x = self.project(z).view(-1, *self.start)  # (B, 4w, H/4, W/4)
        return self.upsample(x)  # (B, C, H, W) in [-1, 1]

    def sample(self, n: int, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images as [0, 1] pixels (B, C, H, W); `labels`: the class of each (conditional)."""
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        with torch.no_grad():
            return (self(z.to(self._device()), labels) + 1) / 2

    def _device(self) -> torch.device:
        return next(self.parameters()).device


class DCGANDiscriminator(nn.Module):
    def __init__(self, image_shape: list[int], num_classes: int, latent_dim: int, width: int):
        super().__init__()
        self.config = config = DCGANConfig(list(image_shape), num_classes, latent_dim, width)
        channels, height, w = config.image_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),  # (B, w, H/2, W/2)
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),  # (B, 2w, H/4, W/4)
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),  # (B, 2w·H/4·W/4)
        )
        flat = 2 * width * (height // 4) * (w // 4)
        self.logit = nn.Linear(flat, 1)
        self.embed = nn.Embedding(num_classes, flat) if num_classes else None
        self.apply(_init_dcgan)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images)
        logit = self.logit(h).squeeze(1)  # (B,)
        if self.embed is not None:
            logit = logit + (self.embed(labels) * h).sum(1)  # the projection term
        return logit
