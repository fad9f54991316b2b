"""`forgeml sweep`: a real Optuna study on the smoke experiment (scikit-learn's 8x8 digits):
trials as MLflow children of one parent, pruning of a designed bad region, the best experiment
as a config that composes, kill -9 and rerun, two workers, and clear errors before any trial."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import AFTER_FIRST_CHECKPOINT, BIN, killed_at, make_project, run
from forgeml.errors import ConfigError
from forgeml.sweeps.spec import base_values, load_spec
from forgeml.tasks import compose

FORGEML = str(BIN / "forgeml")
# The smoke experiment's lr is 0.001 (trial 0); 1e-6 barely learns: the median pruner stops it.
GRID = {"experiment": "smoke", "overrides": ["trainer.max_epochs=4", "evaluate.baseline=null"],
        "objective": {"metric": "val/acc", "direction": "maximize"},
        "space": {"optimizer.lr": {"type": "categorical", "choices": [0.001, 1.0e-6, 0.003]}},
        "n_trials": 3, "sampler": {"name": "grid", "seed": 0},
        "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 1}}


def _project(tmp_path, spec: dict, name: str = "tiny"):
    project = make_project(tmp_path / "project")
    (project / "conf" / "sweep" / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    return project


def _study(project, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=(
        f"sqlite:///{project / '.forgeml' / 'sweeps' / name / 'study.db'}"))


def _runs(project):
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digits-sweeps")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "forgeml.sweep" in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    project = _project(tmp_path_factory.mktemp("sweep"), GRID)
    result = run([FORGEML, "sweep", "tiny"], cwd=project)
    (project / "sweep.log").write_text(result.stdout + result.stderr)
    return project, result


def test_sweep_runs_n_trials_as_children_of_one_parent(swept):
    project, result = swept
    study = _study(project)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) + states.count(
        optuna.trial.TrialState.PRUNED) == 3
    finished = [t.params for t in study.trials if t.state.is_finished()]
    assert {"optimizer.lr": 0.001} in finished  # the experiment as it is
    parents, children = _runs(project)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 3
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert all(c.info.status == "FINISHED" for c in children)
    assert "sweep done: 3 trials" in result.stdout


def test_a_designed_bad_region_is_pruned(swept):
    project, _ = swept
    trials = _study(project).trials
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    # The median rule may also stop a good but slower start; the hopeless one always goes.
    assert 1.0e-6 in [t.params["optimizer.lr"] for t in pruned]
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(len(t.intermediate_values) < 4 for t in pruned)  # stopped before the end
    _, children = _runs(project)
    assert sum(c.data.tags.get("forgeml.trial_state") == "PRUNED" for c in children) == len(
        pruned)


def test_best_trial_is_an_experiment_that_composes(swept):
    project, _ = swept
    best = _study(project).best_trial
    cfg = compose(["experiment=tiny_best"], config_dir=project / "conf")
    assert cfg.optimizer.lr == best.params["optimizer.lr"]
    assert cfg.trainer.max_epochs == 4 and cfg.data.name == "digits"


def test_sweep_report_compares_best_and_default_on_test(swept):
    project, _ = swept
    html = (project / "reports/sweeps/tiny/report.html").read_text()
    for text in ("Verdict", "trials per hour", "dvc exp run -S experiment=tiny_best",
                 "On the test split", "PRUNED", "data:image/png;base64,"):
        assert text in html, text
    summary = json.loads((project / ".forgeml/sweeps/tiny/summary.json").read_text())
    assert 0 < summary["test"]["best"]["acc"] <= 1
    parents, _ = _runs(project)
    assert parents[0].data.metrics["best_val_acc"] == pytest.approx(summary["best_value"])


def test_rerunning_a_finished_sweep_runs_no_new_trial(swept):
    project, _ = swept
    before = len(_study(project).trials)
    run([FORGEML, "sweep", "tiny"], cwd=project)
    assert len(_study(project).trials) == before
    assert len(_runs(project)[1]) == 3


@pytest.mark.slow
def test_a_killed_sweep_continues_without_losing_or_duplicating_a_trial(tmp_path):
    spec = {**GRID, "sampler": {"name": "random", "seed": 1}, "pruner": {"name": "none"},
            "space": {"optimizer.lr": {"type": "float", "low": 5.0e-4, "high": 5.0e-3,
                                       "log": True}}}
    project = _project(tmp_path, spec)
    killed = run([FORGEML, "sweep", "tiny"], cwd=project, check=False,
                 env=killed_at(AFTER_FIRST_CHECKPOINT))
    assert killed.returncode == -9
    run([FORGEML, "sweep", "tiny"], cwd=project)
    study = _study(project)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert optuna.trial.TrialState.RUNNING not in states
    retried = [t for t in study.trials if "failed_trial" in t.system_attrs]
    assert len(retried) == 1 and retried[0].params == study.trials[0].params
    parents, children = _runs(project)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # The killed trial's run was resumed from its checkpoint: still one child per trial.
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)


@pytest.mark.long  # a second worker on the study: ~1 min
@pytest.mark.slow
def test_two_workers_share_the_study_without_duplicates(tmp_path):
    spec = {**GRID, "n_trials": 4, "pruner": {"name": "none"},
            "space": {"optimizer.lr": {"type": "categorical",
                                       "choices": [0.001, 0.002, 0.003, 0.004]}}}
    project = _project(tmp_path, spec)
    run([FORGEML, "sweep", "tiny", "--workers", "2"], cwd=project)
    trials = [t for t in _study(project).trials if t.state.is_finished()]
    assert len(trials) == 4
    assert sorted(t.params["optimizer.lr"] for t in trials) == [0.001, 0.002, 0.003, 0.004]
    workers = {t.user_attrs["worker_pid"] for t in trials}
    assert len(workers) == 2
    assert len(_runs(project)[1]) == 4


# --- bad input: a clear error before any trial runs ---
@pytest.mark.parametrize("change,message", [
    ({"space": {"optimizer.lrr": {"type": "float", "low": 1e-4, "high": 1e-2}}},
     "space.optimizer.lrr is not a key"),
    ({"space": {"optimizer.lr": {"type": "float", "low": 1e-2, "high": 1e-4}}}, "low < high"),
    ({"objective": {"metric": "test/acc", "direction": "maximize"}}, "validation metric"),
    ({"space": {"data.split.seed": {"type": "int", "low": 1, "high": 5}}},
     "not what prepare reads"),
    ({"space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.1}}},
     "does not contain the experiment's value"),
    ({"storage": "postgresql+psycopg2://optuna:s3cret@db.internal/studies"},
     "storage carries a password"),
])
def test_bad_sweeps_are_refused_before_any_trial(tmp_path, change, message):
    conf = tmp_path / "conf"
    (conf / "sweep").mkdir(parents=True)
    (conf / "sweep" / "bad.yaml").write_text(yaml.safe_dump({**GRID, **change}))
    from conftest import REPO

    with pytest.raises(ConfigError, match=message):
        spec = load_spec("bad", conf)
        base_values(spec, compose(spec.base_overrides(), REPO / "conf"))


def test_an_unreachable_study_storage_fails_in_one_line(tmp_path):
    project = _project(tmp_path, {**GRID, "storage": "postgresql+psycopg2://u@127.0.0.1:9/x"})
    result = run([FORGEML, "sweep", "tiny"], cwd=project, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Cannot open the sweep's study storage" in result.stderr
    assert not (project / ".forgeml" / "sweeps" / "tiny" / "study.db").exists()
