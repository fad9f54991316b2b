"""The `forgeml` command. A pipeline stage (what dvc.yaml runs) starts warm when it can and runs
through forgeml.stage_command alone; every other command through forgeml.cli. Both share the
set-up and the one-line errors here, so a stage's code is its stage and the layers below it."""

from __future__ import annotations

import logging
import os
import sys

from forgeml.errors import ForgeMLError
from forgeml.stages import STAGES


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

    # A DVC stage: run in a warm interpreter when one is up (which calls this function there).
    code = warm.delegate(sys.argv[1:], entry="forgeml.entry:main")
    if code is not None:
        sys.exit(code)
    from forgeml.credentials import clean_environment

    clean_environment()  # credentials out of $MLFLOW_TRACKING_URI before anything reads it
    # Artifact downloads (report, generate, recommend) would draw progress bars on stderr.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # force: a warm worker inherits the root logger that its preloaded libraries configured
    # (mlflow.pytorch's import sets it to ERROR), which would drop ForgeML's own warnings.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactingFilter())
    if len(sys.argv) > 1 and sys.argv[1] in STAGES:
        from forgeml.stage_command import app
    else:
        from forgeml.cli import app
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
    from rich.console import Console
    from rich.markup import escape

    from forgeml.credentials import redact

    Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(redact(message))}",
                               highlight=False, soft_wrap=True)
    sys.exit(2)


if __name__ == "__main__":
    main()
