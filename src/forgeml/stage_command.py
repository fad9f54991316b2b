"""`forgeml <stage>`: the commands dvc.yaml runs, one per registered stage (forgeml.stages). The
task registry picks the task's stage; the stage guard runs it. Nothing here imports the other
commands (forgeml.cli), so editing those reruns no stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from forgeml.stages import STAGES

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="Composed params file.")]
console = Console()


def run_stage(stage: str, params: Path) -> None:
    from forgeml.config import find_config_dir
    from forgeml.stage_run import is_worker_rank, stage_guard
    from forgeml.tasks import load_params, task_of

    cfg = load_params(params)
    step = task_of(cfg, str(params)).stage(stage)
    # The workspace's own lock: DVC's parallel queued experiments each run in a copy.
    with stage_guard(cfg, stage, find_config_dir().parent):
        if STAGES[stage].tracked and not is_worker_rank():
            from forgeml import tracking

            tracking.repair_dead_runs(tracking.tracking_uri(cfg), cfg.logger.experiment_name,
                                      cfg.logger.connect_timeout_s)
        result = step.run(cfg)
    if result is not None:  # None: a DDP worker rank, which reports nothing
        console.print(step.summarize(cfg, result))


def _stage_command(stage: str):
    def command(params: ParamsOption = Path("params.yaml")) -> None:
        run_stage(stage, params)

    command.__name__ = stage
    command.__doc__ = STAGES[stage].help
    return command


def add_stage_commands(app: typer.Typer) -> None:
    """One command per registered stage, in pipeline order."""
    for stage in STAGES:
        app.command(name=stage)(_stage_command(stage))


app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ForgeML's pipeline stages (what dvc.yaml runs).")
add_stage_commands(app)
