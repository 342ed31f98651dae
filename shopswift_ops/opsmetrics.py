"""Operational metrics for Prometheus (`GET /metrics`, text exposition format 0.0.4).

Counters live in Redis (one hash), so every Daphne process adds to the same numbers and a
scrape of any process sees the whole deployment. `OpsMetricsMiddleware` counts HTTP responses
per route and status, and the ingest figures (accepted, duplicates, rejected) from the events
endpoint's answer. Gauges are read at scrape time: KPI refresh lag (age of the oldest order queued
in metrics_pending_order), queue depths, heartbeat ages. Apps add gauges of their own with
`register_gauge` (e.g. guardrail evaluations) from their AppConfig.ready.
Counting never raises: Redis down means a gap in the numbers, never a failed request.
"""
from __future__ import annotations

import json
import logging
from typing import Callable

from django.db import connection

logger = logging.getLogger(__name__)

COUNTERS_KEY = "opsmetrics:counters"
_gauges: list[tuple[str, str, Callable[[], list[tuple[dict, float]]]]] = []


def register_gauge(name: str, help_text: str, collect: Callable[[], list[tuple[dict, float]]]) -> None:
    """`collect()` returns [(labels, value), ...]; it runs at each scrape."""
    if all(existing != name for existing, _, _ in _gauges):
        _gauges.append((name, help_text, collect))


def _redis():
    from shopswift_ops import ratelimit

    return ratelimit.client()


def _field(name: str, labels: dict) -> str:
    return name + "|" + json.dumps(labels, sort_keys=True, separators=(",", ":"))


def count(increments: dict[tuple[str, tuple], int]) -> None:
    """Add to counters: {(name, ((label, value), ...)): amount}."""
    try:
        pipe = _redis().pipeline(transaction=False)
        for (name, labels), amount in increments.items():
            if amount:
                pipe.hincrby(COUNTERS_KEY, _field(name, dict(labels)), amount)
        pipe.execute()
    except Exception:  # noqa: BLE001 - metrics must never fail a request
        logger.debug("ops metrics not counted (Redis unavailable)")


COUNTER_HELP = {
    "shopswift_http_responses_total": "HTTP responses by route and status code",
    "shopswift_ingest_events_total": "Events posted to /api/v1/events by result (accepted, duplicate, rejected)",
    "shopswift_ingest_batches_total": "Batches posted to /api/v1/events by HTTP status",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name: str, labels: dict, value: float) -> str:
    label_text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
    number = repr(float(value)) if isinstance(value, float) else str(value)
    return f"{name}{{{label_text}}} {number}" if label_text else f"{name} {number}"


def _builtin_gauges() -> list[tuple[str, str, str, list[tuple[dict, float]]]]:
    out = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), extract(epoch FROM now() - min(queued_at)) FROM metrics_pending_order")
        pending, lag = cursor.fetchone()
    out.append(("shopswift_kpi_refresh_lag_seconds", "gauge",
                "Age of the oldest order queued for the KPI refresh (0 when nothing waits)", [({}, float(lag or 0.0))]))
    out.append(("shopswift_kpi_pending_orders", "gauge", "Orders queued for the KPI refresh", [({}, float(pending))]))
    # Guardrail evaluations (tables of the metrics app, read by name: this module imports no app).
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('metrics_guardrailstatus') IS NOT NULL")
        if cursor.fetchone()[0]:
            cursor.execute("SELECT status, count(*), extract(epoch FROM now() - max(evaluated_at)) "
                           "FROM metrics_guardrailstatus GROUP BY status")
            rows = cursor.fetchall()
            out.append(("shopswift_guardrail_statuses", "gauge", "Guardrail subjects by latest evaluated status",
                        [({"status": status}, float(n)) for status, n, _ in rows]))
            ages = [age for *_, age in rows if age is not None]
            if ages:
                out.append(("shopswift_guardrail_evaluation_age_seconds", "gauge",
                            "Seconds since the most recent guardrail evaluation", [({}, float(min(ages)))]))
    from shopswift_ops import heartbeat

    try:
        beats = heartbeat.status()
        client = _redis()
        queue_length = client.llen("celery")
    except Exception:  # noqa: BLE001
        beats, queue_length = None, None
    if beats is not None:
        out.append(("shopswift_worker_heartbeat_age_seconds", "gauge", "Seconds since each Celery worker's heartbeat",
                    [({"worker": name}, age) for name, age in sorted(beats["workers"].items())]))
        out.append(("shopswift_workers_alive", "gauge", "Celery workers with a fresh heartbeat",
                    [({}, float(sum(1 for age in beats["workers"].values() if age < heartbeat.WORKER_INTERVAL * heartbeat.STALE_AFTER_INTERVALS)))]))
        if beats["beat_age_s"] is not None:
            out.append(("shopswift_beat_heartbeat_age_seconds", "gauge", "Seconds since beat's heartbeat task last ran",
                        [({}, beats["beat_age_s"])]))
        out.append(("shopswift_celery_queue_length", "gauge", "Tasks waiting in the default Celery queue", [({}, float(queue_length))]))
    return out


def exposition() -> str:
    lines = []
    try:
        raw = _redis().hgetall(COUNTERS_KEY)
        redis_up = 1
    except Exception:  # noqa: BLE001
        raw, redis_up = {}, 0
    counters: dict[str, list[tuple[dict, int]]] = {}
    for field, value in raw.items():
        name, _, labels = field.decode().partition("|")
        counters.setdefault(name, []).append((json.loads(labels or "{}"), int(value)))
    for name in sorted(set(counters) | set(COUNTER_HELP)):
        lines.append(f"# HELP {name} {COUNTER_HELP.get(name, name)}")
        lines.append(f"# TYPE {name} counter")
        for labels, value in sorted(counters.get(name, []), key=lambda item: sorted(item[0].items())):
            lines.append(_sample(name, labels, value))
    lines += ["# HELP shopswift_redis_up Whether Redis answered this scrape", "# TYPE shopswift_redis_up gauge",
              f"shopswift_redis_up {redis_up}"]
    gauges = _builtin_gauges()
    for name, help_text, collect in _gauges:
        try:
            gauges.append((name, "gauge", help_text, collect()))
        except Exception:  # noqa: BLE001 - one app's gauge must not break the scrape
            logger.warning("ops gauge failed", extra={"gauge": name}, exc_info=True)
    for name, kind, help_text, samples in gauges:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines += [_sample(name, labels, value) for labels, value in samples]
    return "\n".join(lines) + "\n"
