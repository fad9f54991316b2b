"""The MLflow model registry as retraining uses it: one registered model per pipeline, aliases
`challenger` and `champion`, and the champion history (for rollback) as a registered-model tag.
Moving an alias is a single registry call, so the champion is never half-updated."""

from __future__ import annotations

import json

from forgeml import tracking
from forgeml.errors import TrackingError

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "forgeml.champion_history"  # JSON list of versions that were champion, oldest first


def _client(uri: str):
    return tracking.client(uri)


def register(uri: str, pipeline: str, run_id: str) -> str:
    """A new version of `pipeline` from the run's logged model, aliased `challenger`."""
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    try:
        client.get_registered_model(pipeline)
    except MlflowException:
        client.create_registered_model(pipeline, description=f"ForgeML pipeline '{pipeline}'")
    version = client.create_model_version(pipeline, f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(pipeline, CHALLENGER, version.version)
    return str(version.version)


def alias_version(uri: str, pipeline: str, alias: str):
    """The model version behind `alias`, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return _client(uri).get_model_version_by_alias(pipeline, alias)
    except MlflowException:
        return None


def history(uri: str, pipeline: str) -> list[str]:
    from mlflow.exceptions import MlflowException

    try:
        tags = _client(uri).get_registered_model(pipeline).tags
    except MlflowException:
        return []
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def promote(uri: str, pipeline: str, version: str) -> None:
    client = _client(uri)
    past = history(uri, pipeline)
    client.set_registered_model_tag(pipeline, HISTORY_TAG, json.dumps([*past, version]))
    client.set_registered_model_alias(pipeline, CHAMPION, version)


def tag_version(uri: str, pipeline: str, version: str, tags: dict[str, str]) -> None:
    client = _client(uri)
    for key, value in tags.items():
        client.set_model_version_tag(pipeline, version, key, str(value)[:5000])


def drop_challenger(uri: str, pipeline: str, version: str) -> None:
    """After a failure: the alias must not point at a version that was never judged."""
    current = alias_version(uri, pipeline, CHALLENGER)
    if current is not None and str(current.version) == str(version):
        _client(uri).delete_registered_model_alias(pipeline, CHALLENGER)


def rollback(uri: str, pipeline: str) -> tuple[str, str]:
    """Point `champion` back at the previous champion; returns (from, to) versions."""
    current = alias_version(uri, pipeline, CHAMPION)
    if current is None:
        raise TrackingError(f"Pipeline '{pipeline}' has no champion in {uri}: nothing to roll "
                            "back.")
    past = history(uri, pipeline)
    earlier = [v for v in past if v != str(current.version)]
    if not earlier:
        raise TrackingError(f"Version {current.version} is the first champion of '{pipeline}': "
                            "there is no previous champion to roll back to.")
    target = earlier[-1]
    client = _client(uri)
    # History without the rolled-back version, so a second rollback goes one step further.
    client.set_registered_model_tag(pipeline, HISTORY_TAG, json.dumps(
        [v for v in past if v != str(current.version)]))
    client.set_registered_model_alias(pipeline, CHAMPION, target)
    client.set_model_version_tag(pipeline, str(current.version), "forgeml.rolled_back", "true")
    return str(current.version), target
