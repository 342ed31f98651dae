"""Seller page, affected customers and their CSV exports (streamed), compliance view."""
import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from incidents.support.models import LookupLog
from tests.factories import decision_event, iso, outcome_event
from tests.incidents.support_fixtures import _fresh_reference_cache, make_incident, social_login_decline, store  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent(user_client):
    return user_client("support")


def read_csv(response) -> list[dict]:
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def seller_world(store):
    """Seller s-top: a model decline (social login, in the incident), a fallback step-up abandoned,
    a rules decline, a passed step-up (not failed), a completed approval (not failed)."""
    now = datetime.now(UTC)
    at = iso(now - timedelta(hours=1))
    model_decline = social_login_decline(seller_id="s-top", amount_minor=250_000, occurred_at=at)
    fallback = decision_event(seller_id="s-top", amount_minor=90_000, decision="step_up", decided_by="fallback",
                              score=None, timed_out=True, latency_ms=120, occurred_at=at)
    rules = decision_event(seller_id="s-top", amount_minor=5_000, decision="decline", decided_by="rules",
                           model_version=None, score=None, arm="control", occurred_at=at)
    passed = decision_event(seller_id="s-top", amount_minor=70_000, decision="step_up", occurred_at=at)
    approved = decision_event(seller_id="s-top", amount_minor=80_000, occurred_at=at)
    store(model_decline, fallback, rules, passed, approved,
          outcome_event(fallback["order_id"], "step_up_abandoned"), outcome_event(passed["order_id"], "step_up_passed"),
          outcome_event(passed["order_id"]), outcome_event(approved["order_id"]))
    incident = make_incident()
    return {"model_decline": model_decline, "fallback": fallback, "rules": rules, "incident": incident}


def test_seller_page_by_cause_high_value_first_with_incident_share(agent, seller_world):
    response = agent.get("/support/sellers/s-top/")
    assert response.status_code == 200
    data = response.context["data"]
    assert [row["order_id"] for row in data["orders"]] == [
        seller_world["model_decline"]["order_id"], seller_world["fallback"]["order_id"], seller_world["rules"]["order_id"]]
    assert {c["cause"]: (c["orders"], c["value_minor"]) for c in data["by_cause"]} == {
        "model_decline": (1, 250_000), "fallback": (1, 90_000), "rules": (1, 5_000)}
    assert data["total"] == 3 and data["in_incident"] == 1
    assert "33.3%" in response.content.decode()


def test_seller_time_range_lives_in_the_url_and_is_validated(agent, seller_world):
    later = iso(datetime.now(UTC) - timedelta(minutes=30))
    response = agent.get("/support/sellers/s-top/", {"from": later})
    assert response.context["data"]["total"] == 0
    bad = agent.get("/support/sellers/s-top/", {"from": "yesterday"})
    assert bad.status_code == 400 and "from: not an RFC 3339 time" in bad.content.decode()


def test_seller_csv_streams_every_failed_order(agent, seller_world):
    response = agent.get("/support/sellers/s-top/failed-orders.csv")
    rows = read_csv(response)
    assert [r["cause"] for r in rows] == ["model_decline", "fallback", "rules"]
    assert rows[0]["in_open_incident"] == "yes" and rows[1]["in_open_incident"] == "no"
    assert rows[0]["amount_minor"] == "250000" and rows[0]["currency"] == "EUR"
    assert LookupLog.objects.filter(kind="seller_export", subject="s-top").exists()


@pytest.fixture
def affected_world(store):
    now = datetime.now(UTC)
    declined = social_login_decline(buyer_id="b-victim", amount_minor=12_000, occurred_at=iso(now - timedelta(hours=2)))
    retried_ok = decision_event(buyer_id="b-victim", features={"signup_method": "social_google"}, arm="control",
                                occurred_at=iso(now - timedelta(hours=1)))
    step_up_failed = social_login_decline(buyer_id="b-two", decision="step_up", amount_minor=8_000)
    step_up_passed = social_login_decline(buyer_id="b-three", decision="step_up")
    completed = social_login_decline(buyer_id="b-four", decision="approve")
    email_buyer = decision_event(decision="decline", features={"signup_method": "email"})
    store(declined, retried_ok, step_up_failed, step_up_passed, completed, email_buyer,
          outcome_event(retried_ok["order_id"]), outcome_event(step_up_failed["order_id"], "step_up_failed"),
          outcome_event(step_up_passed["order_id"], "step_up_passed"), outcome_event(completed["order_id"]))
    return {"declined": declined, "step_up_failed": step_up_failed, "incident": make_incident()}


def test_affected_customers_page_and_csv(agent, affected_world):
    incident = affected_world["incident"]
    page = agent.get(f"/support/incidents/{incident.pk}/affected/")
    assert page.status_code == 200
    assert page.context["summary"]["orders"] == 2 and page.context["summary"]["later_succeeded"] == 1
    rows = read_csv(agent.get(f"/support/incidents/{incident.pk}/affected.csv"))
    by_order = {r["order_id"]: r for r in rows}
    assert set(by_order) == {affected_world["declined"]["order_id"], affected_world["step_up_failed"]["order_id"]}
    assert by_order[affected_world["declined"]["order_id"]]["buyer_later_succeeded"] == "yes"
    assert by_order[affected_world["step_up_failed"]["order_id"]]["step_up_result"] == "failed"
    assert by_order[affected_world["step_up_failed"]["order_id"]]["buyer_later_succeeded"] == "no"
    assert LookupLog.objects.filter(kind="affected_export", subject=f"INC-{incident.pk}").exists()


def test_affected_csv_streams_in_chunks_under_asgi(affected_world, user_client):
    """Under ASGI a sync iterator would be read whole before sending; the export hands Django an
    async iterator that pulls one batch at a time."""
    agent = user_client("support")
    client = AsyncClient()
    client.cookies = agent.cookies
    incident = affected_world["incident"]

    async def fetch():
        response = await client.get(f"/support/incidents/{incident.pk}/affected.csv")
        assert response.is_async and response.streaming
        return b"".join([chunk async for chunk in response.streaming_content]).decode()

    text = async_to_sync(fetch)()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2


def test_unknown_incident_is_404(agent):
    assert agent.get("/support/incidents/999999/affected/").status_code == 404


def test_compliance_view(user_client, store):
    store(decision_event(decision="decline", reason_codes=["HIGH_RISK_SCORE", "NEW_CODE_X"]),
          decision_event(decision="decline", arm="control", reason_codes=["HIGH_RISK_SCORE"]),
          decision_event(decision="decline", reason_codes=[]),
          decision_event(decision="approve", reason_codes=["NEW_CODE_Y"]))
    support = user_client("support")
    support.get("/support/", {"by": "buyer", "q": "b-1"})
    response = user_client("compliance").get("/compliance/")
    assert response.status_code == 200
    volume = {row["code"]: (row["per_arm"], row["total"]) for row in response.context["by_code"]}
    assert response.context["arms"] == ["control", "treatment"]
    assert volume["HIGH_RISK_SCORE"] == ([1, 1], 2) and volume["NEW_CODE_X"] == ([0, 1], 1)
    assert volume["(none)"] == ([0, 1], 1)
    assert {c["code"] for c in response.context["uncatalogued"]} == {"NEW_CODE_X", "NEW_CODE_Y"}
    assert [(e.actor, e.subject) for e in response.context["log"]] == [(support.user.username, "b-1")]
    filtered = user_client("compliance").get("/compliance/", {"actor": "nobody"})
    assert filtered.context["log"] == []
