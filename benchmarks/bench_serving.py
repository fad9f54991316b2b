"""The prediction server under load, side by side in one run: for each pipeline's trained run
(models/<p>/run.json, the project's MLflow store) and each model format, `forgeml serve` is
started on 127.0.0.1 and a closed-loop load test runs at 1, 8 and 32 concurrent clients, one
input per request (real test inputs). Prints requests/s, p50 and p99 as a client sees them, and
the int8 / PyTorch fp32 throughput ratio.

    python benchmarks/bench_serving.py --seconds 10
    python benchmarks/bench_serving.py --pipelines sentiment --formats torch int8 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FORMATS = {"digits": ["torch", "onnx", "int8"], "sentiment": ["torch", "onnx", "int8"],
           "recsys": ["torch", "onnx"]}


def bodies(pipeline: str, count: int = 200) -> list[bytes]:
    """One real test input per request."""
    from forgeml.tasks import load_params

    if pipeline == "digits":
        from forgeml.data.tensors import load_split

        images, _ = load_split(load_params(ROOT / "params.yaml").paths.prepared, "test")
        return [json.dumps({"image": im.tolist()}).encode() for im in images[:count]]
    cfg = load_params(ROOT / "pipelines" / pipeline / "params.yaml")
    if pipeline == "sentiment":
        from forgeml.data.text_batches import read_split

        texts, _ = read_split(cfg.paths.prepared, "test")
        return [json.dumps({"text": t}).encode() for t in texts[:count]]
    catalog = json.loads((Path(cfg.paths.prepared) / "catalog.json").read_text())
    return [json.dumps({"user": u, "k": 10}).encode() for u in catalog["user_ids"][:count]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(pipeline: str, model_format: str, workers: int, threads: int):
    run_id = json.loads((ROOT / "models" / pipeline / "run.json").read_text())["run_id"]
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "forgeml"), "serve", "--run", run_id, "--pipeline", pipeline, "--port",
         str(port), "--format", model_format, "--workers", str(workers), "--threads",
         str(threads)], cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300  # a first run exports the model
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2)
            return process, base
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"forgeml serve {pipeline} {model_format} exited") from None
            time.sleep(0.5)
    raise SystemExit("the server did not start")


def main() -> None:
    from forgeml.serving.loadtest import load_test

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", nargs="+", default=list(FORMATS))
    parser.add_argument("--formats", nargs="+", default=None)
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; server: {args.workers} worker(s) x {args.threads} thread(s);"
          f" {args.seconds:g} s per level\n")
    print("| pipeline | format | clients | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    results = {}
    for pipeline in args.pipelines:
        requests = bodies(pipeline)
        for model_format in args.formats or FORMATS[pipeline]:
            process, base = serve(pipeline, model_format, args.workers, args.threads)
            try:
                for clients in args.clients:
                    r = load_test(f"{base}/predict", requests, clients, args.seconds)
                    results[pipeline, model_format, clients] = r
                    print(f"| {pipeline} | {model_format} | {clients} | "
                          f"{r['requests_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                          f"{r['errors']} |", flush=True)
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    print()
    for pipeline in args.pipelines:
        for clients in args.clients:
            torch_r = results.get((pipeline, "torch", clients))
            for fast in ("onnx", "int8"):
                other = results.get((pipeline, fast, clients))
                if torch_r and other:
                    print(f"{pipeline} {fast} / torch fp32 throughput at {clients} clients: "
                          f"{other['requests_per_s'] / torch_r['requests_per_s']:.2f}x")


if __name__ == "__main__":
    main()
