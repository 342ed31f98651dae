"""The rollout's state: immutable policy versions, the pointer to the served one, the ramp plan
with its stages, sign-offs and advance requests, the append-only audit log, and the record of
which guardrail alerts were already acted on.

Policy versions and audit entries are protected by database triggers (migration 0002): an UPDATE
or DELETE on them raises, whatever code (or person with psql) tries it.
"""
from django.db import models

MODES = ("off", "shadow", "active")
FALLBACKS = ("step_up", "approve", "rules")


class PolicyVersion(models.Model):
    """One immutable version of the CONTRACT section 3 document, with who made it and why."""

    version = models.PositiveIntegerField(primary_key=True)
    model_version = models.CharField(max_length=64, null=True, blank=True)
    mode = models.CharField(max_length=8, choices=[(m, m) for m in MODES])
    traffic_pct = models.FloatField()
    salt = models.CharField(max_length=64)
    thresholds = models.JSONField()
    timeout_ms = models.PositiveIntegerField()
    fallback = models.CharField(max_length=8, choices=[(f, f) for f in FALLBACKS])
    segment_overrides = models.JSONField(default=list)
    updated_at = models.DateTimeField()
    reason = models.TextField()
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=32, help_text="what created this version (an action name, bootstrap, initial)")
    params = models.JSONField(default=dict, blank=True)
    break_glass = models.BooleanField(default=False)

    class Meta:
        ordering = ["-version"]

    def __str__(self):
        return f"v{self.version} {self.mode} {self.traffic_pct:g}%"

    def document(self) -> dict:
        return {
            "version": self.version,
            "model_version": self.model_version,
            "mode": self.mode,
            "traffic_pct": float(self.traffic_pct),
            "salt": self.salt,
            "thresholds": self.thresholds,
            "timeout_ms": self.timeout_ms,
            "fallback": self.fallback,
            "segment_overrides": self.segment_overrides,
            "updated_at": self.updated_at.isoformat().replace("+00:00", "Z"),
            "reason": self.reason,
        }


class ServedPolicy(models.Model):
    """The single row (id=1) naming the version being served, with its document pre-rendered so
    a policy read is one primary-key lookup. Writers lock this row (SELECT ... FOR UPDATE), so
    changes are serialised and each starts from the version it replaces."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.PositiveIntegerField()
    document = models.JSONField()
    body = models.TextField(help_text="the document as served (JSON text)")
    changed_at = models.DateTimeField()

    class Meta:
        verbose_name = "served policy"


class RampPlan(models.Model):
    """The single ramp plan (id=1). `revision` grows with every edit of the plan; `current_stage`
    is the index of the stage being served (-1: not started / killed)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    revision = models.PositiveIntegerField(default=1)
    current_stage = models.IntegerField(default=-1)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    auto_advance = models.BooleanField(default=True, help_text="advance by itself when everything is present")
    paused = models.BooleanField(default=False)
    paused_reason = models.TextField(blank=True)
    missing_data_limit_minutes = models.PositiveIntegerField(
        default=120, help_text="how long a stage may wait for gate data beyond its dwell before the plan pauses")
    waiting_for_data_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    def __str__(self):
        return f"ramp plan r{self.revision}"


class RampStage(models.Model):
    plan = models.ForeignKey(RampPlan, on_delete=models.CASCADE, related_name="stages")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=32)
    traffic_pct = models.FloatField()
    min_dwell_minutes = models.PositiveIntegerField(help_text="time to stay at this stage before advancing")
    gates = models.JSONField(default=list, blank=True,
                             help_text="guardrail names (or metric names) that must be ok with their minimum samples")
    required_roles = models.JSONField(default=list, blank=True, help_text="roles whose sign-off advancing needs")

    class Meta:
        ordering = ["plan", "position"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "position"], name="rollout_stage_position_unique"),
            models.UniqueConstraint(fields=["plan", "name"], name="rollout_stage_name_unique"),
        ]

    def __str__(self):
        return f"{self.name} ({self.traffic_pct:g}%)"


class AdvanceRequest(models.Model):
    """Someone asked to leave `stage` (index; -1 = start the plan) for the next one."""

    stage = models.IntegerField()
    requested_by = models.CharField(max_length=150)
    requested_at = models.DateTimeField()
    comment = models.TextField(blank=True)
    policy_version = models.PositiveIntegerField()
    plan_revision = models.PositiveIntegerField()

    class Meta:
        ordering = ["-requested_at"]


class SignOff(models.Model):
    """A role's approval to leave `stage`. Valid only while the policy version and plan revision
    it was given against are current: any edit of either expires it."""

    stage = models.IntegerField()
    role = models.CharField(max_length=32)
    username = models.CharField(max_length=150)
    signed_at = models.DateTimeField()
    comment = models.TextField(blank=True)
    policy_version = models.PositiveIntegerField()
    plan_revision = models.PositiveIntegerField()

    class Meta:
        ordering = ["-signed_at"]


class AuditEntry(models.Model):
    """Append-only (a trigger refuses UPDATE and DELETE)."""

    class Kind(models.TextChoices):
        POLICY = "policy", "policy version"
        BREAK_GLASS = "break_glass", "break-glass change"
        ACTION_REFUSED = "action_refused", "action refused"
        NO_CHANGE = "no_change", "action without change"
        SIGNOFF = "signoff", "sign-off"
        ADVANCE_REQUEST = "advance_request", "advance requested"
        GATE_DECISION = "gate_decision", "gate decision"
        PLAN = "plan", "plan edited / paused / resumed"
        GUARDRAIL = "guardrail", "guardrail action"

    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    actor = models.CharField(max_length=150, db_index=True)
    action = models.CharField(max_length=40, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.action} by {self.actor}"


class GuardrailActionRecord(models.Model):
    """One row per alert acted on; the unique alert_id is what makes the action happen once."""

    alert_id = models.BigIntegerField(unique=True)
    guardrail = models.CharField(max_length=100)
    action = models.CharField(max_length=20)
    handled_at = models.DateTimeField()
    outcome = models.TextField(blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
