"""Support look-up in a real browser: log in, search, open the order, read why it was declined."""
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from metrics.ingest import ingest_body
from tests.factories import UserFactory, iso, outcome_event
from tests.incidents.support_fixtures import _fresh_reference_cache, make_incident, social_login_decline  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def world(live_server):
    """A social-login buyer with two years of history, declined today; an incident covering it.
    The event tables are not flushed between transactional tests, so this cleans up after itself."""
    import json

    from metrics.partitions import forget_known_partitions

    forget_known_partitions()
    now = datetime.now(UTC)
    old = social_login_decline(order_id="o-brw-old", buyer_id="b-brw", decision="approve", reason_codes=[],
                               occurred_at=iso(now - timedelta(days=730)), arm="control",
                               features={"account_age_days": 1200, "signup_method": "email"},
                               buyer_email="Browser.Buyer@example.com")
    victim = social_login_decline(order_id="o-brw-1", buyer_id="b-brw", buyer_email="Browser.Buyer@example.com")
    events = [old, outcome_event("o-brw-old", occurred_at=iso(now - timedelta(days=730) + timedelta(minutes=1))),
              victim, outcome_event("o-brw-1", "support_ticket", detail="payment_failed")]
    for event in events:
        event["event_id"] = "brw-" + event["event_id"]
    result = ingest_body(json.dumps({"events": events}).encode())
    assert result.accepted == 4, result.as_dict()
    incident = make_incident(support_message="Declines of Google/Apple sign-in buyers were our error; ask them to retry.")
    user = UserFactory(role="support")
    yield {"incident": incident, "user": user}
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM metrics_decision WHERE order_id LIKE 'o-brw-%%'")
        cursor.execute("DELETE FROM metrics_outcome WHERE order_id LIKE 'o-brw-%%'")
        cursor.execute("DELETE FROM metrics_event_key WHERE event_id LIKE 'brw-%%'")
        cursor.execute("DELETE FROM metrics_pending_order WHERE order_id LIKE 'o-brw-%%'")




def test_search_to_order_page(live_server, world, browser):
    page = browser.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{live_server.url}/support/")
    # Not logged in: the login page, then back to the look-up.
    page.fill("input[name=username]", world["user"].username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/support/")

    page.select_option("select[name=by]", "buyer")
    page.fill("input[name=q]", "b-brw")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_url("**/support/?by=buyer&q=b-brw")  # the search is shareable: it lives in the URL
    rows = page.locator("table.support-results tbody tr")
    assert rows.count() == 2
    assert "B***@example.com" in page.inner_text("table.support-results")

    page.click("text=o-brw-1")
    page.wait_for_url(f"{live_server.url}/support/orders/o-brw-1/")
    decided = page.inner_text("#decided")
    assert "The fraud model fraud-gbm-v3 declined this attempt" in decided
    flags = page.inner_text("#data-quality")
    assert "contradicts_history" in flags and "account age was read as 0 days" in flags
    incident = page.inner_text("#incident")
    assert f"INC-{world['incident'].pk}" in incident and "ask them to retry" in incident
    answer = page.inner_text("#customer-answer")
    assert "error on our side" in answer and "0.93" not in answer
    # support.js adds the viewer's local time beside UTC times (CSP allows only our own script).
    assert page.locator("time[data-local] .local").count() > 0
    assert "support_ticket" in page.inner_text("#outcomes")

    # The e-mail search (hashed, exact match) finds the same buyer; the address stays out of the URL.
    page.goto(f"{live_server.url}/support/")
    page.fill("input[name=email]", "browser.buyer@EXAMPLE.com")
    page.click("text=Search e-mail")
    page.wait_for_selector("table.support-results")
    assert "browser.buyer" not in page.url
    assert page.locator("table.support-results tbody tr").count() == 2
    assert not [e for e in errors if "Content Security Policy" in e], errors
