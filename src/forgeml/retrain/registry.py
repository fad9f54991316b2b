"""The MLflow model registry as retraining uses it: one registered model per pipeline, aliases
`challenger` and `champion`. The registry is its own record: a version's tags say whether it
was judged, promoted (and when) or rolled back, so the champion history is derived from them and
cannot disagree with the alias. Every change is ordered so that a kill between two registry
calls leaves a state `repair` completes:

- promote: tag `promoted_at`, then the decision (the commit point), then move the alias;
- rollback: tag the current champion `rolled_back`, then move the alias to the newest earlier
  champion."""

from __future__ import annotations

import time
from dataclasses import dataclass

from forgeml import tracking
from forgeml.credentials import redact
from forgeml.errors import TrackingError

CHAMPION, CHALLENGER = "champion", "challenger"
DECISION = "forgeml.retrain.decision"  # promoted | rejected | failed; absent = not judged yet
PROMOTED_AT = "forgeml.promoted_at"  # epoch milliseconds of the promotion decision
ROLLED_BACK = "forgeml.rolled_back"


@dataclass
class Repair:
    """What `repair` found and did."""

    unjudged: object | None = None  # a registered version whose judgement never finished
    completed: str = ""  # a half-done promotion or rollback it finished, in words


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


def versions(uri: str, pipeline: str) -> list:
    return sorted(_client(uri).search_model_versions(f"name='{pipeline}'"),
                  key=lambda v: int(v.version))


def registered_run(uri: str, pipeline: str, run_id: str):
    """The version registered from `run_id`, or None."""
    return next((v for v in versions(uri, pipeline) if v.run_id == run_id), None)


def history(uri: str, pipeline: str) -> list[str]:
    """Versions that were promoted and not rolled back, oldest promotion first."""
    promoted = [v for v in versions(uri, pipeline) if v.tags.get(DECISION) == "promoted"
                and PROMOTED_AT in v.tags and v.tags.get(ROLLED_BACK) != "true"]
    return [str(v.version) for v in sorted(promoted, key=lambda v: int(v.tags[PROMOTED_AT]))]


def decide(uri: str, pipeline: str, version: str, promote: bool, tags: dict[str, str]) -> None:
    """Record the judgement of `version` (its tags, the decision last) and, if it won, make it
    the champion."""
    client = _client(uri)
    if promote:
        client.set_model_version_tag(pipeline, version, PROMOTED_AT, str(int(time.time() * 1000)))
    tag_version(uri, pipeline, version, tags)
    client.set_model_version_tag(pipeline, version, DECISION,
                                 "promoted" if promote else "rejected")
    if promote:
        client.set_registered_model_alias(pipeline, CHAMPION, version)


def describe_version(uri: str, pipeline: str, version: str, text: str) -> None:
    """The version's description on its registry page: what it scored and why it was (not)
    promoted."""
    _client(uri).update_model_version(pipeline, version, description=redact(text))


def tag_version(uri: str, pipeline: str, version: str, tags: dict[str, str]) -> None:
    client = _client(uri)
    for key, value in tags.items():
        client.set_model_version_tag(pipeline, version, key, str(value)[:5000])


def drop_challenger(uri: str, pipeline: str, version: str) -> None:
    """After a failure: the alias must not point at a version that was never judged."""
    current = alias_version(uri, pipeline, CHALLENGER)
    if current is not None and str(current.version) == str(version):
        _client(uri).delete_registered_model_alias(pipeline, CHALLENGER)


def repair(uri: str, pipeline: str) -> Repair:
    """Finish what a killed retrain or rollback left half done; report an unjudged
    challenger (the caller judges it or marks it failed)."""
    from mlflow.exceptions import MlflowException

    try:
        _client(uri).get_registered_model(pipeline)
    except MlflowException:
        return Repair()
    found = Repair()
    undecided = [v for v in versions(uri, pipeline) if DECISION not in v.tags]
    if undecided:  # the newest is judged; older ones were superseded by a later retrain
        found.unjudged = undecided[-1]
        for stale in undecided[:-1]:
            tag_version(uri, pipeline, str(stale.version), {
                DECISION: "failed", "forgeml.retrain.reason": "interrupted before judgement "
                "and superseded by a later version"})
    champion = alias_version(uri, pipeline, CHAMPION)
    past = history(uri, pipeline)
    if champion is not None and champion.tags.get(ROLLED_BACK) == "true":
        earlier = _earlier_champions(uri, pipeline, champion)
        if earlier:
            _client(uri).set_registered_model_alias(pipeline, CHAMPION, earlier[-1])
            found.completed = (f"finished an interrupted rollback: champion version "
                               f"{champion.version} -> {earlier[-1]}")
        return found
    newest = past[-1] if past else None
    if newest is not None and (champion is None or newest != str(champion.version)) and \
            _promoted_at(uri, pipeline, newest) > _promoted_at(uri, pipeline, champion):
        _client(uri).set_registered_model_alias(pipeline, CHAMPION, newest)
        found.completed = (f"finished an interrupted promotion: champion version "
                           f"{champion.version if champion else 'none'} -> {newest}")
    return found


def rollback(uri: str, pipeline: str) -> tuple[str, str]:
    """Point `champion` back at the previous champion; returns (from, to) versions. Never
    moves forward: the target is the newest champion promoted before the current one."""
    current = alias_version(uri, pipeline, CHAMPION)
    if current is None:
        raise TrackingError(f"Pipeline '{pipeline}' has no champion in "
                            f"{tracking.display_uri(uri)}: nothing to roll back.")
    earlier = _earlier_champions(uri, pipeline, current)
    if not earlier:
        raise TrackingError(f"Version {current.version} is the first champion of '{pipeline}': "
                            "there is no previous champion to roll back to.")
    client = _client(uri)
    client.set_model_version_tag(pipeline, str(current.version), ROLLED_BACK, "true")
    client.set_registered_model_alias(pipeline, CHAMPION, earlier[-1])
    return str(current.version), earlier[-1]


def _earlier_champions(uri: str, pipeline: str, current) -> list[str]:
    since = _promoted_at(uri, pipeline, current)
    return [v for v in history(uri, pipeline) if v != str(current.version)
            and _promoted_at(uri, pipeline, v) < since]


def _promoted_at(uri: str, pipeline: str, version) -> int:
    if version is None:
        return -1
    if isinstance(version, str):
        version = _client(uri).get_model_version(pipeline, version)
    return int(version.tags.get(PROMOTED_AT, "-1"))
