"""Web security: CSRF everywhere, strict CSP, secure cookies/HSTS outside debug, framing, login
throttling, session expiry, password rules, no secret in the repository."""
import json
import logging
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client, override_settings

from shopswift_ops.logging import JsonFormatter, RequestIdFilter
from shopswift_ops.permissions_matrix import ADMIN_SITE, routes
from tests.factories import UserFactory

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


# -- CSRF ---------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_every_route_refuses_a_session_write_without_csrf_token():
    admin = UserFactory(role="admin")
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(admin)
    failures = []
    for route in routes():
        if route.kind != "http" or route.rule == ADMIN_SITE:
            continue
        for method in ("post", "put", "patch", "delete"):
            response = getattr(client, method)(route.sample_path(), data="{}", content_type="application/json")
            if response.status_code != 403:
                failures.append(f"{method.upper()} {route.pattern} without CSRF token: {response.status_code}")
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_htmx_requests_carry_the_csrf_token_from_the_body_and_it_is_accepted():
    user = UserFactory(role="risk_ops")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/").content.decode()
    match = re.search(r"<body[^>]*hx-headers='(\{[^']*\})'", page)
    assert match, "base.html's <body> must carry hx-headers with the CSRF token"
    token = json.loads(match.group(1))["X-CSRFToken"]
    assert len(token) >= 32
    # What htmx sends: the header from hx-headers, no form field.
    response = client.post("/logout/", HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true")
    assert response.status_code == 302
    assert client.get("/").status_code == 302  # logged out


@pytest.mark.django_db
def test_every_post_form_on_every_page_has_a_csrf_token():
    client = Client(raise_request_exception=False)
    client.force_login(UserFactory(role="admin"))
    pages = [r.sample_path() for r in routes() if r.kind == "http" and not r.is_api and r.rule != ADMIN_SITE]
    checked = 0
    for path in pages + ["/login/"]:
        response = client.get(path) if path != "/login/" else Client().get(path)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        html = response.content.decode()
        for form in re.findall(r"<form\b.*?</form>", html, flags=re.S | re.I):
            if re.search(r"method=[\"']?post", form, flags=re.I):
                checked += 1
                assert "csrfmiddlewaretoken" in form, f"a POST form on {path} has no {{% csrf_token %}}"
        if re.search(r"\bhx-(post|put|patch|delete)=", html):
            assert "X-CSRFToken" in html, f"{path} sends htmx writes without the CSRF header"
    assert checked >= 2  # at least the login and logout forms


# -- headers ------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/healthz", "/api/v1/openapi.json"])
def test_strict_content_security_policy_and_no_framing(client, path):
    response = client.get(path)
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"  # no inline script, no CDN, no eval
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert "unsafe-eval" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_no_inline_script_in_any_template():
    offenders = []
    for template in (REPO / "templates").rglob("*.html"):
        for tag in re.findall(r"<script\b[^>]*>", template.read_text(), flags=re.I):
            if "src=" not in tag:
                offenders.append(f"{template.relative_to(REPO)}: {tag}")
        if re.search(r"\son[a-z]+=\"", template.read_text()):
            offenders.append(f"{template.relative_to(REPO)}: inline event handler")
    assert not offenders, offenders


def _settings_as_production(**env) -> dict:
    code = ("import json, shopswift_ops.settings as s; print(json.dumps({k: getattr(s, k) for k in "
            "['DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', "
            "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SESSION_COOKIE_HTTPONLY', 'X_FRAME_OPTIONS', 'SESSION_COOKIE_AGE']}))")
    environment = {**os.environ, "DEBUG": "false", **env}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environment, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_outside_debug_cookies_are_secure_and_hsts_is_on():
    values = _settings_as_production()
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"] and values["SESSION_COOKIE_HTTPONLY"]
    assert values["SECURE_HSTS_SECONDS"] >= 31536000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["X_FRAME_OPTIONS"] == "DENY"
    debug = _settings_as_production(DEBUG="true")
    assert not debug["SESSION_COOKIE_SECURE"] and debug["SECURE_HSTS_SECONDS"] == 0


@pytest.mark.django_db
@override_settings(SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True, SECURE_HSTS_SECONDS=31536000,
                   SECURE_HSTS_INCLUDE_SUBDOMAINS=True)
def test_the_production_values_reach_the_response(clean_login_throttle):
    UserFactory(username="hsts-user", role="support")
    client = Client()
    page = client.get("/login/", secure=True)
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert page.cookies[settings.CSRF_COOKIE_NAME]["secure"]
    response = client.post("/login/", {"username": "hsts-user", "password": PASSWORD}, secure=True)
    assert response.status_code == 302
    session_cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session_cookie["secure"] and session_cookie["httponly"] and session_cookie["samesite"] == "Lax"


# -- login throttling ---------------------------------------------------------------------------
def _attempt(client, username, password="wrong password", ip="10.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def throttled(response) -> bool:
    """Refused by the throttle (the page keeps its generic message; the form knows why)."""
    return response.status_code == 200 and response.context["form"].has_error("__all__", "throttled")


@pytest.mark.django_db
def test_login_is_throttled_per_user_name(clean_login_throttle):
    UserFactory(username="victim", role="risk_ops")
    UserFactory(username="bystander", role="risk_ops")
    client = Client()
    for attempt in range(5):
        assert _attempt(client, "victim", ip=f"10.0.1.{attempt}").status_code == 200  # form re-shown with an error
    # Now even the right password is refused, from any address, without being checked.
    refused = _attempt(client, "victim", PASSWORD, ip="10.0.9.9")
    assert throttled(refused)
    assert throttled(_attempt(client, "VICTIM ", PASSWORD, ip="10.0.9.9"))  # same name, other spelling
    assert _attempt(Client(), "bystander", PASSWORD, ip="10.0.9.9").status_code == 302  # other accounts unaffected


@pytest.mark.django_db
def test_login_is_throttled_per_ip_and_the_lock_expires(clean_login_throttle):
    UserFactory(username="spray-target", role="support")
    client = Client()
    for n in range(30):
        _attempt(client, f"nobody-{n}", ip="10.0.2.2")
    assert throttled(_attempt(client, "spray-target", PASSWORD, ip="10.0.2.2"))
    assert _attempt(Client(), "spray-target", PASSWORD, ip="10.0.3.3").status_code == 302
    # The window is a Redis TTL: once it passes, the address may try again.
    from shopswift_ops import ratelimit

    ratelimit.client().expire("login:fail:ip:10.0.2.2", 0)
    assert _attempt(Client(), "spray-target", PASSWORD, ip="10.0.2.2").status_code == 302


@pytest.mark.django_db
def test_success_resets_the_user_name_count(clean_login_throttle):
    UserFactory(username="forgetful", role="product")
    for _ in range(4):
        _attempt(Client(), "forgetful")
    assert _attempt(Client(), "forgetful", PASSWORD).status_code == 302
    for _ in range(4):
        _attempt(Client(), "forgetful")
    assert _attempt(Client(), "forgetful", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_login_throttle_holds_per_process_while_redis_is_down(clean_login_throttle, redis_unreachable):
    UserFactory(username="during-outage", role="risk_ops")
    assert _attempt(Client(), "during-outage", PASSWORD).status_code == 302  # people can still log in
    for _ in range(5):
        _attempt(Client(), "during-outage")
    assert throttled(_attempt(Client(), "during-outage", PASSWORD))


@pytest.mark.django_db
def test_throttled_attempt_is_logged_as_json_with_the_request_id(clean_login_throttle):
    UserFactory(username="logged", role="risk_ops")
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(JsonFormatter().format(record))
    handler.addFilter(RequestIdFilter())
    logging.getLogger("shopswift_ops.login_throttle").addHandler(handler)
    try:
        for _ in range(5):
            _attempt(Client(), "logged")
        response = Client().post("/login/", {"username": "logged", "password": "x"}, HTTP_X_REQUEST_ID="req-abc-123")
    finally:
        logging.getLogger("shopswift_ops.login_throttle").removeHandler(handler)
    assert response["X-Request-Id"] == "req-abc-123"
    line = json.loads(records[-1])
    assert line["msg"] == "login throttled" and line["request_id"] == "req-abc-123" and line["level"] == "WARNING"
    assert line["client_ip"] == "127.0.0.1" and "ts" in line


def test_request_ids_are_generated_when_absent_or_unusable(client):
    generated = client.get("/healthz")["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/healthz", HTTP_X_REQUEST_ID="x" * 65)["X-Request-Id"] != "x" * 65


# -- sessions and passwords ---------------------------------------------------------------------
@pytest.mark.django_db
def test_sessions_expire(clean_login_throttle):
    UserFactory(username="sleepy", role="leadership")
    with time_machine.travel("2026-11-28 08:00:00+00:00", tick=False) as traveller:
        client = Client()
        assert client.post("/login/", {"username": "sleepy", "password": PASSWORD}).status_code == 302
        assert client.get("/").status_code == 200
        traveller.shift(timedelta(seconds=settings.SESSION_COOKIE_AGE - 60))
        assert client.get("/").status_code == 200
        traveller.shift(timedelta(seconds=120))
        response = client.get("/")
        assert response.status_code == 302 and response["Location"].startswith(settings.LOGIN_URL)
    assert settings.SESSION_COOKIE_AGE <= 12 * 3600


@pytest.mark.django_db
@pytest.mark.parametrize("password", ["short1!", "password1234", "123456789012", "sleepy-user-name"])
def test_weak_passwords_are_refused(password):
    user = UserFactory(username="sleepy-user-name", role="support")
    with pytest.raises(ValidationError):
        validate_password(password, user)


@pytest.mark.django_db
def test_a_strong_password_passes():
    validate_password("lantern-orbit-crisp-meadow", UserFactory(role="support"))


# -- secrets ------------------------------------------------------------------------------------
SECRET_PATTERNS = {
    "API token": re.compile(r"\bssk_[A-Za-z0-9_-]{30,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "hard-coded SECRET_KEY": re.compile(r"SECRET_KEY\s*=\s*['\"][^'\"]{16,}['\"]"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "password in a URL": re.compile(r"\b(?:postgres(?:ql)?|redis|amqp)://[^:/\s@]+:[^@\s/]{4,}@"),
    "Slack/GitHub token": re.compile(r"\b(?:xox[baprs]-[0-9A-Za-z-]{10,}|gh[pousr]_[A-Za-z0-9]{30,})"),
}


def test_no_secret_in_the_repository():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    findings = []
    for name in filter(None, listed):
        path = REPO / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for label, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                findings.append(f"{name}: {label}: {match.group(0)[:24]}…")
    assert not findings, "\n".join(findings)
    ignored = subprocess.run(["git", "check-ignore", "-q", ".data/secret-key"], cwd=REPO)
    assert ignored.returncode == 0, ".data/ (generated secret key, demo token) must be git-ignored"
