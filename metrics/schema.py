"""The wire format of events (CONTRACT section 2), declared once.

msgspec validates a well-formed event in C; only an event that fails is walked field by field
(`explain_errors`) to report *every* problem, each naming its field, with the same types.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal, Union

import msgspec
from msgspec import Meta, Struct

Id = Annotated[str, Meta(min_length=1, max_length=64)]
ReasonCode = Annotated[str, Meta(pattern=r"^[A-Z0-9_]{2,40}$")]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
PositiveMinor = Annotated[int, Meta(gt=0, le=9_000_000_000_000_000)]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
FeatureName = Annotated[str, Meta(min_length=1, max_length=64)]
FeatureValue = Union[bool, int, float, Annotated[str, Meta(max_length=256)], None]
Features = Annotated[dict[FeatureName, FeatureValue], Meta(max_length=64)]
Contributions = Annotated[dict[FeatureName, float], Meta(max_length=64)]

DECISIONS = ("approve", "step_up", "decline")
DECIDED_BY = ("model", "fallback", "rules", "manual")
ARMS = ("control", "treatment")
OUTCOME_KINDS = (
    "checkout_completed", "checkout_abandoned", "step_up_passed", "step_up_failed", "step_up_abandoned",
    "chargeback", "fraud_confirmed", "high_risk_signal", "review_legit", "review_fraud", "support_ticket",
)
MAX_FUTURE = timedelta(minutes=5)

Decision = Literal["approve", "step_up", "decline"]


class Shadow(Struct, forbid_unknown_fields=True, gc=False):
    score: Probability
    decision: Decision


class DecisionEvent(Struct, tag="decision", tag_field="type", gc=False):
    event_id: Id
    order_id: Id
    occurred_at: datetime
    buyer_id: Id
    seller_id: Id
    amount_minor: PositiveMinor
    currency: Currency
    arm: Literal["control", "treatment"]
    policy_version: Annotated[int, Meta(ge=1, le=2_147_483_647)]
    model_version: Annotated[str, Meta(min_length=1, max_length=64)] | None
    score: Probability | None
    decision: Decision
    decided_by: Literal["model", "fallback", "rules", "manual"]
    reason_codes: Annotated[list[ReasonCode], Meta(max_length=32)]
    latency_ms: Annotated[float, Meta(ge=0.0, le=3_600_000.0)]
    timed_out: bool
    features: Features
    shadow: Shadow | None = None
    contributions: Contributions | None = None
    # Not in CONTRACT section 2's table: an optional buyer e-mail, which ingest replaces by a
    # keyed hash and a masked form before anything is stored (Support searches by it).
    buyer_email: Annotated[str, Meta(min_length=3, max_length=254)] | None = None


class OutcomeEvent(Struct, tag="outcome", tag_field="type", gc=False):
    event_id: Id
    order_id: Id
    occurred_at: datetime
    kind: Literal[
        "checkout_completed", "checkout_abandoned", "step_up_passed", "step_up_failed", "step_up_abandoned",
        "chargeback", "fraud_confirmed", "high_risk_signal", "review_legit", "review_fraud", "support_ticket",
    ]
    amount_minor: PositiveMinor | None = None
    currency: Currency | None = None
    detail: Annotated[str, Meta(max_length=200)] | None = None


Event = Union[DecisionEvent, OutcomeEvent]
_event_decoder = msgspec.json.Decoder(Event)
_STRUCT_BY_TYPE = {"decision": DecisionEvent, "outcome": OutcomeEvent}


class Envelope(Struct):
    events: list[msgspec.Raw]


envelope_decoder = msgspec.json.Decoder(Envelope)


class ValidEnvelope(Struct):
    events: list[Event]


# The fast path: a batch whose events are all well-typed decodes in one C call.
valid_envelope_decoder = msgspec.json.Decoder(ValidEnvelope)


MAX_OFFSET = timedelta(hours=14)


def _time_errors(occurred_at: datetime, now: datetime) -> list[str]:
    if occurred_at.tzinfo is None:
        return ["occurred_at: must be RFC 3339 with an offset (e.g. 2026-11-28T14:02:07.123Z)"]
    offset = occurred_at.utcoffset()
    # Real offsets lie within -12:00..+14:00; PostgreSQL refuses beyond +-15:59 (a 500, found by
    # the fuzz test), and dates long past cannot be payment events (nor convert to UTC safely).
    if offset is not None and abs(offset) > MAX_OFFSET:
        return ["occurred_at: the UTC offset must lie between -14:00 and +14:00"]
    if occurred_at.year < 2000:
        return ["occurred_at: before the year 2000"]
    if occurred_at - now > MAX_FUTURE:
        return ["occurred_at: more than 5 minutes in the future"]
    return []


def semantic_errors(event: DecisionEvent | OutcomeEvent, now: datetime) -> list[str]:
    """Rules the types cannot express."""
    errors = _time_errors(event.occurred_at, now)
    if type(event) is OutcomeEvent and (event.amount_minor is None) != (event.currency is None):
        errors.append("currency: amount_minor and currency go together" if event.currency is None
                      else "amount_minor: amount_minor and currency go together")
    return errors


def decode_event(raw: bytes, now: datetime) -> tuple[DecisionEvent | OutcomeEvent | None, list[str]]:
    try:
        event = _event_decoder.decode(raw)
    except msgspec.ValidationError:
        return None, explain_errors(raw, now)
    errors = semantic_errors(event, now)
    return (None, errors) if errors else (event, [])


def _message(field: str, exc: msgspec.ValidationError) -> str:
    text = str(exc)
    text, _, where = text.partition(" - at `$")
    where = where.rstrip("`")
    return f"{field}{where}: {text}"


def explain_errors(raw: bytes, now: datetime) -> list[str]:
    """Every problem of one event that failed to decode, each naming its field."""
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return ["event: not valid JSON"]
    if not isinstance(obj, dict):
        return ["event: must be a JSON object"]
    kind = obj.get("type")
    struct = _STRUCT_BY_TYPE.get(kind) if isinstance(kind, str) else None  # a list/dict type is a 400, not a 500
    if struct is None:
        return ["type: required, one of 'decision', 'outcome'" if "type" not in obj
                else f"type: must be 'decision' or 'outcome', got {obj.get('type')!r:.40}"]
    errors = []
    for field in msgspec.structs.fields(struct):
        if field.name not in obj:
            if field.required:
                errors.append(f"{field.name}: required")
            continue
        try:
            value = msgspec.convert(obj[field.name], type=field.type, strict=True)
        except msgspec.ValidationError as exc:
            errors.append(_message(field.name, exc))
            continue
        if field.name == "occurred_at":
            errors.extend(_time_errors(value, now))
    if not errors:
        # Each field is valid on its own, so a cross-field rule failed.
        try:
            event = msgspec.convert(obj, type=struct, strict=True)
        except msgspec.ValidationError as exc:
            return [_message("event", exc)]
        errors = [e for e in semantic_errors(event, now) if not e.startswith("occurred_at")]
    return errors
