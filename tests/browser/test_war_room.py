"""The war room in Chromium, served by a real Daphne process (websockets) on the test database.

Daphne runs as a subprocess (tests/browser/test_war_room.py's `DaphneServer`) so that a test can
kill it and start it again: that is how the reconnect test drops every websocket for real.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.test import Client

from tests.factories import UserFactory, decision_event, iso, outcome_event, token_for
from shopswift_ops.embedded import free_port as _free_port
from shopswift_ops.launcher import NotServing, wait_until_serving

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
EVENT_PREFIX = "wrb-"




class DaphneServer:
    """Daphne serving shopswift_ops.asgi on the test database; start() again after kill()."""

    def __init__(self, *, database_name: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shopswift_ops.settings_test",
                    "DATABASE_URL": f"{base}/{database_name}"}
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self.process = None
        self.log = ROOT / ".data" / f"daphne-war-room-test-{self.port}.log"

    def start(self):
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "shopswift_ops.asgi:application"],
            cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        try:
            wait_until_serving(f"{self.url}/healthz", process=self.process)
        except NotServing as exc:
            raise RuntimeError(f"{exc}; see {self.log}") from None

    def kill(self):
        """A crash, not a graceful stop: the browser sees its websocket drop (1006)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
    server = DaphneServer(database_name=name)
    server.start()
    yield server
    server.kill()




@pytest.fixture
def clean_events(clean_event_tables):
    # The chart reads rollups: events and rollups left by earlier tests must not share its minute.
    yield


def _page_for(browser, daphne, role):
    user = UserFactory(role=role)
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": daphne.url}])
    page = context.new_page()
    page.problems = []
    # Console errors, except the browser's own favicon probe (no favicon is served).
    page.on("console", lambda m: page.problems.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text else None)
    page.on("response", lambda r: page.problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.on("pageerror", lambda exc: page.problems.append(str(exc)))
    return page


def _open(page, daphne, query="range=15m"):
    page.goto(f"{daphne.url}/war-room/?{query}")
    page.wait_for_function("() => window.warRoom && window.warRoom.config !== null")
    page.wait_for_selector("#wr-connection[data-state=live]", timeout=20000)
    page.evaluate("window.__sameDocument = true")


def _active_policy(traffic_pct=50.0):
    from rollout.services import bootstrap_policy

    return bootstrap_policy(model_version="fraud-gbm-v3", traffic_pct=traffic_pct, reason="browser test start",
                            actor="test", force=True)


def _post_events(daphne, events):
    token = token_for("events:write")
    for event in events:
        event["event_id"] = EVENT_PREFIX + event["event_id"]
    response = httpx.post(f"{daphne.url}/api/v1/events", json={"events": events},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


def test_page_renders_with_charts_and_goes_live(daphne, browser):
    policy = _active_policy()
    page = _page_for(browser, daphne, "risk_ops")
    _open(page, daphne)
    assert page.inner_text("[data-testid=policy-version]") == str(policy["version"])
    assert page.inner_text("[data-testid=policy-mode]") == "active"
    for chart in ("conversion", "decision_mix", "false_declines", "fraud_loss", "latency"):
        assert page.locator(f"#chart-{chart} .main-svg").count() >= 1, chart
        assert page.locator(f"#chart-{chart} .legend").count() == 1, chart
    assert page.locator("[data-testid=action-kill]").is_visible()
    assert page.problems == []  # no CSP violation, no script error


def test_a_new_event_shows_up_on_the_chart_without_reload(daphne, browser, clean_events):
    policy = _active_policy()
    page = _page_for(browser, daphne, "product")
    _open(page, daphne)
    before = page.evaluate("window.warRoom.updates")
    now = datetime.now(UTC)
    order = f"o-wrb-{time.monotonic_ns()}"
    decision = decision_event(order_id=order, arm="treatment", policy_version=policy["version"],
                              occurred_at=iso(now - timedelta(seconds=5)))
    _post_events(daphne, [decision, outcome_event(order, occurred_at=iso(now - timedelta(seconds=2)))])
    page.wait_for_function("(before) => window.warRoom.updates > before", arg=before, timeout=15000)
    # The treatment conversion line now ends at a value: 1 completed order of 1. Its latest point
    # with data, not its last: a bucket that began after the event is in the update, still empty.
    value = page.evaluate("""() => {
        const gd = document.getElementById('chart-conversion');
        const i = gd.data.findIndex(t => t.name === 'treatment · conversion');
        const ys = gd.data[i].y.filter(y => y !== null && y !== undefined); return ys[ys.length - 1]; }""")
    assert value == pytest.approx(100.0)
    assert page.evaluate("window.__sameDocument") is True  # no reload
    assert page.problems == []


def test_kill_switch_with_reason_changes_the_policy_api_and_shows_in_the_feed(daphne, browser):
    _active_policy()
    page = _page_for(browser, daphne, "risk_ops")
    _open(page, daphne)
    page.click("[data-testid=action-kill]")
    dialog = page.locator("#wr-dialog")
    dialog.wait_for(state="visible")
    assert dialog.locator("[data-testid=effect-after]").inner_text() == "0"
    # A reason is required: the browser will not submit without one, and the server refuses too.
    page.fill("[data-testid=reason]", "treatment conversion down in social-login buyers")
    page.click("[data-testid=confirm-apply]")
    page.wait_for_selector("[data-testid=feed] li.feed-policy:has-text('kill')", timeout=15000)
    assert page.inner_text("[data-testid=policy-mode]") == "off"
    token = token_for("policy:read")
    document = httpx.get(f"{daphne.url}/api/v1/rollout/policy", headers={"Authorization": f"Bearer {token}"}).json()
    assert document["mode"] == "off" and document["traffic_pct"] == 0
    assert document["reason"] == "treatment conversion down in social-login buyers"
    assert page.problems == []


def test_support_sees_no_controls_and_the_server_refuses_a_forged_post(daphne, browser):
    policy = _active_policy()
    page = _page_for(browser, daphne, "support")
    _open(page, daphne)
    assert page.locator("[data-testid=no-controls]").is_visible()
    assert page.locator("[data-testid^=action-]").count() == 0
    csrf = next((c["value"] for c in page.context.cookies() if c["name"] == "csrftoken"), None)
    if csrf is None:  # the page has no form for this role, so ask Django for a token the usual way
        page.goto(f"{daphne.url}/login/")
        csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(f"{daphne.url}/war-room/actions/", form={"action": "kill", "reason": "forged"},
                                 headers={"X-CSRFToken": csrf, "Referer": f"{daphne.url}/war-room/"})
    assert response.status == 403
    from rollout.services import current_policy

    assert current_policy()["version"] == policy["version"]  # nothing changed


def test_reconnect_catches_up_what_happened_while_disconnected(daphne, browser):
    _active_policy()
    page = _page_for(browser, daphne, "engineering")
    _open(page, daphne)
    daphne.kill()
    page.wait_for_selector("#wr-connection[data-state=stale]", timeout=10000)
    assert "wr-stale" in page.evaluate("document.body.className")
    # A change lands while the page is disconnected: its push reaches nobody.
    from rollout.services import apply_action

    apply_action(action="set_mode", params={"mode": "shadow"}, reason="shadow while we look", actor="someone")
    daphne.start()
    page.wait_for_selector("#wr-connection[data-state=live]", timeout=30000)
    page.wait_for_selector("[data-testid=feed] li.feed-policy:has-text('shadow while we look')", timeout=10000)
    assert page.inner_text("[data-testid=policy-mode]") == "shadow"
    assert page.evaluate("window.__sameDocument") is True
