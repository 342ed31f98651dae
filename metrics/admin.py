from django.contrib import admin

from metrics.models import Alert, CardNetworkProgramme, FeatureDefinition, Guardrail, GuardrailStatus, ReasonCode
from shopswift_ops.admin import ReadOnlyAdmin


@admin.register(FeatureDefinition)
class FeatureDefinitionAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "default_value", "min_value", "max_value", "segment_dimension", "monitored", "updated_at")
    list_filter = ("kind", "segment_dimension", "monitored")


@admin.register(ReasonCode)
class ReasonCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "support_text", "customer_text", "adverse_action_text", "owner", "updated_at")
    search_fields = ("code", "support_text")




@admin.register(Guardrail)
class GuardrailAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "metric", "segment_feature", "direction", "margin", "threshold", "min_sample",
                    "window_minutes", "maturity_minutes", "action", "severity", "enabled")
    list_filter = ("kind", "action", "severity", "enabled")


@admin.register(GuardrailStatus)
class GuardrailStatusAdmin(ReadOnlyAdmin):
    allow_delete = True
    list_display = ("guardrail", "metric", "seg_feature", "seg_value", "status", "value", "since", "evaluated_at")
    list_filter = ("status", "guardrail")


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    allow_delete = True
    list_display = ("id", "guardrail", "metric", "seg_feature", "seg_value", "action", "episode_started_at", "created_at")
    list_filter = ("guardrail", "action")


@admin.register(CardNetworkProgramme)
class CardNetworkProgrammeAdmin(admin.ModelAdmin):
    list_display = ("name", "network", "formula", "threshold", "min_count", "enabled", "updated_at")
    list_filter = ("formula", "enabled")
