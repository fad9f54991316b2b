"""Two "nodes" on 127.0.0.1, each started by its own `torchrun --nnodes=2` as on two machines,
train one run of the digits pipeline (`trainer.num_nodes=2`, gloo); a node killed mid-training
is resumed by the next launch of both, in the same MLflow run."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import BIN, REPO, command_env, free_port, killed_at, make_project, run
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


@pytest.mark.long  # two-node launches: ~3 min of CI time
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


def slurm_env(task: int, tasks: int, port: int) -> dict[str, str]:
    """What `srun` gives each task of a 2-node job with one task per node (here both "nodes"
    are 127.0.0.1; the job name must not be `bash`, which Lightning treats as interactive)."""
    return {"SLURM_NTASKS": str(tasks), "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": str(tasks),
            "SLURM_JOB_NUM_NODES": str(tasks), "SLURM_PROCID": str(task), "SLURM_LOCALID": "0",
            "SLURM_NODEID": str(task), "SLURM_NODELIST": "127.0.0.1", "SLURM_JOB_ID": "4242",
            "SLURM_JOB_NAME": "forgeml-train", "MASTER_PORT": str(port)}


@pytest.mark.long  # two-node launches: ~3 min of CI time
@pytest.mark.slow  # one two-task launch: ~20 s
def test_tasks_started_by_srun_train_one_run(tmp_path):
    project = make_project(tmp_path / "slurm")
    run([FORGEML, "compose", "trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2",
         "trainer.max_epochs=2", "trainer.enable_progress_bar=false"], cwd=project)
    run([FORGEML, "prepare"], cwd=project)
    port = free_port()
    tasks = [subprocess.Popen([FORGEML, "train"], cwd=project,
                              env=command_env(slurm_env(task, 2, port)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for task in (0, 1)]
    outputs = [task.communicate(timeout=300) for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], outputs[1][1][-3000:]
    [finished] = runs(project)
    assert finished.data.tags["forgeml.ddp_world_size"] == "2"
    assert json.loads((project / "models/digits/run.json").read_text())["run_id"] == \
        finished.info.run_id


def test_the_slurm_recipe_parses_and_composes_its_nodes_and_gpus(tmp_path):
    script = REPO / "scripts/slurm_train.sbatch"
    run(["bash", "-n", str(script)], cwd=tmp_path)
    text = script.read_text()
    directives = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", text, re.MULTILINE))
    # One task per GPU, as Lightning's SLURM environment expects.
    assert directives["ntasks-per-node"] == directives["gpus-per-node"]
    assert "srun" in text and "torchrun" not in text
    compose = re.search(r"^forgeml compose .*?(?<!\\)$", text, re.MULTILINE | re.DOTALL).group(0)
    project = make_project(tmp_path / "cluster")
    run(["bash", "-c", compose.replace("forgeml ", f"{FORGEML} ", 1)], cwd=project,
        env={"SLURM_NTASKS_PER_NODE": directives["ntasks-per-node"],
             "SLURM_JOB_NUM_NODES": directives["nodes"]})
    trainer = yaml.safe_load((project / "params.yaml").read_text())["trainer"]
    assert trainer["devices"] == int(directives["ntasks-per-node"])
    assert trainer["num_nodes"] == int(directives["nodes"])
    assert trainer["strategy"] == "ddp" and trainer["accelerator"] == "gpu"
