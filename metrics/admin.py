from django.contrib import admin

from metrics.models import FeatureDefinition, ReasonCode


@admin.register(FeatureDefinition)
class FeatureDefinitionAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "default_value", "min_value", "max_value", "segment_dimension", "monitored", "updated_at")
    list_filter = ("kind", "segment_dimension", "monitored")


@admin.register(ReasonCode)
class ReasonCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "support_text", "customer_text", "adverse_action_text", "owner", "updated_at")
    search_fields = ("code", "support_text")
