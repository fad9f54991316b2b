"""What logging to a team tracking server costs one pipeline run, side by side in one run: the
default digits pipeline (`dvc repro -f`, every stage) logging (a) to the project's sqlite
`mlflow.db` and (b) to an MLflow server proxying its artifacts (`--artifacts-destination`),
interleaved, in one fresh copy of the project. The server's backend store is `--backend` (a
PostgreSQL URL for the team setup, its password in $PGPASSWORD; default: sqlite in a temporary
folder). Prints the median wall time of each and their ratio.

    python benchmarks/bench_tracking.py --epochs 5 --repeats 2 \\
        --backend postgresql+psycopg2://mlflow@127.0.0.1:5433/mlflow
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_train import BIN, REPO, free_port, make_project, sh


def start_server(backend: str, folder: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        ["bash", str(REPO / "scripts/team_server.sh")], env={
            **env, "FORGEML_SERVER_DB": backend, "FORGEML_SERVER_PORT": str(port),
            "FORGEML_SERVER_ARTIFACTS": str(folder / "artifacts"), "FORGEML_SERVER_WORKERS": "2"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            return server, uri
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGTERM)
    sys.exit(f"the MLflow server on {backend} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", default=None, help="the server's backend store URI")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONWARNINGS": "ignore",
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        backend = args.backend or f"sqlite:///{root / 'server.db'}"
        project = make_project(root / "project", [
            "experiment=digits_default", f"trainer.max_epochs={args.epochs}",
            "trainer.enable_progress_bar=false"], env)
        server, uri = start_server(backend, root, env)
        try:
            sh([str(BIN / "dvc"), "repro"], project, env)  # warm-up: data prepared, caches hot
            walls: dict[str, list[float]] = {"sqlite": [], "server": []}
            for _ in range(args.repeats):
                for name, extra in (("sqlite", {}), ("server", {"MLFLOW_TRACKING_URI": uri})):
                    wall, _ = sh([str(BIN / "dvc"), "repro", "-f"], project, {**env, **extra})
                    walls[name].append(wall)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    medians = {name: statistics.median(values) for name, values in walls.items()}
    print(json.dumps({"backend": backend.split("://")[0], "walls": walls}, indent=2))
    print(f"| {backend.split('://')[0]} | {medians['sqlite']:.1f} s | {medians['server']:.1f} s "
          f"| {medians['server'] / medians['sqlite']:.2f} |")


if __name__ == "__main__":
    main()
