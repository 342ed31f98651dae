"""News that travels upward: in-process subscriptions and live pushes to browsers.

- `announce(topic, payload)`: after the current transaction commits, call every function that
  `subscribe(topic, fn)` registered (e.g. incidents records a policy change on its timeline)
  and push the payload to the Channels group of that topic.
- Subscribers are registered explicitly (in an AppConfig.ready), never through model signals.
- A push that fails (Redis down) is logged, never raised: the change itself is committed and
  pages catch up from the database when they reconnect.

Topics used: `policy` (rollout), `guardrails`, `alerts`, `kpis` (metrics), `incidents`,
`signoffs` (rollout).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Callable

from django.db import transaction

logger = logging.getLogger(__name__)
_subscribers: dict[str, list[Callable[[dict], None]]] = defaultdict(list)


def subscribe(topic: str, callback: Callable[[dict], None]) -> None:
    if callback not in _subscribers[topic]:
        _subscribers[topic].append(callback)


def group_name(topic: str) -> str:
    return f"live.{topic}"


def push(topic: str, payload: dict) -> bool:
    """Send to the websocket group now; True when the channel layer took it."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    try:
        layer = get_channel_layer()
        async_to_sync(layer.group_send)(group_name(topic), {"type": "live.message", "topic": topic, "payload": payload})
        return True
    except Exception:  # noqa: BLE001 - Redis down must not undo a committed change
        logger.warning("live push failed", extra={"topic": topic}, exc_info=True)
        return False


def _deliver(topic: str, payload: dict) -> None:
    for callback in list(_subscribers[topic]):
        try:
            callback(payload)
        except Exception:  # noqa: BLE001 - one subscriber's failure must not stop the others
            logger.exception("subscriber failed", extra={"topic": topic})
    push(topic, payload)


def announce(topic: str, payload: dict) -> None:
    transaction.on_commit(lambda: _deliver(topic, payload))
