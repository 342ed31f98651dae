from django.apps import AppConfig


class RolloutConfig(AppConfig):
    name = "rollout"
    verbose_name = "Rollout (policy, ramp plan, gates, sign-offs, audit)"

    def ready(self):
        from rollout import fastpath, guardrail_actions, openapi, services
        from shopswift_ops import live
        from shopswift_ops.access import add_nav_item
        from shopswift_ops.openapi import register

        register(paths=openapi.PATHS, schemas=openapi.SCHEMAS)
        live.subscribe("alerts", guardrail_actions.handle_alert)
        live.subscribe("policy", fastpath.invalidate)
        add_nav_item("Ramp plan", "/rollout/ramp/", "policy:read")
        add_nav_item("Audit log", "/rollout/audit/", "audit:read")
        try:
            from metrics.population import set_policy_provider
        except ImportError:
            return
        set_policy_provider(services.policy_document_or_none)
