from django.db import migrations

# name, kind, metric, segment_feature, direction, margin, threshold, min_sample, window, action, severity
DEFAULTS = [
    ("conversion", "delta", "conversion", "*", "lower_is_worse", 0.005, None, 500, 60, "halt_ramp", "soft"),
    ("false-decline-proxy", "delta", "false_decline_rate", "*", "higher_is_worse", 0.003, None, 500, 60, "rollback_stage", "hard"),
    ("support-tickets", "delta", "support_ticket_rate", "", "higher_is_worse", 1.0, None, 500, 60, "halt_ramp", "soft"),
    ("scoring-latency-p95", "limit", "latency_p95_ms", "", "higher_is_worse", 0, 80.0, 200, 5, "rollback_stage", "hard"),
    ("fallback-rate", "limit", "fallback_rate", "", "higher_is_worse", 0, 0.01, 200, 5, "rollback_stage", "hard"),
    ("sample-ratio", "srm", "srm", "*", "higher_is_worse", 0, 0.001, 500, 60, "halt_ramp", "soft"),
    ("feature-health", "feature_health", "feature_health", "*", "higher_is_worse", 0.05, 0.25, 100, 5, "exclude_segment", "hard"),
]


def seed(apps, schema_editor):
    Guardrail = apps.get_model("metrics", "Guardrail")
    for name, kind, metric, segment, direction, margin, threshold, min_sample, window, action, severity in DEFAULTS:
        Guardrail.objects.get_or_create(name=name, defaults=dict(
            kind=kind, metric=metric, segment_feature=segment, direction=direction, margin=margin,
            threshold=threshold, min_sample=min_sample, window_minutes=window, action=action, severity=severity))


class Migration(migrations.Migration):
    dependencies = [("metrics", "0005_guardrails")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
