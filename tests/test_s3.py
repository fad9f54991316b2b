"""The team tier on S3: MLflow's artifacts in a bucket behind the tracking server (clients hold no
store credentials) and the DVC remote in a bucket, from which a teammate's fresh clone pulls and
reruns nothing. The bucket is moto's S3 API on 127.0.0.1 (a test fake, not a store to use)."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import BIN, free_port, make_project, run, wait_until_up

DVC = str(BIN / "dvc")
BUCKET = "forgeml-team"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    pytest.importorskip("moto", reason="moto[server] is a dev dependency (make setup)")
    import boto3

    port = free_port()
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up(f"{endpoint}/moto-api/", timeout_s=60)
        bucket = boto3.resource("s3", endpoint_url=endpoint,
                                aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                                aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
                                region_name=KEYS["AWS_DEFAULT_REGION"]).Bucket(BUCKET)
        bucket.create()
        yield {"endpoint": endpoint, "bucket": bucket}
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def artifact_server(s3, tmp_path_factory):
    """MLflow serving its artifacts from the bucket: only the server holds the S3 keys."""
    folder = tmp_path_factory.mktemp("mlflow-s3")
    port = free_port()
    env = {**os.environ, **KEYS, "MLFLOW_S3_ENDPOINT_URL": s3["endpoint"]}
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{folder / 'db'}",
         "--artifacts-destination", f"s3://{BUCKET}/mlflow", "--host", "127.0.0.1", "--port",
         str(port), "--workers", "1"], cwd=folder,
        env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up(f"{uri}/health", timeout_s=120)
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)


def set_own_keys(project, endpoint: str) -> None:
    """A teammate's endpoint and keys in `.dvc/config.local` (never committed), as
    docs/scaling.md says."""
    for key, value in (("endpointurl", endpoint), ("access_key_id", KEYS["AWS_ACCESS_KEY_ID"]),
                       ("secret_access_key", KEYS["AWS_SECRET_ACCESS_KEY"])):
        run([DVC, "remote", "modify", "--local", "team", key, value], cwd=project)


def add_s3_remote(project, endpoint: str) -> None:
    """The team's remote in the tracked config, the keys in the local one."""
    run([DVC, "remote", "add", "-d", "team", f"s3://{BUCKET}/dvc"], cwd=project)
    set_own_keys(project, endpoint)


@pytest.mark.slow  # the default pipeline once, a push and a teammate's pull: ~1.5 min
def test_artifacts_and_outputs_on_s3_and_a_teammates_clone_reruns_nothing(s3, artifact_server,
                                                                         tmp_path):
    project = make_project(tmp_path / "team")
    add_s3_remote(project, s3["endpoint"])
    git = ["git", "-c", "user.email=t@forgeml.test", "-c", "user.name=test"]
    run(["git", "add", ".dvc/config"], cwd=project)
    run([*git, "commit", "-qm", "team S3 remote"], cwd=project)
    assert "secret_access_key" not in (project / ".dvc/config").read_text()

    # The client has no S3 keys: the server stores the artifacts it is sent.
    run([DVC, "repro"], cwd=project, env={"MLFLOW_TRACKING_URI": artifact_server})
    assert not (project / "mlflow.db").exists()
    stored = {o.key for o in s3["bucket"].objects.filter(Prefix="mlflow/")}
    assert any(key.endswith("/artifacts/report/report.html") for key in stored), sorted(stored)
    assert any(key.endswith("/MLmodel") for key in stored)  # the logged model too

    run([DVC, "push", "dvc.yaml"], cwd=project)
    assert any(s3["bucket"].objects.filter(Prefix="dvc/files/md5/"))
    run(["git", "add", "dvc.lock", "params.yaml", "metrics", "plots"], cwd=project)
    run([*git, "commit", "-qm", "a run"], cwd=project)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], cwd=tmp_path)
    set_own_keys(clone, s3["endpoint"])  # config.local is not cloned
    run([DVC, "pull", "dvc.yaml"], cwd=clone)
    repro = run([DVC, "repro", "dvc.yaml"], cwd=clone,
                env={"MLFLOW_TRACKING_URI": artifact_server})
    assert "Running stage" not in repro.stdout, repro.stdout
    assert (clone / "models/digits/run.json").read_text() == \
        (project / "models/digits/run.json").read_text()
