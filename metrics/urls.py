from django.urls import path

from metrics import api

urlpatterns = [
    path("api/v1/events", api.post_events, name="api-events"),
    path("api/v1/kpis", api.get_kpis, name="api-kpis"),
    path("api/v1/guardrails", api.get_guardrails, name="api-guardrails"),
    path("api/v1/features/health", api.get_feature_health, name="api-feature-health"),
    path("api/v1/diagnosis", api.get_diagnosis, name="api-diagnosis"),
    path("api/v1/chargebacks", api.get_chargebacks, name="api-chargebacks"),
]
