"""affected_export: rows/s of the affected-customers CSV export over 1M affected orders, and the
process's memory while it streams (it must stay flat: a server-side cursor feeds a streaming
response batch by batch).

Seeds (set-based SQL) 1M declined / failed-step-up social-login treatment orders inside an
incident's affected population, plus completed later orders for a part of their buyers and
unaffected traffic around them; then downloads the export through Django's test Client (WSGI
path: a sync generator) and AsyncClient (ASGI path: the async iterator Daphne serves), reading
chunk by chunk and sampling RSS. `AFFECTED_BENCH_ORDERS` scales it down for a quick try.
"""
from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import psutil
from django.db import connection

ORDERS = int(os.environ.get("AFFECTED_BENCH_ORDERS", 1_000_000))
DAYS = 3


def seed(now: datetime) -> float:
    from metrics.partitions import ensure_partitions

    from tests.conftest import truncate_event_store

    # Exactly the seeded population: `make bench` shares its database with other seeds.
    truncate_event_store()
    started = time.monotonic()
    ensure_partitions({(now - timedelta(days=d)).date() for d in range(DAYS + 2)})
    stamp = now.isoformat()
    span = DAYS * 86400 - 120
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        # i <= ORDERS: the affected orders; ORDERS < i <= 1.5 * ORDERS: unaffected traffic (email
        # sign-ups, control arm) and, for every third affected buyer, a later completed order.
        cursor.execute(f"""
            INSERT INTO metrics_decision (event_id, order_id, occurred_at, received_at, buyer_id, seller_id,
                buyer_email_hash, buyer_email_masked, amount_minor, currency, arm, policy_version, model_version,
                score, decision, decided_by, reason_codes, latency_ms, timed_out, features)
            SELECT 'aff-d-' || i, 'aff-o-' || i, at, at, 'aff-b-' || (i % {max(ORDERS // 2, 1)}), 'aff-s-' || (i % 500),
                   md5(i::text), 'b***@example.com', 1000 + (i * 7919) % 90000, 'EUR',
                   CASE WHEN i <= {ORDERS} THEN 'treatment' ELSE 'control' END, 2, 'fraud-gbm-v3', 0.93,
                   CASE WHEN i > {ORDERS} THEN 'approve' WHEN i % 4 = 0 THEN 'step_up' ELSE 'decline' END,
                   'model', ARRAY['NEW_ACCOUNT'], 40, false,
                   jsonb_build_object('account_age_days', 0,
                                      'signup_method', CASE WHEN i % 2 = 0 THEN 'social_google' ELSE 'social_apple' END,
                                      'is_repeat_buyer', true, 'prior_good_orders', 12)
            FROM generate_series(1::bigint, {ORDERS + ORDERS // 2}) AS i,
                 LATERAL (SELECT CASE WHEN i <= {ORDERS}
                                      THEN '{stamp}'::timestamptz - interval '1 day' * {DAYS}
                                           + ((i::bigint * 104729) % {span}) * interval '1 second'
                                      -- the later orders of affected buyers: the last two hours
                                      ELSE '{stamp}'::timestamptz - ((i::bigint * 31) % 7200 + 120) * interval '1 second'
                                 END AS at) t
        """)
        cursor.execute(f"""
            INSERT INTO metrics_outcome (event_id, order_id, occurred_at, received_at, kind)
            SELECT 'aff-x-' || i, 'aff-o-' || i, '{stamp}'::timestamptz - interval '1 minute', now(),
                   CASE WHEN i > {ORDERS} THEN 'checkout_completed' ELSE 'step_up_failed' END
            FROM generate_series(1::bigint, {ORDERS + ORDERS // 2}) AS i
            WHERE i > {ORDERS} OR i % 4 = 0
        """)
        cursor.execute("ANALYZE metrics_decision")
        cursor.execute("ANALYZE metrics_outcome")
    return time.monotonic() - started


def _measure(chunks, process) -> dict:
    """Read a streamed body chunk by chunk; count rows and bytes; sample RSS."""
    baseline = process.memory_info().rss
    peak = baseline
    rows = size = 0
    started = time.monotonic()
    first_byte = None
    for count, chunk in enumerate(chunks):
        if first_byte is None:
            first_byte = time.monotonic() - started
        data = chunk if isinstance(chunk, bytes) else chunk.encode()
        rows += data.count(b"\n")
        size += len(data)
        if count % 20 == 0:
            peak = max(peak, process.memory_info().rss)
    seconds = time.monotonic() - started
    return {"rows": rows - 1, "bytes": size, "seconds": seconds, "first_byte_s": first_byte or 0.0,
            "rss_before_mb": baseline / 2**20, "rss_peak_mb": max(peak, process.memory_info().rss) / 2**20}


def run():
    from asgiref.sync import async_to_sync
    from django.contrib.auth.models import Group, User
    from django.test import AsyncClient, Client

    from incidents.models import Incident

    now = datetime.now(UTC).replace(microsecond=0)
    seconds = seed(now)
    yield {"name": "affected_export_seed", "value": round((ORDERS * 1.5) / seconds), "unit": "decisions/s",
           "seconds": round(seconds, 1)}
    incident = Incident.objects.create(
        # a rollout of its own: an incident another benchmark's stack opened may still be open
        rollout_key=f"bench-affected-export-{time.time_ns()}",
        title="bench: account_age_days default for social login", started_at=now, detected_at=now,
        affected_population={"arm": "treatment",
                             "segment": {"feature": "signup_method", "in": ["social_google", "social_apple"]},
                             "from": (now - timedelta(days=DAYS + 1)).isoformat(), "to": None})
    user, _ = User.objects.get_or_create(username="bench-support")
    user.groups.add(Group.objects.get_or_create(name="support")[0])
    process = psutil.Process()
    url = f"/support/incidents/{incident.pk}/affected.csv"

    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200 and response.streaming
    result = _measure(response.streaming_content, process)
    response.close()
    assert result["rows"] == ORDERS, result
    yield {"name": "affected_export_rows_per_s", "value": round(result["rows"] / result["seconds"]), "unit": "rows/s",
           "path": "WSGI (sync generator)", "rows": result["rows"], "mb": round(result["bytes"] / 2**20, 1),
           "seconds": round(result["seconds"], 1), "first_byte_s": round(result["first_byte_s"], 2),
           "rss_before_mb": round(result["rss_before_mb"]), "rss_peak_mb": round(result["rss_peak_mb"]),
           "rss_growth_mb": round(result["rss_peak_mb"] - result["rss_before_mb"], 1)}

    async_client = AsyncClient()
    async_client.cookies = client.cookies

    async def download():
        streamed = await async_client.get(url)
        assert streamed.status_code == 200 and streamed.is_async
        baseline = process.memory_info().rss
        peak, rows, started, count = baseline, 0, time.monotonic(), 0
        async for chunk in streamed.streaming_content:
            rows += chunk.count(b"\n") if isinstance(chunk, bytes) else chunk.count("\n")
            count += 1
            if count % 20 == 0:
                peak = max(peak, process.memory_info().rss)
        return {"rows": rows - 1, "seconds": time.monotonic() - started, "rss_before_mb": baseline / 2**20,
                "rss_peak_mb": peak / 2**20}

    result = async_to_sync(download)()
    assert result["rows"] == ORDERS, result
    yield {"name": "affected_export_rows_per_s_asgi", "value": round(result["rows"] / result["seconds"]),
           "unit": "rows/s", "path": "ASGI (async iterator)", "rows": result["rows"],
           "seconds": round(result["seconds"], 1), "rss_before_mb": round(result["rss_before_mb"]),
           "rss_peak_mb": round(result["rss_peak_mb"]),
           "rss_growth_mb": round(result["rss_peak_mb"] - result["rss_before_mb"], 1)}
