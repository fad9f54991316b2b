"""ForgeML vs plain PyTorch, side by side in one run, on the default digits model.

  (a) benchmarks/plain_pytorch.py: a plain training loop (same model, data split, augmentation,
      batch size, optimizer and epochs), run as one script;
  (b) ForgeML: `dvc repro` of the whole pipeline (prepare -> train -> evaluate -> report) in a
      fresh temporary copy of the project.

Prints the training-throughput ratio b/a (samples/s measured over training batches only, both
sides the same way) and the whole-pipeline wall-time ratio, plus ForgeML's fixed start-up
(what the four stage processes import before any work, and DVC itself).

    python benchmarks/bench_train.py --epochs 10 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGE_IMPORTS = {"prepare": "forgeml.tasks.classification.prepare",
                 "train": "forgeml.tasks.classification.train, mlflow",
                 "evaluate": "forgeml.tasks.classification.evaluate, mlflow",
                 "report": "forgeml.tasks.classification.report, mlflow"}


def sh(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start, result.stdout


def make_project(root: Path, overrides: list[str], env: dict,
                 params: str = "params.yaml") -> Path:
    """A fresh copy of the project (as a clean clone holds it) with `overrides` composed into
    `params`, committed to a new git repository."""
    for name in ("conf", "src", "pipelines", ".dvc", "dvc.yaml", ".dvcignore"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns(
                "__pycache__", "tmp", "cache", "*.egg-info"))
        else:
            shutil.copy2(source, root / name)
    sh([str(BIN / "forgeml"), "compose", *overrides, "-o", params], root, env)
    git = ["git", "-c", "user.email=b@forgeml.test", "-c", "user.name=bench"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "bench"]):
        sh(cmd, root, env)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP threads for both sides (1 = stable timings on shared cores)")
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(args.threads)}
    env.pop("MLFLOW_TRACKING_URI", None)
    # Same epochs on both sides: early stopping off.
    overrides = [f"trainer.max_epochs={args.epochs}", "train.early_stopping.enabled=false"]

    plain, forge = [], []
    with tempfile.TemporaryDirectory(prefix="forgeml-bench-") as tmp:
        # What each stage process imports before any work (MLflow: every stage but prepare).
        startup = sum(sh([str(BIN / "python"), "-c", f"import forgeml.cli, {modules}"], REPO,
                         env)[0] for modules in STAGE_IMPORTS.values())
        dvc_noop = None
        for i in range(args.repeats):  # interleaved, so machine noise hits both sides alike
            project = make_project(Path(tmp) / f"run{i}", overrides, env)
            wall, out = sh([str(BIN / "python"), str(REPO / "benchmarks/plain_pytorch.py")],
                           project, env)
            plain.append({**json.loads(out.strip().splitlines()[-1]), "process_wall": wall})
            wall, _ = sh([str(BIN / "dvc"), "repro"], project, env)
            train = json.loads((project / "metrics/digits/train.json").read_text())
            test = json.loads((project / "metrics/digits/test.json").read_text())
            forge.append({**train, "test_acc": test["acc"], "process_wall": wall})
            dvc_noop = sh([str(BIN / "dvc"), "repro"], project, env)[0]

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    a_tput, b_tput = med(plain, "train_samples_per_second"), med(forge,
                                                                 "train_samples_per_second")
    a_wall, b_wall = med(plain, "process_wall"), med(forge, "process_wall")
    fixed = startup + dvc_noop
    print(f"epochs={args.epochs} repeats={args.repeats} OMP_NUM_THREADS={args.threads} "
          f"(machine: {os.cpu_count()} cores); medians")
    print(f"(a) plain PyTorch : {a_tput:9,.0f} samples/s  wall {a_wall:6.1f} s  "
          f"test acc {med(plain, 'test_acc'):.3f}")
    print(f"(b) ForgeML       : {b_tput:9,.0f} samples/s  wall {b_wall:6.1f} s  "
          f"test acc {med(forge, 'test_acc'):.3f}  (dvc repro: 4 stages)")
    print(f"training throughput ratio b/a          : {b_tput / a_tput:.3f}")
    print(f"whole-pipeline wall-time ratio b/a     : {b_wall / a_wall:.3f}")
    print(f"ForgeML fixed start-up (4 stages' imports + dvc): {fixed:.1f} s")
    print(f"wall-time ratio without fixed start-up : {(b_wall - fixed) / a_wall:.3f}")


if __name__ == "__main__":
    main()
