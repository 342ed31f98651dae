"""Operational endpoints (/healthz, /readyz, /metrics), API safety (rate limits, size limits,
revocation) and data retention."""
import re
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from metrics.partitions import ensure_partitions, existing_partitions
from shopswift_ops import heartbeat, ratelimit
from shopswift_ops.celery import app as celery_app
from shopswift_ops.tokens import revoke_token
from tests.factories import decision_event, iso, outcome_event, token_for

pytestmark = pytest.mark.django_db


def _scrape(client) -> dict[str, float]:
    text = client.get("/metrics").content.decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


# -- /healthz, /readyz --------------------------------------------------------------------------
def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_every_dependency_with_details(client):
    ratelimit.client().delete(heartbeat.BEAT_KEY, *ratelimit.client().keys(heartbeat.WORKER_PREFIX + "*"))
    body = client.get("/readyz").json()
    assert set(body["checks"]) == {"database", "redis", "worker_heartbeat", "beat_heartbeat", "kpi_watermark_lag"}
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    # No worker and no beat in a unit test: ready to serve, but degraded, and it says why.
    assert body["status"] == "degraded"
    assert body["checks"]["worker_heartbeat"] == {"ok": False, "workers": {}, "max_age_s": 40}
    assert body["checks"]["beat_heartbeat"]["ok"] is False and body["checks"]["beat_heartbeat"]["age_s"] is None

    heartbeat.beat_heartbeat.apply()  # what beat schedules, run here as a worker would
    heartbeat.write_worker_heartbeat("worker@test")  # what each worker's heartbeat thread writes
    try:
        body = client.get("/readyz").json()
        assert body["status"] == "ready", body
        assert body["checks"]["worker_heartbeat"]["workers"]["worker@test"] < 5
        assert body["checks"]["beat_heartbeat"]["age_s"] < 5
        assert body["checks"]["kpi_watermark_lag"] == {"ok": True, "lag_s": 0.0, "pending_orders": 0, "max_lag_s": 120}
    finally:
        ratelimit.client().delete(heartbeat.BEAT_KEY, heartbeat.WORKER_PREFIX + "worker@test")


def test_readyz_reports_kpi_lag_from_the_oldest_pending_order(client):
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO metrics_pending_order (order_id, queued_at) VALUES ('o-old', now() - interval '10 minutes'),"
                       " ('o-new', now())")
    body = client.get("/readyz").json()
    lag = body["checks"]["kpi_watermark_lag"]
    assert lag["ok"] is False and 595 <= lag["lag_s"] <= 660 and lag["pending_orders"] == 2
    assert body["status"] == "degraded"


def test_readyz_is_503_when_redis_is_down(client, redis_unreachable):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready" and body["checks"]["redis"]["ok"] is False and body["checks"]["database"]["ok"]


# -- /metrics -----------------------------------------------------------------------------------
def test_metrics_is_protected(client, user_client, api_client_for):
    assert client.get("/metrics").status_code == 401
    assert user_client("support").get("/metrics").status_code == 403
    assert api_client_for("events:write").get("/metrics").status_code == 403
    assert user_client("engineering").get("/metrics").status_code == 200
    assert api_client_for("ops:metrics").get("/metrics").status_code == 200


def test_metrics_count_ingest_results_and_expose_refresh_lag(api_client_for):
    scraper = api_client_for("ops:metrics")
    poster = api_client_for("events:write")
    before = _scrape(scraper)
    good = decision_event()
    bad = decision_event(currency="euro")
    assert poster.post_json("/api/v1/events", {"events": [good, bad]}).status_code == 200
    assert poster.post_json("/api/v1/events", {"events": [good]}).status_code == 200
    response = scraper.get("/metrics")
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    after = _scrape(scraper)

    def delta(name):
        return after.get(name, 0) - before.get(name, 0)

    assert delta('shopswift_ingest_events_total{result="accepted"}') == 1
    assert delta('shopswift_ingest_events_total{result="duplicate"}') == 1
    assert delta('shopswift_ingest_events_total{result="rejected"}') == 1
    assert delta('shopswift_ingest_batches_total{status="200"}') == 2
    assert delta('shopswift_http_responses_total{route="/api/v1/events",status="200"}') == 2
    assert "shopswift_kpi_refresh_lag_seconds" in after and "shopswift_redis_up" in after
    assert after["shopswift_redis_up"] == 1
    text = response.content.decode()
    # Every sample belongs to a family announced with HELP and TYPE.
    families = set(re.findall(r"^# TYPE (\S+) (?:counter|gauge)$", text, flags=re.M))
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r"^([a-z_]+)(\{.*\})? -?[0-9.e+]+$", line), line
            assert line.split("{")[0].split(" ")[0] in families, line


def test_metrics_still_answer_when_redis_is_down(api_client_for, redis_unreachable):
    scraper = api_client_for("ops:metrics")
    response = scraper.get("/metrics")
    assert response.status_code == 200
    assert "shopswift_redis_up 0" in response.content.decode()


# -- API safety ---------------------------------------------------------------------------------
@override_settings(RATE_LIMIT_EVENTS_PER_S=0.4)
def test_ingest_is_rate_limited_per_token_with_retry_after(api_client_for):
    first, second = api_client_for("events:write"), api_client_for("events:write")
    with time_machine.travel(datetime.now(UTC).replace(microsecond=0), tick=False):
        answers = [first.post_json("/api/v1/events", {"events": [decision_event()]}) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert int(answers[2]["Retry-After"]) >= 1 and "rate limit" in answers[2].json()["detail"]
        # The limit is per token: another client is not slowed by the first one's burst.
        assert second.post_json("/api/v1/events", {"events": [decision_event()]}).status_code == 200


@override_settings(RATE_LIMIT_EVENTS_PER_S=0.2)
def test_rate_limit_fails_open_when_redis_is_down(api_client_for, redis_unreachable):
    poster = api_client_for("events:write")
    assert all(poster.post_json("/api/v1/events", {"events": [decision_event()]}).status_code == 200 for _ in range(3))


def test_oversized_form_posts_are_refused(client):
    response = client.post("/login/", "x" * (9 * 1024 * 1024), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


def test_a_revoked_token_is_refused_on_its_next_request(api_client_for):
    raw = token_for("ops:metrics", name="scraper")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    from django.test import Client

    assert Client().get("/metrics", **auth).status_code == 200
    revoke_token(name="scraper")
    response = Client().get("/metrics", **auth)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


# -- retention ----------------------------------------------------------------------------------
def _rollup_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'metrics_rollup%%' OR tablename LIKE 'metrics_order_fact%%'")
        tables = sorted(row[0] for row in cursor.fetchall())
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cursor.fetchone()[0]
        return counts


def test_retention_drops_old_partitions_only(events_client):
    today = datetime.now(UTC).date()
    old_day, kept_day = today - timedelta(days=130), today - timedelta(days=100)
    old = decision_event(occurred_at=iso(datetime(old_day.year, old_day.month, old_day.day, 12, tzinfo=UTC)))
    kept = decision_event(occurred_at=iso(datetime(kept_day.year, kept_day.month, kept_day.day, 12, tzinfo=UTC)))
    late_outcome = outcome_event(old["order_id"], occurred_at=old["occurred_at"])
    assert events_client.post_json("/api/v1/events", {"events": [old, kept, late_outcome]}).json()["accepted"] == 3
    rollups_before = _rollup_counts()
    out = __import__("io").StringIO()
    call_command("drop_old_partitions", "--days", "120", stdout=out)
    assert f"metrics_decision_p{old_day:%Y%m%d}" in out.getvalue()
    remaining = existing_partitions()
    assert ("metrics_decision", old_day) not in remaining and ("metrics_outcome", old_day) not in remaining
    assert ("metrics_decision", kept_day) in remaining
    with connection.cursor() as cursor:
        cursor.execute("SELECT event_id FROM metrics_decision")
        assert [row[0] for row in cursor.fetchall()] == [kept["event_id"]]
        # The default partitions stay, and a resend of a dropped event is still a duplicate.
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tablename IN ('metrics_decision_default', 'metrics_outcome_default')")
        assert cursor.fetchone()[0] == 2
    assert events_client.post_json("/api/v1/events", {"events": [old]}).json()["duplicates"] == 1
    assert _rollup_counts() == rollups_before  # rollups (the exec summary's source) are not touched


def test_retention_refuses_an_age_shorter_than_a_month():
    with pytest.raises(CommandError, match="days: at least 35"):
        call_command("drop_old_partitions", "--days", "7")


def test_retention_runs_from_beat():
    from metrics import retention

    entry = celery_app.conf.beat_schedule["metrics-retention"]
    assert entry["task"] == "metrics.retention.drop_old_partitions" and entry["schedule"] <= 24 * 3600
    assert "metrics.retention.drop_old_partitions" in celery_app.tasks
    assert "shopswift_ops.heartbeat.beat_heartbeat" in celery_app.tasks
    today = datetime.now(UTC).date()
    ensure_partitions({today - timedelta(days=400)})
    with override_settings(EVENT_RETENTION_DAYS=200):
        retention.drop_old_partitions.apply()
    assert not any(day < today - timedelta(days=200) for _, day in existing_partitions())
    assert isinstance(retention.cutoff_for(days=120, today=date(2026, 11, 28)), date)


def test_api_paths_that_match_no_route_answer_json_404(client):
    response = client.get("/api/v1/incidents/-1")
    assert response.status_code == 404 and response.json() == {"detail": "not found"}
    assert client.get("/no-such-page/").status_code == 404


def test_a_database_outage_is_a_503_with_retry_after_not_a_500(rf):
    """handler500 runs inside Django's `except` block; a database error there means 'retry'."""
    from django.db import OperationalError

    from shopswift_ops.views import server_error

    try:
        raise OperationalError("connection refused")
    except OperationalError:
        api = server_error(rf.get("/api/v1/events"))
        page = server_error(rf.get("/war-room/"))
    assert api.status_code == 503 and api["Retry-After"] == "2" and "retry later" in api.content.decode()
    assert page.status_code == 503
    try:
        raise ValueError("a bug")
    except ValueError:
        assert server_error(rf.get("/api/v1/events")).status_code == 500
