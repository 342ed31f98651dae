"""The ASGI fast path of GET /api/v1/rollout/policy answers exactly like the Django view."""
import asyncio
import time

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.asgi import get_asgi_application

from rollout import fastpath, services
from shopswift_ops.tokens import revoke_token
from tests.factories import token_for

pytestmark = pytest.mark.django_db(transaction=True)


def fetch(*requests):
    app = fastpath.PolicyFastPath(get_asgi_application())

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [await client.get(path, headers=headers) for path, headers in requests]

    return asyncio.run(go())


def test_the_fast_path_answers_like_the_view():
    fastpath.invalidate()
    services.ensure_initialized()
    reader = token_for("policy:read", name="reader")
    other = token_for("events:write", name="other")
    auth = {"Authorization": f"Bearer {reader}"}
    ok, not_modified, unknown, wrong_scope, anonymous = fetch(
        ("/api/v1/rollout/policy", auth),
        ("/api/v1/rollout/policy", {**auth, "If-None-Match": '"1"'}),
        ("/api/v1/rollout/policy", {"Authorization": "Bearer ssk_nope"}),
        ("/api/v1/rollout/policy", {"Authorization": f"Bearer {other}"}),
        ("/api/v1/rollout/policy", {}),
    )
    assert ok.status_code == 200 and ok.json() == services.current_policy() and ok.headers["etag"] == '"1"'
    assert ok.headers["content-type"] == "application/json" and ok.headers["x-request-id"]
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert unknown.status_code == 401 and unknown.json()["detail"] == "invalid, unknown or revoked API token"
    assert wrong_scope.status_code == 403 and "policy:read" in wrong_scope.json()["detail"]
    assert anonymous.status_code == 401  # no header: Django answered


def test_revocation_takes_effect_at_once_through_the_listener():
    fastpath.invalidate()
    services.ensure_initialized()
    reader = token_for("policy:read", name="reader3")
    auth = {"Authorization": f"Bearer {reader}"}
    app = fastpath.PolicyFastPath(get_asgi_application())

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/api/v1/rollout/policy", headers=auth)).status_code == 200
            deadline = time.monotonic() + 10
            while fastpath._tokens.ttl != fastpath.LISTENING_TOKEN_TTL and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert fastpath._tokens.ttl == fastpath.LISTENING_TOKEN_TTL  # listening: answers kept 30 s
            assert (await client.get("/api/v1/rollout/policy", headers=auth)).status_code == 200  # cached
            await sync_to_async(revoke_token)(name="reader3")
            revoked_at = time.monotonic()
            while time.monotonic() - revoked_at < 2:
                status = (await client.get("/api/v1/rollout/policy", headers=auth)).status_code
                if status == 401:
                    return time.monotonic() - revoked_at
                await asyncio.sleep(0.01)
            return None

    took = asyncio.run(go())
    assert took is not None and took < fastpath.TOKEN_TTL / 2, took


def test_a_change_in_this_process_is_served_at_once_and_revocation_within_a_second():
    fastpath.invalidate()
    services.ensure_initialized()
    reader = token_for("policy:read", name="reader2")
    auth = {"Authorization": f"Bearer {reader}"}
    assert fetch(("/api/v1/rollout/policy", auth))[0].json()["version"] == 1
    services.apply_action(action="set_mode", params={"mode": "shadow"}, reason="shadow", actor="t")
    assert fetch(("/api/v1/rollout/policy", auth))[0].json()["mode"] == "shadow"
    revoke_token(name="reader2")
    time.sleep(fastpath.TOKEN_TTL + 0.1)
    assert fetch(("/api/v1/rollout/policy", auth))[0].status_code == 401
