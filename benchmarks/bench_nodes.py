"""Two-node DDP vs one process on CPU, side by side in one run: the default digits train stage
(a) as one process (`trainer=cpu`) and (b) as two "nodes" on 127.0.0.1, each started by its own
`torchrun --nnodes=2 --nproc-per-node=1` as on two machines (`trainer=ddp_cpu
trainer.devices=1 trainer.num_nodes=2`, gloo), interleaved, in one fresh copy of the project.
Prints the median wall time and time in training batches of each, and their ratios.

    python benchmarks/bench_nodes.py --epochs 5 --repeats 3 --threads 1

On one 2-core machine both "nodes" share its cores, so this measures what the multi-node path
costs (rendezvous, gloo all-reduce of every gradient), not the speed-up of real extra machines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_train import BIN, free_port, make_project, sh

FORGEML, TORCHRUN = str(BIN / "forgeml"), str(BIN / "torchrun")


def two_nodes(project: Path, params: str, env: dict) -> float:
    port, started = free_port(), time.perf_counter()
    nodes = [subprocess.Popen([TORCHRUN, "--nnodes=2", "--nproc-per-node=1", f"--node-rank={n}",
                               "--master-addr=127.0.0.1", f"--master-port={port}", FORGEML,
                               "train", "-p", params], cwd=project, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in (0, 1)]
    for node in nodes:
        out, err = node.communicate()
        if node.returncode:
            sys.exit(f"two-node training failed:\n{err[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per process")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    env.pop("MLFLOW_TRACKING_URI", None)
    common = ["experiment=digits_default", f"trainer.max_epochs={args.epochs}",
              "trainer.enable_progress_bar=false", "train.early_stopping.enabled=false"]
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp), [*common, "trainer=cpu"], env)
        sh([FORGEML, "compose", *common, "trainer=ddp_cpu", "trainer.devices=1",
            "trainer.num_nodes=2", "-o", "nodes.yaml"], project, env)
        sh([FORGEML, "prepare"], project, env)
        results: dict[str, list[dict]] = {"one process": [], "two nodes": []}
        for _ in range(args.repeats):
            wall, _out = sh([FORGEML, "train"], project, env)
            results["one process"].append({"wall": wall, **_train_figures(project)})
            wall = two_nodes(project, "nodes.yaml", env)
            results["two nodes"].append({"wall": wall, **_train_figures(project)})
    medians = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
               for name, runs in results.items()}
    one, two = medians["one process"], medians["two nodes"]
    print(json.dumps(medians, indent=2))
    print(f"| {args.threads} | {one['wall']:.1f} s | {two['wall']:.1f} s | "
          f"{two['wall'] / one['wall']:.2f} | {one['train_seconds']:.1f} s | "
          f"{two['train_seconds']:.1f} s | {two['train_seconds'] / one['train_seconds']:.2f} | "
          f"{one['best_val_acc']:.4f} / {two['best_val_acc']:.4f} |")


def _train_figures(project: Path) -> dict:
    record = json.loads((project / "models/digits/run.json").read_text())
    return {"train_seconds": record["train_seconds"], "best_val_acc": record["best_val_acc"]}


if __name__ == "__main__":
    main()
