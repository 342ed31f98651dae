import csv
import io

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from rollout import services
from rollout.models import AuditEntry, PolicyVersion

pytestmark = pytest.mark.django_db


def test_the_audit_log_refuses_update_and_delete_at_the_database(rollout_ready):
    entry = AuditEntry.objects.order_by("id").first()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE rollout_auditentry SET reason = 'rewritten' WHERE id = %s", [entry.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(actor="someone else")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).reason == entry.reason


def test_policy_versions_are_immutable_at_the_database(rollout_ready):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        PolicyVersion.objects.filter(version=1).update(traffic_pct=100)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        PolicyVersion.objects.filter(version=1).delete()


def test_every_version_action_signoff_and_refusal_is_audited(rollout_ready, people):
    services.apply_action(action="set_mode", params={"mode": "shadow"}, reason="shadow", actor="a")
    services.sign_off(username="risk_ops-person", role="risk_ops", comment="fine")
    with pytest.raises(services.ActionError):
        services.apply_action(action="set_traffic", params={"traffic_pct": 50}, reason="yolo", actor="b")
    kinds = list(AuditEntry.objects.order_by("id").values_list("kind", "action", "actor"))
    assert ("policy", "set_mode", "a") in kinds
    assert ("signoff", "sign_off", "risk_ops-person") in kinds
    assert ("gate_decision", "set_traffic_refused", "b") in kinds


def test_the_audit_page_filters_by_url_and_exports_csv(rollout_ready, user_client):
    services.apply_action(action="set_mode", params={"mode": "shadow"}, reason="shadow mode for INC-7", actor="alice")
    services.apply_action(action="set_thresholds", params={"step_up": 0.5, "decline": 0.8}, reason="tune", actor="bob")
    client = user_client("compliance")
    page = client.get("/rollout/audit/", {"actor": "alice"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "shadow mode for INC-7" in text and "tune" not in text
    bad = client.get("/rollout/audit/", {"from": "yesterday-ish"})
    assert "from: a date" in bad.content.decode()
    export = client.get("/rollout/audit.csv", {"kind": "policy"})
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:3] == ["id", "at_utc", "kind"]
    assert {row[4] for row in rows[1:]} == {"initial", "set_mode", "set_thresholds"}


@pytest.mark.parametrize("role, status", [("compliance", 200), ("risk_ops", 200), ("product", 403), ("support", 403),
                                          ("leadership", 403)])
def test_audit_log_is_for_compliance_and_risk_ops(rollout_ready, user_client, role, status):
    client = user_client(role)
    assert client.get("/rollout/audit/").status_code == status
    assert client.get("/rollout/audit.csv").status_code == status


def test_the_ramp_page_shows_what_the_stage_waits_for(rollout_ready, user_client):
    page = user_client("compliance").get("/rollout/ramp/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Sign off as compliance" in text and "sign-off: Risk Ops (risk_ops)" in text
    assert "Request advance" not in text  # compliance has no rollout:write
    product = user_client("product").get("/rollout/ramp/").content.decode()
    assert "Request advance to 1%" in product and "Sign off as product" in product
    support = user_client("support").get("/rollout/ramp/").content.decode()
    assert "Sign off" not in support and "Request advance" not in support


def test_signing_off_from_the_page(rollout_ready, user_client):
    client = user_client("engineering")
    response = client.post("/rollout/ramp/sign-off", {"stage": "-1", "comment": "latency fine"}, follow=True)
    assert response.status_code == 200
    assert "Signed off." in response.content.decode()
    assert services.ramp_status()["signoffs"]["present"][0]["role"] == "engineering"
