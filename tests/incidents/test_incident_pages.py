"""Incident pages and actions: who may read, who may change, and what a responder does."""
import re
from datetime import date, timedelta

import pytest

from incidents import services
from incidents.models import DecisionRecord, Incident, StatusUpdate, TimelineEntry
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _do(client, incident, action, data):
    return client.post(f"/incidents/{incident.pk}/do/{action}/", data)


def test_responder_runs_the_response_from_the_page(responder, incident):
    page = responder.get(f"/incidents/{incident.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Timeline" in html and "Decision log" in html and "Relaunch plan" in html and "SEV2" in html
    assert "<script>" not in html  # CSP: no inline script
    assert _do(responder, incident, "note", {"text": "feature health shows account_age_days=0",
                                             "link": "/war-room/?range=1h", "kind": "evidence"}).status_code == 302
    assert _do(responder, incident, "hypothesis", {"kind": "latency", "statement": "timeouts push to fallback"}).status_code == 302
    assert _do(responder, incident, "decision", {
        "decision": "Keep the model for other segments", "rationale": "their conversion holds",
        "option": ["kill", "exclude"], "expected_effect": ["no model anywhere", "social login to control"],
        "trade_offs": "fraud exposure vs conversion", "consulted": "Compliance"}).status_code == 302
    owner = UserFactory(role="engineering")
    assert _do(responder, incident, "action-item", {"kind": "preventive", "title": "schema contract test",
                                                    "owner": owner.pk, "due_on": "2026-12-20"}).status_code == 302
    assert _do(responder, incident, "draft", {"audience": "support"}).status_code == 302
    update = StatusUpdate.objects.get(incident=incident)
    assert _do(responder, incident, "edit-update", {"update": update.pk, "message": "We are on it.",
                                                    "publish": "1"}).status_code == 302
    update.refresh_from_db()
    assert update.is_published and update.sections == {"message": "We are on it."}
    assert _do(responder, incident, "exit-criterion", {"text": "shadow mode clean for 12 hours"}).status_code == 302
    decision = DecisionRecord.objects.get(incident=incident)
    assert decision.options == [{"option": "kill", "expected_effect": "no model anywhere"},
                                {"option": "exclude", "expected_effect": "social login to control"}]
    kinds = list(TimelineEntry.objects.filter(incident=incident).values_list("kind", flat=True))
    for kind in ("evidence", "hypothesis", "decision", "action_item", "status_update", "exit_criterion"):
        assert kind in kinds
    html = responder.get(f"/incidents/{incident.pk}/").content.decode()
    assert "We are on it." in html and "schema contract test" in html


def test_decision_carried_out_through_rollout_links_the_policy_version(responder, incident):
    from rollout import services as rollout_services

    before = rollout_services.current_policy()["version"]
    response = _do(responder, incident, "decision", {"decision": "Exclude social-login accounts",
                                                     "carry_out_action": "exclude_segment"})
    assert response.status_code == 302, response.content
    decision = DecisionRecord.objects.get(incident=incident)
    policy = rollout_services.current_policy()
    assert decision.policy_version == policy["version"] == before + 1
    assert policy["segment_overrides"] == [{"feature": "signup_method", "in": ["social_google"], "arm": "control"}]
    assert incident.reference in policy["reason"]


def test_bad_input_is_a_400_naming_the_field(responder, incident):
    response = _do(responder, incident, "action-item", {"kind": "corrective", "title": "x", "owner": "",
                                                        "due_on": "2026-12-01"})
    assert response.status_code == 400 and b"owner" in response.content
    response = _do(responder, incident, "status", {"status": "done", "version": incident.version})
    assert response.status_code == 400 and b"status:" in response.content
    response = _do(responder, incident, "status", {"status": "identified", "version": incident.version + 5})
    assert response.status_code == 409
    assert _do(responder, incident, "bogus", {}).status_code == 404


def test_system_entries_filter_lives_in_the_url(responder, incident):
    services.add_note(incident_id=incident.pk, actor="alice", text="a person's note")
    full = responder.get(f"/incidents/{incident.pk}/").content.decode()
    people = responder.get(f"/incidents/{incident.pk}/?system=0").content.decode()
    assert "Guardrail feature_health_account_age_days" in full and "a person&#x27;s note" in full
    assert "Guardrail feature_health_account_age_days" not in people and "a person&#x27;s note" in people


def test_times_are_utc_with_a_local_time_hook(responder, incident):
    html = responder.get(f"/incidents/{incident.pk}/").content.decode()
    assert re.search(r'<time datetime="[^"]+\+00:00" data-local>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>', html)


def test_timeline_partial_renders_alone(responder, incident):
    response = responder.get(f"/incidents/{incident.pk}/?partial=timeline")
    html = response.content.decode()
    assert response.status_code == 200 and 'id="timeline"' in html and "<html" not in html


@pytest.mark.parametrize("role", ["leadership", "support", "compliance"])
def test_readers_read_but_cannot_change(user_client, incident, role):
    client = user_client(role)
    page = client.get(f"/incidents/{incident.pk}/")
    assert page.status_code == 200
    assert b"Add entry" not in page.content and b"Record decision" not in page.content
    for action, data in [("note", {"text": "x"}), ("status", {"status": "resolved", "version": 1}),
                         ("draft", {"audience": "support"})]:
        assert _do(client, incident, action, data).status_code == 403
    assert client.post("/incidents/new/", {"title": "x", "severity": "SEV3"}).status_code == 403
    assert TimelineEntry.objects.filter(incident=incident, source=client.user.username).count() == 0


def test_support_sees_only_the_support_wording(user_client, incident):
    for audience, text in [("support", "Tell buyers to retry"), ("executive", "Board-level overview")]:
        update = services.create_draft(incident_id=incident.pk, actor="a", audience=audience)
        services.edit_draft(update_id=update.pk, actor="a", sections={"message": text, "status": text,
                                                                      "overview": text, "next_steps": text})
        services.publish_update(update_id=update.pk, actor="a")
    support = user_client("support").get(f"/incidents/{incident.pk}/").content.decode()
    assert "Tell buyers to retry" in support and "Board-level overview" not in support
    leadership = user_client("leadership").get(f"/incidents/{incident.pk}/").content.decode()
    assert "Board-level overview" in leadership


def test_drafts_are_hidden_from_readers(user_client, incident):
    services.create_draft(incident_id=incident.pk, actor="a", audience="support")
    assert b'data-testid="status-update"' not in user_client("support").get(f"/incidents/{incident.pk}/").content
    assert b'data-testid="status-update"' in user_client("risk_ops").get(f"/incidents/{incident.pk}/").content


def test_open_manually_and_list(responder):
    response = responder.post("/incidents/new/", {"title": "Latency spike", "severity": "SEV3"})
    assert response.status_code == 302
    incident = Incident.objects.get()
    assert incident.commander == responder.user
    listing = responder.get("/incidents/?status=open").content.decode()
    assert "Latency spike" in listing and "SEV1" in listing  # severity definitions shown
    again = responder.post("/incidents/new/", {"title": "Another", "severity": "SEV3"})
    assert Incident.objects.count() == 1 and again.status_code == 302


def test_postmortem_page_and_markdown_export(responder, user_client, incident):
    owner = UserFactory(role="engineering")
    services.add_action_item(incident_id=incident.pk, actor="a", kind="corrective", title="restore schema",
                             owner=owner, due_on=date.today() - timedelta(days=1))
    assert _do(responder, incident, "postmortem", {"root_cause": "streaming job schema change"}).status_code == 302
    page = user_client("leadership").get(f"/incidents/{incident.pk}/postmortem/")
    assert page.status_code == 200 and b"streaming job schema change" in page.content
    export = user_client("leadership").get(f"/incidents/{incident.pk}/postmortem.md")
    text = export.content.decode()
    assert export["Content-Type"].startswith("text/markdown")
    assert text.startswith(f"# Postmortem INC-{incident.pk}")
    assert "## Root cause\n\nstreaming job schema change" in text
    assert "| restore schema | corrective |" in text and "(overdue)" in text
    assert "## Timeline (UTC)" in text and "Guardrail feature_health_account_age_days" in text
    assert "time to detect" in text
