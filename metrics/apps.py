from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics (events, KPIs, feature health, guardrails)"

    def ready(self):
        from metrics import ingest, openapi, pipeline
        from shopswift_ops.openapi import register

        register(paths=openapi.PATHS, schemas=openapi.SCHEMAS)
        ingest.on_events_stored(pipeline.nudge)
