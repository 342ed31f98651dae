"""The war room page: server-rendered panels, state in the URL, controls by role, actions refused."""
import re

import pytest
from django.test import Client

from incidents.views import war_room as wr

pytestmark = pytest.mark.django_db


def test_page_renders_every_panel_without_inline_script(user_client):
    client = user_client("risk_ops")
    response = client.get("/war-room/")
    assert response.status_code == 200
    html = response.content.decode()
    for panel in wr.PANELS:
        assert f'id="wr-{panel}"' in html
    # Strict CSP: every script is a file of our own or a JSON data block (never executed).
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'src="/static/' in tag or 'type="application/json"' in tag, tag
    assert 'ws-connect="/ws/war-room/?range=1h"' in html
    assert "/static/vendor/plotly-basic/plotly-basic.min.js" in html
    assert "hx-ws-2" in html


def test_plotly_and_htmx_are_served_by_us_not_a_cdn(client):
    for path in ("/static/vendor/plotly-basic/plotly-basic.min.js", "/static/django_htmx/htmx-2.min.js",
                 "/static/django_htmx/ext/hx-ws-2.min.js", "/static/js/war_room.js", "/static/css/war_room.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert len(body) > 1000, path


def test_plotly_is_its_minified_basic_bundle():
    """scatter and bar are all the war room draws: the basic bundle, not the 4.8 MB full one."""
    from django.contrib.staticfiles import finders

    path = finders.find("vendor/plotly-basic/plotly-basic.min.js")
    with open(path, encoding="utf-8") as bundle:
        assert "plotly.js (basic - minified) v4.1.1" in bundle.read(300)


def test_controls_present_for_risk_ops_absent_for_support(user_client):
    risk = user_client("risk_ops").get("/war-room/").content.decode()
    support = user_client("support").get("/war-room/").content.decode()
    assert 'data-testid="action-kill"' in risk
    assert 'data-testid="action-kill"' not in support
    assert 'data-testid="no-controls"' in support


def test_support_is_refused_by_the_server_even_without_buttons(user_client):
    client = user_client("support")
    response = client.post("/war-room/actions/", {"action": "kill", "reason": "trying anyway"})
    assert response.status_code == 403
    assert client.get("/war-room/actions/confirm/?action=kill").status_code == 403


def test_anonymous_is_sent_to_login(client):
    response = client.get("/war-room/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_action_posts_need_csrf(user_client):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_client("risk_ops").user)
    response = client.post("/war-room/actions/", {"action": "kill", "reason": "x"})
    assert response.status_code == 403


@pytest.mark.parametrize("query, field", [
    ("range=2d", "range"), ("range=custom&from=yesterday&to=2026-11-28T10:00:00Z", "from"),
    ("range=custom&from=2026-11-28T10:00:00Z&to=2026-11-28T09:00:00Z", "to"), ("sort=size", "sort"),
    ("segment=email", "segment"), ("incident=abc", "incident"),
])
def test_bad_state_is_a_400_naming_the_field(user_client, query, field):
    response = user_client("product").get(f"/war-room/?{query}")
    assert response.status_code == 400
    assert f"{field}:" in response.content.decode()


def test_state_lives_in_the_url(user_client):
    html = user_client("product").get(
        "/war-room/?range=custom&from=2026-11-28T10:00:00Z&to=2026-11-28T11:00:00Z&sort=orders").content.decode()
    assert "Fixed range: not live" in html
    assert "ws-connect" not in html  # a past window is not live
    assert "2026-11-28 10:00:00 UTC" in html
    paused = user_client("product").get("/war-room/?range=15m&paused=1").content.decode()
    assert "ws-connect" not in paused and "Resume live updates" in paused


def test_reason_is_required_and_named(user_client):
    response = user_client("risk_ops").post("/war-room/actions/", {"action": "kill", "reason": "  "})
    assert response.status_code == 400
    assert "reason: required" in response.content.decode()


@pytest.mark.parametrize("data, field", [
    ({"action": "explode"}, "action"), ({"action": "set_traffic", "traffic_pct": "lots"}, "traffic_pct"),
    ({"action": "exclude_segment", "feature": "signup_method"}, "in"), ({"action": "set_mode", "mode": "x"}, "mode"),
])
def test_bad_action_params_are_named(user_client, data, field):
    response = user_client("risk_ops").post("/war-room/actions/", {**data, "reason": "because"})
    assert response.status_code == 400
    assert f"{field}:" in response.content.decode()


def test_panels_endpoint_renders_the_same_partial_as_the_page(user_client):
    client = user_client("risk_ops")
    response = client.get("/war-room/panels/?panel=guardrails&panel=feed")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('hx-swap-oob="true"') == 2
    assert 'id="wr-guardrails"' in html and 'id="wr-feed"' in html
    assert client.get("/war-room/panels/?panel=nope").status_code == 400


def test_series_endpoint_answers_json(user_client):
    response = user_client("risk_ops").get("/war-room/series/?range=15m")
    assert response.status_code == 200
    body = response.json()
    assert "buckets" in body and "arms" in body
    assert user_client("risk_ops").get("/war-room/series/?since=soon").status_code == 400


def test_confirm_page_shows_expected_effect_and_asks_for_a_reason(user_client):
    response = user_client("risk_ops").get("/war-room/actions/confirm/?action=kill")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="effect-before"' in html and 'data-testid="effect-after"' in html
    assert 'name="reason"' in html and "required" in html


def test_a_day_is_charted_in_hours_on_the_hour_grid(user_client):
    import json

    html = user_client("risk_ops").get("/war-room/?range=24h").content.decode()
    config = json.loads(re.search(r'<script id="wr-config" type="application/json">(.*?)</script>', html).group(1))
    series = json.loads(re.search(r'<script id="wr-series" type="application/json">(.*?)</script>', html).group(1))
    assert config["bucket_seconds"] == 3600
    assert len(series["buckets"]) == 25  # 24 h that start mid-hour touch 25 hours (or 24 on the hour)
    assert all(b.endswith(":00:00+00:00") for b in series["buckets"])


def test_custom_ranges_of_hour_sized_points_use_whole_hours():
    from datetime import UTC, datetime

    state = wr.parse_state({"range": "custom", "from": "2026-11-01T00:00:00Z", "to": "2026-11-28T10:00:00Z"})
    assert state.bucket_seconds % 3600 == 0
    short = wr.parse_state({"range": "custom", "from": "2026-11-28T00:00:00Z", "to": "2026-11-28T10:00:00Z"})
    assert short.bucket_seconds == 300 and datetime(2026, 11, 28, tzinfo=UTC) == short.start


def test_panels_share_their_sources_one_read_each(user_client):
    """Header, guardrails, controls, diagnosis and the tables ask for the same policy, ramp status,
    guardrail statuses and window counts: the page reads each once (read_scope)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = user_client("risk_ops")
    client.get("/war-room/?range=24h")  # session and first-use queries out of the way
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/war-room/?range=24h").status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    assert sum(s.startswith('SELECT "rollout_servedpolicy"."id"') for s in sql) == 1
    assert sum(s.startswith('SELECT "rollout_rampplan"."id"') for s in sql) == 1
    assert sum(s.startswith('SELECT "metrics_guardrailstatus"."id"') for s in sql) == 1  # page and ramp gates
    assert sum("metrics_rollup_feature_minute WHERE bucket" in s and "GROUP BY" in s for s in sql) <= 8
    assert len(sql) <= 45, "\n".join(sql)


def test_a_failing_guardrail_engine_breaks_only_its_panel(user_client, monkeypatch):
    import metrics.guardrails

    def broken():
        raise RuntimeError("engine down")

    monkeypatch.setattr(metrics.guardrails, "latest_statuses", broken)
    response = user_client("risk_ops").get("/war-room/?range=1h")
    assert response.status_code == 200
    html = response.content.decode()
    assert "metrics.guardrails.latest_statuses failed" in html
    assert 'id="wr-summary"' in html and 'id="wr-controls"' in html
