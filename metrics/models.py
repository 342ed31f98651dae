"""The event store and what is derived from it.

Decision and outcome events live in tables range-partitioned by day on `occurred_at` (created by
migration 0001 in SQL; Django only reads them, `managed = False`). Daily partitions keep
time-range scans and order/buyer/seller look-ups (per-partition indexes) fast as a month of
ShopSwift traffic (~55M decisions, ~80M outcomes) accumulates, and make retention a DROP of
whole partitions. `event_id` is unique forever across both tables through `EventKey`.
"""
from django.contrib.postgres.fields import ArrayField
from django.db import models


class EventKey(models.Model):
    """Every event id ever accepted; the primary key is what makes a resend a duplicate."""

    event_id = models.TextField(primary_key=True)
    occurred_at = models.DateTimeField()

    class Meta:
        db_table = "metrics_event_key"


class Decision(models.Model):
    event_id = models.TextField(primary_key=True)
    order_id = models.TextField()
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    buyer_id = models.TextField()
    seller_id = models.TextField()
    buyer_email_hash = models.TextField(null=True)
    buyer_email_masked = models.TextField(null=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    arm = models.TextField()
    policy_version = models.IntegerField()
    model_version = models.TextField(null=True)
    score = models.FloatField(null=True)
    decision = models.TextField()
    decided_by = models.TextField()
    reason_codes = ArrayField(models.TextField())
    latency_ms = models.FloatField()
    timed_out = models.BooleanField()
    features = models.JSONField()
    shadow = models.JSONField(null=True)
    contributions = models.JSONField(null=True)

    class Meta:
        managed = False
        db_table = "metrics_decision"
        ordering = ["occurred_at", "event_id"]


class Outcome(models.Model):
    event_id = models.TextField(primary_key=True)
    order_id = models.TextField()
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    kind = models.TextField()
    amount_minor = models.BigIntegerField(null=True)
    currency = models.CharField(max_length=3, null=True)
    detail = models.TextField(null=True)

    class Meta:
        managed = False
        db_table = "metrics_outcome"
        ordering = ["occurred_at", "event_id"]


class PendingOrder(models.Model):
    """Orders touched by newly ingested events, queued in the ingest transaction itself; the
    rollup refresh consumes them (DELETE ... RETURNING), so its work is proportional to new
    events and a crashed refresh leaves its share queued."""

    id = models.BigAutoField(primary_key=True)
    order_id = models.TextField()
    queued_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "metrics_pending_order"


class FeatureDefinition(models.Model):
    """The feature registry (admin-editable): what each model feature's declared default and
    valid range are, whether it is a segment dimension, and whether its health is monitored."""

    class Kind(models.TextChoices):
        NUMBER = "number"
        STRING = "string"
        BOOLEAN = "boolean"

    name = models.CharField(max_length=64, primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.CharField(max_length=200, blank=True)
    default_value = models.JSONField(null=True, blank=True, help_text="the value the serving path uses when it has none")
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)
    allowed_values = models.JSONField(null=True, blank=True, help_text="list of valid values for string features")
    segment_dimension = models.BooleanField(default=False)
    monitored = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def problem_with(self, value) -> str | None:
        """'default' or 'out_of_range' for a served value, else None (nulls are counted apart)."""
        if value is None:
            return None
        if self.default_value is not None and value == self.default_value and type(value) is type(self.default_value):
            return "default"
        if self.kind == self.Kind.NUMBER and isinstance(value, (int, float)) and not isinstance(value, bool):
            if (self.min_value is not None and value < self.min_value) or (self.max_value is not None and value > self.max_value):
                return "out_of_range"
        if self.allowed_values and value not in self.allowed_values:
            return "out_of_range"
        return None


class ReasonCode(models.Model):
    """The reason-code catalogue (admin-editable): the wording of each code per audience."""

    code = models.CharField(max_length=40, primary_key=True)
    support_text = models.CharField(max_length=300, help_text="plain language for Support agents")
    customer_text = models.CharField(max_length=300, help_text="what Support may tell the customer")
    adverse_action_text = models.CharField(max_length=300, help_text="the adverse-action reason for Compliance")
    owner = models.CharField(max_length=100, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.code


class Guardrail(models.Model):
    """A guardrail (admin-editable). Kinds:
    - `delta`: treatment vs control on a rate, breach when treatment is worse by more than
      `margin` (sequential mSPRT, one-sided for harm);
    - `limit`: the treatment arm's value against `threshold` (latency p95, fallback rate);
    - `srm`: sample-ratio mismatch per policy version and segment, and buyers seen in both arms;
    - `feature_health`: default share up by more than `margin` vs reference, or PSI above
      `threshold`, per monitored feature and segment value.
    `segment_feature`: empty = all traffic; `*` = all traffic and every value of every segment
    dimension; a feature name = every value of that feature."""

    class Kind(models.TextChoices):
        DELTA = "delta", "treatment vs control"
        LIMIT = "limit", "treatment value vs threshold"
        SRM = "srm", "sample-ratio mismatch"
        FEATURE_HEALTH = "feature_health", "feature health"

    class Direction(models.TextChoices):
        HIGHER_IS_WORSE = "higher_is_worse"
        LOWER_IS_WORSE = "lower_is_worse"

    class Action(models.TextChoices):
        NOTIFY = "notify"
        HALT_RAMP = "halt_ramp"
        ROLLBACK_STAGE = "rollback_stage"
        EXCLUDE_SEGMENT = "exclude_segment"
        KILL = "kill"

    class Severity(models.TextChoices):
        HARD = "hard"
        SOFT = "soft"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    metric = models.CharField(max_length=64, blank=True, help_text="a KPI key of CONTRACT section 6 (delta and limit kinds)")
    segment_feature = models.CharField(max_length=64, blank=True, help_text="empty: all traffic; *: all traffic and every segment value; or a feature name")
    direction = models.CharField(max_length=20, choices=Direction.choices, default=Direction.HIGHER_IS_WORSE)
    margin = models.FloatField(default=0, help_text="tolerated harm in the metric's unit (delta), or default-share rise (feature health)")
    threshold = models.FloatField(null=True, blank=True, help_text="limit value (limit), or PSI threshold (feature health)")
    min_sample = models.PositiveIntegerField(default=500, help_text="per arm (orders or model-called decisions)")
    window_minutes = models.PositiveIntegerField(default=60)
    maturity_minutes = models.PositiveIntegerField(
        default=0, help_text="delta kind: orders younger than this are still collecting their outcomes (completion, "
                             "step-up result), later for an arm with more step-ups: conversion counts them with their "
                             "outcomes so far (metrics/outcomes_so_far.py), the other metrics leave them out")
    action = models.CharField(max_length=20, choices=Action.choices, default=Action.NOTIFY)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.SOFT)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


# A guardrail subject may be a group of one dimension's values (a population feature health
# implicates, e.g. both social-login methods), stored as one seg_value joined by this separator.
GROUP_SEPARATOR = "|"


def group_value(values) -> str:
    return GROUP_SEPARATOR.join(sorted(values))


def segment_values(seg_value: str) -> list[str]:
    return seg_value.split(GROUP_SEPARATOR)


def segment_members(segment: dict) -> list:
    """The values an API segment ({"feature", "value", "in"}) covers; one written before "in"
    existed has "value" only."""
    return list(segment.get("in") or [segment.get("value")])


def segment_dict(seg_feature: str, seg_value: str) -> dict | None:
    """A subject's segment as the APIs write it: CONTRACT's {"feature", "value"} plus "in", the
    values it covers (the notation of the policy's segment overrides), one for a single value."""
    if not seg_feature:
        return None
    return {"feature": seg_feature, "value": seg_value, "in": segment_values(seg_value)}


class GuardrailStatus(models.Model):
    """The latest evaluation of one guardrail on one subject (segment, and feature for feature health)."""

    guardrail = models.ForeignKey(Guardrail, on_delete=models.CASCADE, related_name="statuses")
    metric = models.CharField(max_length=100)
    seg_feature = models.CharField(max_length=64, blank=True)
    seg_value = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20)
    value = models.FloatField(null=True)
    threshold = models.FloatField(null=True)
    evidence = models.TextField()
    details = models.JSONField(default=dict)
    min_sample_met = models.BooleanField(default=False)
    since = models.DateTimeField()
    evaluated_at = models.DateTimeField()

    class Meta:
        ordering = ["guardrail__name", "metric", "seg_feature", "seg_value"]
        constraints = [models.UniqueConstraint(fields=["guardrail", "metric", "seg_feature", "seg_value"],
                                               name="metrics_guardrailstatus_subject")]


class Alert(models.Model):
    """A recorded breach: one per guardrail, subject and episode (a breach that persists is one alert)."""

    guardrail = models.ForeignKey(Guardrail, on_delete=models.PROTECT, related_name="alerts")
    metric = models.CharField(max_length=100)
    seg_feature = models.CharField(max_length=64, blank=True)
    seg_value = models.CharField(max_length=200, blank=True)
    episode_started_at = models.DateTimeField()
    action = models.CharField(max_length=20)
    evidence = models.TextField()
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["guardrail", "metric", "seg_feature", "seg_value", "episode_started_at"],
                                               name="metrics_alert_episode")]

    def segment(self) -> dict | None:
        return segment_dict(self.seg_feature, self.seg_value)

    def as_message(self) -> dict:
        return {"alert_id": self.pk, "guardrail": self.guardrail.name, "metric": self.metric,
                "segment": self.segment(), "status": "breach", "action": self.action, "evidence": self.evidence,
                "created_at": self.created_at.isoformat() if self.created_at else None}


class CardNetworkProgramme(models.Model):
    """A card network's monitoring programme (admin-editable), shown beside the monthly chargeback
    rate (CONTRACT section 5). Formula kinds:
    - `vamp` (Visa VAMP style): (completed orders with fraud_confirmed + completed orders with a
      chargeback) / completed orders, all of orders decided in the month; an order with both
      counts twice, as the contract's formula reads;
    - `ecm` (Mastercard ECM style): chargebacks that occurred in the month (by the chargeback's
      own time) / completed orders decided in the previous month.
    At or above `threshold` is a breach; a numerator below `min_count` is insufficient data (the
    programmes do not apply below their minimum count)."""

    class Formula(models.TextChoices):
        VAMP = "vamp", "VAMP: (fraud_confirmed + chargebacks) / completed orders of the month"
        ECM = "ecm", "ECM: chargebacks of the month / completed orders of the previous month"

    name = models.CharField(max_length=64, unique=True, help_text="e.g. Visa VAMP")
    network = models.CharField(max_length=32, help_text="card network, e.g. visa, mastercard")
    formula = models.CharField(max_length=8, choices=Formula.choices)
    threshold = models.FloatField(help_text="as a fraction: 0.015 = 1.5% = 150 bps")
    min_count = models.PositiveIntegerField(default=0, help_text="minimum numerator before the programme applies")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["network", "name"]

    def __str__(self):
        return self.name
