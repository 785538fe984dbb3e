"""Load test of ``GET /v1/predictions/{symbol}/latest`` with auth on, on loopback.

Starts its own redis-server (free port, no persistence) and the API as ``tickcast serve``
runs it (uvicorn, factory ``serving.main:service_app``, uvloop + httptools, N workers), seeds
a prediction in the worker's Redis layout and a viewer token, then runs the load generator in
a separate process (aiohttp):

1. open loop at ``--rate`` requests/s for ``--duration`` s: latency is measured from each
   request's *scheduled* send time, so a stalled server is not hidden (no coordinated
   omission);
2. closed loop with ``--connections`` concurrent clients for ``--sat-duration`` s: the
   saturation throughput.

Bounded in count and time; loopback only. The last line printed is JSON.

    .venv/bin/python benchmarks/bench_api.py --workers 1 --rate 2000 --duration 10 [--compare]

``--compare`` runs FastAPI's route, then the raw-ASGI fast path (``serving/fastpath.py``),
in one run, and prints the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SYMBOL = "AAPL"
PREFIX = "bench:"
WARMUP_REQUESTS = 200  # sequential, about one second, not measured
REQUEST_TIMEOUT_S = 5.0  # a request slower than this counts as an error


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout_s} s")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# --- load generator (runs in its own process) -------------------------------------------------
async def open_loop(
    url: str, token: str, rate: float, duration: float, limit: int
) -> dict[str, Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    total = min(limit, int(rate * duration))
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(WARMUP_REQUESTS):  # unmeasured: open the connections, fill the caches
            async with session.get(url, headers=headers) as warm:
                await warm.read()
            await asyncio.sleep(1 / 200)

        async def one(scheduled: float) -> None:
            nonlocal errors
            try:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        tasks = []
        start = time.perf_counter()
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)  # each request is bounded by REQUEST_TIMEOUT_S
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "offered_rps": rate,
        "requests": total,
        "rps": round(len(latencies) / elapsed, 1),
        "latency_ms_p50": round(percentile(latencies, 50), 3),
        "latency_ms_p90": round(percentile(latencies, 90), 3),
        "latency_ms_p99": round(percentile(latencies, 99), 3),
        "latency_ms_max": round(latencies[-1], 3) if latencies else None,
        "errors": errors,
    }


async def closed_loop(
    url: str, token: str, connections: int, duration: float, limit: int
) -> dict[str, Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal errors, sent
            while time.perf_counter() < deadline and sent < limit:
                sent += 1
                began = time.perf_counter()
                try:
                    async with session.get(url, headers=headers) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append((time.perf_counter() - began) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "connections": connections,
        "saturation_rps": round(len(latencies) / elapsed, 1),
        "saturation_latency_ms_p50": round(percentile(latencies, 50), 3),
        "saturation_latency_ms_p99": round(percentile(latencies, 99), 3),
        "saturation_errors": errors,
    }


def client_main(args: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.mode == "open":
        result = asyncio.run(open_loop(args.url, args.token, args.rate, args.duration, args.limit))
    else:
        result = asyncio.run(
            closed_loop(args.url, args.token, args.connections, args.duration, args.limit)
        )
    print(json.dumps(result))


# --- orchestration ----------------------------------------------------------------------------
def run_client(url: str, token: str, *extra: str, timeout: float) -> dict[str, Any]:
    command = [sys.executable, __file__, "--client", "--url", url, "--token", token, *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_once(args: argparse.Namespace, fast_path: bool) -> dict[str, Any]:
    """Start redis-server and the API (fast path on or off), load it, stop both."""
    import orjson
    import redis

    from serving.security.tokens import JwtCodec
    from sinks.redis_keys import prediction_key
    from tickcast.config import load_settings

    redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    tmp = Path(tempfile.mkdtemp(prefix="tickcast-bench-api-"))
    redis_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "TICKCAST_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TICKCAST_REDIS_KEY_PREFIX": PREFIX,
        "TICKCAST_DATA_DIR": str(tmp),
        "TICKCAST_RATE_LIMIT_PER_SUBJECT": str(10**9),
        "TICKCAST_RATE_LIMIT_GLOBAL": str(10**9),
        "TICKCAST_API_CACHE_TTL_S": str(args.cache_ttl),
        "TICKCAST_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "TICKCAST_API_FAST_PATH": "true" if fast_path else "false",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(subprocess.Popen(
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        client = redis.Redis(port=redis_port)
        wait_until(client.ping, 10, "redis-server")
        now_ms = int(time.time() * 1000)
        record = {
            "symbol": SYMBOL, "event_time": now_ms, "model": "tickcast-direction-h1",
            "version": "1", "role": "CHAMPION", "value": 0.57, "expected_return": 0.0012,
            "horizon": 1, "feature_event_time": now_ms, "updated_at": now_ms,
            "correlation_id": "bench",
        }  # fmt: skip
        client.set(prediction_key(PREFIX, SYMBOL), orjson.dumps(record), ex=3600)
        settings = load_settings(redis_url=env["TICKCAST_REDIS_URL"])
        codec = JwtCodec.from_settings(settings)
        token, _ = codec.issue(
            sub="user:bench", role="viewer", scopes=("predictions:read",), sid="bench"
        )
        server_log = (tmp / "api.log").open("wb")  # a pipe nobody reads would block the server
        # exactly the options of `tickcast serve` (guarded httptools protocol, time-outs,
        # concurrency limit), only host, port and workers from here
        serve = (
            "import sys, uvicorn; from serving.cli import uvicorn_options; "
            "from tickcast.config import load_settings; uvicorn.run(**uvicorn_options("
            "load_settings(), host='127.0.0.1', port=int(sys.argv[1]), "
            "workers=int(sys.argv[2])))"
        )
        server = [sys.executable, "-c", serve, str(api_port), str(args.workers)]  # fmt: skip
        processes.append(subprocess.Popen(
            server, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=server_log,
        ))  # fmt: skip
        import httpx

        base = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, 60, "the API")
        url = f"{base}/v1/predictions/{SYMBOL}/latest"
        probe = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        if probe.status_code != 200:
            raise RuntimeError(f"probe answered {probe.status_code}: {probe.text}")
        timeout = args.duration + args.sat_duration + 120
        opened = run_client(
            url, token, "--mode", "open", "--rate", str(args.rate),
            "--duration", str(args.duration), "--limit", str(args.limit), timeout=timeout,
        )  # fmt: skip
        closed = run_client(
            url, token, "--mode", "closed", "--connections", str(args.connections),
            "--duration", str(args.sat_duration), "--limit", str(args.limit), timeout=timeout,
        )  # fmt: skip
        log_lines = (tmp / "api.log").read_text(errors="replace").splitlines()
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        **opened,
        **closed,
        "target": "p99 <= 10 ms at 2000 rps offered",
        "server_warnings": len(log_lines),
        "server_log_head": log_lines[:3],
        "met": bool(opened["latency_ms_p99"] <= 10 and opened["errors"] == 0),
        "server": {
            "server": "uvicorn", "workers": args.workers, "loop": "uvloop",
            "http": "httptools (serving.protocol guard)",
            "json": "pydantic-core (response models), orjson (errors, store)",
            "auth": "JWT HS256, verification cached per token; revocation + rate limit in one "
            "Redis EVALSHA per request",
            "store_cache_ttl_s": args.cache_ttl, "cpus": os.cpu_count(),
            "generator": "aiohttp + uvloop, one separate process, same machine",
            "route": "raw-ASGI fast path (serving/fastpath.py)" if fast_path
            else "FastAPI routing + dependency injection",
        },
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sat-duration", type=float, default=8.0)
    parser.add_argument("--limit", type=int, default=200_000, help="Most requests per phase.")
    parser.add_argument("--cache-ttl", type=float, default=0.25)
    parser.add_argument(
        "--no-fast-path", action="store_true", help="FastAPI's route, not the fast path."
    )
    parser.add_argument(
        "--compare", action="store_true", help="Without, then with the fast path; ratios."
    )
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="open", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return

    if not args.compare:
        print(json.dumps(run_once(args, fast_path=not args.no_fast_path)))
        return
    # Both configurations in one run, one after the other (a shared machine is noisy).
    slow = run_once(args, fast_path=False)
    print(json.dumps(slow))
    fast = run_once(args, fast_path=True)
    ratios = {
        "saturation_rps_ratio": round(fast["saturation_rps"] / slow["saturation_rps"], 2),
        "p99_ratio_at_offered": round(fast["latency_ms_p99"] / slow["latency_ms_p99"], 3),
    }
    print(json.dumps({**fast, **ratios, "without_fast_path": slow}))


if __name__ == "__main__":
    main()
