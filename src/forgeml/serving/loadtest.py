"""A bounded load test against a prediction server: K concurrent clients, each sending its next
request as soon as the last one is answered (closed loop), for a fixed time. Requests/s and
p50/p99 latency as a client sees them; every non-2xx answer is counted."""

from __future__ import annotations

import asyncio
import itertools
import time

import numpy as np


async def _client(session, url: str, bodies, deadline: float, latencies: list[float],
                  statuses: dict[int, int]) -> None:
    for body in bodies:
        if time.perf_counter() >= deadline:
            return
        start = time.perf_counter()
        async with session.post(url, data=body,
                                headers={"Content-Type": "application/json"}) as response:
            await response.read()
        latencies.append(time.perf_counter() - start)
        statuses[response.status] = statuses.get(response.status, 0) + 1


async def _load(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up: one request per client, not counted.
        await asyncio.gather(*(_client(session, url, bodies[:1], time.perf_counter() + 60, [],
                                       {}) for _ in range(clients)))
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(_client(session, url, itertools.cycle(bodies[i::clients] or
                                                                     bodies),
                                       deadline, latencies, statuses)
                               for i in range(clients)))
        elapsed = time.perf_counter() - start
    times = np.array(latencies) * 1e3
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": len(latencies),
            "requests_per_s": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(times, 50)) if len(times) else float("nan"),
            "p99_ms": float(np.percentile(times, 99)) if len(times) else float("nan"),
            "errors": sum(n for status, n in statuses.items() if not 200 <= status < 300),
            "statuses": statuses}


def load_test(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """POST `bodies` (cycled) to `url` from `clients` concurrent clients for `seconds`."""
    return asyncio.run(_load(url, bodies, clients, seconds))
