from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents (war room, timeline, support, exec summary)"

    def ready(self):
        from shopswift_ops.access import add_nav_item

        add_nav_item("War room", "/war-room/", "warroom:view")

        from incidents import openapi, services
        from shopswift_ops import live
        from shopswift_ops.openapi import register

        add_nav_item("Incidents", "/incidents/", "incidents:read")
        add_nav_item("Executive summary", "/exec/", "exec:view")
        register(paths=openapi.PATHS, schemas=openapi.SCHEMAS)
        # News from the layers below lands on the incident timeline (a breach opens an incident).
        live.subscribe("policy", services.on_policy)
        live.subscribe("alerts", services.on_alert)
        live.subscribe("signoffs", services.on_signoff)
        live.subscribe("guardrails", services.on_guardrails)
