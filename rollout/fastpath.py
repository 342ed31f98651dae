"""A thin ASGI fast path for `GET /api/v1/rollout/policy` with a bearer token.

The payments service polls the policy, so that read must stay cheap (p95 < 5 ms, >= 2,000 req/s
on 2 cores; benchmark `policy_read`). A Django request costs a thread hop and the middleware
stack; this answers the token-authenticated poll directly in the event loop from two small
in-process caches:

- the served policy (version + JSON text), re-read from PostgreSQL at most every
  `POLICY_TTL` seconds, and dropped at once when this process announces a change;
- each token's answer from `shopswift_ops.tokens.authenticate_bearer` (the same check Django
  uses, including its `last_used_at` bookkeeping). Revocation takes effect at once in every
  process: `revoke_token` sends a PostgreSQL NOTIFY on commit, and each process LISTENs on its own
  connection and drops its token cache. While that listener is up, answers are kept
  `LISTENING_TOKEN_TTL` seconds; while it is down (database unreachable, reconnecting), only
  `TOKEN_TTL` seconds, so a revoked token stops working within that time even then.

Everything else (session users, other methods, other paths) goes to Django unchanged, and the
Django view answers the same way. If the database cannot be reached the last known policy is
served while it is younger than `STALE_LIMIT`; otherwise the request falls through to Django.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid

from asgiref.sync import sync_to_async

logger = logging.getLogger(__name__)

PATH = "/api/v1/rollout/policy"
SCOPE = "policy:read"
POLICY_TTL = 0.5
TOKEN_TTL = 1.0
LISTENING_TOKEN_TTL = 30.0
STALE_LIMIT = 30.0
RELISTEN_AFTER = 1.0


class _Cache:
    """Values with an expiry, loaded once per key however many requests ask at the same time."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self.values: dict = {}
        self.loading: dict = {}
        # Bumped by clear(): a load that began before a clear is answered but not kept (it may
        # have read the database before the change that caused the clear committed).
        self.generation = 0

    def clear(self, key=None) -> None:
        self.generation += 1
        if key is None:
            self.values.clear()
            self.loading.clear()
        else:
            self.values.pop(key, None)
            self.loading.pop(key, None)

    async def get(self, key, load):
        entry = self.values.get(key)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        pending = self.loading.get(key)
        if pending is None:
            generation = self.generation
            pending = asyncio.ensure_future(load())
            self.loading[key] = pending
            try:
                value = await asyncio.shield(pending)
            except Exception:
                if entry is not None and now - entry[0] < STALE_LIMIT:
                    logger.warning("policy fast path serving a stale value", exc_info=True)
                    return entry[1]
                raise
            finally:
                if self.loading.get(key) is pending:
                    del self.loading[key]
            if generation != self.generation:
                return value
            if len(self.values) > 10000:
                self.values.clear()
            self.values[key] = (time.monotonic() + self.ttl, value)
            return value
        return await asyncio.shield(pending)


_policy = _Cache(POLICY_TTL)
_tokens = _Cache(TOKEN_TTL)


def invalidate(_payload: dict | None = None) -> None:
    """Subscribed to the "policy" topic: a change made in this process is served at once."""
    _policy.clear()


class _RevocationListener:
    """LISTENs for token revocations on a connection of its own, in this process's event loop."""

    def __init__(self):
        self.task: asyncio.Task | None = None
        self.loop = None

    def ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop = loop
            self.task = loop.create_task(self._listen())

    async def _listen(self) -> None:
        import psycopg

        from shopswift_ops.tokens import REVOCATION_CHANNEL

        try:
            while True:
                try:
                    params = await sync_to_async(_listen_params, thread_sensitive=False)()
                    async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
                        await conn.execute(f"LISTEN {REVOCATION_CHANNEL}")
                        _tokens.clear()  # anything cached before we listened may be stale
                        _tokens.ttl = LISTENING_TOKEN_TTL
                        async for _notice in conn.notifies():
                            _tokens.clear()
                except Exception:  # noqa: BLE001 - fall back to the short cache and try again
                    logger.warning("token revocation listener down; token answers kept %ss", TOKEN_TTL,
                                   exc_info=True)
                _tokens.ttl = TOKEN_TTL
                _tokens.clear()
                await asyncio.sleep(RELISTEN_AFTER)
        finally:  # cancelled (the loop stops): nobody listens any more
            _tokens.ttl = TOKEN_TTL
            _tokens.clear()


_listener = _RevocationListener()


def _listen_params() -> dict:
    from django.db import connection

    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "prepare_threshold", "server_side_binding", "pool"):
        params.pop(name, None)
    return params


def _read_policy() -> tuple[int, bytes]:
    from django.db import connection

    from rollout.services import current_policy_body

    try:
        version, body = current_policy_body()
        return version, body.encode()
    finally:
        connection.close()  # back to the pool; this thread is not a request thread


def _check_token(header: str):
    from django.db import connection

    from shopswift_ops.tokens import authenticate_bearer

    try:
        token = authenticate_bearer(header)
        return None if token is None else frozenset(token.scopes)
    finally:
        connection.close()


async def _load_policy():
    return await sync_to_async(_read_policy, thread_sensitive=False)()


def etag_matches(header: str, version: int) -> bool:
    """If-None-Match: a list of (possibly weak) entity tags, bare version numbers, or *."""
    if not header:
        return False
    wanted = str(version)
    for part in header.split(","):
        tag = part.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == wanted:
            return True
    return False


def _json(status: int, detail: str, extra: list | None = None):
    import json

    body = json.dumps({"detail": detail}).encode()
    return status, body, extra or []


class PolicyFastPath:
    def __init__(self, app):
        self.app = app
        from django.conf import settings

        self.enabled = getattr(settings, "ROLLOUT_POLICY_FASTPATH", True)

    async def __call__(self, scope, receive, send):
        if not self.enabled or scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        authorization = if_none_match = request_id = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"x-request-id":
                request_id = value
        if not authorization:
            return await self.app(scope, receive, send)  # session users: Django's auth
        try:
            _listener.ensure_running()
            header = authorization.decode("latin-1")
            scopes = await _tokens.get(authorization, lambda: sync_to_async(_check_token, thread_sensitive=False)(header))
            if scopes is None:
                status, body, headers = _json(401, "invalid, unknown or revoked API token",
                                              [(b"www-authenticate", b'Bearer realm="shopswift-ops"')])
            elif SCOPE not in scopes:
                status, body, headers = _json(
                    403, f"this needs the '{SCOPE}' permission, which your token does not have")
            else:
                version, policy_body = await _policy.get("served", _load_policy)
                etag = f'"{version}"'.encode()
                headers = [(b"etag", etag), (b"cache-control", b"no-cache")]
                if etag_matches(if_none_match.decode("latin-1"), version):
                    status, body = 304, b""
                else:
                    status, body = 200, policy_body
        except Exception:  # noqa: BLE001 - let Django answer (and log) whatever went wrong
            logger.warning("policy fast path stepped aside", exc_info=True)
            return await self.app(scope, receive, send)
        if not (0 < len(request_id) <= 64 and request_id.decode("latin-1").isprintable()):
            request_id = uuid.uuid4().hex.encode()
        headers += [(b"x-request-id", request_id), (b"x-content-type-options", b"nosniff")]
        if status != 304:
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
