"""Shared fixtures: a temporary copy of the repository where the real pipeline runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def command_env(extra: dict | None = None) -> dict[str, str]:
    """A user's environment for a command: the project's own sqlite store unless `extra`
    names another, the virtual environment's tools first on PATH."""
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env.update(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore",
               **(extra or {}))
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a real command (forgeml, dvc) as a user would, with the project's environment."""
    result = subprocess.run(cmd, cwd=cwd, env=command_env(env), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(autouse=True)
def _isolated_tracking_uri():
    """`mlflow.set_tracking_uri` also sets $MLFLOW_TRACKING_URI for child processes: a test that
    points MLflow at its own project must not send a later test's commands to that store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(before)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout_s: float = 90) -> bool:
    """True once `url` answers (a server started by a test), False after `timeout_s`."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return True
        except OSError:
            time.sleep(0.5)
    return False


FAULTS = REPO / "tests" / "faults"
AFTER_FIRST_CHECKPOINT = ("pytorch_lightning.callbacks.model_checkpoint:"
                          "ModelCheckpoint._save_last_checkpoint@1:after")


def killed_at(point: str, rank: str | None = None, signal: str = "KILL") -> dict[str, str]:
    """Environment that SIGKILLs (or sends `signal` to) the command at `point` (see
    tests/faults/sitecustomize.py)."""
    env = {"PYTHONPATH": str(FAULTS), "FORGEML_KILL_AT": point, "FORGEML_KILL_SIGNAL": signal}
    if rank is not None:
        env["FORGEML_KILL_RANK"] = rank
    return env


def process_alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until_dead(pid: int, timeout_s: float = 60) -> bool:
    deadline = time.time() + timeout_s
    while process_alive(pid) and time.time() < deadline:
        time.sleep(0.2)
    return not process_alive(pid)


def wait_for_checkpoint(project: Path, pipeline: str = "digits", timeout_s: float = 120) -> None:
    """Until training of `pipeline` in `project` has written its first resume checkpoint."""
    deadline = time.time() + timeout_s
    while not any((project / ".forgeml/resume" / pipeline).glob("*/checkpoints/last.ckpt")):
        assert time.time() < deadline, "training did not start"
        time.sleep(0.3)


def make_project(target: Path, experiment: str = "smoke") -> Path:
    """Copy what a clean clone holds into `target` with `experiment` as the default (DVC's
    `exp run -S` composes from conf/'s defaults), compose params, make it a git repo."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("conf", "src", "pipelines", ".dvc", "dvc.yaml", ".dvcignore", ".gitignore"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns(
                "__pycache__", "tmp", "cache", "*.egg-info"))
        elif source.exists():
            shutil.copy2(source, target / name)
    config = target / "conf" / "config.yaml"
    text = config.read_text()
    assert "  - experiment: digits_default\n" in text
    config.write_text(text.replace("experiment: digits_default", f"experiment: {experiment}"))
    run([str(BIN / "forgeml"), "compose"], cwd=target)
    git = ["git", "-c", "user.email=t@forgeml.test", "-c", "user.name=test"]
    run(["git", "init", "-q"], cwd=target)
    run(["git", "add", "-A"], cwd=target)
    run([*git, "commit", "-qm", "test project"], cwd=target)
    return target


@pytest.fixture(scope="session")
def pipeline_project(tmp_path_factory) -> Path:
    """The real default pipeline (`dvc repro`), on scikit-learn's digits, run once per session."""
    project = make_project(tmp_path_factory.mktemp("pipeline"))
    result = run([str(BIN / "dvc"), "repro"], cwd=project)
    (project / "repro1.log").write_text(result.stdout + result.stderr)
    return project
