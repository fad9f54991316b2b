"""Latency and throughput of any model call (PyTorch or ONNX Runtime) at a fixed thread count:
p50 / p99 over batch-1 calls after a warm-up, and inputs per second at a large batch."""

from __future__ import annotations

import time

import numpy as np

from forgeml.serving.runtime import Run


def latency(run: Run, single: dict[str, np.ndarray], batch: dict[str, np.ndarray],
            calls: int, throughput_seconds: float = 1.0) -> dict[str, float]:
    for _ in range(min(20, calls)):  # warm-up: allocations, kernel selection
        run(single)
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        run(single)
        times[i] = time.perf_counter() - start
    size = len(next(iter(batch.values())))
    run(batch)
    rounds, start = 0, time.perf_counter()
    while rounds < 3 or time.perf_counter() - start < throughput_seconds:
        run(batch)
        rounds += 1
    elapsed = time.perf_counter() - start
    return {"p50_ms": float(np.percentile(times, 50) * 1e3),
            "p99_ms": float(np.percentile(times, 99) * 1e3),
            "throughput_per_s": float(rounds * size / elapsed)}
