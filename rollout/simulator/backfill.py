"""History fast path: simulated days written straight into the event store with COPY.

Writes what `metrics.ingest.store_events` writes (event keys, decisions, outcomes, pending order
ids) in chunks of one transaction each. A chunk whose ids already exist (a rerun) is redone
through a staging table with ON CONFLICT DO NOTHING, so a rerun stores nothing twice.
"""
from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta

import msgspec
import psycopg
from django.db import connection, connections, transaction
from django.db.utils import IntegrityError

from metrics.ingest import DECISION_COLUMNS, OUTCOME_COLUMNS
from metrics.partitions import ensure_partitions
from metrics.pii import email_hash, mask_email
from rollout.simulator.engine import Simulation
from rollout.simulator.generator import timeline
from rollout.simulator.scenario import Scenario, load_scenario

_json = msgspec.json.Encoder()
CHUNK = 100_000


def backfill(scenario: str | Scenario = "baseline", *, start: datetime, end: datetime, seed: int = 0,
             rate: float | None = None, policy: dict | None = None, from_minute: float = 0.0,
             progress=None, jobs: int = 1) -> dict:
    """Write the simulated history from `start` to `end` (outcomes after `end` have not happened
    yet and are left out). Returns counts and the elapsed seconds.

    `jobs` > 1 splits the span into that many consecutive slices, each simulated and written by
    a process of its own (its own seed, ids and scenario minute offset), so generation and
    PostgreSQL's work overlap on several cores."""
    scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if jobs > 1:
        return _parallel(scenario, start=start, end=end, seed=seed, rate=rate, policy=policy,
                         from_minute=from_minute, jobs=jobs)
    prefix = f"bf{seed}-{start:%Y%m%d%H%M}"
    simulation = Simulation(scenario, seed=seed, policy=policy, id_prefix=prefix)
    began = time.monotonic()
    received_at = datetime.now(UTC)
    day = start.date()
    days = set()
    while day <= end.date():
        days.add(day)
        day += timedelta(days=1)
    ensure_partitions(days)
    totals = {"decisions": 0, "outcomes": 0, "stored": 0, "orders": 0}
    chunk: list = []
    emails: dict[str, tuple[str, str]] = {}
    events = timeline(simulation, start=start, duration_minutes=(end - start).total_seconds() / 60,
                      from_minute=from_minute, rate=rate, until=end)
    for moment, event in events:
        chunk.append((moment, event))
        if len(chunk) >= CHUNK:
            _write(chunk, received_at, emails, totals)
            chunk = []
            if progress:
                progress(totals, time.monotonic() - began)
    if chunk:
        _write(chunk, received_at, emails, totals)
    totals["orders"] = simulation.counter
    totals["seconds"] = round(time.monotonic() - began, 1)
    return totals


def _slice(args) -> dict:
    scenario, start, end, seed, rate, policy, from_minute = args
    try:
        return backfill(scenario, start=start, end=end, seed=seed, rate=rate, policy=policy, from_minute=from_minute)
    finally:
        _close_connections()


def _close_connections() -> None:
    connections.close_all()
    for wrapper in connections.all():
        close_pool = getattr(wrapper, "close_pool", None)
        if close_pool:
            close_pool()


def _parallel(scenario, *, start, end, seed, rate, policy, from_minute, jobs) -> dict:
    began = time.monotonic()
    step = (end - start) / jobs
    slices = [(scenario, start + step * i, start + step * (i + 1), seed * 1000 + i, rate, policy,
               from_minute + step.total_seconds() * i / 60) for i in range(jobs)]
    days = set()
    day = start.date()
    while day <= end.date():
        days.add(day)
        day += timedelta(days=1)
    ensure_partitions(days)
    _close_connections()  # children must not inherit the parent's sockets (or its connection pool)
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        results = pool.map(_slice, slices)
    totals = {key: sum(result[key] for result in results) for key in ("decisions", "outcomes", "stored", "orders")}
    totals["seconds"] = round(time.monotonic() - began, 1)
    return totals


def _write(chunk: list, received_at: datetime, emails: dict, totals: dict) -> None:
    """Claim the chunk's event ids and write its rows in one transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        try:
            with transaction.atomic():  # a savepoint: a rerun's duplicate ids roll back only this
                with cursor.copy("COPY metrics_event_key (event_id, occurred_at) FROM STDIN") as copy:
                    copy.write("".join(f"{event['event_id']}\t{moment.isoformat()}\n" for moment, event in chunk))
            stored = chunk
        except (IntegrityError, psycopg.errors.UniqueViolation):
            cursor.execute(
                """INSERT INTO metrics_event_key (event_id, occurred_at)
                   SELECT * FROM unnest(%s::text[], %s::timestamptz[]) ON CONFLICT DO NOTHING RETURNING event_id""",
                [[e["event_id"] for _, e in chunk], [m for m, _ in chunk]])
            new_ids = {row[0] for row in cursor.fetchall()}
            stored = [(m, e) for m, e in chunk if e["event_id"] in new_ids]
        _copy_events(cursor, stored, received_at, emails, totals)


def _copy_events(cursor, stored: list, received_at: datetime, emails: dict, totals: dict) -> None:
    """COPY in text format, formatted here: several times faster than adapting every value.
    Every value is an id, a code, a number or JSON of plain ASCII names, so only JSON's backslash
    escapes need doubling for COPY's text format."""
    if not stored:
        return
    order_ids = set()
    received = received_at.isoformat()
    decisions, outcomes = [], []
    for moment, e in stored:
        order_ids.add(e["order_id"])
        if e["type"] == "decision":
            email = e.get("buyer_email")
            hashed = masked = NULL
            if email:
                if email not in emails:
                    emails[email] = (email_hash(email), mask_email(email))
                hashed, masked = emails[email]
            shadow, contributions = e.get("shadow"), e.get("contributions")
            decisions.append("\t".join((
                e["event_id"], e["order_id"], moment.isoformat(), received, e["buyer_id"], e["seller_id"], hashed,
                masked, str(e["amount_minor"]), e["currency"], e["arm"], str(e["policy_version"]),
                e["model_version"] or NULL, NULL if e["score"] is None else repr(e["score"]), e["decision"],
                e["decided_by"], "{" + ",".join(e["reason_codes"]) + "}", repr(float(e["latency_ms"])),
                "t" if e["timed_out"] else "f", _text_json(e["features"]),
                NULL if shadow is None else _text_json(shadow),
                NULL if contributions is None else _text_json(contributions),
            )) + "\n")
        else:
            amount = e.get("amount_minor")
            outcomes.append("\t".join((
                e["event_id"], e["order_id"], moment.isoformat(), received, e["kind"],
                NULL if amount is None else str(amount), e.get("currency") or NULL, e.get("detail") or NULL,
            )) + "\n")
    if decisions:
        with cursor.copy(f"COPY metrics_decision ({', '.join(DECISION_COLUMNS)}) FROM STDIN") as copy:
            copy.write("".join(decisions))
    if outcomes:
        with cursor.copy(f"COPY metrics_outcome ({', '.join(OUTCOME_COLUMNS)}) FROM STDIN") as copy:
            copy.write("".join(outcomes))
    with cursor.copy("COPY metrics_pending_order (order_id, queued_at) FROM STDIN") as copy:
        copy.write("".join(f"{order_id}\t{received}\n" for order_id in order_ids))
    totals["decisions"] += len(decisions)
    totals["outcomes"] += len(outcomes)
    totals["stored"] += len(stored)


NULL = "\\N"


def _text_json(value) -> str:
    return _json.encode(value).decode().replace("\\", "\\\\")
