"""`forgeml reproduce RUN_ID`: rebuild a run from its lineage — the commit it was trained at,
its composed config (the run's `config/config.yaml`), the data its prepare stage makes — in a
temporary git worktree, rerun its pipeline there (into a throwaway tracking store), and compare
every metric with the original: equal, within the original's interval, or different; and what
matched or differed in code, data, config and environment."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from forgeml import tracking
from forgeml.artifacts import RUN_FILE
from forgeml.dvc_command import dvc_executable
from forgeml.errors import ForgeMLError

# Timings, throughput and memory depend on the machine and its load, not on the run; exported
# files' sizes change by a few bytes with the run id and paths they carry.
_VOLATILE = ("system/", "seconds", "per_second", "latency", "_ms", "throughput", "memory",
             "speedup", "duration", "size_mb")


@dataclass
class Comparison:
    run_id: str
    reproduced_run_id: str
    commit: str
    metrics: list[tuple[str, float, float, str]]  # name, original, reproduced, how they compare
    lineage: list[tuple[str, str, str, bool]]  # what, was, is, same

    @property
    def verdict(self) -> str:
        kinds = {how for *_, how in self.metrics}
        if kinds <= {"equal"}:
            return "reproduced exactly"
        if kinds <= {"equal", "within interval"}:
            return "reproduced within the original's intervals"
        return "not reproduced: some metrics differ"


def reproduce(uri: str, run_id: str, root: Path, keep: bool = False) -> Comparison:
    original = _original(uri, run_id)
    tags = original.data.tags
    commit = _check_reproducible(tags, root, run_id)
    config_text = tracking.download(uri, run_id, "config/config.yaml").read_text()
    cfg = OmegaConf.create(config_text)
    dvc_file = cfg.pipeline.get("dvc_file", "dvc.yaml")
    work = Path(tempfile.mkdtemp(prefix="forgeml-reproduce-"))
    tree = work / "tree"
    _git(root, "worktree", "add", "--detach", str(tree), commit)
    try:
        params = tree / Path(dvc_file).parent / "params.yaml"
        params.write_text(config_text, encoding="utf-8")  # what the run was trained on
        store = f"sqlite:///{work / 'mlflow.db'}"
        _rerun(tree, dvc_file, store, work / "repro.log")
        run_file = tree / cfg.paths.models / RUN_FILE
        reproduced_id = json.loads(run_file.read_text())["run_id"]
        again = tracking.client(store).get_run(reproduced_id)
        lineage = [
            (what, tags.get(key, "not recorded"), again.data.tags.get(key, "not recorded"),
             tags.get(key) == again.data.tags.get(key))
            for what, key in (("code (git commit)", "forgeml.git_commit"),
                              ("data (hash of the prepared splits)", "forgeml.data_hash"),
                              ("config (hash)", "forgeml.config_hash"),
                              ("environment", "forgeml.environment"))]
        comparison = Comparison(run_id, reproduced_id, commit,
                                _compare(original.data.metrics, again.data.metrics), lineage)
    finally:
        _git(root, "worktree", "remove", "--force", str(tree))
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    tracking.client(uri).set_tag(run_id, "forgeml.reproduced", comparison.verdict)
    return comparison


def _original(uri: str, run_id: str):
    try:
        return tracking.client(uri).get_run(run_id)
    except Exception:  # noqa: BLE001 - MLflow raises its own RESOURCE_DOES_NOT_EXIST error
        raise ForgeMLError(f"No run {run_id} in the tracking store {tracking.display_uri(uri)}: "
                           "pass the store it was logged to (--tracking-uri).") from None


def _check_reproducible(tags: dict[str, str], root: Path, run_id: str) -> str:
    commit = tags.get("forgeml.git_commit", "none")
    if "forgeml.config_hash" not in tags:
        raise ForgeMLError(f"Run {run_id} is not a ForgeML training run (no lineage tags).")
    if commit in ("none", ""):
        raise ForgeMLError(f"Run {run_id} cannot be reproduced: it was trained outside a git "
                           "checkout, so the code that ran is not known.")
    if tags.get("forgeml.git_dirty") == "true":
        raise ForgeMLError(
            f"Run {run_id} cannot be reproduced exactly: it was trained from a tree with "
            f"uncommitted changes to its code, so commit {commit[:12]} is not the code that "
            "ran. Commit changes before training to make runs reproducible.")
    known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=root,
                           capture_output=True)
    if known.returncode:
        raise ForgeMLError(f"Run {run_id} was trained at commit {commit[:12]}, which this "
                           "repository does not have: fetch it (`git fetch --all`) and rerun.")
    return commit


def _rerun(tree: Path, dvc_file: str, store: str, log: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    # The worktree's own code, not this checkout's (the project is installed editable).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree / "src"),
                                                      env.get("PYTHONPATH")]))
    env["MLFLOW_TRACKING_URI"] = store
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run([dvc_executable(), "repro", dvc_file], cwd=tree, env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    if done.returncode:
        tail = "\n".join(log.read_text(encoding="utf-8").splitlines()[-15:])
        raise ForgeMLError(f"The pipeline failed when rerun at the run's commit (exit "
                           f"{done.returncode}); the end of its output:\n{tail}")


def _compare(was: dict[str, float], now: dict[str, float]) -> list[tuple[str, float, float, str]]:
    rows = []
    for name in sorted(was):
        if any(word in name for word in _VOLATILE) or name.endswith(("_ci_low", "_ci_high")):
            continue
        a, b = was[name], now.get(name, math.nan)
        if math.isnan(b):
            how = "missing"
        elif math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)):
            how = "equal"
        elif was.get(f"{name}_ci_low", math.inf) <= b <= was.get(f"{name}_ci_high", -math.inf):
            how = "within interval"
        else:
            how = "differs"
        rows.append((name, a, b, how))
    return rows


def markdown(comparison: Comparison) -> str:
    lines = [f"# Reproduction of run {comparison.run_id}", "",
             f"**{comparison.verdict}** — rerun at commit `{comparison.commit[:12]}` with the "
             f"run's composed config (reproduced as run `{comparison.reproduced_run_id}` in a "
             "throwaway store).", "", "| What | Original | Reproduced | Same |",
             "|---|---|---|---|"]
    lines += [f"| {what} | `{was}` | `{now}` | {'yes' if same else '**no**'} |"
              for what, was, now, same in comparison.lineage]
    lines += ["", "| Metric | Original | Reproduced | |", "|---|---:|---:|---|"]
    lines += [f"| {name} | {a:.6g} | {b:.6g} | {how} |"
              for name, a, b, how in comparison.metrics]
    return "\n".join(lines) + "\n"


def _git(root: Path, *args: str) -> None:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode:
        raise ForgeMLError(f"git {' '.join(args[:2])} failed: {done.stderr.strip()[:300]}")
