"""Real-time prediction on the default pipeline's real run: ONNX export checked against
PyTorch, the compress stage's table and gate, the HTTP server (round trip, 1,000 bad requests,
a short load test) and batch prediction over files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import BIN, free_port, run, wait_until_up

FORGEML = str(BIN / "forgeml")


def _run_id(project: Path) -> str:
    return json.loads((project / "models/digits/run.json").read_text())["run_id"]


def _uri(project: Path) -> str:
    return f"sqlite:///{project / 'mlflow.db'}"


def _test_split(project: Path) -> tuple[np.ndarray, np.ndarray]:
    blob = torch.load(project / "data/prepared/digits/test.pt", weights_only=True)
    return blob["images"].numpy(), blob["labels"].numpy()


def _predicted(project: Path) -> np.ndarray:
    """What the evaluate stage's PyTorch model predicted for each test image."""
    return np.loadtxt(project / "eval/digits/predictions.csv", delimiter=",", skiprows=1,
                      ndmin=2)[:, 2].astype(int)


@pytest.fixture(scope="module")
def exported(pipeline_project) -> dict:
    from forgeml.serving.bundle import download_bundle

    out = run([FORGEML, "export", "--run", _run_id(pipeline_project), "--pipeline", "digits",
               "--quantize", "int8"], cwd=pipeline_project).stdout
    bundle = download_bundle(_uri(pipeline_project), _run_id(pipeline_project))
    return {"stdout": out, "bundle": bundle}


def test_export_matches_pytorch_on_test_images_and_is_logged_with_its_hash(
        pipeline_project, exported):
    import mlflow

    from forgeml.io import sha256_file

    bundle = exported["bundle"]
    parity = bundle.manifest["parity"]
    assert parity["onnx"]["max_abs_diff"] <= 1e-4 and parity["onnx"]["top1_agreement"] == 1.0
    assert parity["onnx"]["examples"] == min(256, len(_test_split(pipeline_project)[1]))
    assert "int8" in parity and "max |ONNX - PyTorch|" in exported["stdout"]
    assert [i["name"] for i in bundle.manifest["inputs"]] == ["images"]
    assert bundle.manifest["inputs"][0]["shape"][0] == "batch"  # a dynamic batch axis
    for kind in ("onnx", "int8"):
        assert sha256_file(bundle.model_file(kind)) == bundle.sha256(kind)
    # MLflow's ONNX flavour, with a signature, on the same run.
    mlflow.set_tracking_uri(_uri(pipeline_project))
    experiment = mlflow.MlflowClient().get_experiment_by_name("digits")
    models = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list",
        filter_string=f"source_run_id = '{_run_id(pipeline_project)}'")
    onnx_model = next(m for m in models if m.name == "onnx-model")
    info = mlflow.models.get_model_info(onnx_model.model_uri)
    assert "onnx" in info.flavors and info.signature is not None


def test_a_changed_exported_file_is_refused(exported, tmp_path):
    import shutil

    from forgeml.errors import ModelFileError
    from forgeml.serving.bundle import read_bundle

    copy = Path(shutil.copytree(exported["bundle"].folder, tmp_path / "bundle"))
    with open(copy / "model.onnx", "r+b") as handle:
        handle.seek(200)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ModelFileError, match="does not match the SHA-256"):
        read_bundle(copy)


def test_compress_stage_measures_every_variant_and_gates_int8(pipeline_project):
    metrics = json.loads((pipeline_project / "metrics/digits/compression.json").read_text())
    detail = metrics["detail"]
    rows = {row["key"]: row for row in detail["rows"]}
    assert list(rows) == ["pytorch_fp32", "onnx_fp32", "onnx_int8", "pruned", "student"]
    for row in rows.values():
        assert 0.5 < row["acc"] <= 1 and row["acc_ci"][0] <= row["acc"] <= row["acc_ci"][1]
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["throughput_per_s"] > 0
    # The ONNX export computes what PyTorch computes; int8 and pruning make files smaller.
    assert rows["onnx_fp32"]["acc"] == rows["pytorch_fp32"]["acc"]
    # (the smoke CNN is tiny: the int8 file's fixed overhead keeps it above a quarter)
    assert rows["onnx_int8"]["size_mb"] < rows["onnx_fp32"]["size_mb"] * 0.75
    assert rows["pruned"]["size_mb"] < rows["onnx_fp32"]["size_mb"] * 0.75
    drop = (rows["pytorch_fp32"]["acc"] - rows["onnx_int8"]["acc"]) * 100
    assert metrics["int8_drop_points"] == pytest.approx(drop)
    assert metrics["int8_gate_passed"] == (drop <= 0.5)
    report = (pipeline_project / "reports/digits/report.md").read_text()
    assert "## Can it run in real time?" in report
    assert detail["recommendation"]["name"] in report
    assert ("passes its gate" if metrics["int8_gate_passed"] else "FAILS its gate") in report


@pytest.fixture(scope="module")
def server(pipeline_project, exported):
    port = free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = pipeline_project / "serve.log"  # not a pipe nobody drains: a full one blocks the server
    process = subprocess.Popen(
        [FORGEML, "serve", "--run", _run_id(pipeline_project), "--pipeline", "digits",
         "--port", str(port), "--max-batch", "64", "--max-body-kb", "256", "--workers", "2"],
        cwd=pipeline_project, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up(f"{base}/health", 60), log.read_text()
        yield {"base": base, "process": process}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _post(base: str, body: bytes, path: str = "/predict", method: str = "POST"):
    request = urllib.request.Request(f"{base}{path}", data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_server_answers_like_the_evaluated_model_and_names_its_version(
        pipeline_project, exported, server):
    images, _ = _test_split(pipeline_project)
    expected = _predicted(pipeline_project)
    names = json.loads((pipeline_project / "data/prepared/digits/data_card.json").read_text()
                       )["class_names"]
    got = []
    for start in range(0, len(images), 64):
        status, answer = _post(server["base"], json.dumps(
            {"images": images[start:start + 64].tolist()}).encode())
        assert status == 200, answer
        got += [p["label"] for p in answer["predictions"]]
    assert got == [names[i] for i in expected]
    flat = _post(server["base"], json.dumps({"image": images[0].ravel().tolist()}).encode())[1]
    assert flat["predictions"][0]["label"] == names[expected[0]]
    assert sum(flat["predictions"][0]["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    with urllib.request.urlopen(f"{server['base']}/version") as response:
        version = json.loads(response.read())
    assert version["run_id"] == _run_id(pipeline_project)
    assert version["sha256"] == exported["bundle"].sha256("onnx")
    assert flat["run_id"] == version["run_id"]


def test_server_refuses_1000_bad_requests_with_4xx_and_stays_up(pipeline_project, server):
    images, _ = _test_split(pipeline_project)
    good = json.dumps({"images": images[:2].tolist()}).encode()
    bad = [
        b"{not json", b"\xff\xfe\x00", b"", b"[1, 2, 3]", b'"a string"',
        b'{"images": []}', b'{"images": "abc"}', b'{"images": [[0.5, 0.5]]}',
        b'{"images": [["x", "y"]]}', b'{"image": 3}', b'{"texts": ["hello"]}',
        json.dumps({"images": (images[:1] * 5).tolist()}).encode(),  # pixels outside [0, 1]
        json.dumps({"images": images[:65].tolist()}).encode(),  # more than --max-batch
        b'{"images": [[1e999]]}', b'{"images": [' + b"[0.1]," * 10 + b"]}",
    ]
    statuses = []
    for i in range(1000):
        status, answer = _post(server["base"], bad[i % len(bad)])
        assert 400 <= status < 500 and answer["error"], (bad[i % len(bad)][:80], status, answer)
        statuses.append(status)
    assert {400, 413, 422} <= set(statuses)
    huge = b'{"images": [' + b"0" * (100 << 20) + b"]}"  # 100 MB
    status, answer = _post(server["base"], huge)
    assert status == 413 and "limit" in answer["error"]
    assert _post(server["base"], b"", path="/nowhere", method="GET")[0] == 404
    assert _post(server["base"], b"", method="GET")[0] == 405
    status, answer = _post(server["base"], good)
    assert status == 200 and len(answer["predictions"]) == 2
    assert server["process"].poll() is None


def test_request_checks_follow_the_docs(pipeline_project, server):
    """Booleans are not pixels, NaN / Infinity are 422 (docs/serving.md), and a client that
    leaves mid-body leaves no traceback in the server's log."""
    images, _ = _test_split(pipeline_project)
    pixels = int(images[0].size)
    status, answer = _post(server["base"], json.dumps({"image": [True] * pixels}).encode())
    assert status == 422 and "not true/false" in answer["error"]
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"image": [' + b", ".join([b"0.5"] * (pixels - 1) + [literal]) + b"]}"
        status, answer = _post(server["base"], body)
        assert status == 422 and "NaN or Infinity" in answer["error"], (literal, answer)
    import socket

    host, port = server["base"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 5000\r\n\r\n" + b'{"images": [[0.1')  # then hangs up
    time.sleep(1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n{}")
        answer = conn.makefile("rb").read().decode()
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 400") and "application/json" in head.lower()
    assert "Content-Length" in json.loads(body)["error"]
    assert _post(server["base"], json.dumps({"image": [0.5] * pixels}).encode())[0] == 200
    assert "ClientDisconnect" not in (pipeline_project / "serve.log").read_text()


def test_a_second_server_on_a_served_port_is_refused_before_loading_anything(
        pipeline_project, server):
    """Two servers never share a port (SO_REUSEPORT workers would split the traffic between
    two models): the second one says so at once, whatever its worker count, and never claims
    to be serving."""
    port = server["base"].rsplit(":", 1)[1]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    for workers in ("1", "2"):
        started = time.monotonic()
        second = subprocess.run(
            [FORGEML, "serve", "--run", _run_id(pipeline_project), "--pipeline", "digits",
             "--port", port, "--workers", workers], cwd=pipeline_project, env=env,
            capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"Port {port} on 127.0.0.1 is already served" in second.stderr
        assert "serving" not in second.stdout and "Traceback" not in second.stderr
        assert time.monotonic() - started < 20  # refused before any export or model load
    assert server["process"].poll() is None
    with urllib.request.urlopen(f"{server['base']}/version") as response:
        assert json.loads(response.read())["run_id"] == _run_id(pipeline_project)


def _gone(process) -> bool:
    import psutil

    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_worker_is_replaced_while_the_other_keeps_answering(pipeline_project, server):
    import time

    import psutil

    def workers() -> list:
        alive = []
        for child in psutil.Process(server["process"].pid).children():
            try:  # a child that is exiting or not yet reaped is not a worker
                if "resource_tracker" not in " ".join(child.cmdline()):
                    alive.append(child)
            except (psutil.ZombieProcess, psutil.NoSuchProcess):
                continue
        return alive

    images, _ = _test_split(pipeline_project)
    good = json.dumps({"images": images[:2].tolist()}).encode()
    before = workers()
    assert len(before) == 2
    before[0].kill()  # kill -9
    deadline = time.time() + 10  # gone (a connection it had accepted is lost with it)
    while time.time() < deadline and not _gone(before[0]):
        time.sleep(0.05)
    time.sleep(0.5)  # the kernel drops the dead worker's socket from the SO_REUSEPORT group
    for _ in range(30):  # the surviving worker answers meanwhile
        assert _post(server["base"], good)[0] == 200
    deadline = time.time() + 60
    while time.time() < deadline and not (len(workers()) == 2 and before[0] not in workers()):
        time.sleep(0.5)
    assert len(workers()) == 2 and before[0].pid not in [w.pid for w in workers()]
    for _ in range(30):
        assert _post(server["base"], good)[0] == 200


def test_a_short_load_test_gets_only_answers(pipeline_project, server):
    from forgeml.serving.loadtest import load_test

    images, _ = _test_split(pipeline_project)
    bodies = [json.dumps({"image": image.tolist()}).encode() for image in images[:50]]
    result = load_test(f"{server['base']}/predict", bodies, clients=8, seconds=2)
    assert result["errors"] == 0 and result["requests"] > 50, result
    assert 0 < result["p50_ms"] <= result["p99_ms"]


def test_batch_prediction_streams_a_file_and_writes_nothing_on_a_bad_row(
        pipeline_project, exported, tmp_path):
    images, _ = _test_split(pipeline_project)
    names = json.loads((pipeline_project / "data/prepared/digits/data_card.json").read_text()
                       )["class_names"]
    frame = pd.DataFrame(images.reshape(len(images), -1),
                         columns=[f"p{i}" for i in range(images[0].size)])
    frame.insert(0, "id", range(1000, 1000 + len(frame)))
    source = tmp_path / "images.csv"
    frame.to_csv(source, index=False)
    target = tmp_path / "predictions.parquet"
    args = [FORGEML, "predict", "--pipeline", "digits", "--run", _run_id(pipeline_project),
            "-o", str(target), "--batch-size", "50"]
    out = run([*args, "-i", str(source)], cwd=pipeline_project).stdout
    assert f"{len(frame):,} rows" in out
    written = pd.read_parquet(target)
    assert written["id"].tolist() == frame["id"].tolist()
    assert written["label"].tolist() == [names[i] for i in _predicted(pipeline_project)]
    assert np.allclose(written[[f"p_{n}" for n in names]].sum(1), 1, atol=1e-4)
    # JSON lines with an image column give the same answers.
    jsonl = tmp_path / "images.jsonl"
    jsonl.write_text("".join(json.dumps({"image": im.tolist()}) + "\n" for im in images[:7]))
    run([*args[:-4], "-o", str(tmp_path / "few.csv"), "-i", str(jsonl)], cwd=pipeline_project)
    assert pd.read_csv(tmp_path / "few.csv")["label"].astype(str).tolist() == \
        written["label"].astype(str).tolist()[:7]
    # A bad row in the third batch: exit 2 naming it, and the earlier output is untouched.
    before = target.read_bytes()
    frame.loc[120, "p5"] = 7.0
    frame.to_csv(source, index=False)
    result = run([*args, "-i", str(source)], cwd=pipeline_project, check=False)
    assert result.returncode == 2 and "rows 101-150" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["images.csv", "images.jsonl", "few.csv", "predictions.parquet"])


@pytest.mark.slow  # prepares the reviews and exports: ~20 s
def test_a_text_model_exports_and_answers_like_its_predictor(tmp_path):
    """A TextCNN over the real WordPiece tokenizer and review snippets, logged as the sentiment
    pipeline logs it: the ONNX endpoint gives the predictor's probabilities."""
    from forgeml import tracking
    from forgeml.deploy.export import export_run
    from forgeml.models.textcnn import TextCNN
    from forgeml.serving.bundle import download_bundle
    from forgeml.serving.requests import RequestError
    from forgeml.tasks import compose
    from forgeml.tasks.sentiment.endpoint import TextEndpoint
    from forgeml.tasks.sentiment.predictor import NeuralTextPredictor
    from forgeml.tasks.sentiment.prepare import prepare
    from forgeml.tasks.sentiment.serving import log_model
    from forgeml.tasks.sentiment.train import tokenizer_file

    cfg = compose(["experiment=sentiment_minilm", "data.source.max_rows=400",
                   f"paths.prepared={tmp_path / 'prepared'}", "model.max_length=32"])
    prepare(cfg)
    torch.manual_seed(0)
    network = TextCNN(channels=8, embed_dim=16, max_length=32)
    predictor = NeuralTextPredictor(network, tokenizer_file(cfg), ["rotten", "fresh"])
    texts = ["A triumph: funny, moving and beautifully acted.", "Dull.",
             "Overlong, but the last act almost redeems it " * 3]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = tracking.start_run(uri, "sentiment", {}, "textcnn", "a test store")
    log_model(uri, run_id, predictor, predictor.save(tmp_path / "predictor"), texts)
    manifest = export_run(cfg, uri, run_id, "sentiment", quantize=True, examples=64).manifest
    assert manifest["parity"]["onnx"]["max_abs_diff"] <= 1e-4
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask"]
    assert manifest["inputs"][0]["shape"] == ["batch", "tokens"]  # any batch, any length

    endpoint = TextEndpoint(download_bundle(uri, run_id), threads=1)
    assert np.abs(endpoint.probabilities(texts) - predictor.predict_proba(texts)).max() <= 1e-4
    answer = endpoint.answer({"texts": texts}, max_batch=8)["predictions"]
    assert [a["label"] for a in answer] == [
        ["rotten", "fresh"][i] for i in predictor.predict_proba(texts).argmax(1)]
    for bad in ({"texts": ["fine", "  "]}, {"texts": [3]}, {"text": "x" * 30_000},
                {"texts": texts * 3}, {"reviews": texts}):
        with pytest.raises(RequestError) as err:
            endpoint.answer(bad, max_batch=8)
        assert 400 <= err.value.status < 500


@pytest.mark.slow  # two exports and a server: ~25 s
def test_follow_champion_switches_to_a_new_champion_without_dropping_requests(
        pipeline_project, tmp_path):
    """Two exported runs in a store of their own; moving the `champion` alias makes the running
    server answer with the new one within seconds, and no request fails meanwhile."""
    import threading
    import time

    from mlflow import MlflowClient

    from forgeml import tracking
    from forgeml.deploy.export import export_run
    from forgeml.models.classifier import build_network
    from forgeml.models.registry import instantiate_network
    from forgeml.saved_network import log_network
    from forgeml.tasks import load_params

    cfg = load_params(pipeline_project / "params.yaml")
    cfg.paths.prepared = str(pipeline_project / cfg.paths.prepared)
    images, _ = _test_split(pipeline_project)
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        network = build_network(instantiate_network(cfg.model), 0.3, 0.4).eval()
        run_id = tracking.start_run(uri, "digits", {}, f"seed{seed}", "a test store")
        log_network(uri, run_id, network, images[:2], output_transform="softmax")
        tracking.log_dict(uri, run_id, {"data": {"class_names": list(cfg.data.class_names),
                                                 "image_shape": list(cfg.data.image_shape)}},
                          "config/config.yaml")
        export_run(cfg, uri, run_id, "digits", quantize=False, examples=32)
        runs.append(run_id)
    client = MlflowClient(uri)
    client.create_registered_model("digits")
    versions = [client.create_model_version("digits", f"runs:/{r}/model", r).version
                for r in runs]
    client.set_registered_model_alias("digits", "champion", versions[0])

    port = free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "XDG_CACHE_HOME": str(tmp_path / "cache")}  # outside a project: the user's cache
    process = subprocess.Popen(
        [FORGEML, "serve", "--run", "champion", "--pipeline", "digits", "--port", str(port),
         "--follow-champion", "1", "--tracking-uri", uri], cwd=tmp_path, env=env,
        stdout=(tmp_path / "serve.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    good = json.dumps({"images": images[:3].tolist()}).encode()
    failures, answered_by = [], []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            status, answer = _post(base, good)
            (answered_by.append(answer["run_id"]) if status == 200 else failures.append(answer))

    try:
        assert wait_until_up(f"{base}/health", 60), (tmp_path / "serve.log").read_text()
        asker = threading.Thread(target=keep_asking)
        asker.start()
        client.set_registered_model_alias("digits", "champion", versions[1])
        deadline = time.time() + 30
        while time.time() < deadline and (not answered_by or answered_by[-1] != runs[1]):
            time.sleep(0.2)
        stop.set()
        asker.join(30)
        with urllib.request.urlopen(f"{base}/version") as response:
            assert json.loads(response.read())["run_id"] == runs[1]
    finally:
        stop.set()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert not failures and answered_by[0] == runs[0] and answered_by[-1] == runs[1]


def test_exports_are_cached_by_run_and_a_damaged_copy_is_fetched_again(
        pipeline_project, exported, tmp_path):
    from forgeml.io import sha256_file

    images, _ = _test_split(pipeline_project)
    source = tmp_path / "few.jsonl"
    source.write_text("".join(json.dumps({"image": im.tolist()}) + "\n" for im in images[:5]))
    args = [FORGEML, "predict", "--pipeline", "digits", "--run", _run_id(pipeline_project),
            "-i", str(source), "-o", str(tmp_path / "out.jsonl")]
    run(args, cwd=pipeline_project)
    copy = pipeline_project / ".forgeml" / "exports" / _run_id(pipeline_project)
    expected = exported["bundle"].sha256("onnx")
    assert sha256_file(copy / "model.onnx") == expected
    (copy / "model.onnx").write_bytes(b"not a model")
    first = (tmp_path / "out.jsonl").read_text()
    run(args, cwd=pipeline_project)
    assert (tmp_path / "out.jsonl").read_text() == first
    assert sha256_file(copy / "model.onnx") == expected
