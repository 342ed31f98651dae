from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from rollout import services
from rollout.models import AuditEntry, RampPlan
from tests.rollout.conftest import sign

pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def start_active(pct=0.0):
    return services.bootstrap_policy(model_version="fraud-gbm-v3", traffic_pct=pct, reason="start", actor="t", force=True)


def test_the_default_plan_and_what_the_start_waits_for(rollout_ready):
    status = services.ramp_status()
    assert [s["traffic_pct"] for s in status["stages"]] == [1, 5, 10, 25, 50, 100]
    assert all(s["required_roles"] == ["risk_ops", "engineering", "compliance", "product"] for s in status["stages"])
    assert all(s["gates"] for s in status["stages"]) and status["stages"][0]["min_dwell_minutes"] > 0
    assert status["current_stage"] is None and status["next_stage"]["name"] == "1%"
    assert not status["can_advance"]
    assert status["signoffs"]["missing"] == ["risk_ops", "engineering", "compliance", "product"]


def test_advancing_with_everything_present_moves_stage_and_traffic(simple_plan, people):
    simple_plan()
    start_active(0)
    services.request_advance(actor="risk_ops-person", comment="ready for 1%")
    sign({"risk_ops": "risk_ops-person", "engineering": "engineering-person"})
    assert services.ramp_status()["can_advance"]
    document = services.advance(actor="risk_ops-person", reason="start the ramp")
    assert document["traffic_pct"] == 1.0 and document["mode"] == "active"
    status = services.ramp_status()
    assert status["current_stage"]["name"] == "1%"
    assert status["signoffs"]["present"] == [], "sign-offs belong to the stage they were given for"
    assert AuditEntry.objects.filter(kind="gate_decision", action="advance_allowed").exists()


def test_starting_from_off_switches_the_model_on(simple_plan, people):
    simple_plan(roles=("risk_ops", "product"))
    sign({"risk_ops": "risk_ops-person", "product": "product-person"})
    document = services.advance(actor="engineering-person", reason="go")
    assert document["mode"] == "active" and document["traffic_pct"] == 1.0


def test_four_eyes_the_requester_cannot_sign_off_alone(simple_plan, people):
    simple_plan(roles=("risk_ops",))
    start_active(0)
    services.request_advance(actor="risk_ops-person")
    sign({"risk_ops": "risk_ops-person"})
    with pytest.raises(services.ActionError) as refused:
        services.advance(actor="risk_ops-person", reason="me, myself")
    assert refused.value.status == 409
    assert refused.value.missing == ["four-eyes: a sign-off by someone other than risk_ops-person"]
    # Another person performing the advance does not help: the only sign-off is still the requester's.
    with pytest.raises(services.ActionError) as again:
        services.advance(actor="product-person", reason="on their behalf")
    assert any(m.startswith("four-eyes") for m in again.value.missing)


def test_four_eyes_is_met_by_a_second_person(simple_plan, people):
    simple_plan(roles=("risk_ops",))
    start_active(0)
    services.request_advance(actor="product-person")
    sign({"risk_ops": "risk_ops-person"})
    assert services.advance(actor="product-person", reason="two people agreed")["traffic_pct"] == 1.0


def test_a_signoff_expires_when_the_policy_is_edited(simple_plan, people):
    simple_plan()
    start_active(0)
    sign({"risk_ops": "risk_ops-person"})
    assert services.ramp_status()["signoffs"]["missing"] == ["engineering"]
    services.apply_action(action="set_thresholds", params={"step_up": 0.5, "decline": 0.8}, reason="tune", actor="t")
    assert services.ramp_status()["signoffs"]["missing"] == ["risk_ops", "engineering"]


def test_a_signoff_expires_when_the_plan_is_edited(simple_plan, people):
    simple_plan()
    sign({"risk_ops": "risk_ops-person"})
    simple_plan(dwell=5)
    assert services.ramp_status()["signoffs"]["present"] == []


def test_sign_off_only_for_a_required_role_and_only_once(simple_plan, people):
    simple_plan(roles=("risk_ops",))
    with pytest.raises(services.ActionError) as not_required:
        services.sign_off(username="compliance-person", role="compliance")
    assert not_required.value.status == 403
    sign({"risk_ops": "risk_ops-person"})
    with pytest.raises(services.ActionError) as twice:
        services.sign_off(username="other", role="risk_ops")
    assert twice.value.status == 409
    with pytest.raises(services.ActionError) as stale:
        services.sign_off(username="x", role="risk_ops", stage=3)
    assert stale.value.status == 409


def test_dwell_time_is_respected(simple_plan, people):
    with time_machine.travel(START, tick=False) as clock:
        simple_plan(dwell=30)
        start_active(1)
        sign({"risk_ops": "risk_ops-person", "engineering": "engineering-person"})
        with pytest.raises(services.ActionError) as early:
            services.advance(actor="product-person", reason="too early")
        assert early.value.missing == ["dwell time: stage 1% needs 30 more minute(s) (until 2026-11-28T09:30:00Z)"]
        assert services.ramp_status()["dwell_seconds_left"] == 1800
        clock.shift(timedelta(minutes=31))
        assert services.advance(actor="product-person", reason="dwell done")["traffic_pct"] == 5.0


def test_missing_gate_data_never_passes(simple_plan, people):
    simple_plan(gates=("latency_p95_ms",))
    start_active(1)
    sign({"risk_ops": "risk_ops-person", "engineering": "engineering-person"})
    status = services.ramp_status()
    assert status["gates"][0]["passing"] is False and status["gates"][0]["missing_data"] is True
    with pytest.raises(services.ActionError) as refused:
        services.advance(actor="product-person", reason="no data")
    assert refused.value.missing[0].startswith("gate latency_p95_ms: ")


def test_auto_advance_when_dwell_gates_and_signoffs_are_present(simple_plan, people):
    with time_machine.travel(START, tick=False) as clock:
        simple_plan(dwell=10)
        start_active(1)
        services.request_advance(actor="product-person")
        sign({"risk_ops": "risk_ops-person", "engineering": "engineering-person"})
        assert services.auto_advance() == "waiting: dwell time"
        clock.shift(timedelta(minutes=11))
        assert services.auto_advance() == "advanced to 5%"
        assert services.current_policy()["traffic_pct"] == 5.0
        assert services.current_policy()["reason"].startswith("ramp plan: stage 1% passed")
        # The new stage needs new sign-offs: nothing happens on the next beat.
        clock.shift(timedelta(minutes=11))
        assert services.auto_advance().startswith("waiting: sign-off")


def test_missing_data_extends_the_stage_then_pauses_the_plan(simple_plan, people):
    with time_machine.travel(START, tick=False) as clock:
        simple_plan(dwell=10, gates=("fallback_rate",))
        services.edit_plan(actor="t", reason="short limit", missing_data_limit_minutes=30)
        start_active(1)
        sign({"risk_ops": "risk_ops-person", "engineering": "engineering-person"})
        clock.shift(timedelta(minutes=11))
        assert services.auto_advance().startswith("extended: missing data for fallback_rate")
        assert services.ramp_status()["waiting_for_data_since"] == "2026-11-28T09:11:00Z"
        clock.shift(timedelta(minutes=31))
        outcome = services.auto_advance()
        assert outcome.startswith("paused: gates fallback_rate had no sufficient data for 30 minutes")
        plan = RampPlan.objects.get()
        assert plan.paused and "fallback_rate" in plan.paused_reason
        assert services.current_policy()["traffic_pct"] == 1.0
        assert AuditEntry.objects.filter(kind="gate_decision", action="plan_paused").exists()
        assert AuditEntry.objects.filter(kind="gate_decision", action="stage_extended").count() == 1


def test_a_paused_plan_refuses_ramp_ups_until_resumed(simple_plan, people):
    simple_plan(roles=("risk_ops",))
    start_active(1)
    services.pause_plan(actor="risk_ops-person", reason="investigating")
    services.request_advance(actor="product-person")
    sign({"risk_ops": "risk_ops-person"})
    with pytest.raises(services.ActionError) as refused:
        services.advance(actor="product-person", reason="go")
    assert refused.value.missing == ["plan paused: investigating (resume the plan first)"]
    services.resume_plan(actor="risk_ops-person", reason="clear")
    assert services.advance(actor="product-person", reason="go")["traffic_pct"] == 5.0


def test_plan_edits_are_validated(rollout_ready):
    with pytest.raises(services.ActionError) as bad:
        services.edit_plan(stages=[{"name": "a", "traffic_pct": 5, "min_dwell_minutes": 0},
                                   {"name": "b", "traffic_pct": 2, "min_dwell_minutes": 0}], actor="t", reason="x")
    assert bad.value.errors == {"stages[1].traffic_pct": "stages must increase (after 5%)"}
    with pytest.raises(services.ActionError) as role:
        services.edit_plan(stages=[{"name": "a", "traffic_pct": 5, "min_dwell_minutes": 0, "required_roles": ["support"]}],
                           actor="t", reason="x")
    assert "stages[0].required_roles" in role.value.errors


def test_ramp_status_api(rollout_ready, api_client_for):
    body = api_client_for("policy:read").get("/api/v1/rollout/ramp").json()
    assert body["next_stage"]["name"] == "1%" and body["can_advance"] is False and body["missing"]


def test_signoff_and_advance_over_http(simple_plan, user_client):
    simple_plan(roles=("risk_ops",))
    product = user_client("product")
    assert product.post_json("/api/v1/rollout/ramp/request-advance", {"comment": "please"}).status_code == 200
    risk = user_client("risk_ops")
    response = risk.post_json("/api/v1/rollout/ramp/signoffs", {"comment": "ok", "stage": -1})
    assert response.status_code == 200 and response.json()["signoffs"]["missing"] == []
    refused = product.post_json("/api/v1/rollout/ramp/signoffs", {"comment": "me too"})
    assert refused.status_code == 403
    advanced = product.post_json("/api/v1/rollout/ramp/advance", {"reason": "signed"})
    assert advanced.status_code == 200 and advanced.json()["traffic_pct"] == 1.0


def test_advance_refusal_over_http_lists_what_is_missing(rollout_ready, api_client_for):
    response = api_client_for("rollout:write").post_json("/api/v1/rollout/ramp/advance", {"reason": "try"})
    assert response.status_code == 409
    assert "sign-off: Risk Ops (risk_ops)" in response.json()["missing"]


@pytest.mark.parametrize("role", ["support", "leadership"])
def test_support_and_leadership_cannot_sign_off(rollout_ready, user_client, role):
    client = user_client(role)
    assert client.post_json("/api/v1/rollout/ramp/signoffs", {"comment": "x"}).status_code == 403
    assert client.post("/rollout/ramp/sign-off", {"comment": "x"}).status_code == 403


def test_tokens_cannot_sign_off(rollout_ready, api_client_for):
    client = api_client_for("rollout:write")
    assert client.post_json("/api/v1/rollout/ramp/signoffs", {"comment": "x"}).status_code == 403
