"""Faults against real processes: PostgreSQL restarted during ingest, Redis down, a Celery worker
killed mid-task. Nothing lost, nothing counted twice."""
import threading
import time
import uuid

import httpx
import pytest

from tests.bench.bench_ingest import realistic_events
from tests.faults.processes import start_beat, start_worker, wait_for

pytestmark = pytest.mark.slow


def post_until_stored(url: str, token: str, batch: list[dict], log: list, tries: int = 150) -> dict:
    """What a careful client does: retry on 503 or a dropped connection until the batch lands."""
    for _ in range(tries):
        try:
            response = httpx.post(url + "/api/v1/events", json={"events": batch},
                                  headers={"Authorization": f"Bearer {token}"}, timeout=30)
        except httpx.TransportError as exc:
            log.append(type(exc).__name__)
        else:
            log.append(response.status_code)
            if response.status_code == 200:
                return response.json()
            assert response.status_code == 503, (response.status_code, response.text[:300])
            assert "retry" in response.json()["detail"]
        time.sleep(0.1)
    raise AssertionError(f"batch never landed: {log[-10:]}")


def _counts(stack, prefix: str) -> tuple[int, int]:
    [(total, distinct)] = stack.sql("SELECT count(*), count(DISTINCT event_id) FROM metrics_decision WHERE event_id LIKE %s",
                                    [prefix + "%"])
    return total, distinct


def test_postgres_restart_during_ingest_loses_and_doubles_nothing(stack):
    token = stack.token("fault-pg", "events:write")
    prefix = f"pgr-{uuid.uuid4().hex[:6]}"
    events = realistic_events(12_000, prefix=prefix)
    batches = [events[i:i + 300] for i in range(0, len(events), 300)]
    log, results, sent = [], [], threading.Event()

    def client():
        for index, batch in enumerate(batches):
            results.append(post_until_stored(stack.urls[0], token, batch, log))
            if index == 4:
                sent.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert sent.wait(120)
    stack.services.restart_postgres()  # in-flight and next requests meet a dead server
    thread.join(300)
    assert not thread.is_alive()
    failures = [entry for entry in log if entry != 200]
    assert failures, "the restart should have been felt by at least one request"
    assert all(entry == 503 or isinstance(entry, str) for entry in failures), failures  # never a 500
    assert sum(r["accepted"] for r in results) + sum(r["duplicates"] for r in results) == len(events)
    assert _counts(stack, prefix) == (len(events), len(events))  # everything once


def test_redis_down_ingest_and_policy_keep_working_and_queued_work_is_redone(stack):
    token = stack.token("fault-redis", "events:write,policy:read")
    prefix = f"rd-{uuid.uuid4().hex[:6]}"
    events = realistic_events(600, prefix=prefix, seed=3)
    headers = {"Authorization": f"Bearer {token}"}
    url = stack.urls[0]
    stack.services.stop_redis()
    try:
        started = time.monotonic()
        response = httpx.post(url + "/api/v1/events", json={"events": events}, headers=headers, timeout=30)
        assert response.status_code == 200 and response.json()["accepted"] == len(events)
        assert time.monotonic() - started < 5, "a Redis outage must not stall ingest"
        policy = httpx.get(url + "/api/v1/rollout/policy", headers=headers, timeout=30)
        assert policy.status_code == 200 and "version" in policy.json()
        ready = httpx.get(url + "/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False
    finally:
        stack.services.start_redis_again()
    assert _counts(stack, prefix) == (len(events), len(events))
    order_ids = [e["order_id"] for e in events]
    [(waiting,)] = stack.sql("SELECT count(*) FROM metrics_pending_order WHERE order_id = ANY(%s)", [order_ids])
    assert waiting == len(events)  # the nudge was lost with Redis; the work is still queued in PostgreSQL
    worker = start_worker(stack.env, stack.folder / "logs", name="redis-fault-worker")
    beat = start_beat(stack.env, stack.folder / "logs", name="redis-fault-beat")
    stack.procs += [worker, beat]
    try:
        wait_for(lambda: stack.sql("SELECT count(*) FROM metrics_pending_order WHERE order_id = ANY(%s)", [order_ids])[0][0] == 0,
                 timeout=90, what="the refresh to consume the orders queued while Redis was down")
        assert httpx.get(url + "/readyz", timeout=30).json()["checks"]["redis"]["ok"] is True
    finally:
        beat.stop()
        worker.stop()


def _rollup_matches_raw(stack) -> bool:
    [(raw_decisions, raw_orders)] = stack.sql("SELECT count(*), count(DISTINCT order_id) FROM metrics_decision")
    [(rolled_decisions, rolled_orders)] = stack.sql(
        "SELECT coalesce(sum(decisions), 0), coalesce(sum(orders), 0) FROM metrics_rollup_minute WHERE seg_feature = ''")
    return (raw_decisions, raw_orders) == (rolled_decisions, rolled_orders)


def test_worker_killed_mid_refresh_the_next_run_completes_the_work_once(stack):
    token = stack.token("fault-worker", "events:write")
    prefix = f"wk-{uuid.uuid4().hex[:6]}"
    events = realistic_events(20_000, prefix=prefix, seed=5)
    for i in range(0, len(events), 5000):
        post_until_stored(stack.urls[0], token, events[i:i + 5000], [])
    logs = stack.folder / "logs"
    doomed = start_worker(stack.env, logs, name="doomed-worker")
    stack.procs.append(doomed)
    beat = start_beat(stack.env, logs, name="kill-beat")
    stack.procs.append(beat)
    # Kill the worker once it has started folding (the first refresh of 20k orders takes a while).
    wait_for(lambda: "metrics.refresh_and_evaluate" in doomed.log_tail(20_000) and "received" in doomed.log_tail(20_000),
             timeout=60, what="the worker to start a refresh")
    time.sleep(0.3)
    doomed.kill_hard()
    survivor = start_worker(stack.env, logs, name="survivor-worker")
    stack.procs.append(survivor)
    try:
        wait_for(lambda: stack.sql("SELECT count(*) FROM metrics_pending_order")[0][0] == 0, timeout=120,
                 what="the next refresh to finish the work")
        wait_for(lambda: _rollup_matches_raw(stack), timeout=30, what="rollups to equal the raw counts")
        time.sleep(3)  # further beat runs must not add anything
        assert _rollup_matches_raw(stack)
    finally:
        survivor.stop()
        beat.stop()
