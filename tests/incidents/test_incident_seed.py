"""The seed incident through the whole product: the simulator's events go through ingest, the
rollups and the guardrail evaluation; the breach reaches rollout (containment) and incidents (the
record fills itself: timeline, automatic decision, hypotheses with evidence, drafts, exec summary)."""
import json
from datetime import UTC, datetime, timedelta

import pytest

from incidents import exec_summary, services
from incidents.selectors import open_incident, timeline
from metrics.guardrails import evaluate
from metrics.ingest import ingest_body
from metrics.rollups import refresh
from rollout import services as rollout_services
from rollout.simulator.generator import generate
from rollout.simulator.scenario import SCENARIO_DIR, parse_scenario

pytestmark = pytest.mark.django_db
RAMP_MINUTE = 40


def _store(events, now):
    for offset in range(0, len(events), 5000):
        result = ingest_body(json.dumps({"events": events[offset:offset + 5000]}).encode(), now=now)
        assert not result.rejected, result.rejected[:3]


def test_seed_incident_opens_and_fills_an_incident(django_capture_on_commit_callbacks):
    data = json.loads((SCENARIO_DIR / "seed-incident.json").read_text())
    scenario = parse_scenario(data, source="seed-incident")
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=RAMP_MINUTE + 20)
    ramp_at = start + timedelta(minutes=RAMP_MINUTE)
    events = list(generate(scenario, seed=5, start=start, duration_minutes=RAMP_MINUTE + 15, rate=2.0, until=now,
                           include_late_outcomes=False, id_prefix="incseed"))
    at = lambda e: datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00"))  # noqa: E731
    with django_capture_on_commit_callbacks(execute=True):
        rollout_services.bootstrap_policy(model_version="fraud-gbm-v3", traffic_pct=50, reason="ramp to 50%",
                                          actor="alice", force=True)
    _store([e for e in events if at(e) < ramp_at], now)
    refresh()
    evaluate(now=ramp_at)
    assert open_incident() is None
    clock = ramp_at
    post = [e for e in events if at(e) >= ramp_at]
    while open_incident() is None and clock < ramp_at + timedelta(minutes=15):
        clock += timedelta(minutes=1)
        _store([e for e in post if clock - timedelta(minutes=1) <= at(e) < clock], now)
        with django_capture_on_commit_callbacks(execute=True):
            refresh()
            evaluate(now=clock)
    incident = open_incident()
    assert incident is not None, "no guardrail breach within 15 simulated minutes of the ramp"
    kinds = [e.kind for e in timeline(incident)]
    assert "alert" in kinds and "policy_change" in kinds and "incident_opened" in kinds
    assert incident.affected_population["arm"] == "treatment"
    # Hypotheses carry the KPI engine's evidence; feature drift names the broken feature.
    drift = incident.hypotheses.get(kind="feature_drift")
    assert drift.evidence.get("summary")
    # The simulated world runs in the past, so the estimated start (the real-time ramp) is after its
    # events: the responder corrects it to the simulated ramp, as they would from the evidence.
    incident = services.set_times(incident_id=incident.pk, version=incident.version, actor="alice",
                                  started_at=ramp_at)
    # Drafts and the exec summary quote live numbers.
    update = services.create_draft(incident_id=incident.pk, actor="alice", audience="executive")
    assert update.numbers["overall"]["treatment_orders"] > 0
    summary = exec_summary.build()
    assert summary["incident"] == incident and summary["kpis"]
    assert summary["impact"]["overall"]["treatment_orders"] == update.numbers["overall"]["treatment_orders"]
    if rollout_services.current_policy()["version"] > 2:  # the breach's action changed the policy
        assert incident.mitigated_at is not None and incident.decisions.filter(recorded_by="guardrail").exists()
