"""Admin: policies and audit are read-only (the database refuses changes anyway); the ramp plan's
stages are edited here only through the service, so every edit is audited and expires sign-offs."""
from django.contrib import admin, messages

from rollout import services
from rollout.models import AdvanceRequest, AuditEntry, GuardrailActionRecord, PolicyVersion, RampPlan, RampStage, ServedPolicy, SignOff
from shopswift_ops.admin import ReadOnlyAdmin


@admin.register(PolicyVersion)
class PolicyVersionAdmin(ReadOnlyAdmin):
    list_display = ("version", "mode", "traffic_pct", "model_version", "action", "actor", "updated_at", "break_glass", "reason")
    list_filter = ("mode", "action", "break_glass")
    search_fields = ("reason", "actor", "model_version")


@admin.register(ServedPolicy)
class ServedPolicyAdmin(ReadOnlyAdmin):
    list_display = ("version", "changed_at")


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "kind", "action", "actor", "policy_version", "reason")
    list_filter = ("kind", "action")
    search_fields = ("actor", "reason", "action")
    date_hierarchy = "at"


@admin.register(SignOff)
class SignOffAdmin(ReadOnlyAdmin):
    list_display = ("signed_at", "stage", "role", "username", "policy_version", "plan_revision", "comment")


@admin.register(AdvanceRequest)
class AdvanceRequestAdmin(ReadOnlyAdmin):
    list_display = ("requested_at", "stage", "requested_by", "policy_version", "plan_revision", "comment")


@admin.register(GuardrailActionRecord)
class GuardrailActionRecordAdmin(ReadOnlyAdmin):
    list_display = ("alert_id", "guardrail", "action", "handled_at", "outcome", "policy_version")


class RampStageInline(admin.TabularInline):
    model = RampStage
    extra = 0
    fields = ("position", "name", "traffic_pct", "min_dwell_minutes", "gates", "required_roles")


@admin.register(RampPlan)
class RampPlanAdmin(admin.ModelAdmin):
    list_display = ("id", "revision", "current_stage", "paused", "auto_advance", "updated_by", "updated_at")
    readonly_fields = ("revision", "current_stage", "stage_started_at", "paused", "paused_reason",
                       "waiting_for_data_since", "updated_at", "updated_by")
    fields = ("auto_advance", "missing_data_limit_minutes") + readonly_fields
    inlines = [RampStageInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        self._settings = {"auto_advance": obj.auto_advance, "missing_data_limit_minutes": obj.missing_data_limit_minutes}

    def save_related(self, request, form, formsets, change):
        stages = []
        for formset in formsets:
            for inline_form in formset.forms:
                data = getattr(inline_form, "cleaned_data", None) or {}
                if not data or data.get("DELETE"):
                    continue
                stages.append({key: data[key] for key in ("name", "traffic_pct", "min_dwell_minutes", "gates", "required_roles")}
                              | {"_position": data.get("position", 0)})
        stages.sort(key=lambda s: s.pop("_position"))
        try:
            services.edit_plan(stages=stages, actor=request.user.get_username(), reason="edited in the admin",
                               **self._settings)
        except services.ActionError as exc:
            self.message_user(request, f"Plan not changed: {exc.detail}", level=messages.ERROR)
