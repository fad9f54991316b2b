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
             "pipelines/sentiment/dvc.yaml", "pipelines/gan/dvc.yaml", "pipelines/ssl/dvc.yaml")
# The task packages: their stage and retraining loaders import lazily (forgeml.task_interface).
TASK_PACKAGES = ("classification", "generative", "lm", "pretraining", "recsys", "sentiment")
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
    """What `forgeml <stage>` runs for a `task` pipeline: the entry point and the warm client
    (module level: the entry imports the other commands only for them), the stage commands,
    the task registry (module level: it imports only the task that runs), the task's own
    package (module level: it imports only the stage that runs), the stage guard, error
    reporting, and the stage module."""
    entries = ["forgeml.entry", "forgeml.warm", "forgeml.stage_command", "forgeml.config",
               "forgeml.stage_run", "forgeml.tasks", f"forgeml.tasks.{task}", "forgeml.faults",
               "forgeml.credentials", f"forgeml.tasks.{task}.{stage}"]
    lazy = frozenset({"forgeml.entry", "forgeml.tasks",
                      *(f"forgeml.tasks.{name}" for name in TASK_PACKAGES)})
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
            out.append((dvc_file, name, task, list(stage.get("deps") or [])))
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




# --- the params a stage reads ----------------------------------------------------------------
# What a stage reads is found from its functions, not its modules: starting at the stage's
# function (and its summarize), every project function, class or module-level value it refers to
# is followed, and each `cfg.<key>` read there counts. Composition and validation (config,
# schemas) read every key to check it, and the stage guard only the outputs' folders: not
# counted. A `paths.<x>` read is covered by `${paths.<x>}` among the stage's deps and outputs.
NOT_READS = {"forgeml.config", "forgeml.schemas", "forgeml.stage_run", "forgeml.cli",
             "forgeml.entry", "forgeml.stage_command"}
_METHODS = {"get", "items", "keys", "values"}
# The task registry's module-level values name every task's stages; a stage runs only its own.
REGISTRIES = {"forgeml.tasks", *(f"forgeml.tasks.{name}" for name in TASK_PACKAGES)}


def _chain(node: ast.AST, aliases: dict[str, list[str]] | None = None) -> list[str] | None:
    """`cfg.a.b` / `cfg["a"].b` -> ["a", "b"] (also through `x = cfg.a` aliases); None when not
    rooted at `cfg`."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            parts.append(str(node.slice.value))
            node = node.value
        elif isinstance(node, ast.Subscript):  # cfg.paths[key]: the whole section
            parts.clear()
            node = node.value
        else:
            break
    if isinstance(node, ast.Name) and node.id == "cfg":
        return parts[::-1]
    if isinstance(node, ast.Name) and aliases and node.id in aliases:
        return aliases[node.id] + parts[::-1]
    return None


def _reads(body: list[ast.AST]) -> set[str]:
    """The config keys read in `body` (`cfg.a.b`, `cfg.a.get("b")`, `cfg["a"]`,
    `OmegaConf.select(cfg, "a.b")`): outermost chains, so `ev = cfg.evaluate` reads the whole
    `evaluate` section."""
    nodes = [n for statement in body for n in ast.walk(statement)]
    # `data = cfg.data`: later `data.source` reads data.source, not the whole section.
    aliases, alias_roots = {}, set()
    for node in nodes:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Attribute | ast.Subscript)):
            parts = _chain(node.value)
            if parts:
                aliases[node.targets[0].id] = parts
                alias_roots.add(id(node.value))
    inner = {id(n.value) for n in nodes if isinstance(n, ast.Attribute | ast.Subscript)}
    inner |= alias_roots
    called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}  # cfg.a.b.rsplit(): a.b
    keys: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            base, first = _chain(node.func.value, aliases), node.args[0]
            if node.func.attr == "get" and base is not None and isinstance(first, ast.Constant):
                keys.add(".".join([*base, str(first.value)]))
                inner.add(id(node.func))
            if (node.func.attr == "select" and isinstance(first, ast.Name) and first.id == "cfg"
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
                keys.add(str(node.args[1].value))
    for node in nodes:
        if (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in aliases
                and id(node) not in inner):
            keys.add(".".join(aliases[node.id]))  # the alias itself passed on: all of it
        if isinstance(node, ast.Attribute | ast.Subscript) and id(node) not in inner:
            parts = _chain(node, aliases)
            if parts and id(node) in called:
                parts = parts[:-1]
            while parts and parts[-1] in _METHODS:
                parts = parts[:-1]
            if parts:
                keys.add(".".join(parts))
    return keys


@cache
def _module(name: str) -> tuple[dict[str, ast.AST], dict[str, tuple[str, str | None]],
                                 list[ast.AST]]:
    """(top-level functions and classes, imported names -> (module, name or None for a
    module), the other top-level statements) of a project module."""
    tree = ast.parse(module_file(name).read_text())
    defs = {n.name: n for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    aliases: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):  # imports inside functions too: they name the same things
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("forgeml"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                aliases[a.asname or a.name] = (full, None) if module_file(full) else \
                    (node.module, a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("forgeml") and a.asname:
                    aliases[a.asname] = (a.name, None)
    rest = [n for n in tree.body if n.__class__.__name__ not in (
        "FunctionDef", "AsyncFunctionDef", "ClassDef", "Import", "ImportFrom")]
    return defs, aliases, rest


def function_reads(entries: list[tuple[str, str | None]]) -> set[str]:
    """Config keys read by the functions reachable from `entries` ((module, function); None:
    the module's top-level statements)."""
    seen: set[tuple[str, str | None]] = set()
    todo, keys = list(entries), set()
    while todo:
        item = todo.pop()
        if item in seen or not module_file(item[0]):
            continue
        seen.add(item)
        module, name = item
        defs, aliases, rest = _module(module)
        body = rest if name is None else [defs[name]] if name in defs else []
        if name is not None and module not in REGISTRIES:
            todo.append((module, None))  # its module-level values (constants, registries)
        if module not in NOT_READS:
            keys |= _reads(body)
        for node in (n for statement in body for n in ast.walk(statement)):
            if isinstance(node, ast.Name):
                if node.id in defs:
                    todo.append((module, node.id))
                elif node.id in aliases:
                    target, attr = aliases[node.id]
                    todo.append((target, attr))
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and aliases.get(node.value.id, ("", ""))[1] is None):
                todo.append((aliases[node.value.id][0], node.attr))
            elif isinstance(node, ast.ClassDef):  # a class: its bases' methods too
                todo += [(module, b.id) for b in node.bases if isinstance(b, ast.Name)]
    return keys


def stage_reads(task: str, stage: str) -> set[str]:
    module = f"forgeml.tasks.{task}.{stage}"
    defs, _, _ = _module(module)
    entries = [(module, n) for n in (stage, "summarize") if n in defs]
    if stage == "report":  # the shared skeleton with the task's sections (module level)
        entries += [(module, None), ("forgeml.reporting.skeleton", "write"),
                    ("forgeml.reporting.skeleton", "summary")]
    entries += [("forgeml.tasks", "task_of")]
    return function_reads(entries)


def declared_params(dvc_file: str, stage: str) -> tuple[set[str], str]:
    """(declared params, the text of its deps and outputs) of a stage."""
    spec = yaml.safe_load((REPO / dvc_file).read_text())["stages"][stage]
    # Stages run at the repository root, where a bare key names the root params.yaml: only
    # the keys of the file the stage's command reads count.
    own = str(Path(dvc_file).parent / "params.yaml") if "/" in dvc_file else "params.yaml"
    declared: set[str] = set()
    for entry in spec.get("params", []):
        if isinstance(entry, dict):
            declared |= {key for file, keys in entry.items() if file == own for key in keys}
        elif own == "params.yaml":
            declared.add(entry)
    paths = yaml.safe_dump({k: spec.get(k) for k in ("deps", "outs", "metrics", "plots")})
    return declared, paths


# Reads of a config the stage derives, not of the params file: the baselines stage trains each
# baseline with its own `model` and paths (tasks/sentiment/baselines.baseline_config).
DERIVED = {("sentiment", "baselines"): {"model", "model._target_", "paths.metrics",
                                        "paths.models", "paths.plots"},
           # The GAN's feature classifier (tasks/generative/network.features_config): its own
           # model, optimizer and epochs, so changing the GAN's never retrains it; it keeps
           # the hardware settings of `trainer`, declared key by key.
           # It is never trained privately (features_config sets privacy off).
           ("generative", "features"): {"model", "model._target_", "optimizer", "trainer",
                                        "trainer.max_epochs", "train.early_stopping",
                                        "privacy", "privacy.enabled", "privacy.fix_layers",
                                        "privacy.noise_seed"},
           **{("generative", stage): {"privacy.enabled", "privacy.fix_layers"}
              for stage in ("train", "evaluate", "report")}}


def _covered(key: str, declared: set[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


def undeclared_reads(dvc_file: str, stage: str, task: str) -> list[str]:
    """Keys the stage reads that no declared param covers (a declared `a` covers `a.b`)."""
    declared, paths = declared_params(dvc_file, stage)
    return sorted(key for key in stage_reads(task, stage) - DERIVED.get((task, stage), set())
                  if not _covered(key, declared)
                  and not (key.startswith("paths.") and "${" + key + "}" in paths))


WHOLE_SECTIONS = {"logger", "pipeline"}


def rewrite_params(dvc_file: str) -> None:
    """Add the keys each stage of `dvc_file` reads but does not declare to its `params:` (the
    declared ones stay; a key inside a declared section is not repeated)."""
    tasks = {name: task for f, name, task, _ in stages() if f == dvc_file}
    out, stage, in_params, indent = [], None, False, ""

    def add_missing() -> None:
        # Where to log and what the pipeline is are declared whole (`logger`, `pipeline`).
        missing = sorted({key.split(".")[0] if key.split(".")[0] in WHOLE_SECTIONS else key
                          for key in undeclared_reads(dvc_file, stage, tasks[stage])})
        out.extend(f"{indent}- {key}\n" for key in missing
                   if not _covered(key, set(missing) - {key}))

    for line in (REPO / dvc_file).read_text().splitlines(keepends=True):
        stripped = line.strip()
        if line.startswith("  ") and not line.startswith("   ") and stripped.endswith(":"):
            stage = stripped[:-1]
        if in_params and stripped.startswith("- ") and stripped.endswith("params.yaml:"):
            out.append(line)  # `- pipelines/<p>/params.yaml:`, its keys below
            continue
        if in_params and stripped.startswith("- "):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(line)
            continue
        if in_params:
            add_missing()
            in_params = False
        if stripped == "params:":
            in_params = True
        out.append(line)
    (REPO / dvc_file).write_text("".join(out))


if __name__ == "__main__":
    for name in DVC_FILES:
        rewrite(name)
        rewrite_params(name)
        print(f"rewrote the src/ deps of {name} and added the params its stages read")
