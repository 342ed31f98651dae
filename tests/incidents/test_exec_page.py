"""/exec/: who may read it, what it shows, and that it needs no JavaScript."""
import pytest

from incidents import services

pytestmark = pytest.mark.django_db


def test_leadership_reads_the_exec_summary(user_client, incident):
    services.record_decision(incident_id=incident.pk, actor="alice", decision="Exclude social-login accounts",
                             trade_offs="keeps conversion for 85% of buyers; fraud exposure unchanged elsewhere",
                             rationale="account_age_days is defaulted for them")
    services.add_exit_criterion(incident_id=incident.pk, actor="alice", text="backfill validated")
    response = user_client("leadership").get("/exec/")
    html = response.content.decode()
    assert response.status_code == 200
    assert f"INC-{incident.pk}" in html and "is investigating" in html
    for heading in ("KPIs against targets", "Impact", "Trade-offs made and why", "Plan and gates", "Open risks"):
        assert heading in html
    assert "71.0%" in html and "0.9%" in html and "-20% QoQ" in html and "80 ms" in html
    assert "keeps conversion for 85% of buyers" in html
    assert "Exit criterion not met: backfill validated" in html
    assert "<script>" not in html and "javascript:" not in html


def test_exec_without_any_incident(user_client, db):
    response = user_client("leadership").get("/exec/")
    assert response.status_code == 200 and b"No incident on record" in response.content


@pytest.mark.parametrize("role,status", [("support", 403), ("risk_ops", 200), ("compliance", 200)])
def test_exec_permissions(user_client, db, role, status):
    assert user_client(role).get("/exec/").status_code == status


def test_bad_from_is_named(user_client, db):
    response = user_client("leadership").get("/exec/?from=yesterday")
    assert response.status_code == 400 and b"from:" in response.content


def test_changes_are_announced_for_open_pages(incident, django_capture_on_commit_callbacks):
    from shopswift_ops import live

    received = []
    live.subscribe("incidents", received.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.add_note(incident_id=incident.pk, actor="alice", text="hello")
    finally:
        live._subscribers["incidents"].remove(received.append)
    assert {"incident_id": incident.pk, "kind": "timeline"} in received
