"""Hypothesis property tests of the event validator and ingest (metrics.schema, metrics.ingest):
any JSON body gets a 2xx/4xx answer with a JSON detail, never a 500; an event is stored whole
or not at all; every event of a batch is accounted for (accepted + duplicates + rejected)."""
import json
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import decision_event, outcome_event

URL = "/api/v1/events"
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
DECISION_FIELDS = list(decision_event().keys()) + ["shadow", "contributions", "buyer_email"]
OUTCOME_FIELDS = list(outcome_event("o").keys()) + ["amount_minor", "currency", "detail"]
odd_times = st.sampled_from(["2026-11-28T14:02:07Z", "2026-11-28T14:02:07+23:59", "0001-01-01T00:00:00+14:00",
                             "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00Z", "2026-11-28 14:02:07", "", "now"])


@st.composite
def mutated_events(draw):
    """A valid event with some fields removed or replaced by arbitrary JSON (or odd times)."""
    kind = draw(st.sampled_from(["decision", "outcome"]))
    event = decision_event() if kind == "decision" else outcome_event(f"o-{uuid.uuid4().hex[:8]}")
    event["event_id"] = f"h-{uuid.uuid4().hex}"
    fields = DECISION_FIELDS if kind == "decision" else OUTCOME_FIELDS
    for field in draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        action = draw(st.sampled_from(["drop", "replace", "time"]))
        if field == "event_id" and action == "drop":
            continue  # keeps the bookkeeping below simple; a missing id is covered by "replace"
        if action == "drop":
            event.pop(field, None)
        elif action == "time" and field == "occurred_at":
            event[field] = draw(odd_times)
        else:
            event[field] = draw(json_values)
    return event


def _stored(event_id) -> dict | None:
    if not isinstance(event_id, str):
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'decision', order_id, amount_minor, currency, features::text, occurred_at FROM metrics_decision WHERE event_id = %s"
            " UNION ALL SELECT 'outcome', order_id, amount_minor, currency, NULL, occurred_at FROM metrics_outcome WHERE event_id = %s",
            [event_id, event_id],
        )
        rows = cursor.fetchall()
    assert len(rows) <= 1, f"{event_id} stored {len(rows)} times"
    if not rows:
        return None
    kind, order_id, amount, currency, features, occurred_at = rows[0]
    return {"type": kind, "order_id": order_id, "amount_minor": amount, "currency": currency,
            "features": json.loads(features) if features else None, "occurred_at": occurred_at}


@pytest.mark.django_db
def test_any_json_body_is_answered_without_a_server_error(events_client):
    @given(body=json_values | st.dictionaries(st.just("events"), json_values, min_size=1) | st.binary(max_size=64).map(lambda b: b.decode("latin-1")))
    @PROPERTY_SETTINGS
    def check(body):
        payload = body if isinstance(body, str) else json.dumps(body)
        response = events_client.post_json(URL, payload)
        assert response.status_code in (200, 400, 413, 415), (response.status_code, payload[:200])
        answer = response.json()
        if response.status_code == 200:
            assert set(answer) == {"accepted", "duplicates", "rejected"}
        else:
            assert isinstance(answer["detail"], str) and answer["detail"]

    check()


@pytest.mark.django_db
def test_events_are_stored_whole_or_not_at_all(events_client):
    @given(batch=st.lists(mutated_events(), min_size=1, max_size=6))
    @PROPERTY_SETTINGS
    def check(batch):
        response = events_client.post_json(URL, {"events": batch})
        assert response.status_code == 200, response.content[:300]
        answer = response.json()
        rejected = {r["index"]: r for r in answer["rejected"]}
        assert answer["accepted"] + answer["duplicates"] + len(rejected) == len(batch)
        for index, event in enumerate(batch):
            stored = _stored(event.get("event_id"))
            if index in rejected:
                assert rejected[index]["errors"], "a rejection names at least one problem"
                for error in rejected[index]["errors"]:
                    assert ":" in error, f"error does not name its field: {error!r}"
                # A rejected event leaves no trace (unless the same id was valid elsewhere in the batch).
                same_id_valid = any(i not in rejected and e.get("event_id") == event.get("event_id")
                                    for i, e in enumerate(batch))
                assert stored is None or same_id_valid, f"rejected event {event.get('event_id')} was stored"
            else:
                assert stored is not None, f"accepted event {event['event_id']} is missing"
                # Stored as sent: nothing dropped, nothing defaulted.
                assert stored["type"] == event["type"] and stored["order_id"] == event["order_id"]
                assert stored["amount_minor"] == event.get("amount_minor") and stored["currency"] == event.get("currency")
                if event["type"] == "decision":
                    assert stored["features"] == event["features"]
                sent = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
                assert stored["occurred_at"] == sent.astimezone(UTC)

    check()
