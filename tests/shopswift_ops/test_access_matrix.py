"""The whole permissions matrix: every route x every role, the anonymous visitor and a token of
each scope, checked against ROLE_CAPABILITIES and the rule each view declares. A route without
a rule fails here (and is refused at runtime by AccessMiddleware)."""
import asyncio
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from shopswift_ops.access import ALL_CAPABILITIES, PUBLIC, SCOPES
from shopswift_ops.permissions_matrix import ADMIN_SITE, PRINCIPALS, may_use, markdown, routes
from tests.factories import UserFactory, token_for

REPO = Path(__file__).resolve().parents[2]
ALL_PRINCIPALS = (*PRINCIPALS, "anonymous", *(f"token:{scope}" for scope in SCOPES))


def test_every_route_declares_a_known_rule():
    missing = [r.pattern for r in routes() if r.rule is None]
    assert not missing, f"routes without an access rule (@requires/@api/@public or a consumer's `access`): {missing}"
    unknown = [(r.pattern, r.rule) for r in routes() if r.rule not in ALL_CAPABILITIES | {PUBLIC, ADMIN_SITE}]
    assert not unknown, f"routes with an unknown capability: {unknown}"


def test_the_walk_finds_routes_of_included_url_confs():
    patterns = {r.pattern for r in routes()}
    assert {"/", "/login/", "/healthz", "/readyz", "/api/v1/events", "/api/v1/openapi.json", "/metrics"} <= patterns


def _clients() -> tuple[dict[str, Client], dict, dict]:
    clients, users, tokens = {}, {}, {}
    for principal in ALL_PRINCIPALS:
        client = Client(raise_request_exception=False)
        if principal.startswith("token:"):
            tokens[principal] = token_for(principal.removeprefix("token:"))
            client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {tokens[principal]}"
        elif principal != "anonymous":
            users[principal] = UserFactory(role=principal)
            client.force_login(users[principal])
        clients[principal] = client
    return clients, users, tokens


def _refusal_problem(principal: str, route, response) -> str | None:
    """None when the response is the refusal this principal must get on this route."""
    status = response.status_code
    if principal.startswith("token:") and not route.is_api:
        return None if status == 400 else f"expected 400 (token on a page), got {status}"
    if principal == "anonymous":
        if route.is_api:
            return None if status == 401 else f"expected 401, got {status}"
        login = settings.LOGIN_URL
        return None if status == 302 and response["Location"].startswith(login) else f"expected a redirect to {login}, got {status}"
    return None if status == 403 else f"expected 403, got {status}"


def _middleware_allows(principal: str, user, token: str | None, path: str) -> bool:
    """Ask the one enforcement point (AccessMiddleware.process_view) without running the view."""
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory
    from django.urls import resolve

    from shopswift_ops.access import AccessMiddleware

    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    request = RequestFactory().get(path, **extra)
    request.user = user if user is not None else AnonymousUser()
    request.resolver_match = match = resolve(path)
    return AccessMiddleware(lambda r: None).process_view(request, match.func, match.args, match.kwargs) is None


@pytest.mark.django_db
def test_every_route_for_every_principal():
    clients, users, tokens = _clients()
    failures = []
    checked = 0
    for route in routes():
        if route.kind != "http" or route.rule == ADMIN_SITE:
            continue
        path = route.sample_path()
        rendered = False
        for principal, client in clients.items():
            checked += 1
            allowed = may_use(principal, route)
            if allowed and rendered:
                # The page itself was rendered once below; for the other allowed principals ask
                # the enforcement point directly (rendering every page 14 times is slow).
                if not _middleware_allows(principal, users.get(principal), tokens.get(principal), path):
                    failures.append(f"GET {path} as {principal}: refused but {route.rule} allows it")
                continue
            response = client.get(path)
            if response.status_code >= 500:
                failures.append(f"GET {path} as {principal}: {response.status_code} (server error)")
            elif allowed:
                rendered = True
                if response.status_code in (401, 403) or (
                    response.status_code == 302 and response["Location"].startswith(settings.LOGIN_URL)
                    and route.rule != PUBLIC
                ) or (principal.startswith("token:") and response.status_code == 400 and b"Authorization" in response.content):
                    failures.append(f"GET {path} as {principal}: refused ({response.status_code}) but {route.rule} allows it")
            else:
                # Refused for every method: a write is authorised before the view runs.
                for method in ("get", "post", "delete"):
                    answer = response if method == "get" else getattr(client, method)(path, content_type="application/json", data="{}")
                    problem = _refusal_problem(principal, route, answer)
                    if problem:
                        failures.append(f"{method.upper()} {path} as {principal} (rule {route.rule}): {problem}")
    assert checked > 0
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_admin_site_is_for_administrators_only():
    clients, _, _ = _clients()
    for principal, client in clients.items():
        response = client.get("/admin/")
        if principal == "admin":
            assert response.status_code == 200
        else:  # a token is no credential there: the admin site's own login is asked for
            assert response.status_code == 302 and "/admin/login/" in response["Location"], principal


@pytest.mark.django_db(transaction=True)
def test_every_websocket_route_for_every_role():
    from channels.testing import WebsocketCommunicator

    from shopswift_ops.asgi import application

    websocket_routes = [r for r in routes() if r.kind == "websocket"]
    cookies = {}
    for principal in (*PRINCIPALS, "anonymous"):
        client = Client()
        if principal != "anonymous":
            client.force_login(UserFactory(role=principal))
        cookies[principal] = client.cookies.get(settings.SESSION_COOKIE_NAME)

    async def connects(path: str, principal: str) -> bool:
        headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
        if cookies[principal] is not None:
            headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookies[principal].value}".encode()))
        communicator = WebsocketCommunicator(application, path, headers=headers)
        try:
            connected, _ = await communicator.connect(timeout=5)
        except asyncio.TimeoutError:
            connected = False
        await communicator.disconnect()
        return connected

    failures = []
    for route in websocket_routes:
        for principal in cookies:
            allowed = may_use(principal, route)
            if asyncio.run(connects(route.sample_path(), principal)) != allowed:
                failures.append(f"websocket {route.pattern} as {principal}: expected {'accept' if allowed else 'refuse'}")
    assert not failures, "\n".join(failures)


def test_permissions_matrix_command_prints_the_generated_matrix(capsys):
    call_command("permissions_matrix")
    out = capsys.readouterr().out
    assert out == markdown()
    assert "| `ops:metrics` |" in out and "| `/api/v1/events` | API | `events:write` |" in out


def test_the_written_matrix_is_the_generated_one():
    """docs/permissions.md (linked from the README) is regenerated with
    `python manage.py permissions_matrix --write docs/permissions.md`; a README that embeds it
    between the markers must embed the current one too."""
    generated = markdown()
    written = (REPO / "docs" / "permissions.md").read_text()
    assert generated in written, "docs/permissions.md is stale: run `python manage.py permissions_matrix --write docs/permissions.md`"
    readme = REPO / "README.md"
    start, end = "<!-- permissions-matrix:start -->", "<!-- permissions-matrix:end -->"
    text = readme.read_text() if readme.exists() else ""
    if start in text:
        embedded = text.split(start, 1)[1].split(end, 1)[0]
        assert embedded.strip() == generated.strip(), "README.md's permissions matrix is stale"
