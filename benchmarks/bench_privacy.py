"""What DP-SGD costs, side by side in one run: the default digits train stage (MNIST-5k, the CNN)
(a) as it is and (b) with `privacy=dp` (Opacus: per-example gradients, clipping, noise, Poisson
batches), interleaved, in one fresh copy of the project, at the same batch size and epochs.
Prints the median time in training batches and samples/s of each, their ratio, and the best
validation accuracy and ε of each.

    python benchmarks/bench_privacy.py --epochs 3 --repeats 3 --threads 1 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from bench_train import BIN, make_project, sh

FORGEML = str(BIN / "forgeml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per process")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    env.pop("MLFLOW_TRACKING_URI", None)
    common = ["experiment=digits_default", f"trainer.max_epochs={args.epochs}",
              "trainer.enable_progress_bar=false", "train.early_stopping.enabled=false",
              f"train.batch_size={args.batch_size}", "logger.log_model=false"]
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp), common, env)
        sh([FORGEML, "compose", *common, "privacy=dp", "-o", "private.yaml"], project, env)
        sh([FORGEML, "prepare"], project, env)
        runs: dict[str, list[dict]] = {"plain": [], "dp": []}
        for _ in range(args.repeats):
            for name, params in (("plain", "params.yaml"), ("dp", "private.yaml")):
                sh([FORGEML, "train", "-p", params], project, env)
                record = json.loads((project / "models/digits/run.json").read_text())
                runs[name].append({key: record.get(key, float("nan")) for key in (
                    "train_seconds", "train_samples_per_second", "best_val_acc",
                    "privacy_epsilon")})
    medians = {name: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
               for name, rows in runs.items()}
    plain, dp = medians["plain"], medians["dp"]
    print(json.dumps(medians, indent=2))
    print(f"| {args.batch_size} | {plain['train_samples_per_second']:,.0f} | "
          f"{dp['train_samples_per_second']:,.0f} | "
          f"{dp['train_seconds'] / plain['train_seconds']:.1f}x | "
          f"{plain['best_val_acc']:.4f} / {dp['best_val_acc']:.4f} "
          f"(ε {dp['privacy_epsilon']:.2f}) |")


if __name__ == "__main__":
    main()
