"""The time of each order's first `checkout_completed` on its fact.

The conversion guardrail counts orders younger than its maturity with their outcomes so far, and
for that it learns how long completions take from the settled orders (metrics/outcomes_so_far.py).
The maturity's help text says so. The backfill fills the column for orders folded before this migration, under the refresh's
advisory lock so no refresh folds meanwhile.
"""
from django.db import migrations, models

FORWARD = """
SELECT pg_advisory_xact_lock(1560941040);  -- metrics.rollups.REFRESH_LOCK_KEY
ALTER TABLE metrics_order_fact ADD COLUMN completed_at timestamptz;
"""

BACKFILL = """
UPDATE metrics_order_fact f SET completed_at = o.completed_at
FROM (SELECT order_id, min(occurred_at) AS completed_at FROM metrics_outcome
      WHERE kind = 'checkout_completed' GROUP BY order_id) o
WHERE f.completed AND f.order_id = o.order_id;
"""


class Migration(migrations.Migration):
    dependencies = [("metrics", "0011_decision_time_brin")]

    operations = [
        migrations.RunSQL(FORWARD + BACKFILL, "ALTER TABLE metrics_order_fact DROP COLUMN completed_at"),
        migrations.AlterField(
            model_name="guardrail",
            name="maturity_minutes",
            field=models.PositiveIntegerField(
                default=0, help_text="delta kind: orders younger than this are still collecting their outcomes (completion, "
                                     "step-up result), later for an arm with more step-ups: conversion counts them with their "
                                     "outcomes so far (metrics/outcomes_so_far.py), the other metrics leave them out"),
        ),
    ]
