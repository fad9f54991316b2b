"""A local copy of exported models, by run id (`.forgeml/exports/<run>/` in the project, else
`~/.cache/forgeml/exports/`): a run's artifacts never change, so a second `forgeml predict` or
`serve` of the same run skips MLflow altogether (importing it and opening its store is most of
a cold answer). Every file's hash is checked on each use, as for a download; a damaged copy is
dropped and fetched again."""

from __future__ import annotations

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
    shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:  # another process cached it first
        shutil.rmtree(staging, ignore_errors=True)
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
