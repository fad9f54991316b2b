"""What MLflow's system-metrics sampling costs a training run, side by side in one run: the
default digits train stage with sampling off (`logger.system_metrics_interval_s=0`), at the
default interval, and at 1 s (ten times the default rate), interleaved, in one fresh copy of
the project. Prints the median training time of each and its ratio to "off".

    python benchmarks/bench_system_metrics.py --epochs 10 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import BIN, make_project, sh  # noqa: E402

SETTINGS = {"off": 0, "default (10 s)": 10, "1 s": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory() as scratch:
        root = make_project(Path(scratch), [f"trainer.max_epochs={args.epochs}",
                                            "trainer.enable_progress_bar=false"], env)
        sh([str(BIN / "forgeml"), "prepare"], root, env)
        seconds: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for _ in range(args.repeats):
            for name, interval in SETTINGS.items():
                params = f"params-{interval}.yaml"
                sh([str(BIN / "forgeml"), "compose", f"trainer.max_epochs={args.epochs}",
                    "trainer.enable_progress_bar=false",
                    f"logger.system_metrics_interval_s={interval}", "-o", params], root, env)
                sh([str(BIN / "forgeml"), "train", "-p", params], root, env)
                summary = json.loads((root / "metrics/digits/train.json").read_text())
                seconds[name].append(summary["train_seconds"])
    off = statistics.median(seconds["off"])
    print(f"| sampling | training s (median of {args.repeats}) | vs off |")
    print("|---|---:|---:|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median / off:.3f} |")


if __name__ == "__main__":
    main()
