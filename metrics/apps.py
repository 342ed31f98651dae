from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics (events, KPIs, feature health, guardrails)"

    def ready(self):
        from metrics import openapi
        from shopswift_ops.openapi import register

        register(paths=openapi.PATHS, schemas=openapi.SCHEMAS)
