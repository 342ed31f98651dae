"""Incident records: the incident, its timeline, decision log, hypotheses, action items, status
updates, exit criteria and postmortem narrative.

Two records are append-only and the database enforces it (migration 0002 installs triggers):
- a timeline entry is never updated or deleted (a correction is a new entry pointing at the old);
- a published status update is never updated or deleted (drafts may be edited until published).
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

SEVERITIES = {
    "SEV1": "Critical: checkout broadly broken or payments at risk for most buyers; all hands, "
            "executive updates every 30 minutes.",
    "SEV2": "Major: a large segment of buyers declined or challenged wrongly, or a guardrail "
            "rolled the model back; updates every hour.",
    "SEV3": "Minor: a limited segment or a degraded metric within tolerance; updates every 4 hours.",
    "SEV4": "Low: no buyer impact yet (a warning, a data-quality issue caught in shadow); daily updates.",
}
# How often a status update is due while the incident is open.
UPDATE_CADENCE = {
    "SEV1": timedelta(minutes=30),
    "SEV2": timedelta(hours=1),
    "SEV3": timedelta(hours=4),
    "SEV4": timedelta(hours=24),
}
STATUSES = ("investigating", "identified", "mitigating", "monitoring", "resolved")
ROLES = {
    "commander": "Incident commander",
    "comms_lead": "Communications lead",
    "scribe": "Scribe",
    "ops_lead": "Operations lead",
}


def _choices(values):
    return [(v, v.replace("_", " ")) for v in values]


class Incident(models.Model):
    title = models.CharField(max_length=200)
    severity = models.CharField(max_length=4, choices=[(s, s) for s in SEVERITIES], default="SEV2")
    status = models.CharField(max_length=16, choices=_choices(STATUSES), default="investigating")
    # Which rollout the incident is about: a breach attaches to the open incident of its rollout.
    rollout_key = models.CharField(max_length=100, default="fraud-model")
    commander = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    comms_lead = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    scribe = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    ops_lead = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # {"arm": "treatment", "segment": {"feature": ..., "in": [...]} | null, "from": iso, "to": iso | null}
    affected_population = models.JSONField(default=dict)
    opened_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField()
    detected_at = models.DateTimeField()
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    opened_by = models.CharField(max_length=150, default="system")
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # At most one open incident per rollout: concurrent breaches attach instead of duplicating.
            models.UniqueConstraint(fields=["rollout_key"], condition=~Q(status="resolved"),
                                    name="incidents_one_open_per_rollout"),
            models.CheckConstraint(condition=Q(severity__in=list(SEVERITIES)), name="incidents_severity_valid"),
            models.CheckConstraint(condition=Q(status__in=list(STATUSES)), name="incidents_status_valid"),
        ]

    def __str__(self):
        return f"INC-{self.pk}: {self.title}"

    @property
    def reference(self) -> str:
        return f"INC-{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status != "resolved"

    @property
    def time_to_detect(self):
        return self.detected_at - self.started_at if self.detected_at and self.started_at else None

    @property
    def time_to_mitigate(self):
        return self.mitigated_at - self.started_at if self.mitigated_at else None

    @property
    def time_to_resolve(self):
        return self.resolved_at - self.started_at if self.resolved_at else None

    @property
    def severity_definition(self) -> str:
        return SEVERITIES[self.severity]

    @property
    def update_cadence(self) -> timedelta:
        return UPDATE_CADENCE[self.severity]


TIMELINE_KINDS = (
    "incident_opened", "alert", "guardrail", "policy_change", "signoff", "status_change", "severity_change",
    "role_change", "status_update", "decision", "hypothesis", "action_item", "note", "evidence", "correction",
    "exit_criterion",
)


class TimelineEntry(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="timeline_entries")
    at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=20, choices=_choices(TIMELINE_KINDS))
    # "system" for automatic entries, else the person's username.
    source = models.CharField(max_length=150)
    text = models.TextField()
    link = models.URLField(max_length=500, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    # Identifies the upstream fact ("alert:17", "policy:12"): the same fact lands once per incident.
    source_key = models.CharField(max_length=200, null=True, blank=True)
    corrects = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="corrections")

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "source_key"], name="incidents_timeline_source_once"),
        ]

    @property
    def is_system(self) -> bool:
        return self.source == "system"


class SystemNews(models.Model):
    """Every upstream fact (policy change, alert, sign-off) as received, incident or not, so an
    incident opened later can put the facts that led to it on its timeline (exactly once)."""

    source_key = models.CharField(max_length=200, unique=True)
    topic = models.CharField(max_length=20)
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=20)
    text = models.TextField()
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["at", "id"]


class DecisionRecord(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="decisions")
    decided_at = models.DateTimeField(default=timezone.now)
    decision = models.CharField(max_length=300)
    rationale = models.TextField(blank=True)
    # [{"option": "...", "expected_effect": "..."}]
    options = models.JSONField(default=list, blank=True)
    trade_offs = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    consulted = models.CharField(max_length=500, blank=True)
    # The policy version the action produced (rollout), when the decision was carried out by one.
    policy_version = models.IntegerField(null=True, blank=True)
    policy_action = models.CharField(max_length=40, blank=True)
    # The KPI snapshot at the moment of deciding (from metrics.kpis, as served by /api/v1/kpis).
    numbers = models.JSONField(default=dict, blank=True)
    recorded_by = models.CharField(max_length=150)
    # Set on decisions the system recorded itself (an automatic containment): "policy:<version>".
    source_key = models.CharField(max_length=100, null=True, blank=True)

    class Meta:
        ordering = ["decided_at", "id"]
        constraints = [models.UniqueConstraint(fields=["incident", "source_key"], name="incidents_decision_source_once")]


HYPOTHESIS_KINDS = {"feature_drift": "Feature drift", "latency": "Latency / fallback",
                    "thresholds": "Threshold calibration", "custom": "Other"}
HYPOTHESIS_STATUSES = ("open", "supported", "refuted", "confirmed")


class Hypothesis(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="hypotheses")
    kind = models.CharField(max_length=20, choices=list(HYPOTHESIS_KINDS.items()))
    statement = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=_choices(HYPOTHESIS_STATUSES), default="open")
    # Evidence captured from metrics.diagnosis / feature_health when the hypothesis was last assessed.
    evidence = models.JSONField(default=dict, blank=True)
    evidence_note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(condition=Q(status__in=list(HYPOTHESIS_STATUSES)),
                                              name="incidents_hypothesis_status_valid")]


ACTION_ITEM_KINDS = ("corrective", "preventive")
ACTION_ITEM_STATUSES = ("open", "in_progress", "done", "cancelled")


class ActionItem(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="action_items")
    kind = models.CharField(max_length=12, choices=_choices(ACTION_ITEM_KINDS))
    title = models.CharField(max_length=300)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    due_on = models.DateField()
    status = models.CharField(max_length=12, choices=_choices(ACTION_ITEM_STATUSES), default="open")
    created_at = models.DateTimeField(default=timezone.now)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["due_on", "id"]

    @property
    def is_overdue(self) -> bool:
        return self.status in ("open", "in_progress") and self.due_on < timezone.now().date()


AUDIENCES = {
    "tactical": ("Tactical (responders)", ("conditions", "actions", "needs")),
    "executive": ("Executive (leadership)", ("status", "overview", "next_steps")),
    "support": ("Support wording", ("message",)),
    "seller": ("Seller wording", ("message",)),
}


class StatusUpdate(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="status_updates")
    audience = models.CharField(max_length=10, choices=[(k, v[0]) for k, v in AUDIENCES.items()])
    # {"conditions": "...", ...}: the audience's sections.
    sections = models.JSONField(default=dict)
    # The live numbers the draft was generated from (kept with the update for the record).
    numbers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    def section_items(self):
        """[(name, label, text)] in the audience's order."""
        return [(name, name.replace("_", " ").capitalize(), self.sections.get(name, ""))
                for name in AUDIENCES[self.audience][1]]


class ExitCriterion(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="exit_criteria")
    text = models.CharField(max_length=300)
    met_at = models.DateTimeField(null=True, blank=True)
    met_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]


POSTMORTEM_SECTIONS = {
    "summary": "Summary",
    "root_cause": "Root cause",
    "what_went_well": "What went well",
    "what_went_wrong": "What went wrong",
    "lessons": "Lessons learned",
}


class PostmortemSection(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="postmortem_sections")
    key = models.CharField(max_length=20, choices=list(POSTMORTEM_SECTIONS.items()))
    body = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "key"], name="incidents_pm_section_once")]
