"""The privacy/utility table (`forgeml privacy-table`): one DVC experiment per ε (`dvc exp run
--temp -S privacy=dp -S privacy.target_epsilon=ε`, ε = inf: `privacy=none`), each shown by
`dvc exp show` and logged to MLflow, then one table of the task's test metric (accuracy, HR@K)
with its interval and the membership attack's AUC per ε, written to
reports/privacy/<pipeline>.md and .json. `--name` keeps several tables apart (experiments
<name>-eps-<ε>, reports/privacy/<pipeline>-<name>.md)."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import NamedTuple

from forgeml.errors import ForgeMLError, TrackingError


class Utility(NamedTuple):
    """The test metric the table trades against ε: its key under test/ and its plain name."""

    key: str  # "acc", "hr_at_10"
    label: str  # "Test accuracy"

    def columns(self) -> tuple[str, ...]:
        test = f"test/{self.key}"
        return (test, f"{test}_ci_low", f"{test}_ci_high", "test/membership_auc",
                "train_summary/privacy_epsilon")


ACCURACY = Utility("acc", "Test accuracy")


def experiment_name(epsilon: float, name: str = "privacy") -> str:
    return f"{name}-eps-inf" if math.isinf(epsilon) else f"{name}-eps-{epsilon:g}"


def overrides(epsilon: float, params_file: str = "params.yaml") -> list[str]:
    """The `-S` values of one ε. DVC composes conf/ only into the root params.yaml; another
    pipeline's params file takes plain key overrides, and already holds every privacy key."""
    if params_file == "params.yaml":
        return ["privacy=none"] if math.isinf(epsilon) else \
            ["privacy=dp", f"privacy.target_epsilon={epsilon:g}"]
    sets = ["privacy.enabled=false"] if math.isinf(epsilon) else \
        ["privacy.enabled=true", f"privacy.target_epsilon={epsilon:g}"]
    return [for_file(value, params_file) for value in sets]


def for_file(override: str, params_file: str) -> str:
    """`key=value` as DVC's override of `params_file` (left alone if it names a file)."""
    key = override.split("=", 1)[0]
    return override if ":" in key or params_file == "params.yaml" else \
        f"{params_file}:{override}"


def run_experiments(epsilons: list[float], extra: list[str], target: str, name: str,
                    params_file: str = "params.yaml") -> None:
    """One `dvc exp run --temp` per ε up to `target` (a stage, e.g. evaluate): the workspace
    is left as it was, and a failed experiment stops the table with DVC's own message."""
    extra = [for_file(value, params_file) for value in extra]
    for epsilon in epsilons:
        exp = experiment_name(epsilon, name)
        subprocess.run(["dvc", "exp", "remove", exp], capture_output=True)  # a rerun replaces
        values = overrides(epsilon, params_file) + extra
        sets = [arg for value in values for arg in ("-S", value)]
        print(f"running DVC experiment {exp} ({' '.join(values)})", flush=True)
        done = subprocess.run(["dvc", "exp", "run", "--temp", "-n", exp, *sets, target])
        if done.returncode != 0:
            raise ForgeMLError(f"DVC experiment {exp} failed (exit {done.returncode}; its "
                               "output is above): fix it and rerun `forgeml privacy-table`.")


def collect(uri: str, experiment: str, epsilons: list[float], name: str,
            metric: Utility = ACCURACY) -> list[dict]:
    """The newest finished MLflow run of each ε's DVC experiment (tag dvc.exp_name)."""
    from forgeml.tracking import client

    store = client(uri)
    found = store.get_experiment_by_name(experiment)
    if found is None:
        raise TrackingError(f"MLflow has no experiment '{experiment}' at {uri}: run "
                            "`forgeml privacy-table` without --no-run first.")
    rows = []
    for epsilon in epsilons:
        exp = experiment_name(epsilon, name)
        runs = store.search_runs([found.experiment_id], max_results=1,
                                 filter_string=f"tags.`dvc.exp_name` = '{exp}' and "
                                               "attributes.status = 'FINISHED'",
                                 order_by=["attributes.start_time DESC"])
        if not runs or f"test/{metric.key}" not in runs[0].data.metrics:
            raise TrackingError(f"no finished, evaluated run of DVC experiment {exp} in "
                                f"MLflow experiment '{experiment}': rerun without --no-run.")
        metrics = runs[0].data.metrics
        rows.append({"target_epsilon": epsilon, "run_id": runs[0].info.run_id,
                     **{key: metrics.get(key, math.nan) for key in metric.columns()}})
    return rows


def markdown(rows: list[dict], pipeline: str, level: str, metric: Utility = ACCURACY) -> str:
    test = f"test/{metric.key}"
    lines = [f"# Privacy vs utility: {pipeline}", "",
             "Each row is the same pipeline trained with DP-SGD for a target ε (∞: without "
             "differential privacy), evaluated on the same test split. Smaller ε is more "
             "private; the membership attack's AUC is 0.5 when it cannot tell training examples "
             "from others.", "",
             f"| Target ε | ε spent | {metric.label} ({level} interval) | Membership attack AUC "
             "| MLflow run |", "|---:|---:|---:|---:|---|"]
    for row in rows:
        target, spent = row["target_epsilon"], row["train_summary/privacy_epsilon"]
        target_text = "∞" if math.isinf(target) else f"{target:g}"
        spent_text = "—" if math.isnan(spent) else f"{spent:.2f}"
        lines.append(
            f"| {target_text} | {spent_text} | {row[test]:.1%} "
            f"({row[f'{test}_ci_low']:.1%} to {row[f'{test}_ci_high']:.1%}) | "
            f"{row['test/membership_auc']:.3f} | `{row['run_id']}` |")
    return "\n".join(lines) + "\n"


def write(rows: list[dict], pipeline: str, level: str, folder: Path, name: str,
          metric: Utility = ACCURACY) -> Path:
    from forgeml.io import atomic_write_json, atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    # JSON has no inf or NaN: the target ∞ is written "inf", a metric a run lacks null.
    clean = [{k: ("inf" if k == "target_epsilon" and math.isinf(v) else
                  None if isinstance(v, float) and not math.isfinite(v) else v)
              for k, v in row.items()} for row in rows]
    stem = pipeline if name == "privacy" else f"{pipeline}-{name}"
    atomic_write_json(folder / f"{stem}.json", clean)
    path = folder / f"{stem}.md"
    atomic_write_text(path, markdown(rows, pipeline, level, metric))
    return path
