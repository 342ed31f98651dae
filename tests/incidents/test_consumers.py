"""The war room websocket against the real Redis channel layer (no in-memory layer, no mocks)."""
import asyncio
import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from incidents.consumers import CLOSE_FORBIDDEN
from shopswift_ops import live
from shopswift_ops.asgi import application
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_channel_layer_is_redis():
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"


def _cookie_for(role):
    user = UserFactory(role=role) if role else UserFactory()
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def _communicator(cookie, query="range=1h"):
    headers = [(b"origin", b"http://localhost")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, f"/ws/war-room/?{query}", headers=headers)


async def _drain(communicator, timeout=1.0, first_timeout=10.0):
    """Every message until the socket has been quiet for `timeout` (the first may take a while).
    receive_nothing, unlike a timed-out receive, leaves the consumer running."""
    messages = []
    if await communicator.receive_nothing(timeout=first_timeout, interval=0.02):
        return messages
    while True:
        messages.append(await communicator.receive_from())
        if await communicator.receive_nothing(timeout=timeout, interval=0.02):
            return messages


def test_anonymous_and_roleless_users_are_refused():
    anonymous, roleless = None, _cookie_for(None)

    async def scenario():
        for cookie in (anonymous, roleless):
            communicator = _communicator(cookie)
            connected, code = await communicator.connect(timeout=15)
            assert not connected
            assert code == CLOSE_FORBIDDEN
            await communicator.disconnect()

    async_to_sync(scenario)()


def test_bad_page_state_is_refused():
    cookie = _cookie_for("product")

    async def scenario():
        communicator = _communicator(cookie, "range=forever")
        connected, code = await communicator.connect(timeout=15)
        assert not connected and code == 4400

    async_to_sync(scenario)()


def test_support_may_watch_and_receives_panels_without_controls():
    cookie = _cookie_for("support")

    async def scenario():
        communicator = _communicator(cookie)
        connected, _ = await communicator.connect(timeout=15)
        assert connected
        assert await sync_to_async(live.push)("policy", {"version": 3, "reason": "test"})
        messages = await _drain(communicator)
        html = "".join(m for m in messages if m.startswith("<"))
        assert 'id="wr-header" class="card wr-header" hx-swap-oob="true"' in html
        assert 'id="wr-feed"' in html
        assert 'data-testid="no-controls"' in html and "action-kill" not in html
        annotations = [json.loads(m) for m in messages if m.startswith("{")]
        assert [a["kind"] for a in annotations] == ["annotation"]
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_kpi_news_sends_panels_and_chart_points_and_guardrail_news_only_its_panels():
    cookie = _cookie_for("risk_ops")

    async def scenario():
        communicator = _communicator(cookie)
        assert (await communicator.connect(timeout=15))[0]
        await sync_to_async(live.push)("kpis", {"refreshed": 1})
        messages = await _drain(communicator)
        html = "".join(m for m in messages if m.startswith("<"))
        for panel in ("header", "summary", "segments", "features", "diagnosis"):
            assert f'id="wr-{panel}"' in html
        points = [json.loads(m) for m in messages if m.startswith("{")]
        assert len(points) == 1 and points[0]["kind"] == "points"
        assert "buckets" in points[0] and "arms" in points[0]

        await sync_to_async(live.push)("guardrails", {"changed": ["latency"]})
        messages = await _drain(communicator)
        assert len(messages) == 1
        assert 'id="wr-guardrails"' in messages[0] and 'id="wr-header"' in messages[0]
        assert 'id="wr-summary"' not in messages[0]
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_catch_up_sends_every_panel_and_the_points_since():
    cookie = _cookie_for("risk_ops")

    async def scenario():
        communicator = _communicator(cookie)
        assert (await communicator.connect(timeout=15))[0]
        await communicator.send_to(text_data=json.dumps({"catch_up_since": "2026-11-28T10:00:00Z"}))
        messages = await _drain(communicator)
        html = "".join(m for m in messages if m.startswith("<"))
        for panel in ("header", "guardrails", "summary", "segments", "features", "diagnosis", "feed", "incident",
                      "controls"):
            assert f'id="wr-{panel}"' in html
        kinds = [json.loads(m)["kind"] for m in messages if m.startswith("{")]
        assert kinds == ["points", "caught_up"]
        await communicator.disconnect()

    async_to_sync(scenario)()


@pytest.mark.slow
def test_fifty_clients_each_receive_every_update_exactly_once():
    # Two people with 25 tabs each: every tab is its own websocket.
    people = [_cookie_for("risk_ops"), _cookie_for("support")]
    cookies = [people[i % 2] for i in range(50)]

    async def scenario():
        communicators = [_communicator(cookie) for cookie in cookies]
        results = await asyncio.gather(*(c.connect(timeout=60) for c in communicators))
        assert all(connected for connected, _ in results)
        for n in range(5):
            await sync_to_async(live.push)("kpis", {"refreshed": n})
        received = await asyncio.gather(*(_drain(c, timeout=3) for c in communicators))
        for messages in received:
            points = [m for m in messages if m.startswith("{") and json.loads(m)["kind"] == "points"]
            assert len(points) == 5, len(points)  # every KPI update once: none dropped, none repeated
            assert any('id="wr-summary"' in m for m in messages)  # panels too (bursts coalesce)
        await asyncio.gather(*(c.disconnect() for c in communicators))

    async_to_sync(scenario)()
