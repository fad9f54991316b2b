"""The structure holds: layers only point down (import-linter, function-level imports included),
no import cycle, one registry of stages that every list derives from, a task that plugs in by
the registry and its own folder, and DVC deps that follow the layers (an edit in one task or in
the CLI reruns no other pipeline)."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import grimp
import pytest
import yaml
from test_dvc import _committed_clone

from conftest import BIN, REPO, run
from forgeml import warm
from forgeml.stages import STAGES
from stage_deps import DVC_FILES, stages


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package under `root`/src, with `root`/pyproject.toml's contracts."""
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root / "src"), "PATH": str(BIN)})


def test_the_layer_and_independence_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Layers point down KEPT" in result.stdout
    assert "Tasks are independent of each other KEPT" in result.stdout


@pytest.mark.parametrize(("module", "imported", "refused"), [
    ("io", "forgeml.tasks", "forgeml.tasks"),  # core -> registry, at function level
    ("tracking", "forgeml.cli", "forgeml.cli"),  # store -> command line
    ("tasks/lm/train", "forgeml.tasks.recsys.train", "forgeml.tasks.recsys"),  # task -> task
])
def test_an_upward_or_sideways_import_breaks_the_contracts(tmp_path, module, imported, refused):
    shutil.copytree(REPO / "src", tmp_path / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "src" / "forgeml" / f"{module}.py"
    path.write_text(path.read_text() + textwrap.dedent(f"""

        def _added() -> None:
            import {imported}  # noqa: F401
        """))
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"is not allowed to import {refused}" in result.stdout


def test_the_full_import_graph_has_no_cycle():
    """Function-level imports included (grimp reads every import statement)."""
    graph = grimp.build_graph("forgeml")
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert cycles == []


# --- one list of stages ---------------------------------------------------------------------
def _dvc_stages():
    for dvc_file, name, task, _ in stages():
        stage = yaml.safe_load((REPO / dvc_file).read_text())["stages"][name]
        yield dvc_file, name, stage["cmd"].split(), task, stage


@pytest.mark.parametrize(("dvc_file", "name", "words", "task", "stage"), list(_dvc_stages()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_dvc_stage_is_a_registered_stage_of_its_task(dvc_file, name, words, task, stage):
    from forgeml.tasks import task_named

    assert words[:2] == ["forgeml", name], f"{dvc_file}:{name} runs {' '.join(words)}"
    assert name in STAGES
    assert name in task_named(task).stages
    # Every output folder is checked writable by the stage pre-flight before any work.
    written = {out.split("}")[0].removeprefix("${paths.")
               for entry in [*stage.get("outs", []), *stage.get("metrics", []),
                             *stage.get("plots", [])]
               for out in ([entry] if isinstance(entry, str) else entry)
               if out.startswith("${paths.")}
    assert written <= set(STAGES[name].outputs), (dvc_file, name, written)


def test_every_task_stage_is_registered():
    from forgeml.tasks import TASK_MODULES, task_named

    for name in TASK_MODULES:
        task = task_named(name)
        assert task.name == name
        assert set(task.stages) <= set(STAGES), (name, set(task.stages) - set(STAGES))


def test_every_stage_has_a_command_and_starts_warm():
    from typer.main import get_command

    from forgeml.cli import app

    commands = set(get_command(app).commands)
    assert set(STAGES) <= commands
    assert set(STAGES) == warm.STAGE_COMMANDS  # pretrain and finetune included


# --- a task plugs in by the registry and its own folder --------------------------------------
def test_a_new_task_needs_one_registry_line_and_its_own_folder(tmp_path, monkeypatch):
    """A toy task, written as a team would: its package (schema, one stage) and one line in
    the registry; the stage command composes, validates, guards and runs it."""
    package = tmp_path / "toy_task"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass, field
        from typing import Any

        from forgeml.schemas import LoggerSchema, PathsSchema, PipelineSchema
        from forgeml.task_interface import Stage, Task


        @dataclass
        class ToySchema:
            pipeline: PipelineSchema = field(default_factory=PipelineSchema)
            logger: LoggerSchema = field(default_factory=LoggerSchema)
            paths: PathsSchema = field(default_factory=PathsSchema)
            trainer: Any = None
            rows: int = 3


        def _prepare() -> Stage:
            from toy_task import prepare

            return Stage(prepare.run, lambda cfg, rows: f"wrote {rows} rows")


        TASK = Task(name="toy", schema=ToySchema,
                    problems=lambda cfg: [] if cfg.rows > 0 else ["rows must be positive"],
                    stages={"prepare": _prepare})
        '''))
    (package / "prepare.py").write_text(textwrap.dedent('''
        from pathlib import Path


        def run(cfg):
            folder = Path(cfg.paths.prepared)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "rows.txt").write_text("\\n".join(map(str, range(cfg.rows))))
            return cfg.rows
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    from forgeml import tasks
    from forgeml.stage_command import run_stage

    monkeypatch.setitem(tasks.TASK_MODULES, "toy", "toy_task")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("{}\n")  # the project root marker
    params = tmp_path / "params.yaml"
    root_params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.write_text(yaml.safe_dump({
        "pipeline": {**root_params["pipeline"], "name": "toy", "task": "toy"},
        "logger": root_params["logger"],
        "paths": {key: str(tmp_path / value.replace("digits", "toy"))
                  for key, value in root_params["paths"].items()},
        "rows": 4}))
    monkeypatch.chdir(tmp_path)
    run_stage("prepare", params)
    assert (tmp_path / "data/prepared/toy/rows.txt").read_text().split() == ["0", "1", "2", "3"]
    params.write_text(params.read_text().replace("rows: 4", "rows: 0"))
    from forgeml.errors import ConfigError

    with pytest.raises(ConfigError, match="rows must be positive"):
        run_stage("prepare", params)
    with pytest.raises(ConfigError, match="The toy pipeline has no 'train' stage"):
        params.write_text(params.read_text().replace("rows: 0", "rows: 2"))
        run_stage("train", params)


# --- DVC deps follow the layers --------------------------------------------------------------
def _changed_src_deps(clone: Path, dvc_file: str) -> dict[str, list[str]]:
    status = json.loads(run([str(BIN / "dvc"), "status", "--json", dvc_file],
                            cwd=clone).stdout or "{}")
    changed: dict[str, list[str]] = {}
    for stage, entries in status.items():
        for entry in entries:
            if isinstance(entry, dict):
                for path, state in entry.get("changed deps", {}).items():
                    if path.startswith("src/") and state == "modified":
                        changed.setdefault(stage, []).append(path)
    return changed


def test_an_edit_in_one_task_or_the_cli_reruns_no_other_pipeline(tmp_path):
    clone = _committed_clone(tmp_path)
    for edited in ("src/forgeml/tasks/sentiment/train.py", "src/forgeml/tasks/sentiment/report.py",
                   "src/forgeml/cli.py"):
        path = clone / edited
        path.write_text(path.read_text() + "\n# an edit\n")
    for dvc_file in DVC_FILES:
        changed = _changed_src_deps(clone, dvc_file)
        if dvc_file == "pipelines/sentiment/dvc.yaml":  # its own stages do rerun
            assert {"pipelines/sentiment/dvc.yaml:train",
                    "pipelines/sentiment/dvc.yaml:report"} <= set(changed), changed
            assert "pipelines/sentiment/dvc.yaml:prepare" not in changed  # not in its closure
        else:
            assert changed == {}, (dvc_file, changed)
