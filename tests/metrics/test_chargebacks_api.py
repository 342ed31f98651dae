"""GET /api/v1/chargebacks: the monthly chargeback rate and programme ratios over HTTP."""
import random

import pytest
import time_machine
from django.test import Client

from tests.metrics.conftest import store
from tests.metrics.test_chargebacks import NOV, NOW, OCT, _traffic, assert_matches_raw_events, fold

pytestmark = pytest.mark.django_db
URL = "/api/v1/chargebacks"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def test_the_month_and_its_programmes_equal_raw_event_counts(api_client_for, frozen):
    store(_traffic(random.Random(41), orders=300))
    fold()
    client = api_client_for("kpis:read")
    response = client.get(URL, {"month": "2026-10"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["month"] == "2026-10" and body["previous_month"]["month"] == "2026-09"
    assert body["scope"] == "all networks: events carry no card network"
    assert body["population"].startswith("all orders of the month")
    assert body["chargeback_rate"]["from"] == "2026-10-01T00:00:00+00:00"
    assert body["chargeback_rate"]["to"] == "2026-11-01T00:00:00+00:00"
    assert [(p["name"], p["formula"], p["threshold"], p["min_count"]) for p in body["programmes"]] == [
        ("Mastercard ECM", "ecm", 0.015, 100), ("Visa VAMP", "vamp", 0.015, 0)]
    for item in body["programmes"]:
        assert set(item) >= {"numerator", "denominator", "value", "threshold", "min_count", "status"}
    assert_matches_raw_events(body, OCT)

    current = client.get(URL).json()  # default: the current UTC month
    assert current["month"] == "2026-11" and current["chargeback_rate"]["month_ended"] is False
    assert_matches_raw_events(current, NOV)
    assert current["refreshed_at"] is not None


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "11-2026", "nov", "2026-12", "2026-11-01", "1999-12"])
def test_a_bad_month_is_a_400_naming_the_field(api_client_for, frozen, month):
    response = api_client_for("kpis:read").get(URL, {"month": month})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("month:")


@pytest.mark.parametrize("role,status", [("support", 403), ("risk_ops", 200), ("leadership", 200), ("engineering", 200)])
def test_who_may_read_it(user_client, role, status):
    assert user_client(role).get(URL).status_code == status


def test_tokens_need_the_kpis_scope(api_client_for):
    assert api_client_for("events:write").get(URL).status_code == 403
    assert api_client_for("kpis:read").get(URL).status_code == 200
    assert Client().get(URL).status_code == 401


def test_it_is_in_the_openapi_document(api_client_for):
    document = Client().get("/api/v1/openapi.json").json()
    operation = document["paths"][URL]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["month"]
    assert set(operation["responses"]) >= {"200", "400", "401", "403"}
    assert "ProgrammeRatio" in document["components"]["schemas"]
