"""End to end through the real publishers: a breach announced by metrics reaches rollout (which
contains it) and incidents (which opens the incident and records the containment as mitigation)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import TimelineEntry
from incidents.selectors import open_incident, timeline
from rollout import services as rollout_services
from shopswift_ops import live
from tests.incidents.conftest import breach_alert

pytestmark = pytest.mark.django_db


def test_breach_to_contained_incident(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        rollout_services.bootstrap_policy(model_version="fraud-gbm-v3", traffic_pct=50, reason="seed: 50% ramp",
                                          actor="alice")
    ramp = open_incident()
    assert ramp is None  # a policy change alone opens nothing
    alert = breach_alert(alert_id=424242, action="exclude_segment")
    alert.pop("at")
    alert["created_at"] = timezone.now().isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        live.announce("alerts", alert)
    incident = open_incident()
    assert incident is not None
    policy = rollout_services.current_policy()
    assert policy["segment_overrides"][0]["in"] == ["social_google"]  # rollout contained it
    entries = timeline(incident)
    keys = [e.source_key for e in entries]
    assert keys.count(f"policy:{policy['version']}") == 1  # the containment
    assert keys.count(f"policy:{policy['version'] - 1}") == 1  # the 50% ramp that preceded it
    assert keys.count("alert:424242") == 1
    assert incident.mitigated_at is not None and incident.mitigated_at >= incident.detected_at - timedelta(seconds=1)
    assert incident.started_at <= incident.detected_at  # estimated from the ramp
    assert incident.affected_population["to"] is not None
    # The guardrail's automatic containment is in the decision log, linked to its policy version.
    [decision] = incident.decisions.all()
    assert decision.policy_version == policy["version"] and decision.recorded_by == "guardrail"
    assert "guardrail" in decision.rationale and decision.numbers["from"]
    # The three competing hypotheses are open, each with the KPI engine's evidence.
    assert sorted(h.kind for h in incident.hypotheses.all()) == ["feature_drift", "latency", "thresholds"]
    assert all(h.evidence.get("summary") for h in incident.hypotheses.all())
    # Redelivery changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        live.announce("alerts", alert)
    assert TimelineEntry.objects.filter(incident=incident, source_key="alert:424242").count() == 1
    assert rollout_services.current_policy()["version"] == policy["version"]
    assert incident.decisions.count() == 1 and incident.hypotheses.count() == 3
