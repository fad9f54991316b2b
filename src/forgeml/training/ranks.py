"""What the processes of one DDP training agree on before fitting: the checkpoint they all resume
from. Rank 0 decides (it owns the MLflow run and the resume folder) and tells the others —
through their environment when Lightning's own launcher starts them from rank 0, through the
launch's TCP store when an external launcher (torchrun, SLURM's srun) starts every rank at once,
on one machine or many."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from forgeml.errors import TrainingError

RESUME_ENV = "FORGEML_RESUME_CHECKPOINT"
HANDSHAKE_TIMEOUT_S = 600.0  # rank 0 checks the tracking store and opens the run meanwhile
# Under srun rank 0's store must outlive the handshake: the process group joins it later (a
# multi-tenant store is shared only while one of its owners is alive).
_kept_stores: list = []


def external_launch() -> Any | None:
    """Lightning's cluster environment when torchrun or srun started several processes (as
    Lightning picks it), else None (one process, or Lightning launches the others itself)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    for kind in (SLURMEnvironment, TorchElasticEnvironment):
        if kind.detect():
            environment = kind()
            return environment if environment.world_size() > 1 else None
    return None


def _restart_count() -> str:
    return os.environ.get("TORCHELASTIC_RESTART_COUNT") or os.environ.get(
        "SLURM_RESTART_COUNT") or "0"


def _store(environment: Any, timeout_s: float):
    """A client of the store the ranks' process group will use: torchrun's agent hosts one
    on node 0; under srun rank 0 hosts it (multi-tenant, so the process group shares it)."""
    from torch.distributed import TCPStore

    timeout = timedelta(seconds=timeout_s)
    host, port = environment.main_address, environment.main_port
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        return TCPStore(host, port, is_master=False, timeout=timeout)
    return TCPStore(host, port, None, environment.global_rank() == 0, timeout,
                    wait_for_workers=False, multi_tenant=True)


def agree_on_checkpoint(rank: int, decide: Callable[[], str | None],
                        timeout_s: float = HANDSHAKE_TIMEOUT_S) -> str | None:
    """Rank 0 runs `decide` (open or reopen the MLflow run; the checkpoint to resume from) and
    every rank returns its answer. A failure on rank 0 reaches the others as one line instead of
    leaving them waiting."""
    environment = external_launch()
    if environment is None:  # one process, or Lightning's launcher: the environment carries it
        if rank == 0:
            checkpoint = decide()
            os.environ[RESUME_ENV] = checkpoint or ""
            return checkpoint
        return os.environ.get(RESUME_ENV) or None
    store = _store(environment, timeout_s)
    _kept_stores.append(store)
    key = f"forgeml/resume_checkpoint/{_restart_count()}"
    if rank == 0:
        try:
            checkpoint = decide()
        except BaseException as err:
            store.set(key, json.dumps({"error": str(err).splitlines()[0] if str(err) else
                                       type(err).__name__}))
            raise
        store.set(key, json.dumps({"checkpoint": checkpoint or ""}))
        return checkpoint
    try:
        answer = json.loads(store.get(key))
    except Exception as err:  # noqa: BLE001 - torch raises DistStoreError / RuntimeError here
        raise TrainingError(
            f"Rank {rank} heard nothing from rank 0 of this training (waited up to "
            f"{timeout_s:.0f} s: {str(err).splitlines()[0]}): start every node with the same "
            "command and --master-addr, and check that node 0 is running.") from None
    if "error" in answer:
        raise TrainingError(f"Rank 0 of this training stopped before training: {answer['error']}")
    return answer["checkpoint"] or None
