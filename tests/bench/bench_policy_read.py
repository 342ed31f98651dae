"""policy_read: GET /api/v1/rollout/policy with a bearer token, as the payments service polls it.

Starts a real Daphne on a free port against the bench database (as `make run` does, access log
included), then measures with a bounded concurrent client (raw asyncio, HTTP/1.1 keep-alive,
CONCURRENCY connections in a closed loop) on the same 2-core machine. Side by side in one run:
the ASGI fast path (default) for 200 and 304 answers, the same read through plain Django
views (ROLLOUT_POLICY_FASTPATH=false), and Daphne's own ceiling on this machine at this moment: a
minimal ASGI app answering the same bytes (`minimal_app`), so a loaded machine shows as a low
ceiling rather than as a slow policy read. Target: p95 < 5 ms at >= 2,000 req/s.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from shopswift_ops.embedded import free_port as _free_port
from shopswift_ops.launcher import NotServing, wait_until_serving

BASE_DIR = Path(__file__).resolve().parents[2]
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
WARMUP_S = 1.5
MEASURE_S = 6.0
PATH = "/api/v1/rollout/policy"


_MINIMAL_BODY = b'{"version":1,"model_version":null,"mode":"off","traffic_pct":0.0}'


async def minimal_app(scope, receive, send):
    """Daphne's ceiling: no Django, no auth, no cache; the same response shape."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"etag", b'"1"'), (b"content-length", str(len(_MINIMAL_BODY)).encode())]})
    await send({"type": "http.response.body", "body": _MINIMAL_BODY})




def _start_daphne(port: int, *, fastpath: bool, app: str = "shopswift_ops.asgi:application") -> subprocess.Popen:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "shopswift_ops.settings"
    env["ROLLOUT_POLICY_FASTPATH"] = "true" if fastpath else "false"
    daphne = Path(sys.executable).parent / "daphne"
    # With an access log, as `make run` starts Daphne (a line per request is part of the cost).
    access_log = Path(tempfile.gettempdir()) / f"bench-policy-read-access-{port}.log"
    process = subprocess.Popen([str(daphne), "-b", "127.0.0.1", "-p", str(port), "--access-log", str(access_log), app],
                               cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)

    try:
        wait_until_serving(f"http://127.0.0.1:{port}/healthz", process=process)
    except NotServing:
        process.terminate()
        raise
    return process


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked = None, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _client(port: int, request: bytes, expected: int, stop_at: float, latencies: list, errors: list):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - started)
            if status != expected:
                errors.append(status)
    finally:
        writer.close()


async def _measure(port: int, request: bytes, expected: int, seconds: float) -> tuple[list, list, float]:
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(_client(port, request, expected, stop_at, latencies, errors) for _ in range(CONCURRENCY)))
    return latencies, errors, time.perf_counter() - started


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _scenario(name: str, port: int, request: bytes, expected: int, extra: dict) -> dict:
    asyncio.run(_measure(port, request, expected, WARMUP_S))
    latencies, errors, elapsed = asyncio.run(_measure(port, request, expected, MEASURE_S))
    latencies.sort()
    return {
        "name": name, "value": round(len(latencies) / elapsed, 1), "unit": "req/s",
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 3),
        "p95_ms": round(_percentile(latencies, 0.95) * 1000, 3),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 3),
        "requests": len(latencies), "errors": len(errors), "concurrency": CONCURRENCY,
        "target": "p95 < 5 ms and >= 2000 req/s", **extra,
    }


def run():
    from rollout import services
    from shopswift_ops.tokens import create_token

    services.ensure_initialized()
    document = services.bootstrap_policy(model_version="fraud-gbm-v3", traffic_pct=25, salt="launch-2026-11",
                                         reason="bench policy_read", actor="bench", force=True)
    services.apply_action(action="exclude_segment", params={"feature": "signup_method", "in": ["social_google",
                                                                                                "social_apple"]},
                          reason="bench: a realistic document", actor="bench")
    document = services.current_policy()
    _, raw = create_token(name=f"bench-policy-read-{time.time_ns()}", scopes=["policy:read"])
    base = (f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {raw}\r\n"
            f"User-Agent: payments-service-bench\r\n")
    plain = (base + "\r\n").encode()
    conditional = (base + f'If-None-Match: "{document["version"]}"\r\n\r\n').encode()

    port = _free_port()
    process = _start_daphne(port, fastpath=True, app="tests.bench.bench_policy_read:minimal_app")
    try:
        ceiling = _scenario("policy_read_daphne_ceiling", port, plain, 200,
                            {"path": "minimal ASGI app (no Django): what Daphne alone reaches here, now"})
        yield ceiling
    finally:
        _stop(process)
    for fastpath in (True, False):
        port = _free_port()
        process = _start_daphne(port, fastpath=fastpath)
        try:
            label = "fast path" if fastpath else "plain Django view"
            suffix = "" if fastpath else "_django_view"
            for name, request, status, answer in (
                    (f"policy_read{suffix}", plain, 200, "200 with the policy"),
                    (f"policy_read_304{suffix}", conditional, 304, "304 (If-None-Match of the current version)")):
                result = _scenario(name, port, request, status, {"path": label, "answer": answer})
                result["share_of_daphne_ceiling"] = round(result["value"] / ceiling["value"], 3)
                yield result
        finally:
            _stop(process)
