from django.contrib import admin

from incidents.support.models import DecisionLabel, Escalation, LookupLog, Note


@admin.register(LookupLog)
class LookupLogAdmin(admin.ModelAdmin):
    """Read-only: the look-up log is evidence for Compliance."""

    list_display = ("at", "actor", "via", "kind", "search_by", "subject", "results")
    list_filter = ("kind", "via")
    search_fields = ("actor", "subject")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ("order_id", "author", "created_at")
    search_fields = ("order_id",)


@admin.register(DecisionLabel)
class DecisionLabelAdmin(admin.ModelAdmin):
    list_display = ("order_id", "label", "author", "outcome_event_id", "created_at")
    list_filter = ("label",)


@admin.register(Escalation)
class EscalationAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "raised_by", "created_at")
    list_filter = ("status",)
