"""How good generated images are, measured in the feature space of the pipeline's own frozen
classifier (the features stage) instead of Inception's, so nothing is downloaded: FID and KID
(torchmetrics, on features computed once), intervals over fresh sample sets, nearest
training neighbours (memorisation) and diversity. No Lightning."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from forgeml.bootstrap import level
from forgeml.errors import ConfigError

KID_SUBSET = 1000  # KID's subset size (fewer samples: all of them)


class FeatureSpace:
    """The frozen classifier (raw [0, 1] pixels in) as a feature extractor: its penultimate
    layer, and its predicted class."""

    def __init__(self, classifier: nn.Module, batch_size: int = 512):
        normalize, model = classifier[0], classifier[1]  # NormalizedNetwork
        self.classifier = classifier.eval()
        self.embed = nn.Sequential(normalize, *_penultimate(model)).eval()
        self.batch_size = batch_size

    def to(self, device: torch.device) -> FeatureSpace:
        self.classifier.to(device)
        return self

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, d) float64 features of (N, C, H, W) [0, 1] pixels, on the CPU."""
        device = next(self.classifier.parameters()).device
        return torch.cat([self.embed(chunk.to(device)).double().cpu()
                          for chunk in images.split(self.batch_size)])

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.classifier.parameters()).device
        return torch.cat([self.classifier(chunk.to(device)).argmax(1).cpu()
                          for chunk in images.split(self.batch_size)])


def _penultimate(model: nn.Module) -> list[nn.Module]:
    """The layers of a CNN or MLP up to (not including) its output layer."""
    head, layers = getattr(model, "head", None), getattr(model, "layers", None)
    if isinstance(head, nn.Sequential) and hasattr(model, "features"):
        return [model.features, *head[:-1]]  # CNN
    if isinstance(layers, nn.Sequential):
        return list(layers[:-1])  # MLP
    raise ConfigError(f"features.model {type(model).__name__} has no penultimate layer to take "
                      "a feature space from: use forgeml.models.cnn.CNN or "
                      "forgeml.models.mlp.MLP.")


class _Features(nn.Identity):
    """Hands precomputed features to torchmetrics' FID/KID as if it had extracted them."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features


def fid_kid(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    """FID and KID (mean over subsets) between two sets of features (N, d)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    torch.manual_seed(seed)  # KID draws its subsets with torch's global generator
    fid = FrechetInceptionDistance(feature=_Features(real.shape[1]))
    subset = min(KID_SUBSET, len(real), len(fake))
    kid = KernelInceptionDistance(feature=_Features(real.shape[1]), subsets=10,
                                  subset_size=subset)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    return float(fid.compute()), float(kid.compute()[0])


def fid_kid_over_sample_sets(real: torch.Tensor, draw: Callable[[int], torch.Tensor],
                             replicates: int, confidence: float, seed: int) -> dict:
    """FID and KID of the sample set `draw(seed)` (features of freshly generated images), with
    percentile intervals from `replicates` further sets drawn with other seeds: how much the
    figures move from one sample of the generator to the next (the real set fixed). Fresh sets,
    not resampling with replacement, whose duplicates would inflate FID."""
    fid, kid = fid_kid(real, draw(seed), seed)
    draws = [fid_kid(real, draw(seed + 1 + i), seed + 1 + i) for i in range(replicates)]
    tail = (1 - confidence) / 2 * 100
    fids, kids = np.array(draws).T
    return {"fid": fid, "fid_ci": [float(np.percentile(fids, tail)),
                                   float(np.percentile(fids, 100 - tail))],
            "kid": kid, "kid_ci": [float(np.percentile(kids, tail)),
                                   float(np.percentile(kids, 100 - tail))],
            "replicates": replicates, "level": level(confidence)}


def nearest(queries: torch.Tensor, pool: torch.Tensor, chunk: int = 1024
            ) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `queries` (N, d): the index of its nearest row of `pool` (M, d) and the
    Euclidean distance to it."""
    pool = pool.float()
    indices, distances = [], []
    for rows in queries.float().split(chunk):
        d = torch.cdist(rows, pool)
        best = d.min(1)
        indices.append(best.indices)
        distances.append(best.values)
    return torch.cat(indices).numpy(), torch.cat(distances).numpy()


def mean_pairwise_distance(features: torch.Tensor, pairs: int = 20_000, seed: int = 0) -> float:
    """The mean distance between random pairs of rows: how spread out a set is."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(features), (2, pairs))
    keep = a != b
    return float((features[a[keep]] - features[b[keep]]).norm(dim=1).mean())
