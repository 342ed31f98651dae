"""The threshold what-if's counts (metrics/diagnosis.py) against a direct count over the raw
events, and the backfills that put each order's completion time and first model score on its fact."""
import importlib
import math
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.db import connection

from metrics.diagnosis import SCORE_BINS, thresholds
from rollout.simulator import generate
from tests.metrics.conftest import store

pytestmark = pytest.mark.django_db


def _at(event):
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


@pytest.fixture
def seed_traffic(fold, now):
    """Twelve minutes of the seed incident around its 50% ramp, as received by `now`."""
    start = now - timedelta(minutes=12)
    events = [e for e in generate("seed-incident", seed=4, start=start, duration_minutes=12, from_minute=36,
                                  include_late_outcomes=False, id_prefix="dia") if _at(e) <= now]
    store(events)
    fold()
    return events


def test_the_what_if_counts_equal_a_direct_count_over_the_raw_events(seed_traffic, now):
    start, end = now - timedelta(minutes=10), now
    decisions = sorted((e for e in seed_traffic if e["type"] == "decision"), key=lambda e: (_at(e), e["event_id"]))
    first, final = {}, {}
    for event in decisions:
        first.setdefault(event["order_id"], event)
        final[event["order_id"]] = event["decision"]
    completed = {e["order_id"] for e in seed_traffic if e["type"] == "outcome" and e["kind"] == "checkout_completed"}
    bins, by_decision = Counter(), Counter()
    for order_id, event in first.items():
        if (start <= _at(event) < end and event["arm"] == "treatment" and event["decided_by"] == "model"
                and event["score"] is not None):
            bins[min(math.floor(event["score"] * SCORE_BINS) + 1, SCORE_BINS)] += 1
            by_decision[(final[order_id], order_id in completed)] += 1

    result = thresholds(start=start, end=end)
    assert result["scored_orders"] == sum(bins.values()) > 1000
    assert [b["orders"] for b in result["score_histogram"]] == [bins[i] for i in range(1, SCORE_BINS + 1)]
    for decision in ("approve", "step_up"):
        n = by_decision[(decision, True)] + by_decision[(decision, False)]
        assert result["conversion_given_decision"][decision] == pytest.approx(by_decision[(decision, True)] / n)
    assert len(result["what_if"]) >= 9


@pytest.mark.parametrize("migration, column", [("0012_order_completed_at", "completed_at"),
                                               ("0013_order_first_model_score", "first_model_score")])
def test_the_migration_backfills_what_the_refresh_writes(seed_traffic, migration, column):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT order_id, {column} FROM metrics_order_fact ORDER BY order_id")
        folded = cursor.fetchall()
        assert sum(value is not None for _, value in folded) > 1000
        cursor.execute(f"UPDATE metrics_order_fact SET {column} = NULL")  # as before the migration
        cursor.execute(importlib.import_module(f"metrics.migrations.{migration}").BACKFILL)
        cursor.execute(f"SELECT order_id, {column} FROM metrics_order_fact ORDER BY order_id")
        assert cursor.fetchall() == folded
