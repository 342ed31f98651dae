"""The history fast path writes what ingest would, once."""
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from metrics.pii import email_hash
from rollout.simulator import backfill

pytestmark = pytest.mark.django_db


def one(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def test_backfill_stores_events_keys_and_pending_orders_once():
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(minutes=20)
    totals = backfill("baseline", start=start, end=end, seed=4, rate=3)
    assert totals["decisions"] > 3000 and totals["outcomes"] > 2000
    decisions, outcomes, keys = one("SELECT (SELECT count(*) FROM metrics_decision), (SELECT count(*) FROM metrics_outcome),"
                                    " (SELECT count(*) FROM metrics_event_key)")
    assert (decisions, outcomes) == (totals["decisions"], totals["outcomes"])
    assert keys == decisions + outcomes
    assert one("""SELECT count(*) FROM (SELECT order_id FROM metrics_decision UNION SELECT order_id FROM metrics_outcome) o
                  WHERE order_id NOT IN (SELECT order_id FROM metrics_pending_order)""")[0] == 0
    assert one("SELECT min(occurred_at) >= %s AND max(occurred_at) <= %s FROM metrics_outcome", [start, end])[0]
    # Same columns and encodings as ingest: a masked e-mail and its keyed hash, arrays, JSON.
    email_masked, hashed, codes, age = one(
        """SELECT buyer_email_masked, buyer_email_hash, reason_codes, features->>'account_age_days'
           FROM metrics_decision WHERE buyer_id = 'b-0000001' OR buyer_email_hash IS NOT NULL LIMIT 1""")
    assert "@example.com" in email_masked and "*" in email_masked and len(hashed) > 20
    assert isinstance(codes, list) and age is not None
    buyer, masked = one("SELECT buyer_id, buyer_email_hash FROM metrics_decision WHERE buyer_email_hash IS NOT NULL LIMIT 1")
    index = int(buyer.split("-")[1])
    from rollout.simulator.population import _email
    assert masked == email_hash(_email(None, index))

    again = backfill("baseline", start=start, end=end, seed=4, rate=3)
    assert again["stored"] == 0
    assert one("SELECT count(*) FROM metrics_event_key")[0] == keys
