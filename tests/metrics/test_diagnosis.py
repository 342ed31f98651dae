"""The threshold what-if's counts (metrics/diagnosis.py) against a direct count over the raw
events, and the backfills that put each order's completion time and first model score on its fact."""
import importlib
import math
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection

from metrics.diagnosis import SCORE_BINS, thresholds
from tests.metrics.conftest import occurred, order_reference

pytestmark = pytest.mark.django_db


def test_the_what_if_counts_equal_a_direct_count_over_the_raw_events(seed_incident, now):
    start, end = now - timedelta(minutes=10), now
    first, final, completed = order_reference(seed_incident)
    bins, by_decision = Counter(), Counter()
    for order_id, event in first.items():
        if (start <= occurred(event) < end and event["arm"] == "treatment" and event["decided_by"] == "model"
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
def test_the_migration_backfills_what_the_refresh_writes(seed_incident, migration, column):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT order_id, {column} FROM metrics_order_fact ORDER BY order_id")
        folded = cursor.fetchall()
        assert sum(value is not None for _, value in folded) > 1000
        cursor.execute(f"UPDATE metrics_order_fact SET {column} = NULL")  # as before the migration
        cursor.execute(importlib.import_module(f"metrics.migrations.{migration}").BACKFILL)
        cursor.execute(f"SELECT order_id, {column} FROM metrics_order_fact ORDER BY order_id")
        assert cursor.fetchall() == folded
