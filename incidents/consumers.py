"""The war room's websocket: live news in, re-rendered partials and chart points out.

The consumer joins the Channels groups `live.<topic>` that shopswift_ops.live pushes to. On news
it sends (1) the page's partials that the topic makes stale, as HTML the htmx ws extension swaps
out of band, and (2) JSON for the charts: points since the last bucket this client holds, and
annotations for policy changes and alerts. A client that (re)connects sends
`{"catch_up_since": "<last bucket>"}` and gets every panel and the points it missed.

Many clients look at the same page: the same news is rendered once per page state and role
(`_shared_render`), not once per client.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.serializers.json import DjangoJSONEncoder

from shopswift_ops.access import user_can
from shopswift_ops.live import group_name

logger = logging.getLogger(__name__)

TOPICS = ("kpis", "guardrails", "alerts", "policy", "signoffs", "incidents")
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
# A rendering is reused by every client of this process that handles the same news. News carries
# a timestamp or version (KPI refreshes, guardrail statuses, policy, alerts, sign-offs), so it is
# keyed by its payload for as long as the channel layer may still deliver it (its expiry); incident
# news ({"incident_id", "kind"}) can repeat verbatim, so its renderings live only briefly.
_RENDER_TTL_S = 30.0
_REPEATABLE_TTL_S = 0.5
_PANEL_MIN_INTERVAL_S = 1.0
_renders: dict[tuple, tuple[float, asyncio.Future, float]] = {}


async def _shared_render(key: tuple, produce, *, ttl: float = _RENDER_TTL_S):
    """One rendering per key for every consumer of this process; others await the same result."""
    now = time.monotonic()
    for stale in [k for k, (at, f, keep) in _renders.items() if f.done() and now - at > keep]:
        _renders.pop(stale, None)
    entry = _renders.get(key)
    if entry is None:
        future = asyncio.get_running_loop().create_future()
        _renders[key] = (now, future, ttl)
        try:
            future.set_result(await produce())
            _renders[key] = (time.monotonic(), future, ttl)  # the grace period runs from completion
        except Exception as exc:  # noqa: BLE001 - handed to every waiter, then raised there
            future.set_exception(exc)
            _renders.pop(key, None)
        return await future
    return await asyncio.shield(entry[1])


def _ttl_for(message_key) -> float:
    return _REPEATABLE_TTL_S if message_key and message_key[0] == "incidents" else _RENDER_TTL_S


def _render_async(fn, **kwargs):
    # Not thread-sensitive: renders of different pages run side by side in the thread pool and do
    # not queue behind the HTTP requests that Daphne runs in its one sync thread.
    return database_sync_to_async(fn, thread_sensitive=False)(**kwargs)


def _dumps(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder)


class WarRoomConsumer(AsyncWebsocketConsumer):
    access = "warroom:view"  # the rule, declared for the permissions matrix (tests/shopswift_ops/test_access_matrix.py)
    async def connect(self):
        from incidents.views.war_room import BadParameter, parse_state

        user = self.scope.get("user")
        allowed = bool(user and user.is_authenticated) and await database_sync_to_async(user_can)(user, "warroom:view")
        if not allowed:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        params = {k: v[-1] for k, v in parse_qs(self.scope.get("query_string", b"").decode()).items()}
        try:
            self.state_params = params
            parse_state(params)
        except BadParameter as exc:
            logger.info("war room websocket refused: %s", exc)
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        self.can_write = await database_sync_to_async(user_can)(user, "rollout:write")
        self.last_bucket: str | None = None
        self.groups_joined = []
        for topic in TOPICS:
            await self.channel_layer.group_add(group_name(topic), self.channel_name)
            self.groups_joined.append(group_name(topic))
        await self.accept()

    async def disconnect(self, code):
        task = getattr(self, "_panel_task", None)
        if task is not None and not task.done():
            task.cancel()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    def _state(self):
        from incidents.views.war_room import parse_state

        # A fresh "now" per render: the window of a live page slides.
        return parse_state(self.state_params)

    def _state_key(self):
        return tuple(sorted(self.state_params.items())) + (self.can_write,)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            message = json.loads(text_data or "{}")
        except ValueError:
            return
        if not isinstance(message, dict) or "catch_up_since" not in message:
            return
        since = message.get("catch_up_since") or None
        if since:
            self.last_bucket = str(since)
        from incidents.views.war_room import PANELS

        await self._send_panels(PANELS, key=("catch-up", time.monotonic()))
        await self._send_points(key=None)
        await self.send(text_data=_dumps({"kind": "caught_up", "at": datetime.now(UTC)}))

    async def live_message(self, event):
        from incidents.views.war_room import PANELS_BY_TOPIC

        topic = event.get("topic", "")
        payload = event.get("payload") or {}
        message_key = (topic, _dumps(payload))
        # Chart points first: they are cheap and they are what people watch move.
        if topic == "kpis":
            await self._send_points(key=message_key)
        if topic in ("policy", "alerts"):
            await self.send(text_data=_dumps({"kind": "annotation", "topic": topic, "payload": payload,
                                              "at": payload.get("at") or payload.get("created_at")
                                              or datetime.now(UTC)}))
        panels = PANELS_BY_TOPIC.get(topic, ())
        if panels:
            self._queue_panels(panels, message_key)

    def _queue_panels(self, panels, message_key):
        """Panels render in the background, coalesced: news that arrives while they render marks
        them dirty once more, so a burst of KPI refreshes costs one more render, not a backlog."""
        self._dirty_panels = getattr(self, "_dirty_panels", set()) | set(panels)
        self._news_key = message_key
        task = getattr(self, "_panel_task", None)
        if task is None or task.done():
            self._panel_task = asyncio.ensure_future(self._flush_panels())

    async def _flush_panels(self):
        from incidents.views.war_room import PANELS

        while self._dirty_panels:
            panels = tuple(name for name in PANELS if name in self._dirty_panels)
            self._dirty_panels = set()
            try:
                await self._send_panels(panels, key=("news", self._news_key), ttl=_ttl_for(self._news_key))
            except Exception:  # noqa: BLE001 - a failed render must not end the live connection
                logger.exception("war room panel render failed")
            # KPI refreshes come every second or so under load; the tables need not follow each one
            # (the charts do), so what piles up meanwhile is rendered once, a moment later.
            await asyncio.sleep(_PANEL_MIN_INTERVAL_S)

    async def _send_panels(self, panels, *, key, ttl: float = _RENDER_TTL_S):
        from incidents.views.war_room import render_panels

        def produce():
            return _render_async(render_panels, state=self._state(), panels=panels, can_write=self.can_write)

        html = await _shared_render(("panels", key, tuple(panels), self._state_key()), produce, ttl=ttl)
        await self.send(text_data=html)

    async def _send_points(self, *, key):
        from incidents.views.war_room import _parse_time, series

        since = _parse_time(self.last_bucket, "since") if self.last_bucket else None

        def produce():
            return _render_async(series, state=self._state(), since=since)

        if key is None:
            points = await produce()
        else:
            points = await _shared_render(("points", key, self.last_bucket, self._state_key()), produce,
                                          ttl=_ttl_for(key))
        buckets = points.get("buckets") or []
        if buckets:
            last = buckets[-1]
            self.last_bucket = last if isinstance(last, str) else last.isoformat()
        await self.send(text_data=_dumps({"kind": "points", **points}))
