"""`forgeml predict --input`: predictions for every row of a CSV, JSONL or Parquet file,
through the run's exported model. The file is read and predicted `batch_size` rows at a time
(memory stays flat for large files) with a progress bar, and written to a staged file that
replaces the output only when every row succeeded: a bad row or a crash leaves no partial
output."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from forgeml.errors import DataError

SUFFIXES = (".csv", ".jsonl", ".parquet")


def check_paths(source: Path, target: Path) -> None:
    for path, role in ((source, "input"), (target, "output")):
        if path.suffix not in SUFFIXES:
            raise DataError(f"{path}: the {role} must be a .csv, .jsonl or .parquet file.")
    if not source.is_file():
        raise DataError(f"{source} does not exist.")
    if source.resolve() == target.resolve():
        raise DataError(f"{source}: write the predictions to another file.")


def count_rows(path: Path) -> int | None:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - (path.suffix == ".csv"), 0)


def chunks(path: Path, size: int) -> Iterator[pd.DataFrame]:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
                yield batch.to_pandas()
            return
        reader = (pd.read_json(path, lines=True, chunksize=size) if path.suffix == ".jsonl"
                  else pd.read_csv(path, chunksize=size))
        with reader:
            yield from reader
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path} could not be read: {str(err).splitlines()[0][:200]}") from None


class StagedWriter:
    """Appends frames to a hidden file beside `target`; `commit` renames it into place."""

    def __init__(self, target: Path):
        self.target = target
        self.staged = target.with_name(f".{target.name}.{os.getpid()}.partial")
        self.parquet = None

    def write(self, frame: pd.DataFrame, first: bool) -> None:
        if self.target.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.staged, table.schema)
            self.parquet.write_table(table.cast(self.parquet.schema))
        elif self.target.suffix == ".jsonl":
            with open(self.staged, "a", encoding="utf-8") as handle:
                handle.write(frame.to_json(orient="records", lines=True, force_ascii=False))
        else:
            frame.to_csv(self.staged, mode="a", header=first, index=False)

    def commit(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        with open(self.staged, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self.staged, self.target)

    def discard(self) -> None:
        if self.parquet is not None:
            with contextlib.suppress(Exception):
                self.parquet.close()
        self.staged.unlink(missing_ok=True)


def predict_file(uri: str, run: str, pipeline: str, source: Path, target: Path,
                 column: str | None, batch_size: int, k: int, console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from forgeml.serving.loading import bundle_of, endpoint_of
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
