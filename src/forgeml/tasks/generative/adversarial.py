"""The adversarial LightningModule: a generator and a discriminator trained against each other
with manual optimisation (one discriminator step, then one generator step per batch, as
Lightning's GAN example), optional one-sided label smoothing and an exponential moving average
of the generator's weights (what is evaluated and logged). At every validation (each epoch, or
every `trainer.check_val_every_n_epoch`) it measures FID and KID of the averaged generator
against the validation images (the checkpoint monitor) and keeps the grid drawn from fixed
noise, so the report can show training as a strip."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from forgeml.models.dcgan import DCGANDiscriminator, DCGANGenerator
from forgeml.tasks.generative.quality import FeatureSpace, fid_kid


class AdversarialTraining(pl.LightningModule):
    def __init__(self, generator: DCGANGenerator, discriminator: DCGANDiscriminator,
                 features: FeatureSpace, optimizer: Callable, loss: str,
                 label_smoothing: float, ema_decay: float, fid_samples: int,
                 grid_per_class: int, seed: int):
        super().__init__()
        self.automatic_optimization = False
        self.generator, self.discriminator = generator, discriminator
        # The averaged generator; decay 0 keeps it equal to the trained one.
        self.generator_ema = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(ema_decay),
                                           use_buffers=True)
        self._features = [features]  # a list: not a submodule, so not saved or optimised
        self.make_optimizer, self.loss = optimizer, loss
        self.label_smoothing, self.fid_samples = label_smoothing, fid_samples
        classes = max(generator.num_classes, 1)
        fixed = torch.Generator().manual_seed(seed)
        self.register_buffer("grid_noise", torch.randn(grid_per_class * classes,
                                                       generator.config.latent_dim,
                                                       generator=fixed), persistent=False)
        self.register_buffer("grid_labels", torch.arange(classes).repeat_interleave(
            grid_per_class), persistent=False)
        self.seed = seed
        self.history: list[dict] = []
        self.train_samples = 0
        self._sums: dict[str, torch.Tensor] = {}
        # uint8 (N, C, H, W) per validated epoch (every `trainer.check_val_every_n_epoch`)
        self.grids: list[torch.Tensor] = []
        self.grid_epochs: list[int] = []
        self.epoch1_generator: dict[str, torch.Tensor] = {}
        self._real_val: list[torch.Tensor] = []
        self._real_features: torch.Tensor | None = None  # computed at the first validation

    @property
    def averaged(self) -> DCGANGenerator:
        """The generator that is evaluated: the moving average of the trained weights."""
        return self.generator_ema.module

    def configure_optimizers(self):
        return (self.make_optimizer(self.generator.parameters()),
                self.make_optimizer(self.discriminator.parameters()))

    # --- training ---
    def on_train_start(self) -> None:
        self._sums = {k: v.to(self.device) for k, v in self._sums.items()}
        if "train" not in self._sums:
            self.on_train_epoch_start()

    def on_train_epoch_start(self) -> None:
        self._sums["train"] = torch.zeros(4, device=self.device)  # d loss, g loss, D(real), n

    def _labels(self, n: int) -> torch.Tensor | None:
        classes = self.generator.num_classes
        return torch.randint(0, classes, (n,), device=self.device) if classes else None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        opt_g, opt_d = self.optimizers()
        real, labels = batch
        real = real * 2 - 1  # the generator's tanh range
        labels = labels if self.generator.num_classes else None
        n = real.shape[0]
        z = torch.randn(n, self.generator.config.latent_dim, device=self.device)
        fake_labels = self._labels(n)

        # Discriminator: real images toward 1 - smoothing, generated ones toward 0.
        self.toggle_optimizer(opt_d)
        fake = self.generator(z, fake_labels).detach()
        real_logit = self.discriminator(real, labels)
        loss_d = (F.binary_cross_entropy_with_logits(
            real_logit, torch.full_like(real_logit, 1 - self.label_smoothing))
            + F.binary_cross_entropy_with_logits(
                self.discriminator(fake, fake_labels), torch.zeros(n, device=self.device)))
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        # Generator: non-saturating (maximise log D(G(z))) or the original minimax loss.
        self.toggle_optimizer(opt_g)
        fake_logit = self.discriminator(self.generator(z, fake_labels), fake_labels)
        if self.loss == "non_saturating":
            loss_g = F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))
        else:
            loss_g = -F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self.generator_ema.update_parameters(self.generator)

        sums = self._sums["train"]
        sums += torch.stack([loss_d.detach() * n, loss_g.detach() * n,
                             torch.sigmoid(real_logit.detach()).sum(),
                             torch.tensor(float(n), device=self.device)])
        return {"loss": (loss_d + loss_g).detach()}

    def on_train_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._sums["train"], reduce_op="sum")
        count = max(float(sums[3]), 1.0)
        self.train_samples += int(sums[3])
        d_loss, g_loss, d_real = (float(v) / count for v in sums[:3])
        self.log_dict({"train/d_loss": d_loss, "train/g_loss": g_loss, "train/d_real": d_real})
        metrics = self.trainer.callback_metrics
        epoch = self.current_epoch + 1
        validated = bool(self.grid_epochs) and self.grid_epochs[-1] == epoch
        self.history.append({"epoch": epoch, "d_loss": d_loss, "g_loss": g_loss,
                             "d_real": d_real,
                             "val_fid": float(metrics["val/fid"]) if validated else math.nan,
                             "val_kid": float(metrics["val/kid"]) if validated else math.nan})
        if epoch == 1:  # the reference point "generator after one epoch"
            self.epoch1_generator = {k: v.detach().cpu().clone()
                                     for k, v in self.generator.state_dict().items()}

    # --- validation: FID/KID of the averaged generator against the validation images ---
    def on_validation_epoch_start(self) -> None:
        self._real_val = []

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        if self._real_features is None:
            self._real_val.append(batch[0])

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        features = self._features[0].to(self.device)
        if self._real_features is None:  # the validation images and the feature net are fixed
            real_images = torch.cat(self._real_val)
            if self.trainer.world_size > 1:  # every rank scores against all validation images,
                real_images = self.all_gather(real_images).flatten(0, 1)  # so all agree on FID
            self._real_features = features.features(real_images)
        real = self._real_features
        generator = self.averaged.eval()
        draw = torch.Generator().manual_seed(self.seed)
        labels = (torch.arange(self.fid_samples, device=self.device) % generator.num_classes
                  if generator.num_classes else None)
        fake = generator.sample(self.fid_samples, labels, generator=draw)
        fid, kid = fid_kid(real, features.features(fake), self.seed)
        self.log_dict({"val/fid": fid, "val/kid": kid})
        grid = generator.sample(len(self.grid_noise), self.grid_labels
                                if generator.num_classes else None,
                                generator=torch.Generator().manual_seed(self.seed))
        self.grids.append((grid.cpu() * 255).round().to(torch.uint8))
        self.grid_epochs.append(self.current_epoch + 1)

    # --- what a resumed run must not lose (plain tensors: loads with weights_only=True) ---
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["adversarial"] = {"grids": list(self.grids),
                                     "grid_epochs": list(self.grid_epochs),
                                     "epoch1_generator": dict(self.epoch1_generator)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("adversarial", {})
        self.grids = list(saved.get("grids", []))
        self.grid_epochs = list(saved.get("grid_epochs", []))
        self.epoch1_generator = dict(saved.get("epoch1_generator", {}))


def plain_generator(module: AdversarialTraining) -> nn.Module:
    """The averaged generator as a plain nn.Module (what is saved, logged and sampled)."""
    generator = copy.deepcopy(module.averaged).cpu().eval()
    generator.spec = module.generator.spec
    return generator
