"""Two "nodes" on 127.0.0.1, each started by its own `torchrun --nnodes=2` as on two machines,
train one run of the digits pipeline (`trainer.num_nodes=2`, gloo); a node killed mid-training
is resumed by the next launch of both, in the same MLflow run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import BIN, command_env, free_port, killed_at, make_project, run
from forgeml.tracking import TOP_LEVEL

FORGEML, TORCHRUN = str(BIN / "forgeml"), str(BIN / "torchrun")


def launch_both(project: Path, node_env: dict[int, dict] | None = None,
                timeout: float = 300) -> dict[int, subprocess.CompletedProcess]:
    """`forgeml train` on node 0 and node 1 at once, as an operator starts them."""
    port = free_port()
    processes = {}
    for node in (0, 1):
        command = [TORCHRUN, "--nnodes=2", "--nproc-per-node=1", f"--node-rank={node}",
                   "--master-addr=127.0.0.1", f"--master-port={port}", FORGEML, "train"]
        processes[node] = subprocess.Popen(
            command, cwd=project, env=command_env((node_env or {}).get(node)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for node, process in processes.items():
        stdout, stderr = process.communicate(timeout=timeout)
        results[node] = subprocess.CompletedProcess(process.args, process.returncode, stdout,
                                                    stderr)
    return results


def runs(project: Path) -> list:
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digits")
    return client.search_runs([experiment.experiment_id], filter_string=TOP_LEVEL) \
        if experiment else []


@pytest.mark.slow  # three two-node launches: ~1.5 min on 2 cores
def test_two_nodes_train_one_run_and_a_killed_node_resumes_it(tmp_path):
    project = make_project(tmp_path / "nodes")
    run([FORGEML, "compose", "trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2",
         "trainer.max_epochs=4", "trainer.enable_progress_bar=false"], cwd=project)
    run([FORGEML, "prepare"], cwd=project)

    # Rank 0 cannot reach the tracking store: both nodes stop with a line, none waits.
    down = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    refused = launch_both(project, {0: down, 1: down}, timeout=120)
    assert refused[0].returncode != 0 and refused[1].returncode != 0
    assert "Rank 0 of this training stopped before training" in refused[1].stderr
    assert "src/forgeml/" not in refused[0].stderr + refused[1].stderr  # no traceback of ours

    # Node 1 is killed in epoch 2 of 4 (20 steps per epoch per rank); node 0 stops too.
    killed = launch_both(project, {1: killed_at(
        "forgeml.training.classifier:Classifier.training_step@30")})
    assert killed[0].returncode != 0 and killed[1].returncode != 0
    [interrupted] = runs(project)
    assert interrupted.info.status in ("FAILED", "KILLED", "RUNNING")

    resumed = launch_both(project)
    assert resumed[0].returncode == 0, resumed[0].stderr[-3000:]
    assert resumed[1].returncode == 0, resumed[1].stderr[-3000:]
    assert f"resuming MLflow run {interrupted.info.run_id}" in resumed[0].stdout
    [finished] = runs(project)  # still exactly one run, written by rank 0 only
    assert finished.info.run_id == interrupted.info.run_id
    assert finished.info.status == "FINISHED"
    tags = finished.data.tags
    assert tags["forgeml.ddp_world_size"] == "2" and tags["forgeml.ddp_weights_identical"] == "true"
    record = json.loads((project / "models/digits/run.json").read_text())
    assert record["run_id"] == finished.info.run_id and record["epochs_trained"] == 4
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    steps = [m.step for m in client.get_metric_history(record["run_id"], "val/loss")]
    assert len(steps) == len(set(steps)) == 4
