"""The team tier: the MLflow tracking server of `make server` (scripts/team_server.sh) on a real
PostgreSQL (a throwaway cluster in a temp folder on 127.0.0.1), artifacts proxied into a
folder. The pipeline, `forgeml retrain` and `forgeml reproduce` run against it with
`logger=server`: runs, the registry and artifacts land there, nothing in a local mlflow.db;
a database that is down, refuses the password or does not exist is one clear line."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import BIN, REPO, free_port, make_project, run, wait_until_up

PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
REQUIRED = os.environ.get("FORGEML_REQUIRE_POSTGRES") == "1"  # set by .ci/run once installed
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PG_BINS and not REQUIRED,
                       reason="PostgreSQL is not installed (apt-get install postgresql)"),
]
FORGEML = str(BIN / "forgeml")


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster of its own: user forgeml with a random password, database mlflow."""
    assert PG_BINS, "FORGEML_REQUIRE_POSTGRES=1 but PostgreSQL is not installed"
    pg_bin = PG_BINS[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="forgeml-pg-"))  # not under pytest's 0700 folders
    password = secrets.token_hex(16)
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    (folder / "pw").write_text(password + "\n")
    if as_postgres:
        shutil.chown(folder / "pw", user="postgres")
    port = free_port()
    data = folder / "data"
    run([*as_postgres, str(pg_bin / "initdb"), "-D", str(data), "-U", "forgeml",
         f"--pwfile={folder / 'pw'}", "-A", "scram-sha-256", "--no-sync"], cwd=folder)
    (folder / "pw").unlink()
    run([*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
         "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
        cwd=folder)
    env = {"PGPASSWORD": password}
    try:
        run([str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "forgeml",
             "mlflow"], cwd=folder, env=env)
        yield {"port": port, "password": password,
               "url": f"postgresql+psycopg2://forgeml@127.0.0.1:{port}/mlflow",
               "stop": [*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "stop"]}
    finally:
        subprocess.run([*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def team_server(postgres, tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("artifacts")
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "FORGEML_SERVER_DB": postgres["url"], "PGPASSWORD": postgres["password"],
           "FORGEML_SERVER_ARTIFACTS": str(artifacts), "FORGEML_SERVER_PORT": str(port),
           "FORGEML_SERVER_WORKERS": "1"}
    with log.open("w") as out:
        server = subprocess.Popen(["bash", str(REPO / "scripts/team_server.sh")], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up(f"{uri}/health", timeout_s=120), log.read_text()[-3000:]
        yield {"uri": uri, "artifacts": artifacts}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _runs_in_postgres(postgres, run_id: str) -> int:
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", port=postgres["port"], user="forgeml",
                          password=postgres["password"], dbname="mlflow") as conn, \
            conn.cursor() as cursor:
        cursor.execute("select count(*) from runs where run_uuid = %s", (run_id,))
        return cursor.fetchone()[0]


def test_pipeline_retrain_and_reproduce_run_against_the_team_server(postgres, team_server,
                                                                     tmp_path):
    project = make_project(tmp_path / "team")
    # What a team commits: the server as the default logger (conf/ only, no credentials).
    config = project / "conf/config.yaml"
    config.write_text(config.read_text().replace("  - logger: mlflow", "  - logger: server"))
    server_conf = project / "conf/logger/server.yaml"
    server_conf.write_text(server_conf.read_text().replace("http://127.0.0.1:5000",
                                                           team_server["uri"]))
    run([FORGEML, "compose"], cwd=project)
    git = ["git", "-c", "user.email=t@forgeml.test", "-c", "user.name=test"]
    run([*git, "commit", "-qam", "log to the team server"], cwd=project)
    run([str(BIN / "dvc"), "repro"], cwd=project)

    record = json.loads((project / "models/digits/run.json").read_text())
    client = MlflowClient(team_server["uri"])
    trained = client.get_run(record["run_id"])
    assert trained.info.status == "FINISHED" and "test/acc" in trained.data.metrics
    assert _runs_in_postgres(postgres, record["run_id"]) == 1  # in PostgreSQL, not elsewhere
    assert client.list_artifacts(record["run_id"], "report")  # proxied by the server...
    stored = [p for p in team_server["artifacts"].rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in stored)  # ...into its artifact folder
    assert not (project / "mlflow.db").exists() and not (project / "mlruns").exists()

    retrain = run([FORGEML, "retrain", "digits", "--set", "trainer.max_epochs=2"], cwd=project)
    assert "decision: promoted" in retrain.stdout
    assert client.get_model_version_by_alias("digits", "champion").version == "1"

    reproduced = run([FORGEML, "reproduce", record["run_id"]], cwd=project, timeout=900)
    assert "test/acc" in reproduced.stdout
    report = (project / "reports/reproduce" / f"{record['run_id']}.md").read_text()
    assert "reproduced" in report.lower()
    assert client.get_run(record["run_id"]).data.tags.get("forgeml.reproduced")
    assert not (project / "mlflow.db").exists()

    logged = json.dumps(client.get_run(record["run_id"]).data.params) + \
        (project / "params.yaml").read_text()
    assert postgres["password"] not in logged


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("broken"))
    run([FORGEML, "prepare"], cwd=project)
    return project


@pytest.mark.parametrize("problem", ["wrong password", "database down", "no such database"])
def test_a_broken_tracking_database_is_one_clear_line(postgres, prepared, problem):
    project = prepared
    url, password = postgres["url"], postgres["password"]
    if problem == "wrong password":
        password = "not-the-password"
    elif problem == "database down":
        url = url.replace(f":{postgres['port']}/", f":{free_port()}/")
    else:
        url = url.rsplit("/", 1)[0] + "/nosuchdb"
    result = run([FORGEML, "train"], cwd=project, check=False,
                 env={"MLFLOW_TRACKING_URI": url, "PGPASSWORD": password}, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in out
    assert {"wrong password": "refused the credentials", "database down": "does not answer",
            "no such database": "create the database"}[problem] in out
    assert password not in out
    assert not (project / "models/digits").exists()  # nothing written
