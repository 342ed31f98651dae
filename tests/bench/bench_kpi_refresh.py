"""kpi_refresh: time to fold 10k new events with 1M and then 10M decisions already stored (ratio
target <= 1.3: work per refresh follows new events, not stored ones), and the p95 of reading
24 h of KPIs by arm and signup_method from the rollups (target < 100 ms).

History is written set-based in SQL (decisions, completions, their order facts and rollups),
spread over the days before now at ShopSwift's rate; the 10k new events come from the
simulator (seed-incident at the 50% ramp), are ingested through `store_events`' path, and only
the refresh is timed.
"""
from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta

RATE = 21.0
NEW_EVENTS = 10_000
REPEATS = 3

HISTORY_SQL = """
INSERT INTO metrics_decision (event_id, order_id, occurred_at, received_at, buyer_id, seller_id, amount_minor, currency,
    arm, policy_version, model_version, score, decision, decided_by, reason_codes, latency_ms, timed_out, features)
SELECT 'hd-' || i, 'ho-' || i, %(t0)s + (i / %(rate)s) * interval '1 second', %(t0)s, 'hb-' || (i %% 400000),
    's-' || (i %% 1000), 1000 + (i * 7919) %% 50000, 'EUR',
    CASE WHEN (i * 2654435761) %% 100 < 50 THEN 'treatment' ELSE 'control' END, 2, 'fraud-gbm-v3',
    (i %% 1000) / 1000.0, (ARRAY['approve', 'approve', 'approve', 'step_up', 'decline'])[1 + i %% 5],
    CASE WHEN i %% 50 = 0 THEN 'fallback' ELSE 'model' END, '{}', 20 + (i %% 97), i %% 50 = 0,
    jsonb_build_object('account_age_days', i %% 3000,
        'signup_method', (ARRAY['email', 'phone', 'social_google', 'social_apple', 'guest'])[1 + (i / 3) %% 5],
        'is_repeat_buyer', i %% 3 > 0, 'prior_good_orders', i %% 20,
        'amount_band', (ARRAY['b1', 'b2', 'b3', 'b4', 'b5'])[1 + (i / 7) %% 5], 'device_risk', (i %% 10) / 10.0,
        'bin_country_match', true, 'velocity_1h', i %% 4)
FROM generate_series(%(a)s::bigint, %(b)s::bigint) AS i
"""
OUTCOME_SQL = """
INSERT INTO metrics_outcome (event_id, order_id, occurred_at, received_at, kind)
SELECT 'hx-' || i, 'ho-' || i, %(t0)s + (i / %(rate)s + 2) * interval '1 second', %(t0)s, 'checkout_completed'
FROM generate_series(%(a)s::bigint, %(b)s::bigint) AS i WHERE i %% 10 < 7
"""


def _history(cursor, *, a: int, b: int, t0: datetime, chunk: int = 1_000_000):
    """Decisions a..b, their completions, and their facts and rollups (folded by the real
    refresh queries in large batches: no per-row work)."""
    from metrics.rollups import refresh

    for lo in range(a, b + 1, chunk):
        hi = min(b, lo + chunk - 1)
        cursor.execute(HISTORY_SQL, {"t0": t0, "rate": RATE, "a": lo, "b": hi})
        cursor.execute(OUTCOME_SQL, {"t0": t0, "rate": RATE, "a": lo, "b": hi})
        cursor.execute("INSERT INTO metrics_pending_order (order_id, queued_at) "
                       "SELECT 'ho-' || i, now() FROM generate_series(%s::bigint, %s::bigint) i", [lo, hi])
        refresh(batch_size=100_000)


def _new_events(count: int, *, prefix: str) -> list[dict]:
    from rollout.simulator import generate

    events = []
    for event in generate("seed-incident", seed=len(prefix), start=datetime.now(UTC) - timedelta(minutes=10),
                          from_minute=40, duration_minutes=9, include_late_outcomes=False, id_prefix=prefix):
        events.append(event)
        if len(events) >= count:
            break
    return events


def _fold_new(prefix: str) -> float:
    from metrics.ingest import ingest_body
    from metrics.rollups import pending_count, refresh

    events = _new_events(NEW_EVENTS, prefix=prefix)
    for i in range(0, len(events), 5000):
        ingest_body(json.dumps({"events": events[i:i + 5000]}).encode())
    assert pending_count() > 0
    started = time.perf_counter()
    refresh()
    return time.perf_counter() - started


def _read_p95(runs: int = 40) -> float:
    from metrics.kpis import cohort_kpis

    now = datetime.now(UTC)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        cohort_kpis(start=now - timedelta(hours=24), end=now, segment_feature="signup_method")
        timings.append(time.perf_counter() - started)
    timings.sort()
    return timings[int(0.95 * (len(timings) - 1))]


def run():
    from django.db import connection

    from metrics.partitions import ensure_partitions

    small, large = 1_000_000, 10_000_000
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(seconds=large / RATE) - timedelta(minutes=15)
    ensure_partitions({(t0 + timedelta(days=d)).date() for d in range(0, int(large / RATE / 86400) + 2)})
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE metrics_pending_order")
        # the first million sits in the most recent days, so the 24 h read sees a full day either way
        began = time.perf_counter()
        _history(cursor, a=large - small + 1, b=large, t0=t0)
        load_small = time.perf_counter() - began
    folds_small = [_fold_new(f"k1m{i}x{int(time.time())}") for i in range(REPEATS)]
    read_small = _read_p95()
    fold_small = statistics.median(folds_small)
    yield {"name": "kpi_refresh.fold_10k_events_1M_stored", "value": round(fold_small, 3), "unit": "s",
           "runs": [round(x, 3) for x in folds_small], "history_load_s": round(load_small, 1)}
    yield {"name": "kpi_refresh.read_24h_by_arm_signup_method_p95_1M_stored", "value": round(read_small * 1000, 1),
           "unit": "ms", "target": 100, "passed": read_small < 0.1}
    with connection.cursor() as cursor:
        began = time.perf_counter()
        _history(cursor, a=1, b=large - small, t0=t0)
        load_large = time.perf_counter() - began
        cursor.execute("ANALYZE")
    folds_large = [_fold_new(f"k10m{i}x{int(time.time())}") for i in range(REPEATS)]
    read_large = _read_p95()
    fold_large = statistics.median(folds_large)
    yield {"name": "kpi_refresh.fold_10k_events_10M_stored", "value": round(fold_large, 3), "unit": "s",
           "runs": [round(x, 3) for x in folds_large], "history_load_s": round(load_large, 1)}
    yield {"name": "kpi_refresh.ratio_10M_vs_1M", "value": round(fold_large / fold_small, 3), "unit": "ratio",
           "target": 1.3, "passed": fold_large / fold_small <= 1.3}
    yield {"name": "kpi_refresh.read_24h_by_arm_signup_method_p95", "value": round(read_large * 1000, 1), "unit": "ms",
           "target": 100, "passed": read_large < 0.1}
