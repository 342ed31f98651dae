"""Drafts, decision snapshots, the exec summary and the postmortem quote the KPI engine's live
numbers: compared here with GET /api/v1/kpis over the same window, on events ingested for real."""
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from incidents import comms, exec_summary, postmortem, services
from incidents.selectors import open_incident
from metrics.rollups import refresh
from tests.factories import decision_event, iso, outcome_event
from tests.incidents.conftest import breach_alert

pytestmark = pytest.mark.django_db


def _order(*, arm, signup, decision, completed, at, amount=5000, step_up_passed=False):
    features = {"account_age_days": 0 if signup.startswith("social") and arm == "treatment" else 900,
                "signup_method": signup, "is_repeat_buyer": True, "prior_good_orders": 8, "amount_band": "b2"}
    event = decision_event(arm=arm, decision=decision, features=features, occurred_at=iso(at), amount_minor=amount)
    events = [event]
    if completed:
        events.append(outcome_event(event["order_id"], occurred_at=iso(at + timedelta(seconds=20))))
    return events


@pytest.fixture
def seeded(events_client):
    """Treatment social-login buyers declined far more often than control; email buyers alike."""
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=40)
    events = []
    for i in range(60):
        at = start + timedelta(seconds=20 * i + 5)
        events += _order(arm="control", signup="social_google", decision="approve", completed=i % 10 != 0, at=at)
        events += _order(arm="treatment", signup="social_google", decision="decline" if i % 3 == 0 else "approve",
                         completed=i % 3 != 0 and i % 10 != 0, at=at, amount=6000)
        events += _order(arm="control", signup="email", decision="approve", completed=i % 5 != 0, at=at)
        events += _order(arm="treatment", signup="email", decision="approve", completed=i % 5 != 0, at=at)
    response = events_client.post_json("/api/v1/events", {"events": events})
    assert response.status_code == 200 and response.json()["rejected"] == []
    refresh()
    services.on_alert(breach_alert(at=start + timedelta(minutes=25)))
    incident = open_incident()
    return services.set_times(incident_id=incident.pk, version=incident.version, actor="alice", started_at=start)


def _kpis(api_client_for, numbers, by):
    client = api_client_for("kpis:read")
    response = client.get("/api/v1/kpis", {"from": numbers["from"], "to": numbers["to"], "by": by})
    assert response.status_code == 200, response.content
    return response.json()


def test_tactical_draft_numbers_equal_the_kpis_api(seeded, api_client_for):
    update = services.create_draft(incident_id=seeded.pk, actor="alice", audience="tactical")
    numbers = update.numbers
    overall = _kpis(api_client_for, numbers, "arm")
    by_segment = _kpis(api_client_for, numbers, "arm,segment:signup_method")
    treatment = comms.cohort(overall, arm="treatment")["metrics"]
    control = comms.cohort(overall, arm="control")["metrics"]
    seg = comms.cohort(by_segment, arm="treatment", feature="signup_method", segment_value="social_google")["metrics"]

    assert numbers["overall"]["treatment_conversion"] == treatment["conversion"]["value"]
    assert numbers["overall"]["control_conversion"] == control["conversion"]["value"]
    assert numbers["overall"]["conversion_delta"] == treatment["conversion"]["delta"]
    assert numbers["exposure_orders"] == seg["orders"]["value"] == 60
    assert numbers["orders_affected"] == seg["false_decline_rate"]["numerator"] == 20
    assert numbers["gmv_lost_minor"] == seg["gmv_lost_minor"]["value"] > 0
    text = update.sections["conditions"]
    assert comms.pct(treatment["conversion"]["value"]) in text
    assert comms.pp(seg["conversion"]["delta"]) in text
    assert f"{seg['false_decline_rate']['numerator']:,} legitimate orders" in text
    assert comms.money(seg["gmv_lost_minor"]["value"], "EUR") in text
    assert "social_google" in text


def test_every_audience_gets_a_draft_with_live_numbers(seeded):
    for audience in ("executive", "support", "seller"):
        update = services.create_draft(incident_id=seeded.pk, actor="alice", audience=audience)
        body = " ".join(update.sections.values())
        assert seeded.reference in body
        if audience != "support":
            assert comms.money(update.numbers["gmv_lost_minor"], "EUR") in body or audience == "executive"
        assert f"{update.numbers['orders_affected']:,}" in body or audience == "executive"


def test_decision_keeps_the_numbers_of_its_moment(seeded, api_client_for):
    decision = services.record_decision(incident_id=seeded.pk, actor="alice", decision="Exclude social login")
    kpis = _kpis(api_client_for, decision.numbers, "arm")
    assert decision.numbers["overall"]["treatment_orders"] == comms.cohort(kpis, arm="treatment")["metrics"]["orders"]["value"]


def test_exec_summary_and_postmortem_impact_come_from_the_engine(seeded, api_client_for):
    summary = exec_summary.build()
    numbers = summary["impact"]
    by_segment = _kpis(api_client_for, numbers, "arm,segment:signup_method")
    seg = comms.cohort(by_segment, arm="treatment", feature="signup_method", segment_value="social_google")["metrics"]
    assert numbers["orders_affected"] == seg["false_decline_rate"]["numerator"]
    assert summary["impact_fmt"]["gmv_lost"] == comms.money(seg["gmv_lost_minor"]["value"], "EUR")
    conversion = next(r for r in summary["kpis"] if r["name"].startswith("Checkout conversion"))
    window = _kpis(api_client_for, {"from": iso(summary["from"]), "to": iso(summary["now"])}, "arm")
    assert conversion["value"] == comms.pct(comms.cohort(window, arm="treatment")["metrics"]["conversion"]["value"])
    assert conversion["status"] == "breach"  # below the 71.0% baseline
    markdown = postmortem.to_markdown(seeded)
    assert f"Legitimate orders declined or challenged without passing: {seg['false_decline_rate']['numerator']:,}" in markdown
