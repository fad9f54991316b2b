"""`forgeml predict --input`: a file of rows through a run's exported model, written all at once
(a staged file renamed into place) or not at all."""

from __future__ import annotations

import os
from pathlib import Path

from forgeml.errors import DataError
from forgeml.serving.batch import StagedWriter, check_paths, chunks, count_rows


def predict_file(uri: str, run: str, pipeline: str, source: Path, target: Path,
                 column: str | None, batch_size: int, k: int, console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from forgeml.deploy.loading import bundle_of, endpoint_of
    from forgeml.tracking import resolve_run

    check_paths(source, target)  # before any model is loaded
    total = count_rows(source)
    run_id = resolve_run(uri, run, pipeline)
    endpoint = endpoint_of(bundle_of(uri, run_id, pipeline, "onnx", None, console.print),
                           threads=os.cpu_count() or 1)
    writer, done = StagedWriter(target), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with Progress("predicting", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("rows", total=total)
            for frame in chunks(source, batch_size):
                writer.write(endpoint.rows(frame, column, done + 1, k), first=done == 0)
                done += len(frame)
                progress.update(task, completed=done)
        if done == 0:
            raise DataError(f"{source} has no rows; nothing was written.")
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    console.print(f"wrote predictions for {done:,} rows to {target} (run {run_id})")
    return done
