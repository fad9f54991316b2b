"""ForgeML vs plain PyTorch, side by side in one run, on the default digits model.

  (a) benchmarks/plain_pytorch.py: a plain training loop (same model, data split, augmentation,
      batch size, optimizer and epochs), run as one script;
  (b) ForgeML: `dvc repro` of the whole default pipeline (prepare -> train -> compress ->
      evaluate -> report) in a fresh temporary copy of the project, stages started warm (the
      default: forks of one interpreter that imported torch, Lightning and MLflow once,
      `forgeml.warm`), with no warm server running when it starts;
  (c) the same with every stage started cold (FORGEML_WARM=0).

Prints the training-throughput ratio b/a (samples/s measured over training batches only, both
sides the same way), the whole-pipeline wall-time ratios, and ForgeML's fixed start-up (what
the stage processes import before any work, and DVC itself), warm and cold.

    python benchmarks/bench_train.py --epochs 10 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
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
                 "compress": "forgeml.tasks.classification.compress, mlflow",
                 "evaluate": "forgeml.tasks.classification.evaluate, mlflow",
                 "report": "forgeml.tasks.classification.report, mlflow"}
# A warm stage's imports: in a fork of an interpreter that preloaded what the server does.
WARM_IMPORTS = """
import importlib, json, os, sys, time
from forgeml.warm import PRELOAD
for name in PRELOAD:
    try:
        importlib.import_module(name)
    except Exception:
        pass
times = {}
for stage, modules in json.loads(sys.argv[1]).items():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        start = time.perf_counter()
        for module in ["forgeml.cli", *modules.split(", ")]:
            importlib.import_module(module)
        os.write(write, str(time.perf_counter() - start).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    times[stage] = float(os.read(read, 64))
print(json.dumps(times))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

    plain, forge, cold = [], [], []
    with tempfile.TemporaryDirectory(prefix="forgeml-bench-") as tmp:
        # What each stage process imports before any work (MLflow: every stage but prepare):
        # cold, each in a new interpreter; warm, each in a fork of a preloaded one (the first
        # stage starts cold while the server preloads).
        cold_imports = {stage: sh([str(BIN / "python"), "-c", f"import forgeml.cli, {modules}"],
                                  REPO, env)[0] for stage, modules in STAGE_IMPORTS.items()}
        warm_imports = json.loads(sh([str(BIN / "python"), "-c", WARM_IMPORTS,
                                      json.dumps(STAGE_IMPORTS)], REPO, env)[1])
        first = next(iter(STAGE_IMPORTS))
        warm_imports[first] = cold_imports[first]
        dvc_noop = None
        for i in range(args.repeats):  # interleaved, so machine noise hits all sides alike
            project = make_project(Path(tmp) / f"run{i}", overrides, env)
            wall, out = sh([str(BIN / "python"), str(REPO / "benchmarks/plain_pytorch.py")],
                           project, env)
            plain.append({**json.loads(out.strip().splitlines()[-1]), "process_wall": wall})
            for mode, rows in (("warm", forge), ("cold", cold)):
                project = make_project(Path(tmp) / f"{mode}{i}", overrides, env)
                # A private server folder: no warm server is up when the pipeline starts.
                mode_env = {**env, "FORGEML_WARM": "0" if mode == "cold" else "1",
                            "FORGEML_WARM_DIR": str(Path(tmp) / f"warm-dir{i}")}
                wall, _ = sh([str(BIN / "dvc"), "repro"], project, mode_env)
                train = json.loads((project / "metrics/digits/train.json").read_text())
                test = json.loads((project / "metrics/digits/test.json").read_text())
                rows.append({**train, "test_acc": test["acc"], "process_wall": wall})
            dvc_noop = sh([str(BIN / "dvc"), "repro"], project, env)[0]

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    a_tput, b_tput = med(plain, "train_samples_per_second"), med(forge,
                                                                 "train_samples_per_second")
    a_wall, b_wall = med(plain, "process_wall"), med(forge, "process_wall")
    c_wall = med(cold, "process_wall")
    fixed = sum(warm_imports.values()) + dvc_noop
    fixed_cold = sum(cold_imports.values()) + dvc_noop
    print(f"epochs={args.epochs} repeats={args.repeats} OMP_NUM_THREADS={args.threads} "
          f"(machine: {os.cpu_count()} cores); medians")
    print(f"(a) plain PyTorch : {a_tput:9,.0f} samples/s  wall {a_wall:6.1f} s  "
          f"test acc {med(plain, 'test_acc'):.3f}")
    print(f"(b) ForgeML       : {b_tput:9,.0f} samples/s  wall {b_wall:6.1f} s  "
          f"test acc {med(forge, 'test_acc'):.3f}  (dvc repro: {len(STAGE_IMPORTS)} stages, warm)")
    print(f"(c) ForgeML cold  : {med(cold, 'train_samples_per_second'):9,.0f} samples/s  wall "
          f"{c_wall:6.1f} s  test acc {med(cold, 'test_acc'):.3f}  (FORGEML_WARM=0)")
    # Each repeat's pair ran back to back: its spread is the machine's noise on this ratio.
    pairs = ", ".join(f"{b['train_samples_per_second'] / a['train_samples_per_second']:.3f}"
                      for a, b in zip(plain, forge, strict=True))
    print(f"training throughput ratio b/a          : {b_tput / a_tput:.3f} (each repeat: {pairs})")
    print(f"whole-pipeline wall-time ratio b/a     : {b_wall / a_wall:.3f}")
    print(f"whole-pipeline wall-time ratio c/a     : {c_wall / a_wall:.3f} (cold stages)")
    print("stage imports warm / cold (s): " + ", ".join(
        f"{stage} {warm_imports[stage]:.2f}/{cold_imports[stage]:.2f}" for stage in STAGE_IMPORTS))
    print(f"ForgeML fixed start-up (stages' imports + dvc {dvc_noop:.1f} s): warm {fixed:.1f} s, "
          f"cold {fixed_cold:.1f} s")
    print(f"wall-time ratio without fixed start-up : {(b_wall - fixed) / a_wall:.3f}")


if __name__ == "__main__":
    main()
