"""DP-SGD as a Lightning callback (Opacus): Poisson-sampled batches, per-example gradients
clipped and noised in the optimizer, ε logged every epoch, and the accountant's state in every
checkpoint so that a resumed run continues its ε instead of restarting it at 0."""

from __future__ import annotations

import math
import secrets
import warnings

import torch
from pytorch_lightning import Callback, LightningDataModule

from forgeml.errors import ConfigError
from forgeml.privacy.accounting import PrivacyPlan


class DifferentialPrivacy(Callback):
    """Makes a fit differentially private. The module's `network` must be the only thing the
    (single) optimizer trains, and the datamodule must be wrapped by `datamodule()`."""

    def __init__(self, plan: PrivacyPlan, noise_seed: int | None = None):
        from opacus import PrivacyEngine

        self.plan = plan
        self.engine = PrivacyEngine(accountant=plan.accountant)
        # The guarantee holds only if nobody can replay the noise and the sampling: a seed from
        # the OS unless the config asks for a reproducible (and then secret) one.
        seed = noise_seed if noise_seed is not None else secrets.randbits(62)
        self.generator = torch.Generator().manual_seed(seed)

    def datamodule(self, datamodule: LightningDataModule) -> LightningDataModule:
        """`datamodule` with its training batches Poisson-sampled (each example in each batch
        independently with the plan's sample rate), which ε's proof assumes."""
        from opacus.lightning import DPLightningDataModule

        return DPLightningDataModule(datamodule, generator=self.generator)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.world_size > 1:
            raise ConfigError("privacy=dp trains on one device: set trainer=cpu or trainer=gpu "
                              "(DP-SGD across DDP ranks is not supported yet).")
        if trainer.gradient_clip_val:
            raise ConfigError("privacy=dp clips every example's gradient itself "
                              "(privacy.max_grad_norm): set trainer.gradient_clip_val=null.")
        if trainer.accumulate_grad_batches != 1:
            raise ConfigError("privacy=dp needs trainer.accumulate_grad_batches=1: the batch "
                              "is the Poisson sample ε is proven for.")

    def on_fit_start(self, trainer, pl_module) -> None:
        if len(trainer.strategy.optimizers) != 1:
            raise ConfigError("privacy=dp supports one optimizer per model.")
        plan = self.plan
        # Opacus' hooks on the first layer see an input that needs no gradient (the images):
        # expected, and said once per backward pass otherwise.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        # Ghost clipping: each example's gradient norm without materialising per-example
        # gradients (~5x faster than per-example hooks on the CNN), then one backward pass of
        # the loss reweighted by the clipping factors. The network keeps its own layout.
        _, private, loss, loader = self.engine.make_private(
            module=pl_module.network, optimizer=trainer.strategy.optimizers[0],
            criterion=torch.nn.CrossEntropyLoss(), grad_sample_mode="ghost",
            data_loader=trainer.datamodule.train_dataloader(), poisson_sampling=False,
            noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.max_grad_norm,
            noise_generator=self.generator, wrap_model=False)
        if not math.isclose(1 / len(loader), plan.sample_rate, rel_tol=1e-9):
            raise ConfigError(f"the training loader has {len(loader)} batches per epoch but the "
                              f"privacy plan counted {plan.steps_per_epoch}")
        trainer.strategy.optimizers = [private]  # its state is restored after this hook
        pl_module.private_loss = loss

    def epsilon(self) -> float:
        return float(self.engine.accountant.get_epsilon(delta=self.plan.delta)) \
            if len(self.engine.accountant) else 0.0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pl_module.log("privacy/epsilon", self.epsilon())

    def state_dict(self) -> dict:
        return {"accountant": dict(self.engine.accountant.state_dict())}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("accountant"):
            self.engine.accountant.load_state_dict(state_dict["accountant"])

    def summary(self) -> dict[str, float]:
        """What the run proves, for its metrics and report."""
        plan = self.plan
        return {"privacy_epsilon": self.epsilon(), "privacy_delta": plan.delta,
                "privacy_noise_multiplier": plan.noise_multiplier,
                "privacy_max_grad_norm": plan.max_grad_norm,
                "privacy_sample_rate": plan.sample_rate,
                "privacy_steps": sum(int(s) for _, _, s in self.engine.accountant.history)}
