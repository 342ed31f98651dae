"""The monthly chargeback rate and programme ratios beside the chargeback rate: on the war room
(a server-rendered panel, live-updated with the KPIs) and on the executive summary."""
import re
from datetime import timedelta

import pytest
import time_machine

from incidents.views import war_room as wr
from metrics.chargebacks import chargeback_document
from tests.factories import iso, outcome_event
from tests.metrics.conftest import store
from tests.metrics.test_chargebacks import NOV, NOW, OCT, _completed_orders, fold

pytestmark = pytest.mark.django_db


@pytest.fixture
def october_with_chargebacks():
    """200 completed October orders, 5 of them charged back in November; 40 November orders."""
    with time_machine.travel(NOW, tick=False):
        events = _completed_orders(OCT, 200)
        decisions = [e for e in events if e["type"] == "decision"]
        store(events + _completed_orders(NOV, 40)
              + [outcome_event(d["order_id"], "chargeback", occurred_at=iso(NOV + timedelta(days=1)), amount_minor=1,
                               currency="EUR") for d in decisions[:5]])
        fold()
        yield


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}".*?</section>', html, re.S)
    assert match, section_id
    return match.group(0)


def test_war_room_shows_the_month_the_previous_month_and_the_programmes(user_client, october_with_chargebacks):
    html = user_client("support").get("/war-room/").content.decode()  # every role that opens the war room
    panel = _section(html, "wr-chargebacks")
    assert 'data-month="2026-11"' in panel and 'data-month="2026-10"' in panel
    assert "2.50%" in panel and "5 / 200 completed" in panel  # October: 5 / 200
    assert "0 / 40 completed" in panel  # November to date
    assert "Visa VAMP" in panel and "Mastercard ECM" in panel
    assert "5 chargebacks that occurred in 2026-11 / 200 completed orders decided in 2026-10" in panel
    assert "below the minimum count of 100" in panel and "insufficient_data" in panel
    assert "All networks: events carry no card network." in panel
    assert "0.90%" in panel  # the monitoring threshold
    # the window's own chargeback rate is labelled as what it is
    assert "Chargeback rate (orders in window)" in html


def test_a_custom_range_shows_the_month_it_ends_in(user_client, october_with_chargebacks):
    with time_machine.travel(NOW, tick=False):
        html = user_client("risk_ops").get("/war-room/", {"range": "custom", "from": "2026-10-20T00:00:00Z",
                                                          "to": "2026-10-21T00:00:00Z"}).content.decode()
    panel = _section(html, "wr-chargebacks")
    assert 'data-month="2026-10"' in panel and 'data-month="2026-09"' in panel


def test_the_panel_is_swapped_with_the_kpis(user_client, october_with_chargebacks):
    assert "chargebacks" in wr.PANELS_BY_TOPIC["kpis"]
    response = user_client("risk_ops").get("/war-room/panels/", {"panel": "chargebacks"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<section id="wr-chargebacks"') and 'hx-swap-oob="true"' in html


def test_exec_summary_shows_the_programmes_beside_the_chargeback_rate(user_client, october_with_chargebacks):
    with time_machine.travel(NOW, tick=False):
        html = user_client("leadership").get("/exec/").content.decode()
        document = chargeback_document()
    table = re.search(r'<table data-testid="kpis">.*?</table>', html, re.S).group(0)
    assert "Monthly chargeback rate (2026-11, month to date)" in table and "&lt; 0.9%" in table
    assert "0 chargebacks / 40 completed orders decided in 2026-11; 2026-10: 2.50% (5 / 200, breach)" in table
    assert "Visa VAMP ratio (2026-11)" in table and "Mastercard ECM ratio (2026-11)" in table
    assert "&lt; 1.50% (150 bps), applies from 100" in table
    assert "All networks: events carry no card network." in table
    ecm = next(p for p in document["programmes"] if p["formula"] == "ecm")
    assert (ecm["numerator"], ecm["denominator"], ecm["status"]) == (5, 200, "insufficient_data")
    assert "<script>" not in html
