"""Ingest of decision and outcome events (CONTRACT section 2).

One batch = one transaction: claim the new event ids (the `metrics_event_key` primary key makes a
resend, even a concurrent one, a duplicate), COPY the new events, queue their orders for the
rollup refresh. Either all valid events of a batch are stored or none are (503 to the client).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from django.db import connection, transaction
from django.utils import timezone

from metrics.partitions import ensure_partitions
from metrics.pii import email_hash, mask_email
from metrics.schema import DecisionEvent, decode_event, envelope_decoder, semantic_errors, valid_envelope_decoder

logger = logging.getLogger(__name__)

MAX_EVENTS = 5000
_json = msgspec.json.Encoder()

DECISION_COLUMNS = (
    "event_id", "order_id", "occurred_at", "received_at", "buyer_id", "seller_id", "buyer_email_hash",
    "buyer_email_masked", "amount_minor", "currency", "arm", "policy_version", "model_version", "score",
    "decision", "decided_by", "reason_codes", "latency_ms", "timed_out", "features", "shadow", "contributions",
)
OUTCOME_COLUMNS = ("event_id", "order_id", "occurred_at", "received_at", "kind", "amount_minor", "currency", "detail")


class EnvelopeError(ValueError):
    """The body is not JSON or not `{"events": [...]}`: 400."""


class BatchTooLarge(ValueError):
    """More events than the contract allows: 413."""


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


def parse_batch(body: bytes, *, now: datetime) -> tuple[list, list[dict]]:
    """Validate a request body; return the valid events and the rejections."""
    try:
        events = valid_envelope_decoder.decode(body).events
    except msgspec.DecodeError:
        pass  # some event (or the envelope) is wrong: the slow path below says exactly what
    else:
        if 0 < len(events) <= MAX_EVENTS:
            valid, rejected = [], []
            for index, event in enumerate(events):
                errors = semantic_errors(event, now)
                if errors:
                    rejected.append({"index": index, "event_id": event.event_id, "errors": errors})
                else:
                    valid.append(event)
            return valid, rejected
    try:
        envelope = envelope_decoder.decode(body)
    except msgspec.DecodeError as exc:
        if isinstance(exc, msgspec.ValidationError):
            raise EnvelopeError(f"body must be {{\"events\": [EVENT, ...]}}: {exc}") from None
        raise EnvelopeError("body: not valid JSON") from None
    count = len(envelope.events)
    if count == 0:
        raise EnvelopeError("events: must hold 1 to 5000 events, got 0")
    if count > MAX_EVENTS:
        raise BatchTooLarge(f"events: at most {MAX_EVENTS} events per batch, got {count}")
    valid, rejected = [], []
    for index, raw in enumerate(envelope.events):
        event, errors = decode_event(raw, now)
        if errors:
            rejected.append({"index": index, "event_id": _event_id_of(raw), "errors": errors})
        else:
            valid.append(event)
    return valid, rejected


def _event_id_of(raw: bytes) -> str | None:
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    event_id = value.get("event_id") if isinstance(value, dict) else None
    return event_id if isinstance(event_id, str) else None


def ingest_body(body: bytes, *, now: datetime | None = None) -> IngestResult:
    now = now or timezone.now()
    valid, rejected = parse_batch(body, now=now)
    result = IngestResult(rejected=rejected)
    unique, seen = [], set()
    for event in valid:
        if event.event_id in seen:
            result.duplicates += 1
        else:
            seen.add(event.event_id)
            unique.append(event)
    if unique:
        stored = store_events(unique, received_at=now)
        result.accepted = stored
        result.duplicates += len(unique) - stored
    return result


def store_events(events: list, *, received_at: datetime) -> int:
    """Store events whose ids are new; return how many were new. All or nothing."""
    ensure_partitions({event.occurred_at.astimezone(UTC).date() for event in events})
    with transaction.atomic(), connection.cursor() as cursor:
        # The ids travel as one JSON parameter, encoded in C by msgspec: Django's client-side
        # binding would quote 10,000 array elements in Python, a fifth of the request's CPU.
        cursor.execute(
            """INSERT INTO metrics_event_key (event_id, occurred_at)
               SELECT key->>0, (key->>1)::timestamptz FROM json_array_elements(%s::json) AS key
               ON CONFLICT DO NOTHING RETURNING event_id""",
            [_json.encode([(e.event_id, e.occurred_at) for e in events]).decode()],
        )
        new_ids = {row[0] for row in cursor.fetchall()}
        if not new_ids:
            return 0
        decisions, outcomes, order_ids = [], [], set()
        for event in events:
            if event.event_id in new_ids:
                (decisions if type(event) is DecisionEvent else outcomes).append(event)
                order_ids.add(event.order_id)
        if decisions:
            with cursor.copy(f"COPY metrics_decision ({', '.join(DECISION_COLUMNS)}) FROM STDIN") as copy:
                for e in decisions:
                    copy.write_row(decision_row(e, received_at=received_at))
        if outcomes:
            with cursor.copy(f"COPY metrics_outcome ({', '.join(OUTCOME_COLUMNS)}) FROM STDIN") as copy:
                for e in outcomes:
                    copy.write_row((e.event_id, e.order_id, e.occurred_at, received_at, e.kind,
                                    e.amount_minor, e.currency, e.detail))
        cursor.execute(
            """INSERT INTO metrics_pending_order (order_id, queued_at)
               SELECT order_id, %s FROM json_array_elements_text(%s::json) AS order_id ORDER BY 1""",
            [received_at, _json.encode(list(order_ids)).decode()],
        )
        transaction.on_commit(_after_ingest)
        return len(new_ids)


def decision_row(e: DecisionEvent, *, received_at: datetime) -> tuple:
    """One metrics_decision row for COPY, in DECISION_COLUMNS order."""
    email = e.buyer_email
    return (
        e.event_id, e.order_id, e.occurred_at, received_at, e.buyer_id, e.seller_id,
        email_hash(email) if email else None, mask_email(email) if email else None,
        e.amount_minor, e.currency, e.arm, e.policy_version, e.model_version, e.score,
        e.decision, e.decided_by,
        # An array literal: reason codes match ^[A-Z0-9_]+$, so they need no quoting, and
        # psycopg's list dumper costs a Python loop per row.
        "{" + ",".join(e.reason_codes) + "}",
        e.latency_ms, e.timed_out,
        _json.encode(e.features).decode(),
        _json.encode(e.shadow).decode() if e.shadow is not None else None,
        _json.encode(e.contributions).decode() if e.contributions is not None else None,
    )


_after_ingest_hooks: list = []


def on_events_stored(callback) -> None:
    """Register a function run after an ingest transaction commits (e.g. the rollup nudge)."""
    _after_ingest_hooks.append(callback)


def _after_ingest() -> None:
    for callback in _after_ingest_hooks:
        try:
            callback()
        except Exception:  # noqa: BLE001 - a nudge that fails is redone by beat; events are safe
            logger.warning("after-ingest hook failed", exc_info=True)
