"""`load_mixed`: a bounded asyncio client against a `make run`-like stack (Daphne + Celery worker
+ beat subprocesses on the bench database): ingest offered at the benchmark rate (batches of
5000) while 50 war-room websockets stay open and the policy API is polled. Reports p95 latency,
error rate, events held per second, websocket messages, and events in vs stored (0 lost)."""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

DURATION_S = float(os.environ.get("LOAD_DURATION_S", 30))
OFFERED_EVENTS_PER_S = int(os.environ.get("LOAD_EVENTS_PER_S", 18_000))
BATCH = 5000
WEBSOCKETS = 50
POLICY_POLLERS = 10
POLICY_INTERVAL_S = 0.5


def _p95(values: list[float]) -> float | None:
    return round(statistics.quantiles(values, n=100)[94], 1) if len(values) >= 20 else (round(max(values), 1) if values else None)


def _session_cookie() -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.backends.db import SessionStore

    user, _ = User.objects.get_or_create(username=f"load-{time.time_ns()}")
    user.groups.add(Group.objects.get_or_create(name="risk_ops")[0])
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


async def _load(url: str, token: str, session_key: str, bodies: list[bytes]) -> dict:
    import websockets

    stop = asyncio.Event()
    ingest_latency, policy_latency, errors = [], [], {"ingest": 0, "policy": 0, "websocket": 0}
    accepted = {"n": 0, "sent": 0}
    ws_messages = [0] * WEBSOCKETS
    ws_connected = [False] * WEBSOCKETS
    headers = {"Authorization": f"Bearer {token}"}

    async def websocket_client(index: int):
        ws_url = url.replace("http://", "ws://") + "/ws/war-room/"
        try:
            async with websockets.connect(ws_url, additional_headers={"Cookie": f"sessionid={session_key}", "Origin": url},
                                          open_timeout=30, max_size=None) as socket:
                ws_connected[index] = True
                while not stop.is_set():
                    try:
                        await asyncio.wait_for(socket.recv(), timeout=0.5)
                        ws_messages[index] += 1
                    except asyncio.TimeoutError:
                        continue
        except Exception:  # noqa: BLE001 - counted as an error
            errors["websocket"] += 1

    async def policy_poller(client: httpx.AsyncClient):
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = await client.get(url + "/api/v1/rollout/policy", headers=headers)
                if response.status_code != 200:
                    errors["policy"] += 1
            except httpx.HTTPError:
                errors["policy"] += 1
            policy_latency.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(POLICY_INTERVAL_S)

    async def ingester(client: httpx.AsyncClient):
        interval = BATCH / OFFERED_EVENTS_PER_S
        next_at = time.perf_counter()
        in_flight = set()

        async def send(body: bytes):
            started = time.perf_counter()
            try:
                response = await client.post(url + "/api/v1/events", content=body,
                                             headers={**headers, "Content-Type": "application/json"})
                if response.status_code == 200:
                    accepted["n"] += response.json()["accepted"]
                else:
                    errors["ingest"] += 1
            except httpx.HTTPError:
                errors["ingest"] += 1
            ingest_latency.append((time.perf_counter() - started) * 1000)

        for body in bodies:
            if stop.is_set():
                break
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += interval
            accepted["sent"] += BATCH
            task = asyncio.create_task(send(body))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if len(in_flight) >= 4:  # bounded: never more than 4 batches in flight
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        if in_flight:
            await asyncio.wait(in_flight)

    async with httpx.AsyncClient(timeout=120) as client:
        sockets = [asyncio.create_task(websocket_client(i)) for i in range(WEBSOCKETS)]
        await asyncio.sleep(2)
        pollers = [asyncio.create_task(policy_poller(client)) for _ in range(POLICY_POLLERS)]
        started = time.perf_counter()
        ingest_task = asyncio.create_task(ingester(client))
        await asyncio.wait([ingest_task], timeout=DURATION_S)
        stop.set()
        await ingest_task
        elapsed = time.perf_counter() - started
        await asyncio.gather(*pollers, *sockets)
    return {"elapsed": elapsed, "ingest_latency": ingest_latency, "policy_latency": policy_latency, "errors": errors,
            "accepted": accepted["n"], "sent": accepted["sent"], "ws_messages": ws_messages, "ws_connected": sum(ws_connected)}


def run():
    from django.db import connection

    from shopswift_ops.access import SCOPES
    from shopswift_ops.tokens import create_token
    from tests.bench.bench_ingest import realistic_events
    from tests.faults.processes import process_env, start_beat, start_daphne, start_worker

    prefix = f"load-{int(time.time())}"
    batches_needed = int(DURATION_S * OFFERED_EVENTS_PER_S / BATCH) + 1
    events = realistic_events(batches_needed * BATCH, prefix=prefix)
    bodies = [json.dumps({"events": events[i:i + BATCH]}).encode() for i in range(0, len(events), BATCH)]
    _, token = create_token(name=f"load-{time.time_ns()}", scopes=list(SCOPES))
    session_key = _session_cookie()
    with tempfile.TemporaryDirectory() as logs:
        env = process_env()
        web, url = start_daphne(env, Path(logs))
        worker = start_worker(env, Path(logs), concurrency=1)
        beat = start_beat(env, Path(logs))
        try:
            time.sleep(3)
            result = asyncio.run(_load(url, token, session_key, bodies))
        finally:
            for proc in (beat, worker, web):
                proc.stop()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_decision WHERE event_id LIKE %s", [prefix + "-%"])
        stored = cursor.fetchone()[0]
    requests = len(result["ingest_latency"]) + len(result["policy_latency"])
    request_errors = result["errors"]["ingest"] + result["errors"]["policy"]
    yield {"name": "load_mixed_ingest_events_per_s", "value": round(result["accepted"] / result["elapsed"]), "unit": "events/s",
           "offered_events_per_s": OFFERED_EVENTS_PER_S, "duration_s": round(result["elapsed"], 1)}
    yield {"name": "load_mixed_ingest_p95_ms", "value": _p95(result["ingest_latency"]), "unit": "ms", "batch_size": BATCH,
           "batches": len(result["ingest_latency"])}
    yield {"name": "load_mixed_policy_p95_ms", "value": _p95(result["policy_latency"]), "unit": "ms",
           "requests": len(result["policy_latency"])}
    yield {"name": "load_mixed_error_rate", "value": round(request_errors / max(1, requests), 4), "unit": "ratio",
           "errors": result["errors"], "requests": requests}
    yield {"name": "load_mixed_websockets", "value": result["ws_connected"], "unit": "connected", "wanted": WEBSOCKETS,
           "messages_total": sum(result["ws_messages"]), "messages_min_per_socket": min(result["ws_messages"])}
    yield {"name": "load_mixed_events_lost", "value": result["sent"] - stored, "unit": "events",
           "sent": result["sent"], "accepted": result["accepted"], "stored": stored, "ok": stored == result["sent"]}
