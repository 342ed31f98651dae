"""The score of each order's first decision, when the model made it, on its fact.

The threshold what-if (metrics/diagnosis.py) re-decides the last hour's treatment orders from their
stored scores; it joined an hour of raw decisions to the facts, the war room's largest query. The
backfill fills the column for orders folded before this migration, under the refresh's advisory
lock so no refresh folds meanwhile.
"""
from django.db import migrations

FORWARD = """
SELECT pg_advisory_xact_lock(1560941040);  -- metrics.rollups.REFRESH_LOCK_KEY
ALTER TABLE metrics_order_fact ADD COLUMN first_model_score double precision;
"""

BACKFILL = """
UPDATE metrics_order_fact f SET first_model_score = d.score
FROM (SELECT DISTINCT ON (order_id) order_id, occurred_at, decided_by, score FROM metrics_decision
      ORDER BY order_id, occurred_at, event_id) d
WHERE d.order_id = f.order_id AND d.decided_by = 'model' AND d.score IS NOT NULL;
"""


class Migration(migrations.Migration):
    dependencies = [("metrics", "0012_order_completed_at")]

    operations = [
        migrations.RunSQL(FORWARD + BACKFILL, "ALTER TABLE metrics_order_fact DROP COLUMN first_model_score"),
    ]
