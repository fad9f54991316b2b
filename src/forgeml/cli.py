"""`forgeml`: the stage commands that dvc.yaml calls (the task registry picks the stage),
compose, sweep, and the serving and operations commands: generate, sample, recommend,
predict, retrain, rollback. Heavy imports stay lazy."""

from __future__ import annotations

import logging
import os
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
TrackingOption = Annotated[str | None, typer.Option(
    "--tracking-uri", help="Default: $MLFLOW_TRACKING_URI, else the project's mlflow.db.")]


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


def _run_stage(stage: str, params: Path) -> None:
    from forgeml.config import find_config_dir
    from forgeml.stage_run import stage_guard
    from forgeml.tasks import task_of

    cfg = _load(params)
    step = task_of(cfg, str(params)).stage(stage)
    # The workspace's own lock: DVC's parallel queued experiments each run in a copy.
    with stage_guard(cfg, stage, find_config_dir().parent):
        result = step.run(cfg)
    if result is not None:  # None: a DDP worker rank, which reports nothing
        console.print(step.summarize(cfg, result))


@app.command()
def prepare(params: ParamsOption = Path("params.yaml")) -> None:
    """Load, validate, clean and split the data; write it and a data card."""
    _run_stage("prepare", params)


@app.command()
def train(params: ParamsOption = Path("params.yaml")) -> None:
    """Train the configured model with Lightning; log the MLflow run and the model."""
    _run_stage("train", params)


@app.command()
def baselines(params: ParamsOption = Path("params.yaml")) -> None:
    """Train the comparison models listed under `baselines` (sentiment) on the same split."""
    _run_stage("baselines", params)


@app.command()
def features(params: ParamsOption = Path("params.yaml")) -> None:
    """Train the frozen classifier whose features score generated images (gan)."""
    _run_stage("features", params)


@app.command()
def pretrain(params: ParamsOption = Path("params.yaml")) -> None:
    """Pre-train the encoder as a masked autoencoder on unlabelled images (ssl)."""
    _run_stage("pretrain", params)


@app.command()
def finetune(params: ParamsOption = Path("params.yaml")) -> None:
    """Fine-tune each model on each labelled subset (ssl)."""
    _run_stage("finetune", params)


@app.command()
def evaluate(params: ParamsOption = Path("params.yaml")) -> None:
    """Test-split metrics with intervals and baselines; logged into the training run."""
    _run_stage("evaluate", params)


@app.command()
def cv(params: ParamsOption = Path("params.yaml")) -> None:
    """k-fold cross-validation over train + val (cv.folds; 0: off): one MLflow run per fold."""
    _run_stage("cv", params)


@app.command()
def compress(params: ParamsOption = Path("params.yaml")) -> None:
    """Compare PyTorch fp32, ONNX fp32/int8, a pruned and a distilled model on the test split."""
    _run_stage("compress", params)


@app.command()
def report(params: ParamsOption = Path("params.yaml")) -> None:
    """Write the HTML + Markdown report and print the headline."""
    _run_stage("report", params)


def _store(tracking_uri: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the project's store; checked up front
    (a server that is down or refuses the credentials says so in one line)."""
    from forgeml.tracking import check_reachable, default_tracking_uri

    uri = default_tracking_uri(tracking_uri)
    check_reachable(uri, timeout_s=10)
    return uri


@app.command()
def generate(
    prompt: Annotated[str, typer.Option("--prompt", help="Text to continue.")],
    run: Annotated[str, typer.Option(
        "--run", help="MLflow run id, or 'champion' (the registered model's champion).")],
    pipeline: Annotated[str, typer.Option(help="Registered model name for --run champion.")]
    = "lm",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n", min=1)] = 200,
    temperature: Annotated[float, typer.Option(min=1e-6)] = 0.8,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1)] = None,
    seed: int = 1337,
    tracking_uri: TrackingOption = None,
) -> None:
    """Print text generated by a language model that MLflow logged."""
    from forgeml.tasks.lm.generate import generate_text
    from forgeml.tasks.lm.logged import load_logged
    from forgeml.tracking import resolve_run

    uri = _store(tracking_uri)
    network, tokenizer = load_logged(uri, resolve_run(uri, run, pipeline))
    text, _ = generate_text(network, tokenizer, prompt, max_new_tokens, temperature, top_k, seed)
    print(prompt + text)


@app.command()
def sample(
    run: Annotated[str, typer.Option(
        "--run", help="MLflow run id, or 'champion' (the registered model's champion).")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="grid.png (one row per class) or samples.npz (arrays).")],
    n: Annotated[int, typer.Option("-n", help="How many images.")] = 64,
    class_index: Annotated[int | None, typer.Option(
        "--class", help="Only this class (its index in data.class_names).")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same images.")] = 0,
    pipeline: Annotated[str, typer.Option(help="Registered model name for --run champion.")]
    = "gan",
    tracking_uri: TrackingOption = None,
) -> None:
    """Write images drawn by a generator that MLflow logged (the gan pipeline)."""
    from forgeml.tasks.generative import sample as sampling
    from forgeml.tracking import resolve_run

    if n < 1:  # before the store is opened: nothing to load for an empty request
        raise ForgeMLError(f"-n {n}: ask for at least one image.")
    uri = _store(tracking_uri)
    generator = sampling.load_logged_generator(uri, resolve_run(uri, run, pipeline))
    sampling.check_request(generator, n, class_index, output)
    images, labels = sampling.sample(generator, n, class_index, seed)
    written = sampling.write(output, images, labels,
                             sampling.rows_for(n, labels, generator.num_classes))
    console.print(f"wrote {n} images to {written}")


@app.command()
def sweep(
    name: Annotated[str, typer.Argument(help="conf/sweep/<name>.yaml")],
    n_trials: Annotated[int | None, typer.Option(
        "--n-trials", min=1, help="Override the sweep's n_trials.")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Worker processes sharing the study.")] = 1,
    worker: Annotated[bool, typer.Option("--worker", hidden=True)] = False,
) -> None:
    """Tune a pipeline with Optuna: trials as MLflow child runs, resumable after a crash."""
    from forgeml.sweeps.run import summarize
    from forgeml.sweeps.run import sweep as run_sweep

    result = run_sweep(name, n_trials, workers, worker_only=worker)
    if result:
        console.print(summarize(result))


@app.command("privacy-table")
def privacy_table(
    epsilons: Annotated[str, typer.Option(
        "--epsilons", help="Target ε per experiment, comma-separated; inf: no DP.")]
    = "1,3,8,inf",
    set_: Annotated[list[str] | None, typer.Option(
        "-S", "--set", help="An override for every experiment (repeatable), e.g. "
                            "trainer.max_epochs=20.")] = None,
    params: ParamsOption = Path("params.yaml"),
    no_run: Annotated[bool, typer.Option(
        "--no-run", help="Only rebuild the table from the experiments already run.")] = False,
    name: Annotated[str, typer.Option(
        "--name", help="Names the experiments (<name>-eps-<ε>) and the table, to keep several "
                       "apart.")] = "privacy",
) -> None:
    """Privacy vs utility: one DVC experiment per ε (up to evaluate), then one table of the
    pipeline's test metric (accuracy, HR@K) and membership-attack AUC per ε in
    reports/privacy/<pipeline>.md."""
    from forgeml.bootstrap import level
    from forgeml.errors import ConfigError
    from forgeml.names import check_name
    from forgeml.privacy import tradeoff
    from forgeml.tasks import task_of
    from forgeml.tracking import tracking_uri

    try:
        wanted = [float(value) for value in epsilons.split(",")]
    except ValueError:
        raise ConfigError(f"--epsilons '{epsilons}': give numbers, e.g. 1,3,8,inf") from None
    if any(not eps > 0 for eps in wanted):
        raise ConfigError("--epsilons: every ε must be > 0 (inf: without DP)")
    cfg = _load(params)
    metric = tradeoff.Utility(*task_of(cfg, str(params)).utility_metric(cfg))
    target = "evaluate" if cfg.pipeline.dvc_file == "dvc.yaml" \
        else f"{cfg.pipeline.dvc_file}:evaluate"
    check_name(name, "--name")
    if not no_run:
        tradeoff.run_experiments(wanted, list(set_ or []), target, name,
                                 params_file=params.as_posix())
    uri = tracking_uri(cfg)
    rows = tradeoff.collect(uri, cfg.logger.experiment_name, wanted, name, metric)
    confidence = level(cfg.evaluate.confidence)
    path = tradeoff.write(rows, cfg.pipeline.name, confidence, Path("reports") / "privacy", name,
                          metric)
    console.print(tradeoff.markdown(rows, cfg.pipeline.name, confidence, metric))
    console.print(f"wrote {path}")


@app.command()
def recommend(
    run: Annotated[str, typer.Option(
        "--run", help="MLflow run id, or 'champion' (the registered model's champion).")],
    user: Annotated[str | None, typer.Option("--user", help="A user id as in the data.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="How many items.")] = 10,
    all_users: Annotated[bool, typer.Option("--all", help="Every user, into --output.")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File for --all: .csv or .jsonl.")] = None,
    pipeline: Annotated[str, typer.Option(help="Registered model name for --run champion.")]
    = "recsys",
    tracking_uri: TrackingOption = None,
) -> None:
    """Print a user's top-k unseen items from a logged recommender, or write them for all users."""
    from forgeml.errors import ConfigError
    from forgeml.tasks.recsys.recommend import load_logged, write_rows
    from forgeml.tracking import resolve_run

    if all_users == (user is not None) or (all_users and output is None):
        raise ConfigError("Give either --user ID, or --all with --output FILE (.csv or .jsonl).")
    uri = _store(tracking_uri)
    recommender = load_logged(uri, resolve_run(uri, run, pipeline))
    if all_users:
        rows = recommender.for_all(k)
        write_rows(rows, output)
        console.print(f"wrote {len(rows):,} recommendations for "
                      f"{len(recommender.catalog['user_ids']):,} users to {output}")
        return
    for row in recommender.for_user(user, k):
        print(f"{row['rank']:>3}  {row['title']}  (item {row['item_id']}, "
              f"score {row['score']:.3f})")


RunOption = Annotated[str, typer.Option(
    "--run", help="MLflow run id, or 'champion' (the registered model's champion).")]
@app.command()
def predict(
    run: RunOption,
    text: Annotated[str | None, typer.Option("--text", help="One text to classify.")] = None,
    input_file: Annotated[Path | None, typer.Option(
        "--input", "-i", help="A .csv, .jsonl or .parquet file of inputs.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where --input's predictions go (.csv, .jsonl or .parquet).")]
    = None,
    column: Annotated[str | None, typer.Option(
        help="The input column: text (sentiment), user (recommender), image (JSONL images; "
             "a CSV of pixel columns needs none).")] = None,
    pipeline: Annotated[str, typer.Option(help="Pipeline (registered model) name.")]
    = "sentiment",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000,
                                            help="Rows read and predicted at a time.")] = 1024,
    k: Annotated[int, typer.Option("-k", min=1, help="Recommender: items per user.")] = 10,
    tracking_uri: TrackingOption = None,
) -> None:
    """Label and probability for a text, or predictions for every row of a file (any pipeline,
    through its exported ONNX model, streamed in batches and written atomically)."""
    from forgeml.errors import ConfigError

    if (text is None) == (input_file is None) or (input_file and output is None):
        raise ConfigError("Give either --text TEXT, or --input FILE with --output FILE.")
    if input_file is not None:
        from forgeml.serving.batch import predict_file

        predict_file(_store(tracking_uri), run, pipeline, input_file, output, column,
                     batch_size, k, console)
        return
    from forgeml.serving.single import predict_text
    from forgeml.tasks.sentiment.predict import check_text
    from forgeml.tracking import resolve_run

    check_text(text)  # checked before the model is loaded (seconds for a transformer)
    uri = _store(tracking_uri)
    label, probability = predict_text(uri, resolve_run(uri, run, pipeline), text)
    print(f"{label}\t{probability:.4f}")


@app.command()
def export(
    run: RunOption,
    pipeline: Annotated[str, typer.Option(help="Pipeline (registered model) name.")],
    fmt: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    quantize: Annotated[str | None, typer.Option(
        "--quantize", help="int8: also an ONNX Runtime dynamic int8 model.")] = None,
    params: Annotated[Path | None, typer.Option(
        "--params", "-p", help="The pipeline's params file, for its test split (default: "
                               "params.yaml, or pipelines/<pipeline>/params.yaml).")] = None,
    examples: Annotated[int, typer.Option(
        min=1, help="Test inputs the export is checked on.")] = 256,
    tracking_uri: TrackingOption = None,
) -> None:
    """Export a logged model to ONNX, check it against PyTorch on real test inputs, and log it
    (with its SHA-256) to the same MLflow run."""
    from forgeml.serving.export import export_command

    export_command(_store(tracking_uri), run, pipeline, fmt, quantize, params, examples,
                   console)


@app.command()
def serve(
    run: RunOption,
    pipeline: Annotated[str, typer.Option(help="Pipeline (registered model) name.")],
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    threads: Annotated[int, typer.Option(min=1, help="Inference threads per process.")] = 1,
    model_format: Annotated[str, typer.Option(
        "--format", help="onnx (fp32), int8 (ONNX Runtime int8) or torch (PyTorch fp32).")]
    = "onnx",
    follow_champion: Annotated[float | None, typer.Option(
        "--follow-champion", min=1.0,
        help="With --run champion: check the alias every this many seconds and switch to a "
             "new champion without a restart.")] = None,
    max_body_kb: Annotated[int, typer.Option(min=1, help="Largest request body.")] = 1024,
    max_batch: Annotated[int, typer.Option(min=1, help="Most inputs per request.")] = 256,
    params: Annotated[Path | None, typer.Option(
        "--params", "-p", help="Params file used when the run must be exported first.")]
    = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Serve a logged model over HTTP: POST /predict (JSON), GET /health, GET /version."""
    from forgeml.serving.server import ServeOptions, serve_command

    serve_command(_store(tracking_uri), ServeOptions(
        run=run, pipeline=pipeline, host=host, port=port, workers=workers, threads=threads,
        model_format=model_format, follow_champion_s=follow_champion,
        max_body_bytes=max_body_kb * 1024, max_batch=max_batch, params=params), console)


@app.command()
def retrain(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name, e.g. digits or recsys.")],
    force: Annotated[bool, typer.Option(help="Retrain even if nothing changed.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for a running retrain instead of exiting.")]
    = False,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Advance a time split to this date (conf/retrain/<p>.yaml as_of).")]
    = None,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", "-S", help="Hydra override for this run's params, e.g. optimizer.lr=0.01.")]
    = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Retrain on a schedule: lock, detect changes, run, gate against the champion, promote."""
    from forgeml.credentials import clean_environment
    from forgeml.retrain.job import retrain as run

    if tracking_uri:  # the stages that `dvc repro` starts read it from the environment
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
        clean_environment()

    # Unwrapped lines: these end up in cron / systemd / CI logs.
    result = run(pipeline, force=force, wait=wait, as_of=as_of, overrides=overrides or [],
                 echo=lambda text: console.print(text, soft_wrap=True, highlight=False))
    if result["decision"] in ("promoted", "rejected"):
        console.print(f"retraining record: retrain/{pipeline}/retraining.html")


@app.command()
def rollback(
    pipeline: Annotated[str, typer.Argument(help="Pipeline (registered model) name.")],
    tracking_uri: TrackingOption = None,
) -> None:
    """Point the `champion` alias back at the previous champion."""
    from forgeml.errors import ConfigError
    from forgeml.locks import pipeline_lock
    from forgeml.names import check_name
    from forgeml.retrain import registry
    from forgeml.tracking import project_root

    check_name(pipeline)
    uri = _store(tracking_uri)
    try:
        root = project_root()
    except ConfigError:  # run outside a project: only the registry is touched
        root = Path.cwd()
    with pipeline_lock(root, pipeline, wait=True):  # never beside a retrain of it
        repaired = registry.repair(uri, pipeline)
        if "rollback" in repaired.completed:  # this is the rollback that was interrupted
            console.print(f"{pipeline}: {repaired.completed}")
            return
        if repaired.completed:
            console.print(f"{pipeline}: {repaired.completed}")
        was, now = registry.rollback(uri, pipeline)
    console.print(f"{pipeline}: champion moved from version {was} back to version {now}")


@app.command()
def reproduce(
    run_id: Annotated[str, typer.Argument(help="The MLflow run id of a training run.")],
    tracking_uri: TrackingOption = None,
    keep: Annotated[bool, typer.Option(help="Keep the temporary folder (its log).")] = False,
) -> None:
    """Rebuild a run from its lineage (commit, composed config, data) in a temporary worktree,
    rerun its pipeline, and compare every metric with the original."""
    import re

    from rich.table import Table

    from forgeml.errors import ConfigError
    from forgeml.io import atomic_write_text
    from forgeml.reproduce import markdown
    from forgeml.reproduce import reproduce as rebuild
    from forgeml.tracking import project_root

    if not re.fullmatch(r"[0-9a-f]{32}", run_id):
        raise ConfigError(f"'{run_id}' is not an MLflow run id (32 hexadecimal digits).")
    uri = _store(tracking_uri)
    root = project_root()
    comparison = rebuild(uri, run_id, root, keep)
    table = Table("metric", "original", "reproduced", "")
    for name, was, now, how in comparison.metrics:
        table.add_row(name, f"{was:.6g}", f"{now:.6g}", how)
    console.print(table)
    for what, was, now, same in comparison.lineage:
        console.print(f"{what}: {'same' if same else f'{was} -> {now}'}", highlight=False)
    path = root / "reports" / "reproduce" / f"{run_id}.md"
    atomic_write_text(path, markdown(comparison))
    console.print(f"[bold]{run_id}: {comparison.verdict}[/bold]\nreport: {path}")
    if comparison.verdict.startswith("not"):
        sys.exit(1)


class _RedactingFilter(logging.Filter):
    """Library log lines (MLflow, Lightning, DVC) pass through `redact` before they are shown."""

    def filter(self, record: logging.LogRecord) -> bool:
        from forgeml.credentials import redact

        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def main() -> None:
    from forgeml import warm

    code = warm.delegate(sys.argv[1:])  # a DVC stage: run in a warm interpreter when one is up
    if code is not None:
        sys.exit(code)
    from forgeml.credentials import clean_environment

    clean_environment()  # credentials out of $MLFLOW_TRACKING_URI before anything reads it
    # Artifact downloads (report, generate, recommend) would draw progress bars on stderr.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactingFilter())
    try:
        app()
    except ForgeMLError as err:
        _fail(str(err))
    except Exception as err:
        from forgeml.faults import explain

        message = explain(err)
        if message is None:
            raise
        _fail(message)


def _fail(message: str) -> None:
    from rich.markup import escape

    from forgeml.credentials import redact

    err_console.print(f"[bold red]error:[/bold red] {escape(redact(message))}", highlight=False,
                      soft_wrap=True)
    sys.exit(2)


if __name__ == "__main__":
    main()
