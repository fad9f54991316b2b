"""The project files a pipeline stage runs: the transitive closure of `forgeml` imports (module
level and inside functions) from the stage's command. `python tests/stage_deps.py` rewrites the
src/ deps of every stage of every dvc.yaml to exactly those files (tests/test_dvc.py checks)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
DVC_FILES = ("dvc.yaml", "pipelines/lm/dvc.yaml", "pipelines/recsys/dvc.yaml",
             "pipelines/sentiment/dvc.yaml")
# The task packages: their stage and retraining loaders import lazily (forgeml.tasks.interface).
TASK_PACKAGES = ("classification", "lm", "recsys", "sentiment")
# Read at run time without an import: the report templates.
DATA_DEPS = {"report": {"src/forgeml/reporting/templates"}}


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports(path: Path, top_level_only: bool) -> frozenset[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("forgeml")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("forgeml"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if module_file(f"{node.module}.{a.name}")}
    # a module's parents are imported first (their __init__ runs)
    for name in list(found):
        parts = name.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts))}
    if path == module_file("forgeml.models.registry"):  # builds networks named in config
        from forgeml.models.registry import NETWORKS

        found |= {module for module, _ in NETWORKS.values()}
    return frozenset(n for n in found if module_file(n))


def closure(entries: list[str], top_level_only: frozenset[str] = frozenset()) -> set[Path]:
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += _imports(module_file(name), name in top_level_only)
    return {module_file(n) for n in seen}


def stage_files(task: str, stage: str) -> set[str]:
    """What `forgeml <stage>` runs for a `task` pipeline: the CLI (module level: its other
    commands import lazily), the task registry (module level: a task imports only the stage
    that runs), the stage guard, error reporting, and the stage module."""
    entries = ["forgeml.cli", "forgeml.config", "forgeml.stage_run", "forgeml.tasks",
               "forgeml.faults", "forgeml.credentials", f"forgeml.tasks.{task}.{stage}"]
    lazy = frozenset({"forgeml.cli", *(f"forgeml.tasks.{name}" for name in TASK_PACKAGES)})
    files = closure(entries, top_level_only=lazy)
    return {str(p.relative_to(REPO)) for p in files}


def stages() -> list[tuple[str, str, str, list[str]]]:
    """(dvc file, stage, task, declared deps) for every stage of every pipeline."""
    out = []
    for dvc_file in DVC_FILES:
        spec = yaml.safe_load((REPO / dvc_file).read_text())
        for name, stage in spec["stages"].items():
            words = stage["cmd"].split()
            params = words[words.index("-p") + 1] if "-p" in words else "params.yaml"
            task = yaml.safe_load((REPO / params).read_text())["pipeline"]["task"]
            out.append((dvc_file, name, task, list(stage.get("deps", []))))
    return out


def declared_files(deps: list[str]) -> tuple[set[str], set[str]]:
    """(.py files named or inside a named folder, other src/ deps) of a stage's deps."""
    files, other = set(), set()
    for dep in deps:
        if not dep.startswith("src/"):
            continue
        path = REPO / dep
        if path.is_dir() and dep not in {d for ds in DATA_DEPS.values() for d in ds}:
            files |= {str(p.relative_to(REPO)) for p in path.rglob("*.py")}
        elif dep.endswith(".py"):
            files.add(dep)
        else:
            other.add(dep)
    return files, other


def expected_deps(task: str, stage: str) -> list[str]:
    return sorted(stage_files(task, stage) | DATA_DEPS.get(stage, set()))


def rewrite(dvc_file: str) -> None:
    """Replace the src/ deps of every stage of `dvc_file` with the computed ones (the other
    deps, comments and layout stay)."""
    tasks = {name: task for f, name, task, _ in stages() if f == dvc_file}
    lines = (REPO / dvc_file).read_text().splitlines(keepends=True)
    out, stage, in_deps = [], None, False
    for line in lines:
        stripped = line.strip()
        if line.startswith("  ") and not line.startswith("   ") and stripped.endswith(":"):
            stage = stripped[:-1]
        if stripped == "deps:":
            in_deps, indent = True, line[: len(line) - len(line.lstrip())] + "  "
            out.append(line)
            continue
        if in_deps and stripped.startswith("- "):
            if not stripped.startswith("- src/"):
                out.append(line)
            continue
        if in_deps:
            out += [f"{indent}- {dep}\n" for dep in expected_deps(tasks[stage], stage)]
            in_deps = False
        out.append(line)
    (REPO / dvc_file).write_text("".join(out))


if __name__ == "__main__":
    for name in DVC_FILES:
        rewrite(name)
        print(f"rewrote the src/ deps of {name}")
