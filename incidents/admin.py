from django.contrib import admin

from incidents.models import ActionItem, DecisionRecord, ExitCriterion, Hypothesis, Incident, StatusUpdate, TimelineEntry
from shopswift_ops.admin import ReadOnlyAdmin


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "severity", "status", "started_at", "detected_at", "mitigated_at", "resolved_at")
    list_filter = ("severity", "status")
    # Changes go through incidents.services (timeline entries, conditional updates): read here.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


for model in (TimelineEntry, DecisionRecord, Hypothesis, ActionItem, StatusUpdate, ExitCriterion):
    admin.site.register(model, ReadOnlyAdmin)
