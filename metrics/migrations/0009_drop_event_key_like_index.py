"""Drop the text_pattern_ops index Django adds beside a text primary key.

`metrics_event_key` is written for every ingested event and only ever probed by equality (the
duplicate check), so a second btree over `event_id` doubles the index work of ingest for no reader.
"""
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("metrics", "0008_detection_speed")]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS metrics_event_key_event_id_78ace029_like",
            reverse_sql="CREATE INDEX IF NOT EXISTS metrics_event_key_event_id_78ace029_like "
                        "ON metrics_event_key (event_id text_pattern_ops)",
        ),
    ]
