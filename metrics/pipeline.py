"""The periodic job of this app: fold new events, then evaluate the guardrails.

Run by Celery beat every few seconds and nudged after each ingest (`nudge`), so a batch of
events shows in the KPIs and guardrails within about a second.
"""
from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)
NUDGE_KEY = "metrics:refresh-queued"
NUDGE_TTL_S = 10
_redis = None


def refresh_and_evaluate() -> dict:
    from metrics.guardrails import evaluate
    from metrics.rollups import refresh

    _clear_nudge()
    folded = refresh()
    evaluation = evaluate()
    return {"orders_folded": folded.orders_folded, "alerts": evaluation["alerts"]}


def _client():
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
    return _redis


def _clear_nudge() -> None:
    try:
        _client().delete(NUDGE_KEY)
    except Exception:  # noqa: BLE001 - Redis down: beat keeps the refresh going
        pass


def nudge() -> None:
    """After an ingest commits: queue one refresh unless one is already queued (a burst of
    batches queues one task; the task clears the flag when it starts, so nothing is missed).
    Redis down: skip; beat catches up within seconds."""
    try:
        if not _client().set(NUDGE_KEY, "1", nx=True, ex=NUDGE_TTL_S):
            return
    except Exception:  # noqa: BLE001
        logger.info("refresh nudge skipped: Redis unavailable")
        return
    from metrics.tasks import refresh_and_evaluate

    try:
        refresh_and_evaluate.apply_async(retry=False)
    except Exception:  # noqa: BLE001 - the broker is down; beat catches up
        _clear_nudge()
        logger.info("refresh nudge not queued: broker unavailable", exc_info=True)
