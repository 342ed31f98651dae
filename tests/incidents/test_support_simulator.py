"""The data-quality flags on the simulator's seed incident (rollout.simulator, scenario
`seed-incident`): after the 50% ramp, social-login buyers are served account_age_days 0, and the
explanation must say that their own earlier checkouts contradict it; buyers the failure does not
touch must get no history flag."""
import json
from datetime import UTC, datetime, timedelta

import pytest

from incidents.support import services
from metrics.ingest import ingest_body
from metrics.models import Decision
from rollout.simulator.generator import generate
from rollout.simulator.scenario import SCENARIO_DIR, parse_scenario
from tests.incidents.support_fixtures import _fresh_reference_cache, make_incident  # noqa: F401

pytestmark = pytest.mark.django_db
SOCIAL = ("social_google", "social_apple")


@pytest.fixture
def seed_incident_events():
    data = json.loads((SCENARIO_DIR / "seed-incident.json").read_text())
    # A small world so buyers come back within the hour: their checkouts before the failure (minute
    # 40) are the history that contradicts what is served after it.
    data["world"] = {"buyers": 300, "fraudsters": 20, "sellers": 40, "top_sellers": 2}
    scenario = parse_scenario(data, source="seed-incident (small world)")
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=70)
    events = list(generate(scenario, seed=3, start=start, duration_minutes=65, rate=0.8, until=now,
                           include_late_outcomes=False, id_prefix="seedinc"))
    for offset in range(0, len(events), 5000):
        result = ingest_body(json.dumps({"events": events[offset:offset + 5000]}).encode(), now=now)
        assert not result.rejected, result.rejected[:3]
    return start + timedelta(minutes=40)


def _history_flags(view):
    return [f for f in view["explanation"]["data_quality_flags"] if f["problem"] == "contradicts_history"]


def test_seed_incident_victims_are_flagged_with_their_history(seed_incident_events):
    failure_at = seed_incident_events
    incident = make_incident(population={"arm": "treatment", "segment": {"feature": "signup_method", "in": list(SOCIAL)},
                                         "from": failure_at.isoformat(), "to": None})
    victims = (Decision.objects.filter(occurred_at__gte=failure_at, arm="treatment",
                                       features__signup_method__in=SOCIAL, features__account_age_days=0)
               .order_by("occurred_at"))
    with_history = [d for d in victims
                    if Decision.objects.filter(buyer_id=d.buyer_id, occurred_at__lt=failure_at,
                                               features__account_age_days__gt=1).exists()]
    assert len(with_history) >= 5, "the small world should bring social-login buyers back after the failure"
    for decision in with_history[:15]:
        view = services.order_view(order_id=decision.order_id)
        [flag] = _history_flags(view)
        assert flag["feature"] == "account_age_days" and flag["served_value"] == 0
        assert "account age was read as 0 days" in flag["detail"]
        problems = {(f["feature"], f["problem"]) for f in view["explanation"]["data_quality_flags"]}
        assert ("account_age_days", "default") in problems
        assert view["incident"]["id"] == f"INC-{incident.pk}"
        assert "error on our side" in view["explanation"]["customer_message"]


def test_buyers_the_failure_does_not_touch_get_no_history_flag(seed_incident_events):
    failure_at = seed_incident_events
    untouched = (Decision.objects.filter(occurred_at__gte=failure_at)
                 .exclude(features__signup_method__in=SOCIAL).order_by("occurred_at")[:60])
    assert len(untouched) == 60
    for decision in untouched:
        assert _history_flags(services.order_view(order_id=decision.order_id)) == [], decision.order_id
    # Before the failure, social-login buyers are served their true age: no history flag either.
    before = Decision.objects.filter(occurred_at__lt=failure_at, features__signup_method__in=SOCIAL)[:30]
    for decision in before:
        assert _history_flags(services.order_view(order_id=decision.order_id)) == [], decision.order_id
