import pytest

from rollout import services
from rollout.models import AuditEntry, PolicyVersion, RampPlan

pytestmark = pytest.mark.django_db


@pytest.fixture
def writer(rollout_ready, api_client_for):
    return api_client_for("rollout:write", "policy:read")


def act(client, action, params=None, reason="because", **extra):
    body = {"action": action, "params": params or {}, "reason": reason, **extra}
    return client.post_json("/api/v1/rollout/actions", body)


def at_traffic(pct, **kwargs):
    return services.bootstrap_policy(model_version="fraud-gbm-v3", traffic_pct=pct, reason="test start", actor="t",
                                     force=True, **kwargs)


def test_kill_sends_everyone_to_control_in_one_call_and_the_policy_reflects_it_at_once(writer):
    at_traffic(25)
    response = act(writer, "kill", reason="INC-7 containment")
    assert response.status_code == 200
    document = response.json()
    assert document["mode"] == "off" and document["traffic_pct"] == 0.0 and document["reason"] == "INC-7 containment"
    assert writer.get("/api/v1/rollout/policy").json() == document
    assert RampPlan.objects.get().paused
    entry = AuditEntry.objects.filter(action="kill").get()
    assert entry.actor.startswith("token:") and entry.policy_version == document["version"]


def test_repeating_a_kill_or_a_rollback_is_harmless(writer):
    at_traffic(25)
    first = act(writer, "kill").json()
    second = act(writer, "kill")
    assert second.status_code == 200 and second.json()["version"] == first["version"]
    assert AuditEntry.objects.filter(kind="no_change", action="kill").count() == 1


def test_rollback_to_an_earlier_version(writer):
    at_traffic(5)
    act(writer, "set_thresholds", {"step_up": 0.3, "decline": 0.5})
    current = services.current_policy()
    response = act(writer, "rollback", {"to_version": current["version"] - 1}, reason="thresholds too tight")
    assert response.status_code == 200
    assert response.json()["thresholds"] == {"step_up": 0.6, "decline": 0.9}
    assert response.json()["version"] == current["version"] + 1


def test_rollback_to_a_named_stage_lowers_traffic_and_moves_the_plan(writer):
    at_traffic(25)
    response = act(writer, "rollback", {"to_stage": "5%"})
    assert response.status_code == 200 and response.json()["traffic_pct"] == 5.0
    assert services.ramp_status()["current_stage"]["name"] == "5%"
    refused = act(writer, "rollback", {"to_stage": "50%"})
    assert refused.status_code == 409
    unknown = act(writer, "rollback", {"to_stage": "7%"})
    assert unknown.status_code == 400 and "params.to_stage" in unknown.json()["errors"]


def test_lowering_traffic_is_never_blocked_but_raising_it_needs_the_plan(writer):
    at_traffic(25)
    lower = act(writer, "set_traffic", {"traffic_pct": 10})
    assert lower.status_code == 200 and lower.json()["traffic_pct"] == 10.0
    before = services.current_policy()["version"]
    higher = act(writer, "set_traffic", {"traffic_pct": 25})
    assert higher.status_code == 409
    missing = higher.json()["missing"]
    assert any(item.startswith("dwell time: stage 10%") for item in missing)
    assert any(item.startswith("gate scoring-latency-p95") for item in missing)
    for role in ("risk_ops", "engineering", "compliance", "product"):
        assert any(item.startswith("sign-off:") and f"({role})" in item for item in missing)
    assert services.current_policy()["version"] == before
    assert AuditEntry.objects.filter(kind="gate_decision", action="set_traffic_refused").exists()


def test_a_ramp_up_cannot_skip_a_stage(writer):
    at_traffic(5)
    response = act(writer, "set_traffic", {"traffic_pct": 50})
    assert response.status_code == 409
    assert response.json()["missing"][0].startswith("one stage at a time: the next stage is 10%")


def test_exclude_and_include_a_segment(writer):
    at_traffic(25)
    excluded = act(writer, "exclude_segment", {"feature": "signup_method", "in": ["social_google", "social_apple"]})
    assert excluded.status_code == 200
    assert excluded.json()["segment_overrides"] == [
        {"feature": "signup_method", "in": ["social_google", "social_apple"], "arm": "control"}]
    included = act(writer, "include_segment", {"feature": "signup_method", "in": ["social_apple"]})
    assert included.json()["segment_overrides"] == [{"feature": "signup_method", "in": ["social_google"], "arm": "control"}]
    emptied = act(writer, "include_segment", {"feature": "signup_method", "in": ["social_google"]})
    assert emptied.json()["segment_overrides"] == []


def test_set_mode_thresholds_and_fallback(writer):
    assert act(writer, "set_mode", {"mode": "shadow"}).json()["mode"] == "shadow"
    assert act(writer, "set_thresholds", {"step_up": 0.55, "decline": 0.85}).json()["thresholds"] == {
        "step_up": 0.55, "decline": 0.85}
    document = act(writer, "set_fallback", {"fallback": "rules", "timeout_ms": 100}).json()
    assert document["fallback"] == "rules" and document["timeout_ms"] == 100


@pytest.mark.parametrize("body, status, field", [
    ({"action": "explode", "params": {}, "reason": "x"}, 400, "action"),
    ({"action": "kill", "params": {}}, 400, "reason"),
    ({"action": "kill", "params": {}, "reason": "   "}, 400, "reason"),
    ({"action": "set_traffic", "params": {"traffic_pct": 150}, "reason": "x"}, 400, "params.traffic_pct"),
    ({"action": "set_traffic", "params": {"traffic_pct": -1}, "reason": "x"}, 400, "params.traffic_pct"),
    ({"action": "set_traffic", "params": {"traffic_pct": "ten"}, "reason": "x"}, 400, "params.traffic_pct"),
    ({"action": "set_thresholds", "params": {"step_up": 0.95, "decline": 0.9}, "reason": "x"}, 400, "params.step_up"),
    ({"action": "set_thresholds", "params": {"step_up": 0.5, "decline": 1.5}, "reason": "x"}, 400, "params.decline"),
    ({"action": "exclude_segment", "params": {"feature": "shoe_size", "in": ["9"]}, "reason": "x"}, 400, "params.feature"),
    ({"action": "exclude_segment", "params": {"feature": "signup_method", "in": []}, "reason": "x"}, 400, "params.in"),
    ({"action": "exclude_segment", "params": {"feature": "signup_method", "in": ["guest"], "arm": "treatment"},
      "reason": "x"}, 400, "params.arm"),
    ({"action": "set_mode", "params": {"mode": "loud"}, "reason": "x"}, 400, "params.mode"),
    ({"action": "set_fallback", "params": {"fallback": "pray"}, "reason": "x"}, 400, "params.fallback"),
    ({"action": "set_fallback", "params": {"timeout_ms": 0}, "reason": "x"}, 400, "params.timeout_ms"),
    ({"action": "rollback", "params": {}, "reason": "x"}, 400, "params"),
    ({"action": "rollback", "params": {"to_version": 99}, "reason": "x"}, 400, "params.to_version"),
    ({"action": "kill", "params": {}, "reason": "x", "colour": "red"}, 400, "colour"),
])
def test_bad_input_names_the_field_and_changes_nothing(writer, body, status, field):
    before = PolicyVersion.objects.count()
    response = writer.post_json("/api/v1/rollout/actions", body)
    assert response.status_code == status, response.json()
    assert field in response.json()["errors"], response.json()
    assert response.json()["detail"].startswith(field)
    assert PolicyVersion.objects.count() == before


def test_a_stale_expected_version_is_a_conflict(writer):
    act(writer, "set_mode", {"mode": "shadow"})
    response = act(writer, "set_mode", {"mode": "off"}, expected_version=1)
    assert response.status_code == 409 and "stale version" in response.json()["detail"]
    assert services.current_policy()["mode"] == "shadow"
    assert act(writer, "set_mode", {"mode": "off"}, expected_version=2).status_code == 200


def test_malformed_json_and_content_type(writer):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {writer.token}"}
    response = writer.post("/api/v1/rollout/actions", "{nope", content_type="application/json", **auth)
    assert response.status_code == 400 and "body" in response.json()["errors"]
    assert writer.post("/api/v1/rollout/actions", "a=b", content_type="text/plain", **auth).status_code == 415


@pytest.mark.parametrize("role", ["support", "leadership", "compliance"])
def test_roles_without_rollout_write_cannot_change_anything(rollout_ready, user_client, role):
    client = user_client(role)
    response = client.post_json("/api/v1/rollout/actions", {"action": "kill", "params": {}, "reason": "x"})
    assert response.status_code == 403
    assert client.post("/rollout/ramp/advance", {"reason": "x"}).status_code == 403
    assert services.current_policy()["version"] == 1


def test_a_token_without_rollout_write_is_refused(rollout_ready, api_client_for):
    response = api_client_for("policy:read").post_json("/api/v1/rollout/actions",
                                                       {"action": "kill", "params": {}, "reason": "x"})
    assert response.status_code == 403


def test_risk_ops_in_the_browser_can_kill(rollout_ready, user_client):
    at_traffic(5)
    client = user_client("risk_ops")
    response = client.post_json("/api/v1/rollout/actions", {"action": "kill", "params": {}, "reason": "browser"})
    assert response.status_code == 200
    assert AuditEntry.objects.filter(action="kill").get().actor == client.user.username


def test_every_change_is_announced_after_commit(writer, django_capture_on_commit_callbacks):
    from shopswift_ops import live

    seen = []
    live.subscribe("policy", seen.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            document = act(writer, "set_mode", {"mode": "shadow"}, reason="announce me").json()
    finally:
        live._subscribers["policy"].remove(seen.append)
    assert len(seen) == 1
    assert seen[0]["version"] == document["version"] and seen[0]["policy"] == document
    assert seen[0]["action"] == "set_mode" and seen[0]["reason"] == "announce me" and seen[0]["actor"].startswith("token:")
