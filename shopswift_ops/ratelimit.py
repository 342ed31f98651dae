"""Per-client rate limits in Redis (fixed one-second windows with a burst allowance).

Fails open: when Redis is unreachable the request goes through, because losing an event or a
containment action to a cache outage is worse than an unthrottled second.
"""
from __future__ import annotations

import logging
import math
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from django.conf import settings

logger = logging.getLogger(__name__)
_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        # No retries: redis-py's default (3 retries with backoff) makes every request wait ~4 s
        # while Redis is down; a limiter that fails open must fail fast.
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.3, socket_timeout=0.3,
                                       retry=Retry(NoBackoff(), 0))
    return _client


def check(key: str, *, per_second: float, burst_seconds: int = 5) -> float | None:
    """Count one request; return the seconds to wait when over the limit, else None."""
    window = int(time.time() // burst_seconds)
    limit = max(1, math.ceil(per_second * burst_seconds))
    name = f"ratelimit:{key}:{window}"
    try:
        pipe = client().pipeline()
        pipe.incr(name)
        pipe.expire(name, burst_seconds + 1)
        count, _ = pipe.execute()
    except redis.RedisError:
        logger.warning("rate limiter unavailable (Redis); letting the request through", extra={"key": key})
        return None
    if count > limit:
        return max(1.0, (window + 1) * burst_seconds - time.time())
    return None
