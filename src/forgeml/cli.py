"""`forgeml`: the stage commands that dvc.yaml calls, plus compose. Heavy imports stay lazy."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from forgeml.errors import ForgeMLError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ForgeML: real data to a trained, evaluated and reported model.")
err_console = Console(stderr=True)
console = Console()

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="Composed params file.")]


def _load(params: Path):
    from forgeml.config import load_params

    return load_params(params)


@app.command()
def compose(
    overrides: Annotated[list[str] | None, typer.Argument(help="Hydra overrides, e.g. model=mlp")]
    = None,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("params.yaml"),
) -> None:
    """Compose conf/ (+ overrides) into params.yaml, as `dvc exp run -S` does."""
    from forgeml.config import compose as compose_config
    from forgeml.config import write_params

    cfg = compose_config(overrides or [])
    write_params(cfg, output)
    console.print(f"wrote {output} ({cfg.pipeline.name}: data={cfg.data.name}, "
                  f"model={cfg.model._target_.rsplit('.', 1)[-1]})")


@app.command()
def prepare(params: ParamsOption = Path("params.yaml")) -> None:
    """Load, validate, de-duplicate and split the data; write tensors and a data card."""
    from forgeml.stages.prepare import prepare as run

    card = run(_load(params))
    counts = ", ".join(f"{k} {v:,}" for k, v in card["counts"].items())
    console.print(f"prepared {card['source']}: {counts}; removed {card['removed'] or 'nothing'}")


@app.command()
def train(params: ParamsOption = Path("params.yaml")) -> None:
    """Train the configured model with Lightning; log the MLflow run and the model."""
    from forgeml.stages.train import train as run

    record = run(_load(params))
    if record:
        console.print(f"trained {record['epochs_trained']} epochs in {record['train_seconds']:.1f}"
                      f" s ({record['train_samples_per_second']:,.0f} samples/s); best val acc "
                      f"{record['best_val_acc']:.4f}; MLflow run {record['run_id']}")


@app.command()
def evaluate(params: ParamsOption = Path("params.yaml")) -> None:
    """Test-split metrics with intervals and a baseline; logged into the training run."""
    from forgeml.stages.evaluate import evaluate as run

    result = run(_load(params))
    low, high = result["acc_ci"]
    console.print(f"test accuracy {result['acc']:.4f} (95% CI {low:.4f}-{high:.4f}), macro F1 "
                  f"{result['f1_macro']:.4f}")


@app.command()
def report(params: ParamsOption = Path("params.yaml")) -> None:
    """Write the HTML + Markdown report and print the headline."""
    import json

    from forgeml.stages.report import report as run

    cfg = _load(params)
    path = run(cfg)
    headline = json.loads((Path(cfg.paths.metrics) / "test.json").read_text())
    console.print(f"[bold]{cfg.pipeline.name}: test accuracy {headline['acc']:.2%} "
                  f"(95% CI {headline['acc_ci_low']:.2%}-{headline['acc_ci_high']:.2%})[/bold]")
    console.print(f"report: {path.resolve()}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except ForgeMLError as err:
        err_console.print(f"[bold red]error:[/bold red] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
