from django.apps import AppConfig


class SupportConfig(AppConfig):
    """Support look-up and Compliance: part of the incidents layer, with tables of its own."""

    name = "incidents.support"
    label = "support"
    verbose_name = "Support look-up and Compliance"

    def ready(self):
        from incidents.support import openapi
        from shopswift_ops.access import add_nav_item
        from shopswift_ops.openapi import register

        register(paths=openapi.PATHS, schemas=openapi.SCHEMAS)
        add_nav_item("Support", "/support/", "support:view")
        add_nav_item("Compliance", "/compliance/", "compliance:view")
