"""Fixtures and builders for the support tests (imported by tests/incidents/test_support*.py and
tests/browser/test_support*.py; tests/incidents/ is shared with the incidents tests, so these
live apart from any conftest there)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tests.factories import decision_event, iso, outcome_event

EVENTS_URL = "/api/v1/events"


@pytest.fixture
def store(events_client):
    """Post events through the real ingest endpoint; fail loudly if any is rejected."""
    def post(*events):
        for start in range(0, len(events), 5000):
            response = events_client.post_json(EVENTS_URL, {"events": list(events[start:start + 5000])})
            assert response.status_code == 200, response.content
            assert response.json()["rejected"] == [], response.json()["rejected"]
    return post


def make_incident(*, title="account_age_days default for social login", population=None, status="identified",
                  support_message=None):
    from incidents.models import Incident, StatusUpdate

    now = timezone.now()
    incident = Incident.objects.create(
        title=title, status=status, started_at=now - timedelta(hours=6), detected_at=now - timedelta(hours=5),
        affected_population=population if population is not None else {
            "arm": "treatment", "segment": {"feature": "signup_method", "in": ["social_google", "social_apple"]},
            "from": iso(now - timedelta(days=1)), "to": None},
    )
    if support_message:
        StatusUpdate.objects.create(incident=incident, audience="support", sections={"message": support_message},
                                    created_by="comms", published_at=now, published_by="comms")
    return incident


def social_login_decline(**overrides) -> dict:
    """The seed incident's victim: a long-standing social-login buyer served account_age_days 0."""
    event = decision_event(
        decision="decline", score=0.93, reason_codes=["HIGH_RISK_SCORE", "NEW_ACCOUNT"],
        features={"account_age_days": 0, "signup_method": "social_google", "is_repeat_buyer": True,
                  "prior_good_orders": 14, "amount_band": "b3", "device_risk": 0.05, "bin_country_match": True,
                  "velocity_1h": 1},
        contributions={"account_age_days": 2.1, "device_risk": 0.2, "prior_good_orders": -0.4},
    )
    event.update(overrides)
    return event


def earlier_order(buyer_id: str, *, days_ago: float, account_age_days=700, completed=True, **overrides):
    """An earlier order of the buyer, `days_ago` days before now, with its completion."""
    moment = datetime.now(UTC) - timedelta(days=days_ago)
    decision = decision_event(buyer_id=buyer_id, occurred_at=iso(moment), arm="control", decided_by="rules",
                              model_version=None, score=None, latency_ms=0,
                              features={"account_age_days": account_age_days, "signup_method": "email",
                                        "is_repeat_buyer": True, "prior_good_orders": 13}, **overrides)
    events = [decision]
    if completed:
        events.append(outcome_event(decision["order_id"], occurred_at=iso(moment + timedelta(minutes=1))))
    return events


@pytest.fixture(autouse=True)
def _fresh_reference_cache():
    # Policy versions, registry and catalogue are cached per process; each test starts afresh
    # (its database rolls back; the cache must not outlive it).
    from incidents.support.services import forget_cached_reference_data

    forget_cached_reference_data()
    yield
    forget_cached_reference_data()
