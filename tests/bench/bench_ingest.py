"""`ingest`: events/s through POST /api/v1/events (Daphne as `make run` starts it, batches of
5000 realistic decision events with 12 features) and, in the same run, events/s of a raw psycopg
COPY of the same rows into the same PostgreSQL, the two alternating in rounds. Targets: HTTP >= 0.5 x raw COPY and >= 18,000/s."""
from __future__ import annotations

import json
import os
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

BATCH = 5000
BATCHES = 24
CLIENTS = int(os.environ.get("INGEST_BENCH_CLIENTS", "2"))  # concurrent producers
ROUNDS = 4
TARGET_EVENTS_PER_S = 18_000


def realistic_events(n: int, *, prefix: str, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events = []
    for i in range(n):
        social = rng.random() < 0.2
        score = round(rng.random(), 4)
        events.append({
            "event_id": f"{prefix}-{i}", "type": "decision", "order_id": f"{prefix}-o-{i}",
            "occurred_at": (now - timedelta(seconds=rng.randint(0, 3600))).isoformat().replace("+00:00", "Z"),
            "buyer_id": f"b-{rng.randint(1, 2_000_000)}", "seller_id": f"s-{rng.randint(1, 50_000)}",
            "amount_minor": rng.randint(500, 250_000), "currency": rng.choice(["EUR", "USD", "GBP"]),
            "arm": rng.choice(["control", "treatment"]), "policy_version": 3, "model_version": "fraud-gbm-v3",
            "score": score, "decision": "approve" if score < 0.6 else ("step_up" if score < 0.9 else "decline"),
            "decided_by": "model", "reason_codes": ["VELOCITY_HIGH"] if score > 0.6 else [],
            "latency_ms": round(max(1.0, rng.gauss(45, 10)), 1) if rng.random() > 0.02 else 80.0, "timed_out": False,
            "features": {
                "account_age_days": 0 if social else rng.randint(30, 3000),
                "signup_method": rng.choice(["social_google", "social_apple"]) if social else "email",
                "is_repeat_buyer": rng.random() < 0.7, "prior_good_orders": rng.randint(0, 40),
                "amount_band": rng.choice(["b1", "b2", "b3", "b4"]), "device_risk": round(rng.random(), 3),
                "bin_country_match": rng.random() < 0.95, "velocity_1h": rng.randint(0, 5),
                "email_domain_age_days": rng.randint(0, 9000), "ip_distance_km": round(rng.expovariate(0.01), 1),
                "card_age_days": rng.randint(0, 2000), "failed_attempts_24h": rng.randint(0, 3),
            },
        })
    return events


def _http_seconds(url: str, token: str, bodies: list[bytes]) -> tuple[float, int]:
    """Send the bodies over CLIENTS concurrent connections; return (seconds, events accepted)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def send(chunk: list[bytes]) -> int:
        accepted = 0
        with httpx.Client(timeout=120) as client:
            for body in chunk:
                response = client.post(url + "/api/v1/events", content=body, headers=headers)
                response.raise_for_status()
                accepted += response.json()["accepted"]
        return accepted

    chunks = [bodies[i::CLIENTS] for i in range(CLIENTS)]
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        accepted = sum(pool.map(send, chunks))
    return time.perf_counter() - started, accepted


def _copy_rows(events: list[dict]) -> list[tuple]:
    received = datetime.now(UTC)
    return [(
        "copy-" + e["event_id"], e["order_id"], datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")), received,
        e["buyer_id"], e["seller_id"], None, None, e["amount_minor"], e["currency"], e["arm"], e["policy_version"],
        e["model_version"], e["score"], e["decision"], e["decided_by"],
        # reason codes as an array literal, as the endpoint writes them (the fastest COPY form)
        "{" + ",".join(e["reason_codes"]) + "}", e["latency_ms"],
        e["timed_out"], json.dumps(e["features"]), None, None,
    ) for e in events]


def _copy_seconds(conn, rows: list[tuple]) -> float:
    """Raw psycopg COPY of the rows straight into metrics_decision, one transaction per batch."""
    from metrics.ingest import DECISION_COLUMNS

    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(f"COPY metrics_decision ({', '.join(DECISION_COLUMNS)}) FROM STDIN") as copy:
                for row in rows[i:i + BATCH]:
                    copy.write_row(row)
    return time.perf_counter() - started


def _raw_connection():
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
        params.pop(name, None)
    return psycopg.connect(**params)


def run():
    from django.db import connection

    from metrics.partitions import ensure_partitions
    from shopswift_ops.tokens import create_token
    from tests.faults.processes import process_env, start_daphne

    total = BATCH * BATCHES
    events = realistic_events(total, prefix=f"bench-{int(time.time())}")
    bodies = [json.dumps({"events": events[i:i + BATCH]}).encode() for i in range(0, total, BATCH)]
    copy_rows = _copy_rows(events)
    ensure_partitions({datetime.now(UTC).date(), (datetime.now(UTC) - timedelta(hours=1)).date()})
    _, token = create_token(name=f"bench-ingest-{time.time_ns()}", scopes=["events:write"])
    http_seconds = copy_seconds = 0.0
    accepted = 0
    per_round = BATCHES // ROUNDS
    with tempfile.TemporaryDirectory() as logs, _raw_connection() as raw:
        web, url = start_daphne(process_env(), Path(logs))
        try:
            # Warm up (connection pool, partitions, code paths) with one batch of other ids.
            warm = realistic_events(BATCH, prefix=f"warm-{time.time_ns()}", seed=1)
            httpx.post(url + "/api/v1/events", json={"events": warm}, headers={"Authorization": f"Bearer {token}"},
                       timeout=120).raise_for_status()
            # Side by side: rounds alternate the endpoint and raw COPY on the same rows, so a
            # change in the machine's load during the run weighs on both figures alike.
            for r in range(ROUNDS):
                seconds, round_accepted = _http_seconds(url, token, bodies[r * per_round:(r + 1) * per_round])
                http_seconds += seconds
                accepted += round_accepted
                copy_seconds += _copy_seconds(raw, copy_rows[r * per_round * BATCH:(r + 1) * per_round * BATCH])
        finally:
            web.stop()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_decision WHERE event_id = ANY(%s)", [[e["event_id"] for e in events]])
        stored = cursor.fetchone()[0]
    http_rate = accepted / http_seconds
    copy_rate = len(copy_rows) / copy_seconds
    yield {"name": "ingest_http_events_per_s", "value": round(http_rate), "unit": "events/s",
           "batches": BATCHES, "batch_size": BATCH, "clients": CLIENTS, "rounds": ROUNDS, "sent": total,
           "accepted": accepted, "stored": stored, "target": TARGET_EVENTS_PER_S,
           "ok": http_rate >= TARGET_EVENTS_PER_S and stored == total}
    yield {"name": "ingest_raw_copy_events_per_s", "value": round(copy_rate), "unit": "events/s", "rows": len(copy_rows)}
    ratio = http_rate / copy_rate
    yield {"name": "ingest_http_vs_copy_ratio", "value": round(ratio, 3), "unit": "ratio", "target": ">= 0.5",
           "ok": ratio >= 0.5}
