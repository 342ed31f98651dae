from django.apps import AppConfig


class RolloutConfig(AppConfig):
    name = "rollout"
    verbose_name = "Rollout (policy, ramp plan, gates, sign-offs, audit)"
