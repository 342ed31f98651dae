"""/api/v1/incidents and /api/v1/incidents/{id} against CONTRACT section 6."""
from datetime import UTC, datetime

import pytest
from django.utils.dateparse import parse_datetime

from incidents import services
from shopswift_ops.openapi import document
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
SUMMARY_KEYS = {"id", "title", "severity", "status", "opened_at", "detected_at", "mitigated_at", "resolved_at",
                "affected_population", "url"}


def _rfc3339(value):
    return value is None or (value.endswith("Z") and parse_datetime(value).tzinfo is not None)


def test_list_follows_the_contract(api_client_for, incident):
    response = api_client_for("incidents:read").get("/api/v1/incidents?status=open")
    assert response.status_code == 200
    [item] = response.json()["incidents"]
    assert SUMMARY_KEYS <= set(item)
    assert item["id"] == incident.pk and item["severity"] == "SEV2" and item["status"] == "investigating"
    assert item["url"] == f"/incidents/{incident.pk}/"
    assert item["affected_population"]["segment"] == {"feature": "signup_method", "in": ["social_google"]}
    assert all(_rfc3339(item[k]) for k in ("opened_at", "detected_at", "mitigated_at", "resolved_at"))


def test_status_filter(api_client_for, incident):
    client = api_client_for("incidents:read")
    assert client.get("/api/v1/incidents?status=resolved").json() == {"incidents": []}
    services.change_status(incident_id=incident.pk, version=incident.version, status="resolved", actor="a")
    assert [i["status"] for i in client.get("/api/v1/incidents?status=resolved").json()["incidents"]] == ["resolved"]
    assert client.get("/api/v1/incidents?status=open").json() == {"incidents": []}
    assert len(client.get("/api/v1/incidents?status=all").json()["incidents"]) == 1
    bad = client.get("/api/v1/incidents?status=maybe")
    assert bad.status_code == 400 and "status" in bad.json()["detail"]


def test_detail_has_timeline_in_order_decisions_action_items_and_published_updates(api_client_for, incident):
    owner = UserFactory(role="engineering")
    services.add_note(incident_id=incident.pk, actor=owner, text="checked feature health")
    services.record_decision(incident_id=incident.pk, actor=owner, decision="Exclude social login",
                             options=[{"option": "kill", "expected_effect": "lose model benefit"}],
                             trade_offs="conversion over fraud exposure", consulted="Risk, Compliance")
    services.add_action_item(incident_id=incident.pk, actor=owner, kind="corrective", title="backfill",
                             owner=owner, due_on=datetime(2026, 12, 5, tzinfo=UTC).date())
    draft = services.create_draft(incident_id=incident.pk, actor=owner, audience="executive")
    services.create_draft(incident_id=incident.pk, actor=owner, audience="tactical")  # stays a draft
    services.publish_update(update_id=draft.pk, actor=owner)
    body = api_client_for("incidents:read").get(f"/api/v1/incidents/{incident.pk}").json()
    assert SUMMARY_KEYS | {"timeline", "decisions", "action_items", "status_updates"} <= set(body)
    ats = [parse_datetime(e["at"]) for e in body["timeline"]]
    assert ats == sorted(ats)
    assert all(set(e) >= {"at", "kind", "source", "text"} for e in body["timeline"])
    assert {e["source"] for e in body["timeline"]} >= {"system", owner.username}
    assert body["decisions"][0]["decision"] == "Exclude social login"
    assert body["decisions"][0]["numbers"]["from"]  # the numbers at that moment
    assert body["action_items"][0]["owner"] == owner.username
    assert [u["audience"] for u in body["status_updates"]] == ["executive"]
    assert set(body["status_updates"][0]["sections"]) == {"status", "overview", "next_steps"}


def test_auth_scope_and_not_found(api_client_for, client, incident):
    assert client.get("/api/v1/incidents").status_code == 401
    assert api_client_for("kpis:read").get("/api/v1/incidents").status_code == 403
    missing = api_client_for("incidents:read").get("/api/v1/incidents/999999")
    assert missing.status_code == 404 and "detail" in missing.json()


def test_support_session_sees_only_support_wording(user_client, incident):
    for audience in ("support", "executive", "tactical"):
        update = services.create_draft(incident_id=incident.pk, actor="a", audience=audience)
        services.publish_update(update_id=update.pk, actor="a")
    support = user_client("support").get(f"/api/v1/incidents/{incident.pk}").json()
    assert [u["audience"] for u in support["status_updates"]] == ["support"]
    leadership = user_client("leadership").get(f"/api/v1/incidents/{incident.pk}").json()
    assert len(leadership["status_updates"]) == 3


def test_openapi_documents_both_endpoints():
    paths = document()["paths"]
    assert "/api/v1/incidents" in paths and "/api/v1/incidents/{incident_id}" in paths
    schema = document()["components"]["schemas"]["IncidentSummary"]
    assert set(schema["required"]) == SUMMARY_KEYS
