from django.urls import path

from rollout import api, views

urlpatterns = [
    path("api/v1/rollout/policy", api.policy, name="api-rollout-policy"),
    path("api/v1/rollout/policy/<int:version>", api.policy_version, name="api-rollout-policy-version"),
    path("api/v1/rollout/actions", api.actions, name="api-rollout-actions"),
    path("api/v1/rollout/ramp", api.ramp, name="api-rollout-ramp"),
    path("api/v1/rollout/ramp/request-advance", api.ramp_request_advance, name="api-rollout-request-advance"),
    path("api/v1/rollout/ramp/advance", api.ramp_advance, name="api-rollout-advance"),
    path("api/v1/rollout/ramp/signoffs", api.ramp_signoff, name="api-rollout-signoff"),
    path("rollout/ramp/", views.ramp_plan, name="rollout-ramp"),
    path("rollout/ramp/request-advance", views.request_advance, name="rollout-request-advance"),
    path("rollout/ramp/advance", views.advance, name="rollout-advance"),
    path("rollout/ramp/sign-off", views.sign_off, name="rollout-sign-off"),
    path("rollout/ramp/pause", views.pause, name="rollout-pause"),
    path("rollout/ramp/resume", views.resume, name="rollout-resume"),
    path("rollout/audit/", views.audit_log, name="rollout-audit"),
    path("rollout/audit.csv", views.audit_csv, name="rollout-audit-csv"),
]
