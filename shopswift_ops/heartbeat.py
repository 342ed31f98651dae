"""Worker and beat heartbeats in Redis, read by /readyz and /metrics.

- Each Celery worker writes `heartbeat:worker:<hostname>` every WORKER_INTERVAL seconds from a
  thread started on `worker_ready` (so a worker busy with a long task still shows as alive, and a
  dead one disappears when its key expires).
- Beat schedules `shopswift_ops.heartbeat.beat_heartbeat` every BEAT_INTERVAL seconds; a worker
  runs it and writes `heartbeat:beat`. Its age therefore proves beat *and* the queue are moving.

Loaded in workers and beat through CELERY_IMPORTS (settings).
"""
from __future__ import annotations

import logging
import threading
import time

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

from shopswift_ops.celery import register_beat

logger = logging.getLogger(__name__)

WORKER_PREFIX = "heartbeat:worker:"
BEAT_KEY = "heartbeat:beat"
WORKER_INTERVAL = 10
BEAT_INTERVAL = 15
# A heartbeat older than this many intervals counts as stale.
STALE_AFTER_INTERVALS = 4


def _redis():
    from shopswift_ops import ratelimit

    return ratelimit.client()


@shared_task(name="shopswift_ops.heartbeat.beat_heartbeat", ignore_result=True, expires=BEAT_INTERVAL * 2)
def beat_heartbeat() -> None:
    _redis().set(BEAT_KEY, repr(time.time()), ex=BEAT_INTERVAL * STALE_AFTER_INTERVALS * 10)


register_beat("heartbeat", "shopswift_ops.heartbeat.beat_heartbeat", BEAT_INTERVAL)

_stop = threading.Event()


def write_worker_heartbeat(hostname: str) -> None:
    _redis().set(WORKER_PREFIX + hostname, repr(time.time()), ex=WORKER_INTERVAL * STALE_AFTER_INTERVALS)


def _beat_worker(hostname: str) -> None:
    while not _stop.is_set():
        try:
            write_worker_heartbeat(hostname)
        except Exception:  # noqa: BLE001 - Redis down: the key expires and /readyz says so
            logger.warning("worker heartbeat not written (Redis unavailable)")
        _stop.wait(WORKER_INTERVAL)


@worker_ready.connect
def _start_worker_heartbeat(sender=None, **kwargs):
    hostname = getattr(sender, "hostname", None) or "worker"
    _stop.clear()
    threading.Thread(target=_beat_worker, args=(hostname,), name="shopswift-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_worker_heartbeat(sender=None, **kwargs):
    _stop.set()
    try:
        _redis().delete(WORKER_PREFIX + (getattr(sender, "hostname", None) or "worker"))
    except Exception:  # noqa: BLE001
        pass


def status(now: float | None = None) -> dict:
    """Ages of the heartbeats: {"workers": {hostname: age_s}, "beat_age_s": float | None}."""
    now = time.time() if now is None else now
    client = _redis()
    workers = {}
    keys = list(client.scan_iter(match=WORKER_PREFIX + "*", count=100))
    values = client.mget(keys) if keys else []
    for key, value in zip(keys, values):
        if value is not None:
            workers[key.decode().removeprefix(WORKER_PREFIX)] = round(now - float(value), 1)
    beat = client.get(BEAT_KEY)
    return {"workers": workers, "beat_age_s": round(now - float(beat), 1) if beat is not None else None}
