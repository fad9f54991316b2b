"""A local copy of exported models and other run artifacts, by run id (`.forgeml/exports/<run>/`
and `.forgeml/runs/<run>/` in the project, else under `~/.cache/forgeml/`): a run's artifacts
never change, so a second `forgeml predict`, `generate` or `serve` of the same run skips MLflow
altogether (importing it and opening its store is most of a cold answer). Every file's hash is
checked on each use, as for a download; a damaged copy is dropped and fetched again."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from forgeml.errors import ConfigError, ModelFileError
from forgeml.serving.bundle import MANIFEST, Bundle, read_bundle


def cache_root() -> Path:
    from forgeml.tracking import project_root

    try:
        return project_root() / ".forgeml" / "exports"
    except ConfigError:  # outside a project
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "forgeml" / \
            "exports"


def _publish(staging: Path, target: Path) -> None:
    """Rename a fully written copy into place (never half a copy; a concurrent one may win)."""
    shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:  # another process cached it first
        shutil.rmtree(staging, ignore_errors=True)


def cached(run_id: str) -> Bundle | None:
    folder = cache_root() / run_id
    if not (folder / MANIFEST).is_file():
        return None
    try:
        return read_bundle(folder)
    except ModelFileError:
        shutil.rmtree(folder, ignore_errors=True)
        return None


def remember(bundle: Bundle) -> Bundle:
    """Copy a downloaded bundle into the cache (staged, then renamed: never half a copy)."""
    target = cache_root() / bundle.run_id
    staging = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(bundle.folder, staging)
    _publish(staging, target)
    return read_bundle(target)


def bundle_for(uri: str, run_id: str, needs: str = "onnx") -> Bundle | None:
    """The run's exported model with the `needs` format: cached, else downloaded (and cached);
    None when the run was never exported with it."""
    from forgeml.serving.bundle import download_bundle

    bundle = cached(run_id)
    if bundle is not None and needs in bundle.manifest["models"]:
        return bundle
    bundle = download_bundle(uri, run_id)
    if bundle is None or needs not in bundle.manifest["models"]:
        return bundle
    return remember(bundle)


FILES = "files.json"  # relative path -> SHA-256 of every cached file of a run


def _verified(folder: Path) -> dict[str, str]:
    """The cached files of a run (relative path -> SHA-256) if every one is intact, else {}."""
    from forgeml.saved_network import sha256

    try:
        listed = json.loads((folder / FILES).read_text(encoding="utf-8"))
        return listed if all(sha256(folder / f) == h for f, h in listed.items()) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _holds(listed: dict[str, str], artifact_path: str) -> bool:
    return any(f == artifact_path or f.startswith(f"{artifact_path}/") for f in listed)


def run_files(uri: str, run_id: str, artifact_paths: list[str]) -> Path:
    """A folder holding the run's `artifact_paths` (files or folders) at the same relative
    paths: cached, else downloaded from the store at `uri` (and cached, beside the run's other
    cached files)."""
    from forgeml.saved_network import sha256
    from forgeml.tracking import download

    target = cache_root().parent / "runs" / run_id
    listed = _verified(target)
    missing = [p for p in artifact_paths if not _holds(listed, p)]
    if not missing:
        return target
    staging = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    if listed:  # an intact copy of other files of the run: add to it
        shutil.copytree(target, staging)
    for artifact_path in missing:
        source = download(uri, run_id, artifact_path)
        destination = staging / artifact_path
        destination.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, destination)
    listed = {str(f.relative_to(staging)): sha256(f)
              for f in sorted(staging.rglob("*")) if f.is_file() and f.name != FILES}
    (staging / FILES).write_text(json.dumps(listed, indent=1), encoding="utf-8")
    _publish(staging, target)
    return target
