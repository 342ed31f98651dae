"""POST /api/v1/events against CONTRACT section 2 (real PostgreSQL)."""
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from metrics.models import Decision, Outcome, PendingOrder
from tests.factories import decision_event, iso, outcome_event

URL = "/api/v1/events"
pytestmark = pytest.mark.django_db


def stored_ids(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT event_id FROM {table} ORDER BY event_id")
        return [row[0] for row in cursor.fetchall()]


def test_valid_batch_is_stored(events_client):
    decision = decision_event(buyer_email="Jane.Doe@Example.com", shadow={"score": 0.7, "decision": "step_up"},
                              contributions={"account_age_days": 0.21})
    outcome = outcome_event(decision["order_id"])
    response = events_client.post_json(URL, {"events": [decision, outcome]})
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    row = Decision.objects.get(event_id=decision["event_id"])
    assert row.features["signup_method"] == "email"
    assert row.shadow == {"score": 0.7, "decision": "step_up"}
    assert row.buyer_email_masked == "J***@example.com"
    assert row.buyer_email_hash and "jane" not in row.buyer_email_hash.lower()
    assert Outcome.objects.get(event_id=outcome["event_id"]).kind == "checkout_completed"
    assert list(PendingOrder.objects.values_list("order_id", flat=True)) == [decision["order_id"]]


def test_the_clear_email_is_stored_nowhere(events_client):
    events_client.post_json(URL, {"events": [decision_event(buyer_email="secret.person@example.org")]})
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_decision WHERE row_to_json(metrics_decision)::text ILIKE '%secret.person%'")
        assert cursor.fetchone()[0] == 0


def test_duplicates_are_counted_not_stored(events_client):
    batch = {"events": [decision_event(), decision_event()]}
    first = events_client.post_json(URL, batch).json()
    second = events_client.post_json(URL, batch).json()
    assert first == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert second == {"accepted": 0, "duplicates": 2, "rejected": []}
    assert len(stored_ids("metrics_decision")) == 2


def test_duplicate_inside_one_batch(events_client):
    event = decision_event()
    result = events_client.post_json(URL, {"events": [event, dict(event)]}).json()
    assert result == {"accepted": 1, "duplicates": 1, "rejected": []}


def test_event_id_is_unique_across_types(events_client):
    decision = decision_event()
    clash = outcome_event(decision["order_id"], event_id=decision["event_id"])
    result = events_client.post_json(URL, {"events": [decision]}).json()
    again = events_client.post_json(URL, {"events": [clash]}).json()
    assert result["accepted"] == 1 and again == {"accepted": 0, "duplicates": 1, "rejected": []}


def test_mixed_batch_stores_the_valid_and_names_each_bad_field(events_client):
    good = decision_event()
    bad = decision_event(amount_minor=0, currency="eur", arm="both", score=1.5, reason_codes=["bad code"])
    del bad["seller_id"]
    result = events_client.post_json(URL, {"events": [good, bad]}).json()
    assert result["accepted"] == 1
    [rejection] = result["rejected"]
    assert rejection["index"] == 1 and rejection["event_id"] == bad["event_id"]
    fields = sorted(error.split(":")[0].split("[")[0] for error in rejection["errors"])
    assert fields == ["amount_minor", "arm", "currency", "reason_codes", "score", "seller_id"]
    assert stored_ids("metrics_decision") == [good["event_id"]]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"event_id": ""}, "event_id"),
        ({"event_id": "x" * 65}, "event_id"),
        ({"order_id": 12}, "order_id"),
        ({"occurred_at": "2026-11-28T14:02:07"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"buyer_id": None}, "buyer_id"),
        ({"amount_minor": 10.5}, "amount_minor"),
        ({"amount_minor": True}, "amount_minor"),
        ({"currency": "EURO"}, "currency"),
        ({"arm": "Treatment"}, "arm"),
        ({"policy_version": "3"}, "policy_version"),
        ({"model_version": 3}, "model_version"),
        ({"score": -0.1}, "score"),
        ({"decision": "reject"}, "decision"),
        ({"decided_by": "human"}, "decided_by"),
        ({"reason_codes": ["A"]}, "reason_codes"),
        ({"reason_codes": "HIGH_RISK"}, "reason_codes"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"timed_out": "no"}, "timed_out"),
        ({"features": {"a": {"nested": 1}}}, "features"),
        ({"features": {f"f{i}": i for i in range(65)}}, "features"),
        ({"shadow": {"score": 2, "decision": "approve"}}, "shadow"),
        ({"shadow": {"score": 0.5, "decision": "maybe"}}, "shadow"),
        ({"contributions": {"a": "big"}}, "contributions"),
        ({"type": "refund"}, "type"),
    ],
)
def test_each_decision_rule_names_its_field(events_client, override, field):
    result = events_client.post_json(URL, {"events": [decision_event(**override)]}).json()
    assert result["accepted"] == 0
    errors = result["rejected"][0]["errors"]
    assert any(error.startswith(field) for error in errors), errors


def test_occurred_at_more_than_five_minutes_ahead_is_rejected(events_client):
    ahead = iso(datetime.now(UTC) + timedelta(minutes=6))
    almost = iso(datetime.now(UTC) + timedelta(minutes=4))
    result = events_client.post_json(URL, {"events": [decision_event(occurred_at=ahead), decision_event(occurred_at=almost)]}).json()
    assert result["accepted"] == 1
    assert result["rejected"][0]["errors"] == ["occurred_at: more than 5 minutes in the future"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"kind": "refund"}, "kind"),
        ({"amount_minor": 100}, "currency"),
        ({"currency": "EUR"}, "amount_minor"),
        ({"detail": "x" * 201}, "detail"),
        ({"event_id": ""}, "event_id"),
    ],
)
def test_each_outcome_rule_names_its_field(events_client, override, field):
    result = events_client.post_json(URL, {"events": [outcome_event("o-1", **override)]}).json()
    assert result["accepted"] == 0
    assert any(error.startswith(field) for error in result["rejected"][0]["errors"]), result


def test_outcome_before_its_decision_joins_later(events_client):
    order = "late-order-1"
    events_client.post_json(URL, {"events": [outcome_event(order, "chargeback", amount_minor=4599, currency="EUR")]})
    events_client.post_json(URL, {"events": [decision_event(order_id=order)]})
    with connection.cursor() as cursor:
        cursor.execute("""SELECT d.event_id, o.kind FROM metrics_decision d JOIN metrics_outcome o USING (order_id)
                          WHERE d.order_id = %s""", [order])
        assert [row[1] for row in cursor.fetchall()] == ["chargeback"]


def test_outcome_weeks_after_the_order_lands_in_its_own_day(events_client):
    old = datetime.now(UTC) - timedelta(days=40)
    decision = decision_event(occurred_at=iso(old))
    late = outcome_event(decision["order_id"], "chargeback", amount_minor=100, currency="EUR")
    assert events_client.post_json(URL, {"events": [decision, late]}).json()["accepted"] == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM metrics_decision WHERE event_id = %s", [decision["event_id"]])
        assert cursor.fetchone()[0] == f"metrics_decision_p{old:%Y%m%d}"


@pytest.mark.parametrize("body", [b"not json", b'{"evts": []}', b'{"events": {}}', b"[]", b'{"events": []}'])
def test_malformed_envelope_is_400_with_detail(events_client, body):
    response = events_client.post_json(URL, body)
    assert response.status_code == 400
    assert response.json()["detail"]


def test_wrong_content_type_is_refused(events_client):
    response = events_client.post(URL, "a=b", content_type="application/x-www-form-urlencoded",
                                  HTTP_AUTHORIZATION=f"Bearer {events_client.token}")
    assert response.status_code == 415


def test_more_than_5000_events_is_413(events_client):
    event = decision_event()
    response = events_client.post_json(URL, {"events": [event] * 5001})
    assert response.status_code == 413 and "5000" in response.json()["detail"]


def test_body_over_8_mib_is_413(events_client):
    padding = "x" * (8 * 1024 * 1024)
    response = events_client.post_json(URL, json.dumps({"events": [decision_event()], "pad": padding}))
    assert response.status_code == 413


def test_no_token_is_401(client):
    response = client.post(URL, json.dumps({"events": [decision_event()]}), content_type="application/json")
    assert response.status_code == 401 and response.json()["detail"]


def test_unknown_token_is_401(client, db):
    response = client.post(URL, "{}", content_type="application/json", HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401


def test_wrong_scope_is_403(api_client_for):
    response = api_client_for("policy:read").post_json(URL, {"events": [decision_event()]})
    assert response.status_code == 403 and "events:write" in response.json()["detail"]


def test_get_is_405(events_client):
    assert events_client.get(URL).status_code == 405
