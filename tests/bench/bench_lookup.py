"""`lookup`: p95 of fetching one order's decisions and outcomes (the ORM reads the support look-up
makes) with 100k decisions stored, then with 10M, spread over a month of daily partitions.
Seeded with INSERT ... SELECT generate_series (set-based, not the HTTP path).
Targets: p95(10M) / p95(100k) <= 2 and p95(10M) < 20 ms."""
from __future__ import annotations

import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

SMALL = 100_000
LARGE = int(os.environ.get("BENCH_LOOKUP_ROWS", 10_000_000))
DAYS = 30
CHUNK = 1_000_000
LOOKUPS = 2000

_DECISIONS = """
INSERT INTO metrics_decision (event_id, order_id, occurred_at, received_at, buyer_id, seller_id, amount_minor, currency,
    arm, policy_version, model_version, score, decision, decided_by, reason_codes, latency_ms, timed_out, features)
SELECT 'lk-' || g, 'lko-' || g, %(start)s::timestamptz + ((g * 7919) %% (%(days)s * 86400)) * interval '1 second', now(),
    'b-' || (g %% 2000000), 's-' || (g %% 50000), 500 + (g %% 200000), 'EUR',
    CASE WHEN g %% 2 = 0 THEN 'control' ELSE 'treatment' END, 3, 'fraud-gbm-v3', (g %% 1000) / 1000.0,
    CASE WHEN g %% 10 = 0 THEN 'step_up' ELSE 'approve' END, 'model', '{}', 30 + (g %% 50), false,
    jsonb_build_object('account_age_days', g %% 3000, 'signup_method', 'email', 'is_repeat_buyer', true,
        'prior_good_orders', g %% 40, 'amount_band', 'b2', 'device_risk', 0.1, 'bin_country_match', true,
        'velocity_1h', g %% 5, 'email_domain_age_days', g %% 9000, 'ip_distance_km', 12.5, 'card_age_days', g %% 2000,
        'failed_attempts_24h', 0)
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""
_OUTCOMES = """
INSERT INTO metrics_outcome (event_id, order_id, occurred_at, received_at, kind)
SELECT 'lkx-' || g, 'lko-' || g, %(start)s::timestamptz + ((g * 7919) %% (%(days)s * 86400) + 60) * interval '1 second', now(),
    'checkout_completed'
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g WHERE g %% 2 = 0
"""


def _seed(first: int, last: int, start: datetime) -> None:
    from django.db import connection

    for low in range(first, last + 1, CHUNK):
        high = min(last, low + CHUNK - 1)
        params = {"first": low, "last": high, "start": start, "days": DAYS}
        with connection.cursor() as cursor:
            cursor.execute(_DECISIONS, params)
            cursor.execute(_OUTCOMES, params)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE metrics_decision")
        cursor.execute("ANALYZE metrics_outcome")


def _p95_ms(stored: int) -> tuple[float, float]:
    from django.db import connection, reset_queries

    from metrics.models import Decision, Outcome

    rng = random.Random(stored)
    order_ids = [f"lko-{rng.randint(1, stored)}" for _ in range(LOOKUPS)]
    for order_id in order_ids[:100]:  # warm the caches the way a running server is warm
        list(Decision.objects.filter(order_id=order_id)), list(Outcome.objects.filter(order_id=order_id))
    timings = []
    for order_id in order_ids:
        started = time.perf_counter()
        decisions = list(Decision.objects.filter(order_id=order_id))
        outcomes = list(Outcome.objects.filter(order_id=order_id))
        timings.append((time.perf_counter() - started) * 1000)
        assert len(decisions) == 1, (order_id, len(decisions))
        assert len(outcomes) == (1 - int(order_id.rsplit("-", 1)[1]) % 2)
        reset_queries()
    connection.close()
    return statistics.quantiles(timings, n=100)[94], statistics.median(timings)


def run():
    from django.db import connection

    from metrics.partitions import ensure_partitions

    start = (datetime.now(UTC) - timedelta(days=DAYS + 2)).replace(hour=0, minute=0, second=0, microsecond=0)
    ensure_partitions({(start + timedelta(days=d)).date() for d in range(DAYS + 2)})
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_decision WHERE event_id LIKE 'lk-%%'")
        if cursor.fetchone()[0]:
            raise RuntimeError("lookup seed rows exist already; run on a fresh bench database")
    seeding = time.perf_counter()
    _seed(1, SMALL, start)
    small_p95, small_median = _p95_ms(SMALL)
    yield {"name": "lookup_p95_ms_100k", "value": round(small_p95, 3), "unit": "ms", "median_ms": round(small_median, 3),
           "decisions": SMALL, "lookups": LOOKUPS}
    _seed(SMALL + 1, LARGE, start)
    seed_seconds = time.perf_counter() - seeding
    large_p95, large_median = _p95_ms(LARGE)
    label = "10m" if LARGE == 10_000_000 else f"{LARGE // 1000}k"
    yield {"name": f"lookup_p95_ms_{label}", "value": round(large_p95, 3), "unit": "ms", "median_ms": round(large_median, 3),
           "decisions": LARGE, "outcomes": LARGE // 2, "partitions_per_table": DAYS + 2, "target": "< 20",
           "ok": large_p95 < 20, "seed_seconds": round(seed_seconds, 1),
           "seed_rows_per_s": round((LARGE + LARGE // 2) / seed_seconds)}
    ratio = large_p95 / small_p95
    yield {"name": f"lookup_p95_ratio_{label}_vs_100k", "value": round(ratio, 3), "unit": "ratio", "target": "<= 2", "ok": ratio <= 2,
           "large_decisions": LARGE}
