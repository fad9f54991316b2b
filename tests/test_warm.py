"""Warm stage start-up (forgeml.warm): a DVC stage runs in a fork of a preloaded interpreter
and behaves as the same command started cold — outputs, errors, exit codes, signals, kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (
    BIN,
    command_env,
    killed_at,
    make_project,
    process_alive,
    run,
    wait_for_checkpoint,
    wait_until_dead,
)
from forgeml import warm

FORGEML = str(BIN / "forgeml")


@pytest.fixture()
def warm_dir():
    # A short private path: a unix socket's path has ~100 characters at most.
    folder = Path(tempfile.mkdtemp(prefix="fw-"))
    os.chmod(folder, 0o700)
    yield folder
    for sock in folder.glob("*.sock"):
        sock.unlink(missing_ok=True)


def warm_env(folder: Path, stage: str | None = None, **extra: str) -> dict[str, str]:
    env = {"FORGEML_WARM_DIR": str(folder), "FORGEML_WARM_IDLE_S": "15", **extra}
    if stage:
        env["DVC_STAGE"] = stage  # what DVC sets for a stage command
    return env


def served(folder: Path) -> list[str]:
    """The stage commands a warm server ran (its log)."""
    return [line.split("stage ", 1)[1].split(" in ", 1)[0]
            for log in folder.glob("*.log") for line in log.read_text().splitlines()
            if " stage " in line]


def wait_until_ready(folder: Path, timeout_s: float = 90) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if any("ready" in log.read_text() for log in folder.glob("*.log")):
            return
        time.sleep(0.2)
    raise AssertionError("the warm server did not come up")


def worker_of(folder: Path, command: str, timeout_s: float = 90) -> int:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for log in folder.glob("*.log"):
            for line in log.read_text().splitlines():
                if f" stage {command} in " in line:
                    return int(line.rsplit("worker ", 1)[1])
        time.sleep(0.2)
    raise AssertionError(f"no warm worker ran `forgeml {command}`")


def test_the_server_key_follows_the_environment_but_not_what_changes_per_stage(monkeypatch):
    base = warm.server_key()
    monkeypatch.setenv("DVC_STAGE", "train")
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "another test")
    assert warm.server_key() == base
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # read by libraries as they import
    assert warm.server_key() != base


def test_a_folder_others_can_open_is_refused_and_the_stage_starts_cold(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    monkeypatch.setenv("FORGEML_WARM_DIR", str(shared))
    monkeypatch.setenv("DVC_STAGE", "report")
    with pytest.raises(PermissionError):
        warm.runtime_dir()
    assert warm.delegate(["report"], entry="forgeml.entry:main") is None  # None: run cold, here
    assert not list(shared.iterdir())


def test_only_dvc_stage_commands_go_warm(monkeypatch, warm_dir):
    monkeypatch.setenv("FORGEML_WARM_DIR", str(warm_dir))
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert warm.delegate(["train"], entry="forgeml.entry:main") is None
    monkeypatch.setenv("DVC_STAGE", "x")
    assert warm.delegate(["serve"], entry="forgeml.entry:main") is None
    monkeypatch.setenv("FORGEML_WARM", "0")
    assert warm.delegate(["train"], entry="forgeml.entry:main") is None
    assert not list(warm_dir.iterdir())


def test_files_of_servers_gone_for_a_day_are_removed_and_live_ones_kept(warm_dir):
    import fcntl

    day_ago = time.time() - 2 * 86400
    for key in ("gone", "live"):
        for suffix in (".lock", ".log"):
            (warm_dir / f"{key}{suffix}").write_text("")
            os.utime(warm_dir / f"{key}{suffix}", (day_ago, day_ago))
    with open(warm_dir / "live.lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a server still running
        warm._forget_old_servers(warm_dir)
    assert sorted(p.name for p in warm_dir.iterdir()) == ["live.lock", "live.log"]


def test_a_pipeline_runs_warm_with_the_results_and_errors_of_a_cold_one(tmp_path, warm_dir):
    project = make_project(tmp_path / "project")
    env = warm_env(warm_dir)
    run([str(BIN / "dvc"), "repro", "evaluate"], cwd=project, env=env)
    assert "evaluate" in served(warm_dir)  # prepare started the server
    status = run([str(BIN / "dvc"), "status", "evaluate"], cwd=project).stdout
    assert status.strip().endswith("up to date.")
    warm_metrics = json.loads((project / "metrics/digits/test.json").read_text())
    # The same stage cold: the same numbers (latency aside).
    run([str(BIN / "dvc"), "repro", "-f", "-s", "evaluate"], cwd=project,
        env={**env, "FORGEML_WARM": "0"})
    cold_metrics = json.loads((project / "metrics/digits/test.json").read_text())
    assert {k: v for k, v in warm_metrics.items() if "latency" not in k} == \
        {k: v for k, v in cold_metrics.items() if "latency" not in k}
    # A failing stage: the same one-line error and exit code, warm and cold.
    bad = ["report", "-p", "missing.yaml"]
    # The server may have gone idle meanwhile: the first call starts one (and runs cold).
    run([FORGEML, *bad], cwd=project, check=False, env=warm_env(warm_dir, "report"))
    wait_until_ready(warm_dir)
    warm_run = run([FORGEML, *bad], cwd=project, check=False, env=warm_env(warm_dir, "report"))
    cold_run = run([FORGEML, *bad], cwd=project, check=False,
                   env=warm_env(warm_dir, "report", FORGEML_WARM="0"))
    assert served(warm_dir)[-1] == " ".join(bad)
    assert warm_run.returncode == cold_run.returncode == 2
    assert warm_run.stderr == cold_run.stderr
    assert "missing.yaml not found" in warm_run.stderr and "Traceback" not in warm_run.stderr


@pytest.fixture()
def long_training(tmp_path):
    project = make_project(tmp_path / "project")
    run([str(BIN / "dvc"), "repro", "prepare"], cwd=project)
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("max_epochs: 5", "max_epochs: 400"))
    return project


def start_training(project: Path, folder: Path) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONWARNINGS": "ignore", **warm_env(folder, "train")}
    env.pop("MLFLOW_TRACKING_URI", None)
    # The server comes up first (a report that fails at once starts it), then train runs warm.
    run([FORGEML, "report", "-p", "missing.yaml"], cwd=project, check=False,
        env=warm_env(folder, "train"))  # the same environment as `env`: the same server
    wait_until_ready(folder)
    client = subprocess.Popen([FORGEML, "train"], cwd=project, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    worker = worker_of(folder, "train")
    wait_for_checkpoint(project)
    return client, worker


@pytest.mark.slow  # a training run killed: ~15 s
def test_a_kill_9_of_a_warm_stage_command_stops_its_stage_with_a_checkpoint(long_training,
                                                                           warm_dir):
    client, worker = start_training(long_training, warm_dir)
    client.kill()
    client.wait()
    assert wait_until_dead(worker, 60), "the warm worker outlived its killed stage command"
    # SIGTERM first, SIGKILL only after the grace period: training checkpointed as it stopped,
    # so the next run loses nothing (a SIGKILL at once lost up to an epoch).
    folder = next((long_training / ".forgeml/resume/digits").glob("*"))
    assert (folder / "checkpoints" / "on_exception.ckpt").is_file()


@pytest.mark.slow  # a stage that ignores SIGTERM: ~10 s
def test_a_stage_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, warm_dir):
    """The grace period is bounded: a stage stuck past it gets SIGKILL."""
    (tmp_path / "stubborn_entry.py").write_text(
        "import signal, time\n"
        "def main():\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    time.sleep(600)\n")
    client_cmd = [str(BIN / "python"), "-c",
                  "import sys; from forgeml import warm; "
                  "code = warm.delegate(['train'], entry='stubborn_entry:main'); "
                  "sys.exit(3 if code is None else code)"]
    env = command_env(warm_env(warm_dir, "train", FORGEML_WARM_GRACE_S="2"))
    first = subprocess.run(client_cmd, cwd=tmp_path, env=env, timeout=60)
    assert first.returncode == 3  # no server yet: this one starts it and runs cold
    wait_until_ready(warm_dir)
    client = subprocess.Popen(client_cmd, cwd=tmp_path, env=env)
    worker = worker_of(warm_dir, "train")
    time.sleep(1)
    client.kill()
    client.wait()
    started = time.monotonic()
    assert wait_until_dead(worker, 30), "a stage that ignores SIGTERM outlived the grace period"
    assert time.monotonic() - started >= 1.0  # it was given the grace period first


@pytest.mark.slow  # a training run killed: ~15 s
def test_a_signal_to_a_warm_stage_command_reaches_its_stage(long_training, warm_dir):
    client, worker = start_training(long_training, warm_dir)
    client.send_signal(signal.SIGTERM)
    _, stderr = client.communicate(timeout=120)
    assert client.returncode != 0
    assert not process_alive(worker)
    # The stage itself got the SIGTERM: training checkpointed as it stopped.
    folder = next((long_training / ".forgeml/resume/digits").glob("*"))
    assert (folder / "checkpoints" / "on_exception.ckpt").is_file(), stderr[-2000:]


@pytest.mark.slow  # a training run killed: ~15 s
def test_a_warm_stage_whose_dvc_is_killed_checkpoints_and_stops(long_training, warm_dir):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONWARNINGS": "ignore", **warm_env(warm_dir)}
    env.pop("MLFLOW_TRACKING_URI", None)
    run([FORGEML, "report", "-p", "missing.yaml"], cwd=long_training, check=False,
        env=warm_env(warm_dir, "report"))  # the server comes up first
    wait_until_ready(warm_dir)
    dvc = subprocess.Popen([str(BIN / "dvc"), "repro", "train"], cwd=long_training, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        worker = worker_of(warm_dir, "train")
        wait_for_checkpoint(long_training)
        os.kill(dvc.pid, signal.SIGKILL)
        dvc.wait()
        assert wait_until_dead(worker, 60), "the warm stage outlived its killed dvc"
        folder = next((long_training / ".forgeml/resume/digits").glob("*"))
        assert (folder / "checkpoints" / "on_exception.ckpt").is_file()
    finally:
        if dvc.poll() is None:
            dvc.kill()


@pytest.mark.slow  # a training killed, then rerun warm: ~40 s
def test_a_forgeml_warning_in_a_warm_stage_reaches_the_console(tmp_path, warm_dir):
    """The preload configures the root logger (mlflow.pytorch sets it to ERROR); the stage
    configures it again, so ForgeML's own warnings are shown warm as they are cold. Here: a
    resume checkpoint that loads but is not a Lightning checkpoint is set aside, with a warning."""
    import torch

    project = make_project(tmp_path / "project")
    run([str(BIN / "dvc"), "repro", "prepare"], cwd=project)
    killed = run([FORGEML, "train"], cwd=project, check=False, env=killed_at(
        "forgeml.training.classifier:Classifier.training_step@60"))
    assert killed.returncode != 0
    [last] = list((project / ".forgeml/resume/digits").glob("*/checkpoints/last.ckpt"))
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 1}, last)  # another tool's file
    env = warm_env(warm_dir, "train")
    run([FORGEML, "report", "-p", "missing.yaml"], cwd=project, check=False, env=env)
    wait_until_ready(warm_dir)  # the server is up: the train below runs warm
    rerun = run([FORGEML, "train"], cwd=project, env=env)
    assert "train" in served(warm_dir)
    assert "not resuming from checkpoint" in rerun.stderr, rerun.stderr[-2000:]
    assert "not a Lightning checkpoint" in rerun.stderr and "Traceback" not in rerun.stderr
