import pytest

from rollout import guardrail_actions, services
from rollout.models import AuditEntry, GuardrailActionRecord, PolicyVersion

pytestmark = pytest.mark.django_db


def alert(alert_id, action, segment=None, name="false-decline-proxy"):
    return {"alert_id": alert_id, "guardrail": name, "metric": "false_decline_rate", "segment": segment,
            "status": "breach", "action": action, "evidence": "treatment 4.1% vs control 1.2% (n=812/790)"}


@pytest.fixture
def at_25(rollout_ready):
    return services.bootstrap_policy(model_version="m", traffic_pct=25, reason="start", actor="t", force=True)


def test_a_repeated_alert_acts_once(at_25):
    payload = alert(41, "kill")
    first = guardrail_actions.handle_alert(payload)
    versions = PolicyVersion.objects.count()
    second = guardrail_actions.handle_alert(payload)
    assert first == "killed: everyone to control" and second == "duplicate: already handled"
    assert PolicyVersion.objects.count() == versions
    document = services.current_policy()
    assert document["mode"] == "off"
    assert document["reason"] == "guardrail false-decline-proxy breached: treatment 4.1% vs control 1.2% (n=812/790)"
    assert PolicyVersion.objects.get(version=document["version"]).actor == "guardrail"
    assert GuardrailActionRecord.objects.get(alert_id=41).policy_version == document["version"]
    assert AuditEntry.objects.filter(kind="guardrail").count() == 1


def test_exclude_segment_alert_excludes_that_segment_and_halts_the_ramp(at_25):
    outcome = guardrail_actions.handle_alert(alert(42, "exclude_segment", {"feature": "signup_method",
                                                                             "value": "social_google"}))
    assert outcome == "excluded signup_method=social_google"
    document = services.current_policy()
    assert document["segment_overrides"] == [{"feature": "signup_method", "in": ["social_google"], "arm": "control"}]
    assert document["traffic_pct"] == 25.0
    assert services.ramp_status()["paused"]


def test_exclude_segment_alert_on_a_pooled_population_excludes_every_value(at_25):
    outcome = guardrail_actions.handle_alert(alert(44, "exclude_segment", {
        "feature": "signup_method", "value": "social_apple|social_google", "in": ["social_apple", "social_google"]}))
    assert outcome == "excluded signup_method in (social_apple, social_google)"
    document = services.current_policy()
    assert document["segment_overrides"] == [{"feature": "signup_method", "in": ["social_apple", "social_google"],
                                              "arm": "control"}]


def test_rollback_stage_alert_steps_back_one_stage(at_25):
    assert guardrail_actions.handle_alert(alert(43, "rollback_stage")) == "rolled back to 10%"
    assert services.current_policy()["traffic_pct"] == 10.0
    assert services.ramp_status()["current_stage"]["name"] == "10%"
    assert guardrail_actions.handle_alert(alert(43, "rollback_stage")) == "duplicate: already handled"
    assert services.current_policy()["traffic_pct"] == 10.0


def test_halt_ramp_and_notify_change_no_policy(at_25):
    version = services.current_policy()["version"]
    assert guardrail_actions.handle_alert(alert(44, "halt_ramp", name="conversion")) == "ramp halted"
    assert services.ramp_status()["paused_reason"].startswith("guardrail conversion breached")
    assert guardrail_actions.handle_alert(alert(45, "notify")) == "notified (no policy change)"
    assert services.current_policy()["version"] == version


def test_the_subscriber_is_registered_on_alerts():
    from shopswift_ops import live

    assert guardrail_actions.handle_alert in live._subscribers["alerts"]


def test_non_breach_and_malformed_payloads_are_ignored(at_25):
    assert guardrail_actions.handle_alert({**alert(46, "kill"), "status": "ok"}) == "ignored: not a breach"
    assert guardrail_actions.handle_alert({**alert(47, "kill"), "action": "nuke"}) == "ignored: malformed"
    assert services.current_policy()["mode"] == "active"
