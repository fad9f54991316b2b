"""Security: credentials never stored or shown, models never unpickled, names and file modes.

The canary test runs the real pipelines against MLflow's basic-auth server on 127.0.0.1 with a
password nobody else uses, then searches every store, file and output for it. The malicious
artifact tests plant a pickle that would create a file when unpickled in place of each kind of
model file, and check that every load path refuses it and the file never appears."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import BIN, free_port, make_project, run, wait_until_up
from forgeml import credentials
from forgeml.errors import ConfigError, ModelFileError
from forgeml.io import StagedOutputs, atomic_write_text
from forgeml.models import registry
from forgeml.names import check_name
from forgeml.saved_network import SPEC_FILE, WEIGHTS_FILE, load_network, save_network, sha256
from forgeml.tasks import compose

FORGEML = str(BIN / "forgeml")


# --- credentials --------------------------------------------------------------------------------
def test_redact_masks_uri_passwords_and_secret_values_only():
    text = ("store http://alice:s3cr%40t@mlflow.example:5000/x and "
            "postgresql+psycopg2://bob:pw@db/mlflow; api_key=abc123 MLFLOW_TRACKING_TOKEN: tok "
            "train/tokens_per_second=812 data.tokenizer.kind=bpe")
    shown = credentials.redact(text)
    for secret in ("s3cr%40t", ":pw@", "abc123", " tok "):
        assert secret not in shown
    assert "http://alice:***@mlflow.example:5000/x" in shown
    assert "tokens_per_second=812" in shown and "tokenizer.kind=bpe" in shown


def test_credentials_in_a_uri_move_to_the_client_variables(monkeypatch):
    monkeypatch.delenv(credentials.USERNAME_ENV, raising=False)
    monkeypatch.delenv(credentials.PASSWORD_ENV, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://team:p%40ss@mlflow.example/")
    credentials.clean_environment()
    assert os.environ["MLFLOW_TRACKING_URI"] == "https://mlflow.example/"
    assert os.environ[credentials.USERNAME_ENV] == "team"
    assert os.environ[credentials.PASSWORD_ENV] == "p@ss"
    assert credentials.basic_auth_header()["Authorization"].startswith("Basic ")
    database = "postgresql://u:pw@db/mlflow"  # the driver needs them: kept, only ever masked
    assert credentials.client_uri(database) == database


def test_a_password_in_the_config_is_refused_without_being_echoed(tmp_path):
    with pytest.raises(ConfigError) as caught:
        compose(["logger.tracking_uri=http://u:hunter2@mlflow.example:5000"])
    assert "MLFLOW_TRACKING_PASSWORD" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    result = run([FORGEML, "compose", "logger.tracking_uri=http://u:hunter2@h:5000", "-o",
                  str(tmp_path / "p.yaml")], cwd=Path(__file__).parents[1], check=False)
    assert result.returncode == 2 and "hunter2" not in result.stdout + result.stderr
    assert not (tmp_path / "p.yaml").exists()


# --- names and modes ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../conf/retrain/digits", "Digits", "a/b", "-x", "", "x" * 65])
def test_bad_names_are_refused(name):
    with pytest.raises(ConfigError):
        check_name(name)


def test_names_that_point_outside_their_folder_create_nothing(tmp_path):
    project = make_project(tmp_path / "p")
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    for cmd in (["retrain", "../../conf/retrain/digits"], ["rollback", "../conf/x"],
                ["generate", "--prompt", "a", "--run", "champion", "--pipeline", "../lm"]):
        result = run([FORGEML, *cmd], cwd=project, check=False)
        assert result.returncode == 2, result.stderr
        assert "not valid" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def test_outputs_are_readable_by_the_team(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        outputs = StagedOutputs()
        folder = outputs.dir(tmp_path / "models")
        (folder / "w.bin").write_bytes(b"w")
        outputs.commit()
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "models").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "models" / "w.bin").stat().st_mode & 0o777 == 0o644


def test_pipeline_outputs_and_logged_models_are_readable_by_the_team(pipeline_project):
    mask = os.umask(0)
    os.umask(mask)
    if mask & 0o044:
        pytest.skip(f"this process's umask {mask:03o} keeps files from the group or others")
    unreadable = [str(p.relative_to(pipeline_project))
                  for name in ("data", "models", "metrics", "plots", "reports", "mlruns")
                  for p in (pipeline_project / name).rglob("*")
                  if p.stat().st_mode & (0o055 if p.is_dir() else 0o044) !=
                  (0o055 if p.is_dir() else 0o044)]
    assert unreadable == []


# --- the model format ---------------------------------------------------------------------------
def _networks():
    from forgeml.models.classifier import NormalizedNetwork
    from forgeml.models.cnn import CNN
    from forgeml.models.dcgan import DCGANDiscriminator, DCGANGenerator
    from forgeml.models.gpt import GPT
    from forgeml.models.mae import ViTClassifier
    from forgeml.models.minilm_classifier import MiniLMClassifier
    from forgeml.models.mlp import MLP
    from forgeml.models.neumf import NeuMF
    from forgeml.models.textcnn import TextCNN

    def built(cls, **kwargs):
        return registry.remember_spec(cls(**kwargs), kwargs)

    image = {"image_shape": [1, 8, 8], "num_classes": 3}
    tiny_bert = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "intermediate_size": 32, "vocab_size": 50, "max_position_embeddings": 16}
    return {
        "mlp": NormalizedNetwork(built(MLP, **image, hidden=8), 0.3, 0.2),
        "cnn": NormalizedNetwork(built(CNN, **image, channels=2, hidden=8), 0.3, 0.2),
        "gpt": built(GPT, vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8,
                     dropout=0.0, bias=True),
        "neumf": built(NeuMF, num_users=4, num_items=5, factors=4, layers=[8, 4]),
        "textcnn": TextCNN(vocab_size=50, embed_dim=8, channels=4, max_length=16),
        "minilm": MiniLMClassifier(num_classes=2, max_length=16, encoder_config=tiny_bert),
        "generator": built(DCGANGenerator, **image, latent_dim=4, width=2),
        "discriminator": built(DCGANDiscriminator, **image, latent_dim=4, width=2),
        "vit": NormalizedNetwork(built(ViTClassifier, **image, patch_size=4, n_layer=1,
                                       n_head=2, n_embd=8), 0.3, 0.2),
    }


def _inputs(name: str):
    if name in ("mlp", "cnn", "vit"):
        return (torch.rand(2, 1, 8, 8),)
    if name == "gpt":
        return (torch.randint(0, 20, (2, 8)),)
    if name == "neumf":
        return (torch.tensor([[0, 1], [3, 4]]),)
    if name == "generator":  # noise, then the class index (the logged model's input)
        return (torch.cat([torch.randn(2, 4), torch.tensor([[0.0], [2.0]])], dim=1),)
    if name == "discriminator":
        return torch.rand(2, 1, 8, 8), torch.tensor([0, 2])
    return torch.randint(1, 50, (2, 10)), torch.ones(2, 10, dtype=torch.long)


def test_every_registered_network_round_trips_through_the_safe_format(tmp_path):
    networks = _networks()
    assert {registry.name_of(n) for n in networks.values()} | {
        "forgeml.models.mlp.MLP", "forgeml.models.cnn.CNN",  # inside NormalizedNetworks
        "forgeml.models.mae.ViTClassifier"} >= set(registry.NETWORKS) - {
        "forgeml.models.gmf.GMF", "forgeml.models.ncf_mlp.NCFMLP"}
    for name, network in networks.items():
        network.eval()
        folder = save_network(network, tmp_path / name)
        assert sorted(p.name for p in folder.iterdir()) == [SPEC_FILE, WEIGHTS_FILE]
        loaded = load_network(folder)
        assert type(loaded) is type(network)
        inputs = _inputs(name)
        with torch.no_grad():
            assert torch.equal(network(*inputs), loaded(*inputs)), name
    gpt = load_network(tmp_path / "gpt")
    assert gpt.wte.weight is gpt.lm_head.weight  # tied weights stay tied


class _Payload:
    """Unpickling this creates `marker`: what an attacker's model file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def plant(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    return path


def _gpt_folder(folder: Path) -> Path:
    return save_network(_networks()["gpt"], folder)


def test_a_pickle_in_place_of_the_weights_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    folder = _gpt_folder(tmp_path / "network")
    plant(folder / WEIGHTS_FILE, marker)
    with pytest.raises(ModelFileError, match="does not match the SHA-256"):
        load_network(folder)
    spec = json.loads((folder / SPEC_FILE).read_text())  # an attacker rewrites the hash too
    spec["sha256"] = sha256(folder / WEIGHTS_FILE)
    (folder / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(ModelFileError, match="is not a safetensors file"):
        load_network(folder)
    assert not marker.exists()


def test_a_network_outside_the_registry_is_never_built(tmp_path):
    marker = tmp_path / "pwned"
    folder = _gpt_folder(tmp_path / "network")
    spec = json.loads((folder / SPEC_FILE).read_text())
    spec.update(target="posix.system", kwargs={"command": f"touch {marker}"})
    (folder / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(ModelFileError, match="'posix.system' is not a network ForgeML ships"):
        load_network(folder)
    assert not marker.exists()


def test_estimators_load_through_skops_and_a_planted_pickle_is_refused(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from forgeml.models.tfidf_lr import tfidf_lr
    from forgeml.tasks.sentiment.predictor import EstimatorTextPredictor, load_predictor

    texts, labels = ["great fun", "dull mess", "lovely film", "awful plot"] * 3, [1, 0, 1, 0] * 3
    predictor = EstimatorTextPredictor(tfidf_lr(min_df=1).fit(texts, labels), ["neg", "pos"])
    folder = predictor.save(tmp_path / "predictor")
    assert load_predictor(folder).predict_proba(["great fun"]).argmax() == 1

    marker = tmp_path / "pwned"
    plant(folder / "estimator.skops", marker)
    with pytest.raises(ModelFileError, match="estimator.skops is not a skops estimator file"):
        load_predictor(folder)
    # A valid skops file holding a type outside skops' trusted set is refused by name.
    EstimatorTextPredictor(make_pipeline(FunctionTransformer(shutil.which)), ["a"]).save(folder)
    with pytest.raises(ModelFileError, match="types ForgeML does not trust: shutil.which"):
        load_predictor(folder)
    assert not marker.exists()


# --- every load path, through the CLI -----------------------------------------------------------
def _log_files(uri: str, experiment: str, files: dict[str, bytes | str], scratch: Path) -> str:
    """A run holding `files` (artifact path -> content), as a compromised store would serve."""
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run_id = client.create_run(experiment_id).info.run_id
    root = scratch / run_id
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    client.log_artifacts(run_id, str(root))
    client.set_terminated(run_id)
    return run_id


def _planted_network(tmp_path: Path, marker: Path, target: str | None = None) -> dict:
    folder = _gpt_folder(tmp_path / f"net-{uuid.uuid4().hex[:6]}")
    plant(folder / WEIGHTS_FILE, marker)
    spec = json.loads((folder / SPEC_FILE).read_text())
    spec["sha256"] = sha256(folder / WEIGHTS_FILE)
    if target:
        spec.update(target=target, kwargs={"command": f"touch {marker}"})
    return {f"model/artifacts/network/{SPEC_FILE}": json.dumps(spec),
            f"model/artifacts/network/{WEIGHTS_FILE}": (folder / WEIGHTS_FILE).read_bytes()}


@pytest.fixture
def store(tmp_path):
    """A local MLflow store outside any project, and a working folder outside it too."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return f"sqlite:///{tmp_path / 'store.db'}", elsewhere


@pytest.mark.parametrize("target", [None, "posix.system"])
def test_generate_recommend_and_the_scorer_refuse_a_planted_network(tmp_path, store, target):
    uri, elsewhere = store
    marker = tmp_path / "pwned"
    run_id = _log_files(uri, "lm", {**_planted_network(tmp_path, marker, target),
                                    "recommender/catalog.json": "{}"}, tmp_path / "art")
    for cmd in (["generate", "--prompt", "To be", "--run", run_id],
                ["recommend", "--user", "1", "--run", run_id]):
        result = run([FORGEML, *cmd, "--tracking-uri", uri], cwd=elsewhere, check=False)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert ("not a safetensors file" if target is None else "not a network ForgeML ships") \
            in result.stderr
        assert "network" in result.stderr  # the refused file is named
    from forgeml.retrain import scoring

    with pytest.raises(ModelFileError):
        scoring.per_example(compose([]), uri, run_id)
    assert not marker.exists()
    assert list(elsewhere.iterdir()) == []  # --tracking-uri honoured: no stray mlflow.db


@pytest.mark.parametrize("kind", ["estimator", "neural"])
def test_predict_refuses_a_planted_predictor(tmp_path, store, kind):
    uri, elsewhere = store
    marker = tmp_path / "pwned"
    base = "model/artifacts/predictor"
    files = {f"{base}/predictor.json": json.dumps({"kind": kind, "class_names": ["a", "b"]})}
    if kind == "estimator":
        files[f"{base}/estimator.skops"] = plant(tmp_path / "e.skops", marker).read_bytes()
    else:
        network = _planted_network(tmp_path, marker)
        files.update({k.replace("model/artifacts/network", f"{base}/network"): v
                      for k, v in network.items()})
    run_id = _log_files(uri, "sentiment", files, tmp_path / "art")
    result = run([FORGEML, "predict", "--text", "good", "--run", run_id, "--tracking-uri", uri],
                 cwd=elsewhere, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert ("estimator.skops" if kind == "estimator" else WEIGHTS_FILE) in result.stderr
    assert not marker.exists()
    assert list(elsewhere.iterdir()) == []


def test_evaluate_refuses_a_planted_checkpoint(pipeline_project, tmp_path):
    project = tmp_path / "copy"
    shutil.copytree(pipeline_project, project, ignore=shutil.ignore_patterns(".dvc", "mlruns"))
    marker = tmp_path / "pwned"
    plant(project / "models/digits/best.ckpt", marker)
    before = (project / "metrics/digits/test.json").read_bytes()
    result = run([FORGEML, "evaluate"], cwd=project, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "models/digits/best.ckpt is unreadable" in result.stderr
    assert not marker.exists()
    assert (project / "metrics/digits/test.json").read_bytes() == before


# --- the canary: a real authenticated server, every command, then search everything ------------
CANARY = f"canary-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """MLflow's basic-auth app on 127.0.0.1 whose admin password is the canary."""
    root = tmp_path_factory.mktemp("auth-server")
    (root / "basic_auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root / 'users.db'}\n"
        f"admin_username = admin\nadmin_password = {CANARY}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    port = free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(root / "server.log", "w")  # noqa: SIM115 - open for the server's lifetime
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--app-name", "basic-auth", "--backend-store-uri",
         f"sqlite:///{root / 'backend.db'}", "--artifacts-destination", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=root, env=env, stdout=log, stderr=log, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    if not wait_until_up(f"{base}/health"):
        raise AssertionError((root / "server.log").read_text()[-3000:])
    yield {"root": root, "base": base,
           "uri": f"http://admin:{CANARY}@127.0.0.1:{port}"}
    os.killpg(server.pid, 15)
    server.wait(timeout=30)
    log.close()


LM_TINY = ["experiment=lm_gpt", "data.source.max_chars_per_work=4000", "model.n_layer=1",
           "model.n_embd=32", "model.block_size=16", "trainer.max_steps=20",
           "trainer.val_check_interval=10", "train.warmup_steps=2", "train.batch_size=8",
           "train.val_batches=2", "trainer.enable_progress_bar=false"]
RECSYS_TINY = ["experiment=recsys_neumf", "trainer.max_epochs=1", "train.num_negatives=1",
               "trainer.enable_progress_bar=false"]
SENTIMENT_TINY = ["experiment=sentiment_minilm", "model=tfidf_lr", "data.source.max_rows=300"]


@pytest.mark.slow  # four pipelines against a real server: ~3 min
def test_no_command_stores_or_prints_the_password(auth_server, tmp_path):
    project = make_project(tmp_path / "project")
    settings = project / "conf/retrain/digits.yaml"
    settings.write_text(settings.read_text().replace("floor: 0.9", "floor: 0.05"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"MLFLOW_TRACKING_URI": auth_server["uri"]}
    outputs = []

    def forgeml(*args, cwd=project, check=True, **extra_env):
        result = run([FORGEML, *args], cwd=cwd, check=check, env={**env, **extra_env})
        outputs.append(result.stdout + result.stderr)
        return result

    # The digits pipeline, through the scheduled job (which runs `dvc repro`).
    out = forgeml("retrain", "digits", "--set", "trainer.max_epochs=2",
                  "--set", "trainer.enable_progress_bar=false").stdout
    assert "decision: promoted" in out
    refused = forgeml("retrain", "digits", "--set",
                      f"logger.tracking_uri={auth_server['uri']}", check=False)
    assert refused.returncode == 2 and "MLFLOW_TRACKING_PASSWORD" in refused.stderr
    wrong = forgeml("retrain", "digits", check=False,
                    MLFLOW_TRACKING_URI=auth_server["base"].replace("http://",
                                                                    "http://admin:wrong@"))
    assert wrong.returncode == 2 and "refused the credentials" in wrong.stderr

    # One small model of each other kind, then the serving commands from another folder.
    run_ids = {}
    for name, overrides in (("lm", LM_TINY), ("recsys", RECSYS_TINY),
                            ("sentiment", SENTIMENT_TINY)):
        params = f"pipelines/{name}/params.yaml"
        forgeml("compose", *overrides, "-o", params)
        forgeml("prepare", "-p", params)
        forgeml("train", "-p", params)
        run_ids[name] = json.loads((project / f"models/{name}/run.json").read_text())["run_id"]
    text = forgeml("generate", "--prompt", "ROMEO:", "-n", "20", "--run", run_ids["lm"],
                   cwd=elsewhere).stdout
    assert text.startswith("ROMEO:") and len(text) > 6
    recommended = forgeml("recommend", "--user", "1", "-k", "3", "--run",
                          run_ids["recsys"], cwd=elsewhere).stdout
    assert len(recommended.strip().splitlines()) == 3
    # The same, with a clean URI and the credentials in the client's variables only.
    base_env = {"MLFLOW_TRACKING_URI": "", credentials.USERNAME_ENV: "admin",
                credentials.PASSWORD_ENV: CANARY}
    label = forgeml("predict", "--text", "A warm, funny, moving film.", "--run",
                    run_ids["sentiment"], "--tracking-uri", auth_server["base"], cwd=elsewhere,
                    **base_env).stdout
    assert label.split("\t")[0] in ("fresh", "rotten")
    assert list(elsewhere.iterdir()) == []

    # Now search for the canary: the backend store, the artifact store, every file of the
    # project (params.yaml, reports, dvc.lock, .dvc/, logs) and everything printed.
    hits = [str(p) for folder in (project, auth_server["root"] / "artifacts")
            for p in folder.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    backend = (auth_server["root"] / "backend.db").read_bytes()
    assert hits == [] and CANARY.encode() not in backend
    assert not [o for o in outputs if CANARY in o]
    assert not [o for o in outputs if "pickle" in o.lower()]  # no model is pickled any more
    assert b"admin:wrong" not in backend

