from django.apps import AppConfig


class SupportConfig(AppConfig):
    """Support look-up and Compliance: part of the incidents layer, with tables of its own."""

    name = "incidents.support"
    label = "support"
    verbose_name = "Support look-up and Compliance"
