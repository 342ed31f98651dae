"""The monthly chargeback rate and the card-network programme ratios, checked against direct SQL
counts over the raw event tables (metrics_decision / metrics_outcome), CONTRACT section 5."""
import random
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from metrics import population
from metrics.chargebacks import BadMonth, chargeback_document, next_month, parse_month, previous_month
from metrics.models import CardNetworkProgramme
from tests.factories import decision_event, iso, outcome_event
from tests.metrics.conftest import store

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
SEP, OCT, NOV = (datetime(2026, m, 1, tzinfo=UTC) for m in (9, 10, 11))


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def fold():
    from metrics.rollups import refresh

    refresh()


# -- the independent reference: SQL over raw events, written from the contract's words ---------

FIRSTS = """SELECT DISTINCT ON (order_id) order_id, arm, occurred_at FROM metrics_decision
            ORDER BY order_id, occurred_at, event_id"""


def raw_month(start: datetime) -> dict:
    """{arm: {completed, chargebacks, fraud_confirmed}} of the orders first decided in the month."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT f.arm,
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM metrics_outcome o WHERE o.order_id = f.order_id
                                                  AND o.kind = 'checkout_completed')),
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM metrics_outcome o WHERE o.order_id = f.order_id
                                                  AND o.kind = 'checkout_completed')
                                      AND EXISTS (SELECT 1 FROM metrics_outcome o WHERE o.order_id = f.order_id
                                                  AND o.kind = 'chargeback')),
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM metrics_outcome o WHERE o.order_id = f.order_id
                                                  AND o.kind = 'checkout_completed')
                                      AND EXISTS (SELECT 1 FROM metrics_outcome o WHERE o.order_id = f.order_id
                                                  AND o.kind = 'fraud_confirmed'))
            FROM ({FIRSTS}) f WHERE f.occurred_at >= %s AND f.occurred_at < %s GROUP BY f.arm""",
                       [start, next_month(start)])
        rows = {arm: {"completed": c, "chargebacks": cb, "fraud_confirmed": fc} for arm, c, cb, fc in cursor.fetchall()}
    return {arm: rows.get(arm, {"completed": 0, "chargebacks": 0, "fraud_confirmed": 0}) for arm in ("control", "treatment")}


def raw_chargebacks_occurring_in(start: datetime) -> int:
    """Completed orders (with a decision) whose first chargeback outcome occurred in the month."""
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT count(DISTINCT o.order_id) FROM metrics_outcome o
            WHERE o.kind = 'chargeback' AND o.occurred_at >= %s AND o.occurred_at < %s
              AND NOT EXISTS (SELECT 1 FROM metrics_outcome e WHERE e.order_id = o.order_id AND e.kind = 'chargeback'
                              AND e.occurred_at < %s)
              AND EXISTS (SELECT 1 FROM metrics_decision d WHERE d.order_id = o.order_id)
              AND EXISTS (SELECT 1 FROM metrics_outcome c WHERE c.order_id = o.order_id AND c.kind = 'checkout_completed')""",
                       [start, next_month(start), start])
        return cursor.fetchone()[0]


def programme(document: dict, formula: str) -> dict:
    return next(p for p in document["programmes"] if p["formula"] == formula)


def assert_matches_raw_events(document: dict, start: datetime):
    month, previous = raw_month(start), raw_month(previous_month(start))
    rate = document["chargeback_rate"]
    assert rate["month"] == f"{start:%Y-%m}"
    for arm in ("control", "treatment"):
        assert rate["by_arm"][arm]["numerator"] == month[arm]["chargebacks"], arm
        assert rate["by_arm"][arm]["denominator"] == month[arm]["completed"], arm
    assert rate["numerator"] == sum(m["chargebacks"] for m in month.values())
    assert rate["denominator"] == sum(m["completed"] for m in month.values())
    assert document["previous_month"]["numerator"] == sum(m["chargebacks"] for m in previous.values())
    assert document["previous_month"]["denominator"] == sum(m["completed"] for m in previous.values())
    vamp = programme(document, "vamp")
    assert vamp["numerator_parts"] == {"fraud_confirmed": sum(m["fraud_confirmed"] for m in month.values()),
                                       "chargebacks": rate["numerator"]}
    assert vamp["numerator"] == vamp["numerator_parts"]["fraud_confirmed"] + rate["numerator"]
    assert vamp["denominator"] == rate["denominator"]
    ecm = programme(document, "ecm")
    assert ecm["numerator"] == raw_chargebacks_occurring_in(start)
    assert ecm["denominator"] == document["previous_month"]["denominator"]


def _traffic(rng: random.Random, *, orders: int) -> list[dict]:
    """Orders decided from 1 September to now, with the edges the monthly counts care about:
    chargebacks weeks later (across month ends), a second chargeback, fraud_confirmed, both on one
    order, chargebacks on orders never completed, several decisions in different arms, outcomes
    with no decision, and segment-excluded (ineligible) orders."""
    events = []
    span = (NOW - SEP).total_seconds() - 60
    for i in range(orders):
        at = SEP + timedelta(seconds=rng.uniform(0, span))
        order_id = f"m-{i}-{rng.random():.10f}"
        signup = rng.choice(["email", "phone", "social_google"])
        features = {"account_age_days": 700, "signup_method": signup, "is_repeat_buyer": True, "prior_good_orders": 5,
                    "amount_band": "b2", "device_risk": 0.1}
        arms = [rng.choice(["control", "treatment"]) for _ in range(1 if rng.random() < 0.9 else 2)]
        for k, arm in enumerate(arms):
            events.append(decision_event(order_id=order_id, occurred_at=iso(at + timedelta(seconds=k)), arm=arm,
                                         features=features))
        completed = rng.random() < 0.7
        if completed:
            events.append(outcome_event(order_id, "checkout_completed", occurred_at=iso(at + timedelta(seconds=5))))
        for kind, share in (("chargeback", 0.15), ("fraud_confirmed", 0.08)):
            if rng.random() < share:
                later = min(at + timedelta(days=rng.uniform(0, 45)), NOW - timedelta(seconds=1))
                events.append(outcome_event(order_id, kind, occurred_at=iso(later), amount_minor=4599, currency="EUR"))
                if kind == "chargeback" and rng.random() < 0.2:  # a second chargeback: the order counts once
                    again = min(later + timedelta(days=3), NOW - timedelta(seconds=1))
                    events.append(outcome_event(order_id, kind, occurred_at=iso(again), amount_minor=4599, currency="EUR"))
    for i in range(10):  # chargebacks of orders the store has no decision for
        events.append(outcome_event(f"unknown-{i}", "chargeback", occurred_at=iso(NOV + timedelta(days=1)),
                                    amount_minor=100, currency="EUR"))
    return events


def test_month_counts_equal_a_direct_sql_count_over_raw_events(frozen):
    population.set_override_provider(lambda version: [{"feature": "signup_method", "in": ["social_google"], "arm": "control"}])
    store(_traffic(random.Random(17), orders=900))
    fold()
    with connection.cursor() as cursor:  # the set covers what it claims to: some ineligible orders
        cursor.execute("SELECT count(*) FILTER (WHERE NOT eligible), count(*) FILTER (WHERE chargeback AND completed) FROM metrics_order_fact")
        ineligible, charged = cursor.fetchone()
    assert ineligible > 50 and charged > 50
    for start in (SEP, OCT, NOV):
        assert_matches_raw_events(chargeback_document(month=start, now=NOW), start)


def test_refolding_every_order_changes_nothing(frozen):
    store(_traffic(random.Random(5), orders=200))
    fold()
    before = [chargeback_document(month=start, now=NOW) for start in (OCT, NOV)]
    with connection.cursor() as cursor:  # as a re-run after a crash would
        cursor.execute("INSERT INTO metrics_pending_order (order_id, queued_at) SELECT order_id, now() FROM metrics_order_fact")
    fold()
    assert [chargeback_document(month=start, now=NOW) for start in (OCT, NOV)] == before


def test_a_late_chargeback_counts_for_its_orders_month_and_for_its_own_month_in_ecm(frozen):
    decided = datetime(2026, 10, 31, 23, 59, 30, tzinfo=UTC)
    order = decision_event(occurred_at=iso(decided), arm="treatment")
    store([order, outcome_event(order["order_id"], "checkout_completed", occurred_at=iso(decided + timedelta(seconds=20)))])
    fold()
    october = chargeback_document(month=OCT, now=NOW)
    assert october["chargeback_rate"]["numerator"] == 0 and october["chargeback_rate"]["denominator"] == 1

    store([outcome_event(order["order_id"], "chargeback", occurred_at=iso(datetime(2026, 11, 3, 9, tzinfo=UTC)),
                         amount_minor=4599, currency="EUR")])
    fold()
    october, november = chargeback_document(month=OCT, now=NOW), chargeback_document(month=NOV, now=NOW)
    # the chargeback rate: the order's month (October), by arm too
    assert october["chargeback_rate"]["numerator"] == 1 and october["chargeback_rate"]["value"] == 1.0
    assert october["chargeback_rate"]["by_arm"]["treatment"] == {"numerator": 1, "denominator": 1, "value": 1.0}
    assert november["chargeback_rate"]["numerator"] == november["chargeback_rate"]["denominator"] == 0
    assert november["chargeback_rate"]["status"] == "insufficient_data"
    assert november["previous_month"]["month"] == "2026-10" and november["previous_month"]["numerator"] == 1
    # VAMP: the order's month; ECM: the chargeback's month over the previous month's completed orders
    assert programme(october, "vamp")["numerator"] == 1 and programme(november, "vamp")["numerator"] == 0
    assert programme(october, "ecm")["numerator"] == 0
    ecm = programme(november, "ecm")
    assert (ecm["numerator"], ecm["denominator"], ecm["numerator_month"], ecm["denominator_month"]) == (1, 1, "2026-11", "2026-10")
    for start in (OCT, NOV):
        assert_matches_raw_events(chargeback_document(month=start, now=NOW), start)


def test_month_boundaries_are_utc(frozen):
    def order_at(moment: str, chargeback_at: str | None = None):
        decision = decision_event(occurred_at=moment, arm="control")
        events = [decision, outcome_event(decision["order_id"], "checkout_completed", occurred_at=moment)]
        if chargeback_at:
            events.append(outcome_event(decision["order_id"], "chargeback", occurred_at=chargeback_at,
                                        amount_minor=1, currency="EUR"))
        return events

    store(order_at("2026-10-31T23:59:59.999Z")            # October
          + order_at("2026-11-01T00:00:00Z")               # November
          + order_at("2026-11-01T00:30:00+01:00",          # 2026-10-31T23:30Z: October
                     chargeback_at="2026-11-01T00:45:00+01:00")  # its chargeback: 23:45Z, October too
          + order_at("2026-10-01T01:00:00+02:00",          # 2026-09-30T23:00Z: September
                     chargeback_at="2026-11-01T00:00:00Z"))  # its chargeback: November
    fold()
    sep, october, november = (chargeback_document(month=m, now=NOW) for m in (SEP, OCT, NOV))
    assert sep["chargeback_rate"]["denominator"] == 1 and sep["chargeback_rate"]["numerator"] == 1
    assert october["chargeback_rate"]["denominator"] == 2 and october["chargeback_rate"]["numerator"] == 1
    assert november["chargeback_rate"]["denominator"] == 1 and november["chargeback_rate"]["numerator"] == 0
    assert programme(october, "ecm")["numerator"] == 1 and programme(november, "ecm")["numerator"] == 1
    for document, start in ((sep, SEP), (october, OCT), (november, NOV)):
        assert_matches_raw_events(document, start)


def test_vamp_counts_an_order_with_fraud_confirmed_and_a_chargeback_twice(frozen):
    events = []
    for i in range(40):
        decision = decision_event(occurred_at=iso(OCT + timedelta(hours=i)), arm="control")
        events += [decision, outcome_event(decision["order_id"], "checkout_completed", occurred_at=iso(OCT + timedelta(hours=i, seconds=5)))]
        if i == 0:
            events += [outcome_event(decision["order_id"], kind, occurred_at=iso(OCT + timedelta(days=9)),
                                     amount_minor=4599, currency="EUR") for kind in ("fraud_confirmed", "chargeback")]
    store(events)
    fold()
    vamp = programme(chargeback_document(month=OCT, now=NOW), "vamp")
    assert vamp["numerator_parts"] == {"fraud_confirmed": 1, "chargebacks": 1}
    assert (vamp["numerator"], vamp["denominator"]) == (2, 40)
    assert vamp["value"] == pytest.approx(0.05) and vamp["status"] == "breach"  # 500 bps >= 150 bps
    assert vamp["threshold"] == 0.015 and vamp["min_count"] == 0


def _completed_orders(start: datetime, n: int) -> list[dict]:
    events = []
    for i in range(n):
        decision = decision_event(occurred_at=iso(start + timedelta(minutes=i)), arm="treatment" if i % 2 else "control")
        events += [decision, outcome_event(decision["order_id"], "checkout_completed",
                                           occurred_at=iso(start + timedelta(minutes=i, seconds=3)))]
    return events


def test_ecm_uses_the_previous_months_completed_orders_and_its_minimum_count(frozen):
    october_orders = _completed_orders(OCT, 200)
    store(october_orders + _completed_orders(NOV, 50))
    decisions = [e for e in october_orders if e["type"] == "decision"]
    store([outcome_event(d["order_id"], "chargeback", occurred_at=iso(NOV + timedelta(days=2)), amount_minor=1,
                         currency="EUR") for d in decisions[:99]])
    fold()
    ecm = programme(chargeback_document(month=NOV, now=NOW), "ecm")
    assert (ecm["numerator"], ecm["denominator"], ecm["min_count"]) == (99, 200, 100)
    assert ecm["status"] == "insufficient_data" and "below the minimum count of 100" in ecm["basis"]
    assert ecm["scope"] == "all networks: events carry no card network"

    store([outcome_event(decisions[99]["order_id"], "chargeback", occurred_at=iso(NOV + timedelta(days=3)),
                         amount_minor=1, currency="EUR")])
    fold()
    document = chargeback_document(month=NOV, now=NOW)
    ecm = programme(document, "ecm")
    assert (ecm["numerator"], ecm["denominator"], ecm["value"], ecm["status"]) == (100, 200, 0.5, "breach")
    assert document["chargeback_rate"]["denominator"] == 50  # November's own orders are not ECM's denominator
    assert_matches_raw_events(document, NOV)

    # the programme is admin-editable: a higher threshold makes the same month ok
    CardNetworkProgramme.objects.filter(formula="ecm").update(threshold=0.6)
    assert programme(chargeback_document(month=NOV, now=NOW), "ecm")["status"] == "ok"
    CardNetworkProgramme.objects.filter(formula="ecm").update(enabled=False)
    assert [p["formula"] for p in chargeback_document(month=NOV, now=NOW)["programmes"]] == ["vamp"]


def test_the_monitoring_threshold_status(frozen, settings):
    events = _completed_orders(OCT, 1000)
    decisions = [e for e in events if e["type"] == "decision"]
    store(events + [outcome_event(d["order_id"], "chargeback", occurred_at=iso(OCT + timedelta(days=20)),
                                  amount_minor=1, currency="EUR") for d in decisions[:8]])
    fold()
    rate = chargeback_document(month=OCT, now=NOW)["chargeback_rate"]
    assert (rate["numerator"], rate["denominator"], rate["threshold"]) == (8, 1000, 0.009)
    assert rate["status"] == "warn" and rate["month_ended"] is True  # 0.8% is at least 80% of 0.9%
    settings.CHARGEBACK_MONITORING_THRESHOLD = 0.008
    assert chargeback_document(month=OCT, now=NOW)["chargeback_rate"]["status"] == "breach"
    settings.CHARGEBACK_MONITORING_THRESHOLD = 0.02
    assert chargeback_document(month=OCT, now=NOW)["chargeback_rate"]["status"] == "ok"
    assert chargeback_document(month=NOV, now=NOW)["chargeback_rate"]["month_ended"] is False


def test_the_migrations_backfill_rebuilds_the_outcome_time_counts(frozen):
    import importlib

    store(_traffic(random.Random(29), orders=150))
    fold()
    before = chargeback_document(month=NOV, now=NOW)
    with connection.cursor() as cursor:  # as the table and columns were before migration 0008
        cursor.execute("UPDATE metrics_order_fact SET chargeback_at = NULL, fraud_confirmed_at = NULL")
        cursor.execute("TRUNCATE metrics_outcome_day")
        assert programme(chargeback_document(month=NOV, now=NOW), "ecm")["numerator"] == 0
        cursor.execute(importlib.import_module("metrics.migrations.0010_chargeback_programmes").BACKFILL)
    assert chargeback_document(month=NOV, now=NOW) == before


def test_months_are_parsed_strictly():
    now = datetime(2026, 1, 15, tzinfo=UTC)
    assert parse_month(None, now=now) == parse_month("", now=now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_month("2025-12", now=now) == datetime(2025, 12, 1, tzinfo=UTC)
    assert previous_month(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2025, 12, 1, tzinfo=UTC)
    assert next_month(datetime(2025, 12, 1, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)
    for raw in ("2026-1", "2026-13", "2026-00", "jan", "2026-01-01", "1999-12", "2026-02"):
        with pytest.raises(BadMonth) as error:
            parse_month(raw, now=now)
        assert str(error.value).startswith("month:")
