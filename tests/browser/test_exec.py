"""The executive summary in a real browser: readable without JavaScript, printable."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def leadership_cookie(live_server):
    from incidents import services
    from tests.incidents.conftest import breach_alert

    services.on_alert(breach_alert(at=timezone.now() - timedelta(minutes=30)))
    from incidents.selectors import open_incident

    incident = open_incident()
    services.record_decision(incident_id=incident.pk, actor="alice", decision="Exclude social-login accounts",
                             trade_offs="conversion kept for most buyers; model benefit lost for social login")
    client = Client()
    client.force_login(UserFactory(role="leadership"))
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": live_server.url}, incident




def test_exec_page_reads_without_javascript_and_prints(live_server, leadership_cookie, browser):
    cookie, incident = leadership_cookie
    context = browser.new_context(java_script_enabled=False)
    context.add_cookies([cookie])
    page = context.new_page()
    page.goto(f"{live_server.url}/exec/")
    assert f"INC-{incident.pk}" in page.get_by_test_id("headline").inner_text()
    assert page.get_by_test_id("kpis").is_visible()
    assert "Exclude social-login accounts" in page.inner_text("body")
    assert page.locator("time[data-local] + .local-time").count() == 0  # no JS: UTC only, server-rendered
    page.emulate_media(media="print")
    assert not page.locator("header.topbar").is_visible()  # navigation is not printed
    assert page.get_by_test_id("kpis").is_visible()
    pdf_context = browser.new_context()
    pdf_context.add_cookies([cookie])
    pdf_page = pdf_context.new_page()
    pdf_page.goto(f"{live_server.url}/exec/")
    assert pdf_page.pdf(format="A4")[:4] == b"%PDF"
    context.close()
    pdf_context.close()


def test_exec_page_with_javascript_adds_local_time_and_a_print_button(live_server, leadership_cookie, browser):
    cookie, _ = leadership_cookie
    context = browser.new_context(timezone_id="Europe/Berlin")
    context.add_cookies([cookie])
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "Refused" in msg.text else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "favicon" not in r.url
            else None)
    page.goto(f"{live_server.url}/exec/")
    page.wait_for_selector(".local-time")
    assert "local" in page.locator(".local-time").first.inner_text()
    assert page.locator("[data-print]").is_visible()
    assert errors == []  # no script error, no CSP refusal, no missing asset
    context.close()
