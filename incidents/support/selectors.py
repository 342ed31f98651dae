"""Reads for the support and compliance pages. Set-based SQL on the event store's indexes
(order_id, (buyer_id, occurred_at), (seller_id, occurred_at), buyer_email_hash)."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from django.db import connection, transaction
from django.urls import reverse

from incidents.models import Incident, StatusUpdate
from metrics.models import Decision, Outcome, ReasonCode
from metrics.pii import email_hash

SEARCH_LIMIT = 50
SELLER_PAGE_ROWS = 200
FAILED_CAUSES = {
    "model_decline": "model decline",
    "step_up_abandon": "step-up abandoned",
    "step_up_failed": "step-up failed",
    "fallback": "fallback rule (model timed out)",
    "rules": "legacy rules",
    "manual_review": "manual review",
}


# -- incidents ---------------------------------------------------------------------------------
def _parse_time(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def population_matches(population: dict | None, decision) -> bool:
    """Whether one decision falls in an affected population
    `{"arm", "segment": {"feature", "in": [...]}, "from", "to"}` (each part optional; no part = no match)."""
    if not population:
        return False
    arm = population.get("arm")
    if arm and decision.arm != arm:
        return False
    segment = population.get("segment")
    if segment:
        if (decision.features or {}).get(segment.get("feature")) not in segment.get("in", []):
            return False
    start, end = _parse_time(population.get("from")), _parse_time(population.get("to"))
    if start and decision.occurred_at < start:
        return False
    if end and decision.occurred_at >= end:
        return False
    return True


def population_sql(population: dict, alias: str = "d", *, prefix: str | None = None) -> tuple[str, list | dict]:
    """The same rule as `population_matches`, as a SQL predicate over metrics_decision: with
    positional parameters, or named ones (`prefix`_N) to combine with other named parameters."""
    parts, values = [], []
    if population.get("arm"):
        parts.append(f"{alias}.arm = %s")
        values.append(population["arm"])
    segment = population.get("segment")
    if segment:
        parts.append(f"({alias}.features -> %s) = ANY(%s::jsonb[])")
        values += [segment.get("feature"), [json.dumps(v) for v in segment.get("in", [])]]
    if population.get("from"):
        parts.append(f"{alias}.occurred_at >= %s")
        values.append(_parse_time(population["from"]))
    if population.get("to"):
        parts.append(f"{alias}.occurred_at < %s")
        values.append(_parse_time(population["to"]))
    predicate = " AND ".join(parts) if parts else "false"
    if prefix is None:
        return predicate, values
    names = [f"{prefix}_{index}" for index in range(len(values))]
    for name in names:
        predicate = predicate.replace("%s", f"%({name})s", 1)
    return predicate, dict(zip(names, values))


def incidents_with_population(*, open_only: bool = False) -> list[Incident]:
    """Incidents that declare an affected population, most recently opened first (a handful of rows)."""
    incidents = Incident.objects.exclude(affected_population={}).order_by("-opened_at", "-pk")
    if open_only:
        incidents = incidents.exclude(status="resolved")
    return [incident for incident in incidents if incident.affected_population]


def incident_for_decision(decision) -> Incident | None:
    """The incident whose affected population holds this decision (the most recent one first), or None."""
    return incident_for_decisions([decision])


def incident_for_decisions(decisions) -> Incident | None:
    """The most recent incident covering any of these decisions (an order's attempts), latest attempt first."""
    incidents = incidents_with_population()
    for decision in reversed(list(decisions)):
        for incident in incidents:
            if population_matches(incident.affected_population, decision):
                return incident
    return None


def get_incident(incident_id) -> Incident | None:
    if not str(incident_id).isdigit():
        return None
    return Incident.objects.filter(pk=int(incident_id)).first()


def incident_display_id(incident: Incident) -> str:
    return incident.reference


def support_update(incident: Incident) -> StatusUpdate | None:
    """The latest *published* status update written for the support audience, or None."""
    return (StatusUpdate.objects.filter(incident=incident, audience="support", published_at__isnull=False)
            .order_by("-published_at", "-pk").first())


def support_update_text(update: StatusUpdate | None) -> str | None:
    return (update.sections or {}).get("message") if update is not None else None


def incident_url(incident: Incident) -> str:
    return reverse("incident-detail", kwargs={"incident_id": incident.pk})


# -- orders --------------------------------------------------------------------------------------
def order_decisions(*, order_id: str) -> list[Decision]:
    return list(Decision.objects.filter(order_id=order_id).order_by("occurred_at", "event_id"))


def order_outcomes(*, order_id: str) -> list[Outcome]:
    return list(Outcome.objects.filter(order_id=order_id).order_by("occurred_at", "event_id"))


def reason_catalogue(codes) -> dict[str, ReasonCode]:
    return {r.code: r for r in ReasonCode.objects.filter(code__in=list(codes))}


_ORDER_ROWS = """
WITH attempts AS ({inner}),
orders AS (
  SELECT DISTINCT ON (order_id) order_id, occurred_at, buyer_id, seller_id, buyer_email_masked, amount_minor,
         currency, arm, decision, decided_by, policy_version
  FROM attempts ORDER BY order_id, occurred_at DESC, event_id DESC
)
SELECT o.*, (SELECT count(*) FROM attempts a WHERE a.order_id = o.order_id) AS attempts,
       ARRAY(SELECT kind FROM metrics_outcome x WHERE x.order_id = o.order_id ORDER BY x.occurred_at) AS outcomes
FROM orders o ORDER BY o.occurred_at DESC LIMIT %(limit)s
"""
_COLUMNS = ("event_id, order_id, occurred_at, buyer_id, seller_id, buyer_email_masked, amount_minor, currency, "
            "arm, decision, decided_by, policy_version")


def _rows(cursor) -> list[dict]:
    names = [c.name for c in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def search_orders(*, by: str, query: str, limit: int = SEARCH_LIMIT) -> list[dict]:
    """Orders matching an exact order id, buyer id, seller id or buyer e-mail (hashed), newest first.
    Each search reads the latest attempts through one index, so it stays fast as the store grows."""
    query = query.strip()
    if by == "order":
        inner = f"SELECT {_COLUMNS} FROM metrics_decision WHERE order_id = %(q)s"
    elif by == "buyer":
        inner = (f"SELECT {_COLUMNS} FROM metrics_decision WHERE buyer_id = %(q)s "
                 f"ORDER BY occurred_at DESC LIMIT %(scan)s")
    elif by == "seller":
        inner = (f"SELECT {_COLUMNS} FROM metrics_decision WHERE seller_id = %(q)s "
                 f"ORDER BY occurred_at DESC LIMIT %(scan)s")
    elif by == "email":
        inner = (f"SELECT {_COLUMNS} FROM metrics_decision WHERE buyer_email_hash = %(q)s "
                 f"ORDER BY occurred_at DESC LIMIT %(scan)s")
        query = email_hash(query)
    else:
        raise ValueError(f"by: must be one of order, buyer, email, seller; got {by!r}")
    with connection.cursor() as cursor:
        cursor.execute(_ORDER_ROWS.format(inner=inner), {"q": query, "scan": limit * 4, "limit": limit})
        return _rows(cursor)


def buyer_orders(*, buyer_id: str, limit: int = 100) -> list[dict]:
    return search_orders(by="buyer", query=buyer_id, limit=limit)


# -- sellers -------------------------------------------------------------------------------------
def _failed_orders_sql(*, seller_id: str, since: datetime, until: datetime, incidents: list) -> tuple[str, dict]:
    """Failed orders of a seller in a window: no completion, and the final decision a decline or a
    step-up that was not passed. `cause` says what failed it; `in_open_incident` whether an open
    incident's affected population holds it."""
    params = {"seller": seller_id, "since": since, "until": until}
    predicates = []
    for index, incident in enumerate(incidents):
        predicate, named = population_sql(incident.affected_population, alias="f", prefix=f"incident{index}")
        predicates.append(f"({predicate})")
        params.update(named)
    in_incident = " OR ".join(predicates) if predicates else "false"
    sql = f"""
    WITH final AS (
      SELECT DISTINCT ON (order_id) order_id, occurred_at, buyer_id, buyer_email_masked, amount_minor, currency,
             arm, decision, decided_by, policy_version, features
      FROM metrics_decision
      WHERE seller_id = %(seller)s AND occurred_at >= %(since)s AND occurred_at < %(until)s
      ORDER BY order_id, occurred_at DESC, event_id DESC
    ), marked AS (
      SELECT f.*,
        EXISTS (SELECT 1 FROM metrics_outcome o WHERE o.order_id = f.order_id AND o.kind = 'checkout_completed') AS completed,
        EXISTS (SELECT 1 FROM metrics_outcome o WHERE o.order_id = f.order_id AND o.kind = 'step_up_passed') AS passed,
        EXISTS (SELECT 1 FROM metrics_outcome o WHERE o.order_id = f.order_id AND o.kind = 'step_up_failed') AS step_up_failed,
        ({in_incident}) AS in_open_incident
      FROM final f
    )
    SELECT order_id, occurred_at, buyer_id, buyer_email_masked, amount_minor, currency, arm, decision, decided_by,
           policy_version, in_open_incident,
           CASE WHEN decided_by = 'fallback' THEN 'fallback'
                WHEN decided_by = 'rules' THEN 'rules'
                WHEN decided_by = 'manual' THEN 'manual_review'
                WHEN decision = 'decline' THEN 'model_decline'
                WHEN step_up_failed THEN 'step_up_failed'
                ELSE 'step_up_abandon' END AS cause
    FROM marked
    WHERE NOT completed AND (decision = 'decline' OR (decision = 'step_up' AND NOT passed))
    ORDER BY amount_minor DESC, order_id
    """
    return sql, params


def seller_failed_orders(*, seller_id: str, since: datetime, until: datetime, limit: int = SELLER_PAGE_ROWS) -> dict:
    """The page's view: totals by cause (count and value per currency), the open-incident share and
    the highest-value failed orders."""
    incidents = incidents_with_population(open_only=True)
    sql, params = _failed_orders_sql(seller_id=seller_id, since=since, until=until, incidents=incidents)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH failed AS ({sql})
                SELECT cause, currency, count(*), sum(amount_minor), count(*) FILTER (WHERE in_open_incident),
                       coalesce(sum(amount_minor) FILTER (WHERE in_open_incident), 0)
                FROM failed GROUP BY cause, currency ORDER BY sum(amount_minor) DESC""",
            params,
        )
        by_cause = [{"cause": cause, "cause_label": FAILED_CAUSES.get(cause, cause), "currency": currency,
                     "orders": count, "value_minor": value, "in_incident": in_incident,
                     "in_incident_value_minor": in_incident_value}
                    for cause, currency, count, value, in_incident, in_incident_value in cursor.fetchall()]
        cursor.execute(sql + " LIMIT %(limit)s", {**params, "limit": limit})
        rows = _rows(cursor)
    for row in rows:
        row["cause_label"] = FAILED_CAUSES.get(row["cause"], row["cause"])
    total = sum(c["orders"] for c in by_cause)
    in_incident = sum(c["in_incident"] for c in by_cause)
    return {"by_cause": by_cause, "orders": rows, "total": total, "in_incident": in_incident,
            "incident_share": (in_incident / total) if total else None, "open_incidents": incidents}


def seller_failed_orders_stream(*, seller_id: str, since: datetime, until: datetime):
    incidents = incidents_with_population(open_only=True)
    return _failed_orders_sql(seller_id=seller_id, since=since, until=until, incidents=incidents)


# -- affected customers ------------------------------------------------------------------------
AFFECTED_COLUMNS = ("order_id", "occurred_at", "buyer_id", "buyer_email_masked", "seller_id", "amount_minor",
                    "currency", "arm", "decision", "decided_by", "step_up_result", "buyer_later_succeeded")


def affected_orders_sql(population: dict) -> tuple[str, list]:
    """Orders of an affected population whose last attempt inside it was declined or challenged
    and that neither completed nor passed step-up, with the step-up result and whether the same
    buyer completed an order afterwards. Set-based (hash joins over the population's window), so
    the database streams rows to a server-side cursor at a steady rate."""
    predicate, params = population_sql(population, alias="d")
    since = _parse_time(population.get("from"))
    outcome_window = "AND occurred_at >= %s" if since else ""
    completed_window = "AND c.occurred_at >= %s AND x.occurred_at >= %s" if since else ""
    sql = f"""
    WITH pop AS (
      SELECT DISTINCT ON (d.order_id) d.order_id, d.occurred_at, d.buyer_id, d.buyer_email_masked, d.seller_id,
             d.amount_minor, d.currency, d.arm, d.decision, d.decided_by
      FROM metrics_decision d WHERE {predicate}
      ORDER BY d.order_id, d.occurred_at DESC, d.event_id DESC
    )
    SELECT p.order_id, p.occurred_at, p.buyer_id, p.buyer_email_masked, p.seller_id, p.amount_minor, p.currency,
           p.arm, p.decision, p.decided_by,
           CASE WHEN p.decision <> 'step_up' THEN '' WHEN o.failed THEN 'failed' WHEN o.abandoned THEN 'abandoned'
                ELSE 'no result' END AS step_up_result,
           coalesce(s.last_success > p.occurred_at, false) AS buyer_later_succeeded
    FROM pop p
    LEFT JOIN (
      SELECT order_id, bool_or(kind = 'step_up_failed') AS failed, bool_or(kind = 'step_up_abandoned') AS abandoned,
             bool_or(kind IN ('checkout_completed', 'step_up_passed')) AS succeeded
      FROM metrics_outcome
      WHERE kind IN ('step_up_failed', 'step_up_abandoned', 'checkout_completed', 'step_up_passed') {outcome_window}
      GROUP BY order_id
    ) o ON o.order_id = p.order_id
    LEFT JOIN (
      SELECT x.buyer_id, max(x.occurred_at) AS last_success
      FROM metrics_decision x JOIN metrics_outcome c ON c.order_id = x.order_id AND c.kind = 'checkout_completed'
      WHERE x.buyer_id IN (SELECT buyer_id FROM pop) {completed_window}
      GROUP BY x.buyer_id
    ) s ON s.buyer_id = p.buyer_id
    WHERE p.decision IN ('decline', 'step_up') AND NOT coalesce(o.succeeded, false)
    """
    return sql, params + ([since] if since else []) + ([since, since] if since else [])


def plan_for_bulk(cursor) -> None:
    """Inside a transaction: the population's size is hard to estimate (a jsonb predicate), and a
    nested-loop plan chosen on a low guess is ruinous over a million orders; hash joins are right
    for every size here."""
    cursor.execute("SET LOCAL enable_nestloop = off")


def affected_summary(population: dict) -> dict:
    sql, params = affected_orders_sql(population)
    with transaction.atomic(), connection.cursor() as cursor:
        plan_for_bulk(cursor)
        cursor.execute(
            f"""SELECT count(*), count(DISTINCT buyer_id), count(*) FILTER (WHERE buyer_later_succeeded),
                       currency, sum(amount_minor) FROM ({sql}) a GROUP BY currency ORDER BY 5 DESC""",
            params,
        )
        rows = cursor.fetchall()
    return {"orders": sum(r[0] for r in rows), "later_succeeded": sum(r[2] for r in rows),
            "value": [{"currency": r[3], "value_minor": r[4]} for r in rows]}


def affected_sample(population: dict, limit: int = 100) -> list[dict]:
    sql, params = affected_orders_sql(population)
    with transaction.atomic(), connection.cursor() as cursor:
        plan_for_bulk(cursor)
        cursor.execute(sql + " ORDER BY p.amount_minor DESC LIMIT %s", params + [limit])
        return _rows(cursor)


# -- compliance ----------------------------------------------------------------------------------
def decline_volume(*, since: datetime, until: datetime) -> list[dict]:
    """Declines by reason code and cohort (arm) in a window; a decline without codes counts under '(none)'."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT coalesce(code, '(none)'), arm, count(*) FROM (
                 SELECT d.arm, c.code FROM metrics_decision d
                 LEFT JOIN LATERAL unnest(d.reason_codes) AS c(code) ON true
                 WHERE d.decision = 'decline' AND d.occurred_at >= %s AND d.occurred_at < %s) x
               GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2""",
            [since, until],
        )
        return [{"code": code, "arm": arm, "declines": n} for code, arm, n in cursor.fetchall()]


def uncatalogued_codes(*, since: datetime, until: datetime) -> list[dict]:
    """Reason codes seen in decisions of the window that have no catalogue entry (no wording)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.code, count(*), max(d.occurred_at) FROM metrics_decision d, unnest(d.reason_codes) AS c(code)
               WHERE d.occurred_at >= %s AND d.occurred_at < %s
                 AND NOT EXISTS (SELECT 1 FROM metrics_reasoncode r WHERE r.code = c.code)
               GROUP BY c.code ORDER BY 2 DESC, 1""",
            [since, until],
        )
        return [{"code": code, "decisions": n, "last_seen": last} for code, n, last in cursor.fetchall()]


def lookup_log(*, actor: str = "", subject: str = "", limit: int = 200):
    from incidents.support.models import LookupLog

    rows = LookupLog.objects.all()
    if actor:
        rows = rows.filter(actor=actor)
    if subject:
        rows = rows.filter(subject=subject)
    return list(rows[:limit])


def recent_searches(*, user, limit: int = 10):
    from incidents.support.models import LookupLog

    return list(LookupLog.objects.filter(user=user, kind=LookupLog.Kind.SEARCH)[:limit])
