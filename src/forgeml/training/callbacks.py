"""What every training run needs besides its task's loss, as Lightning callbacks: the training
clock (throughput figures exclude validation) and the divergence check. Both keep working across
a resume: the clock's seconds ride in the checkpoint as callback state."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from pytorch_lightning.callbacks import Callback

from forgeml.errors import TrainingError


class TrainingClock(Callback):
    """Seconds spent in training batches and the optimiser, as a plain loop's timer around
    its batches: validation, checkpoint writing and metric logging between epochs excluded.
    The clock starts at the first batch after any pause (epoch start, resume, validation)."""

    def __init__(self):
        self.seconds = 0.0
        self._since: float | None = None

    def _stop(self) -> None:
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._stop()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop()

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop()

    def state_dict(self) -> dict:
        return {"seconds": self.seconds}

    def load_state_dict(self, state_dict: dict) -> None:
        self.seconds = float(state_dict.get("seconds", 0.0))


class DivergenceCheck(Callback):
    """Stops a diverged training with one line: the batch loss every `every_n_steps` steps (one
    host sync each time) and every logged `train/loss` and `val/loss`. A diverged run leaves no
    outputs and no interrupt checkpoint (resuming NaNs helps nobody)."""

    def __init__(self, every_n_steps: int, advice: str = "or check the data"):
        self.every = max(1, every_n_steps)
        self.advice = advice

    def _fail(self, trainer, what: str, value: float) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        raise TrainingError(f"Training diverged: {what} is {value} at epoch "
                            f"{trainer.current_epoch}, step {trainer.global_step}. Lower "
                            f"optimizer.lr (now {lr:.3g}) {self.advice}.")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx % self.every:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not torch.isfinite(loss.detach()).all():
            self._fail(trainer, "the training loss", float(loss))

    def _check_logged(self, trainer, name: str) -> None:
        value = trainer.callback_metrics.get(name)
        if value is not None and not math.isfinite(float(value)):
            self._fail(trainer, f"the logged {name}", float(value))

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._check_logged(trainer, "val/loss")

    # The epoch's mean train loss is logged by the task's own on_train_epoch_end, which runs
    # after the callbacks' hook: it is checked when the next epoch (or the training) starts.
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._check_logged(trainer, "train/loss")

    def on_train_end(self, trainer, pl_module) -> None:
        self._check_logged(trainer, "train/loss")


class LogPicture(Callback):
    """After every validation (not the sanity check), on rank 0: `picture(module)` — a uint8
    array, or None when there is nothing new — logged to the run as `artifact(module)`, so
    MLflow's UI shows training progress as pictures."""

    def __init__(self, picture: Callable, artifact: Callable[[object], str]):
        self.picture, self.artifact = picture, artifact

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        image = self.picture(pl_module)
        if image is not None:
            trainer.logger.experiment.log_image(trainer.logger.run_id, image,
                                                artifact_file=self.artifact(pl_module))


class RanksInStep(Callback):
    """At the end of a multi-process training, every rank's weights are compared (a sum and a
    sum of squares per tensor, gathered from all ranks): DDP keeps them identical, so a
    difference means the ranks trained different models (a rank resumed from another
    checkpoint, different data) and the run stops with one line instead of saving one of them."""

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.world_size < 2:
            return
        tensors = [t.detach().double() for t in pl_module.state_dict().values()
                   if torch.is_floating_point(t)]
        digest = torch.stack([t.sum() for t in tensors] + [t.square().sum() for t in tensors])
        gathered = trainer.strategy.all_gather(digest.to(pl_module.device))
        if not all(torch.equal(gathered[0], row) for row in gathered[1:]):
            raise TrainingError(f"The {trainer.world_size} DDP ranks ended with different "
                                "weights: start every rank with the same params.yaml, data and "
                                "code, and rerun.")
