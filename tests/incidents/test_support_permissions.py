"""Who may see and do what on the support and compliance pages."""
import json

import pytest

from incidents.support.models import DecisionLabel
from tests.factories import decision_event
from tests.incidents.support_fixtures import _fresh_reference_cache, store  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def order_id(store):
    event = decision_event(decision="decline", buyer_email="private.person@example.com")
    store(event)
    return event["order_id"]


@pytest.mark.parametrize("role", ["leadership", "product"])
def test_roles_without_support_access_see_no_pii(user_client, order_id, role):
    client = user_client(role)
    for url in ("/support/", f"/support/orders/{order_id}/", "/support/buyers/b-1/", "/support/sellers/s-1/",
                "/support/sellers/s-1/failed-orders.csv", "/compliance/"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"p***@example.com" not in response.content
    assert client.get(f"/api/v1/orders/{order_id}").status_code == 403
    home = client.get("/").content.decode()
    assert 'href="/support/"' not in home


def test_support_cannot_reach_rollout_actions(user_client, order_id):
    support = user_client("support")
    response = support.post("/api/v1/rollout/actions", json.dumps({"action": "kill", "reason": "x"}),
                            content_type="application/json")
    assert response.status_code == 403
    page = support.get(f"/support/orders/{order_id}/").content.decode()
    main = page.split("<main>", 1)[1]
    assert 'action="/rollout/' not in main and "/war-room/actions" not in main and "rollout/actions" not in main
    assert support.post("/rollout/ramp/advance", {"reason": "x"}).status_code == 403


def test_support_sees_masked_email_and_the_actions(user_client, order_id):
    page = user_client("support").get(f"/support/orders/{order_id}/").content.decode()
    assert "p***@example.com" in page and "private.person" not in page
    assert "Record label" in page and "Escalate" in page


def test_compliance_reads_but_does_not_act(user_client, order_id):
    compliance = user_client("compliance")
    page = compliance.get(f"/support/orders/{order_id}/")
    assert page.status_code == 200 and "Record label" not in page.content.decode()
    assert compliance.post(f"/support/orders/{order_id}/label", {"label": "fraud"}).status_code == 403
    assert not DecisionLabel.objects.exists()
    assert compliance.get("/compliance/").status_code == 200
    assert user_client("support").get("/compliance/").status_code == 403


def test_nav_items_follow_capabilities(user_client):
    support_home = user_client("support").get("/").content.decode()
    compliance_home = user_client("compliance").get("/").content.decode()
    assert 'href="/support/"' in support_home and 'href="/compliance/"' not in support_home
    assert 'href="/support/"' in compliance_home and 'href="/compliance/"' in compliance_home
