"""Soak: `forgeml retrain` killed (`kill -9` of its whole process group) at random moments of
training and promotion, each kill followed by an unkilled retrain. After every pair: no run left
RUNNING, one champion that passed its gate, and no traceback anywhere.

    python benchmarks/soak_retrain.py --cycles 30 [--seed 0] [--keep DIR]

Runs on the smoke experiment in a fresh project (a copy of this checkout, as tests do). Prints
one line per cycle (kill time, the phase it hit) and a summary; exits 1 on any violation."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import make_project as test_project  # noqa: E402 - the tests' project copy
from forgeml.stages import STAGES  # noqa: E402

BIN = Path(sys.executable).parent
FORGEML = str(BIN / "forgeml")
# Each retrain must train: a different learning rate per cycle changes params.yaml. Training
# takes most of a retrain (a cheap compress stage), so that random kills land in training and
# promotion rather than in start-up and compression.
QUICK = ["--set", "trainer.max_epochs=30", "--set", "trainer.enable_progress_bar=false",
         "--set", "compress.finetune_epochs=1", "--set", "compress.distill_epochs=1",
         "--set", "compress.latency_calls=5", "--set", "compress.throughput_seconds=0.05"]


def make_project(target: Path) -> Path:
    """The smoke project the tests use, with a promotion floor the smoke model passes."""
    project = test_project(target)
    settings = project / "conf/retrain/digits.yaml"
    settings.write_text(settings.read_text().replace("floor: 0.9", "floor: 0.05"))
    run(["git", "-c", "user.email=soak@forgeml.test", "-c", "user.name=soak", "commit", "-qam",
         "soak floor"], project)
    return project


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out.update(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore",
               FORGEML_WARM="0")
    return out


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True,
                            timeout=900)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def retrain_args(cycle: int) -> list[str]:
    return ["retrain", "digits", *QUICK, "--set", f"optimizer.lr={0.001 + cycle * 1e-5:.5f}"]


def phase(project: Path, group: int, stdout: str) -> str:
    """Where the kill lands: the stage process running in the retrain's process group (the
    train stage with its MLflow run RUNNING), else what the retrain has printed so far."""
    running = processes_in(group)
    stage = next((argv[argv.index(word) + 1] for argv in running
                  for word in argv if Path(word).name == "forgeml"
                  and argv.index(word) + 1 < len(argv) and argv[argv.index(word) + 1] in STAGES),
                 None)
    if stage == "train":
        return "training (its run RUNNING)" if running_runs(project) else "training (start-up)"
    if stage:
        return f"stage {stage}"
    if "registered digits version" in stdout:
        return "promotion (registered, judging)"
    if any(Path(argv[1]).name == "dvc" for argv in running if len(argv) > 1):
        return "dvc (between stages)"
    if "running the pipeline" in stdout:
        return "registering / judging"
    return "start-up"


def processes_in(group: int) -> list[list[str]]:
    """The command lines of the live processes of a process group."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                found.append([part.decode() for part in
                              stat.with_name("cmdline").read_bytes().split(b"\0") if part])
        except (OSError, ValueError, IndexError):
            continue
    return found


def after_pipeline(process: subprocess.Popen) -> float | None:
    """Waits until the retrain's `dvc repro` has run and ended; when that was (monotonic), or
    None if the retrain ended first."""
    seen = False
    while process.poll() is None:
        dvc = any(len(argv) > 2 and Path(argv[1]).name == "dvc" and argv[2] == "repro"
                  for argv in processes_in(process.pid))
        if dvc:
            seen = True
        elif seen:
            return time.monotonic()
        time.sleep(0.05)
    return None


def store(project: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def running_runs(project: Path) -> list[str]:
    if not (project / "mlflow.db").is_file():
        return []
    client = store(project)
    ids = [e.experiment_id for e in client.search_experiments()]
    return [r.info.run_id for r in client.search_runs(
        ids, filter_string="attributes.status = 'RUNNING'", max_results=1000)]


def champion_problems(project: Path) -> list[str]:
    client = store(project)
    try:
        champion = client.get_model_version_by_alias("digits", "champion")
    except Exception as err:  # noqa: BLE001 - reported as a violation
        return [f"no champion ({str(err).splitlines()[0][:120]})"]
    decision = champion.tags.get("forgeml.retrain.decision")
    return [] if decision == "promoted" else [f"champion v{champion.version} is '{decision}'"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--promotion", action="store_true",
                        help="kill only after the pipeline ran: while the retrain registers, "
                             "scores, judges and moves the alias")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(args.keep or tempfile.mkdtemp(prefix="forgeml-soak-"))
    project = make_project(folder / "project")
    started = time.monotonic()
    # A champion, and the length of a retrain (of its promotion: after `dvc repro` ended).
    process = subprocess.Popen([FORGEML, *retrain_args(0)], cwd=project, env=env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    pipeline_done = after_pipeline(process)
    out, err = process.communicate()
    first = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    span = time.monotonic() - started
    promotion = time.monotonic() - pipeline_done if pipeline_done else 0.0
    # The first retrain also pays first-time costs: later ones end sooner, so the window stops
    # short of its length (a retrain that ends before its kill is counted as such).
    window = 0.85 * span
    if args.promotion:
        print(f"an unkilled retrain promotes for {promotion:.1f} s after its pipeline; killing "
              f"at uniform(0, {promotion:.1f}) s after the pipeline", flush=True)
    else:
        print(f"an unkilled retrain takes {span:.0f} s; killing at uniform(2, {window:.0f}) s",
              flush=True)
    assert "decision: promoted" in first.stdout, first.stdout
    phases: Counter[str] = Counter()
    violations: list[str] = []
    for cycle in range(1, args.cycles + 1):
        delay = rng.uniform(0, promotion) if args.promotion else rng.uniform(2, window)
        log = folder / f"killed-{cycle}.log"
        with log.open("w") as out:
            process = subprocess.Popen([FORGEML, *retrain_args(cycle)], cwd=project, env=env(),
                                       stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            try:
                if args.promotion and after_pipeline(process) is None:
                    raise TimeoutError  # ended without running the pipeline
                process.wait(timeout=delay)
                hit = "finished before the kill"
            except TimeoutError:
                hit = "no pipeline run"
            except subprocess.TimeoutExpired:
                hit = phase(project, process.pid, log.read_text())
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        phases[hit] += 1
        after = run([FORGEML, *retrain_args(cycle)], project, check=False)
        problems = []
        if after.returncode != 0:
            problems.append(f"the next retrain exited {after.returncode}: "
                            f"{after.stderr.strip().splitlines()[-1:]}")
        if "Traceback" in after.stdout + after.stderr:
            problems.append("a traceback in the next retrain")
        if running_runs(project):
            problems.append(f"RUNNING runs left: {running_runs(project)}")
        problems += champion_problems(project)
        status = "ok" if not problems else "; ".join(problems)
        print(f"cycle {cycle:2d}: killed at {delay:5.1f} s ({hit}); next retrain: "
              f"{after.stdout.strip().splitlines()[-1] if after.stdout.strip() else '-'} "
              f"-> {status}", flush=True)
        violations += [f"cycle {cycle}: {p}" for p in problems]
    print(f"\n{args.cycles} cycles in {time.monotonic() - started:.0f} s; kill points: "
          + ", ".join(f"{name} {count}" for name, count in phases.most_common()))
    print(f"violations: {len(violations)}")
    for line in violations:
        print(f"  {line}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
