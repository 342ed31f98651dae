"""A BRIN index on metrics_decision.occurred_at (and a segment-first index for the feature chart).

Decisions arrive roughly in time order, so a block-range summary of occurred_at lets a time-range
scan inside a daily partition (the last hour's treatment decisions for the threshold what-if, the
newest decision for "time since last event") read only the recent block ranges instead of the whole
day. A BRIN index is a few pages per partition and costs ingest next to nothing, unlike a btree.
`autosummarize` has autovacuum summarise each block range as it fills; until then the range is
read by every scan, which is the newest data anyway.
"""
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("metrics", "0010_chargeback_programmes")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS metrics_decision_occurred_brin ON metrics_decision "
            "USING brin (occurred_at) WITH (autosummarize = on)",
            reverse_sql="DROP INDEX IF EXISTS metrics_decision_occurred_brin",
        ),
        # The war room's feature-health chart reads one feature of one segment over the range; the
        # primary key leads with the bucket, so a day's range read every segment's rows.
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS metrics_rollup_feature_minute_seg_idx "
            "ON metrics_rollup_feature_minute (seg_feature, seg_value, feature, bucket)",
            reverse_sql="DROP INDEX IF EXISTS metrics_rollup_feature_minute_seg_idx",
        ),
    ]
