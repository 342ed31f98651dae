from django.db import migrations


def tune_defaults(apps, schema_editor):
    # Delta guardrails now read the settled orders of the current policy version since it began
    # (window_minutes only caps how far back); the sequential test needs no large minimum, and a
    # segment of a few percent of traffic reaches 100 settled orders per arm within minutes where
    # 500 took a quarter of an hour.
    Guardrail = apps.get_model("metrics", "Guardrail")
    Guardrail.objects.filter(name__in=["conversion", "false-decline-proxy", "support-tickets"], min_sample=500).update(min_sample=100)
    Guardrail.objects.filter(name__in=["conversion", "false-decline-proxy", "support-tickets"], window_minutes=60).update(window_minutes=1440)


class Migration(migrations.Migration):
    dependencies = [("metrics", "0007_guardrail_maturity")]
    operations = [
        # feature health reads cross-segment counts of a time window from the order facts
        migrations.RunSQL("CREATE INDEX IF NOT EXISTS metrics_order_fact_first_at_idx ON metrics_order_fact (first_at)",
                          "DROP INDEX IF EXISTS metrics_order_fact_first_at_idx"),
        migrations.RunPython(tune_defaults, migrations.RunPython.noop),
    ]
