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
