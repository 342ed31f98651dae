"""What Support and Compliance do: look up (logged), explain, note, label, escalate, export."""
from __future__ import annotations

import logging
import time
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from incidents.support import selectors
from incidents.support.models import DecisionLabel, Escalation, LookupLog, Note
from metrics import explain
from metrics.ingest import store_events
from metrics.models import FeatureDefinition, ReasonCode
from metrics.pii import mask_email
from metrics.schema import OutcomeEvent

logger = logging.getLogger(__name__)

LABEL_OUTCOME_KIND = {DecisionLabel.Label.LEGITIMATE: "review_legit", DecisionLabel.Label.FRAUD: "review_fraud"}
EXPORT_CHUNK_BYTES = 64 * 1024


class NotFound(LookupError):
    pass


# -- the look-up log -----------------------------------------------------------------------------
def actor_of(request) -> tuple[object | None, str, str]:
    token = getattr(request, "api_token", None)
    if token is not None:
        return None, f"token:{token.name}", "api"
    return request.user, request.user.get_username(), "page"


def log_lookup(*, request, kind: str, subject: str, search_by: str = "", results: int | None = None) -> LookupLog:
    user, actor, via = actor_of(request)
    return LookupLog.objects.create(user=user, actor=actor, via=via, kind=kind, search_by=search_by,
                                    subject=subject[:254], results=results)


# -- search ---------------------------------------------------------------------------------------
def search(*, request, by: str, query: str) -> list[dict]:
    query = query.strip()
    if not query:
        raise ValueError("q: enter an order id, buyer id, seller id or e-mail")
    if by == "email" and "@" not in query:
        raise ValueError("email: not an e-mail address")
    if by != "email" and len(query) > 64:
        raise ValueError(f"q: {by} ids are at most 64 characters")
    rows = selectors.search_orders(by=by, query=query)
    # The log (and the recent-searches list built from it) keeps a masked e-mail, never the clear one.
    log_lookup(request=request, kind=LookupLog.Kind.SEARCH, search_by=by,
               subject=mask_email(query) if by == "email" else query, results=len(rows))
    return rows


# -- one order ----------------------------------------------------------------------------------
# Policy versions are immutable once written, so a version read once is kept for the process.
_policy_versions: dict[int, dict] = {}
# The feature registry and reason-code catalogue are a few admin-edited rows read by every order
# page; an edit shows within this many seconds.
REFERENCE_TTL_SECONDS = 10.0
_reference_cache: dict[str, tuple[float, dict]] = {}


def policy_document(version: int) -> dict | None:
    """The rollout policy document of a version, or None when the rollout app cannot tell."""
    if version in _policy_versions:
        return _policy_versions[version]
    from rollout.services import policy_document as rollout_policy_document

    try:
        document = rollout_policy_document(version)
    except Exception:  # noqa: BLE001 - an unknown or unreadable version: show "unavailable"
        logger.info("policy version %s unavailable", version)
        return None
    _policy_versions[version] = document
    return document


def _reference(name: str, load) -> dict:
    now = time.monotonic()
    cached = _reference_cache.get(name)
    if cached is None or now - cached[0] > REFERENCE_TTL_SECONDS:
        cached = (now, load())
        _reference_cache[name] = cached
    return cached[1]


def feature_registry() -> dict:
    return _reference("features", lambda: {f.name: f for f in FeatureDefinition.objects.all()})


def reason_catalogue() -> dict:
    return _reference("reasons", lambda: {r.code: r for r in ReasonCode.objects.all()})


def forget_cached_reference_data() -> None:
    _policy_versions.clear()
    _reference_cache.clear()


def incident_summary(incident) -> dict | None:
    if incident is None:
        return None
    update = selectors.support_update(incident)
    return {
        "id": selectors.incident_display_id(incident),
        "pk": incident.pk,
        "title": incident.title,
        "status": incident.status,
        "url": selectors.incident_url(incident),
        "support_update": selectors.support_update_text(update),
        "support_update_at": update.published_at if update else None,
    }


def order_view(*, order_id: str, request=None) -> dict:
    """Everything the order page and GET /api/v1/orders/{id} show. Logs the look-up when a request is given."""
    decisions = selectors.order_decisions(order_id=order_id)
    if not decisions:
        raise NotFound(order_id)
    outcomes = selectors.order_outcomes(order_id=order_id)
    final = decisions[-1]
    registry = feature_registry()
    catalogue = reason_catalogue()
    policies = {v: policy_document(v) for v in {d.policy_version for d in decisions}}
    incident = selectors.incident_for_decisions(decisions)
    incident_info = incident_summary(incident)
    history = explain.buyer_history(buyer_id=final.buyer_id, before=final.occurred_at, exclude_order_id=order_id)
    explanation = explain.explain_decision(final, registry=registry, catalogue=catalogue, history=history,
                                           policy=policies[final.policy_version], incident=incident_info)
    attempts = [{"decision": d, "summary": explain.decided_by_summary(d, policies[d.policy_version]),
                 "policy": policies[d.policy_version]} for d in decisions]
    if request is not None:
        log_lookup(request=request, kind=LookupLog.Kind.ORDER, subject=order_id)
    return {
        "order_id": order_id, "decisions": decisions, "outcomes": outcomes, "final": final,
        "attempts": attempts, "explanation": explanation, "incident": incident_info,
        "policy": policies[final.policy_version], "history": history,
        "notes": list(Note.objects.filter(order_id=order_id).select_related("author")),
        "labels": list(DecisionLabel.objects.filter(order_id=order_id).select_related("author")),
        "escalations": list(Escalation.objects.filter(order_id=order_id).select_related("raised_by")),
    }


# -- actions ---------------------------------------------------------------------------------------
def add_note(*, order_id: str, author, text: str) -> Note:
    text = text.strip()
    if not text:
        raise ValueError("text: a note cannot be empty")
    if len(text) > 2000:
        raise ValueError("text: at most 2000 characters")
    if not selectors.order_decisions(order_id=order_id):
        raise NotFound(order_id)
    return Note.objects.create(order_id=order_id, author=author, text=text)


def label_decision(*, order_id: str, author, label: str, comment: str = "") -> DecisionLabel:
    """Record Support's verdict; legitimate/fraud also become review outcome events in the event
    store (through the one ingest path), so KPIs such as the false-decline proxy count them."""
    if label not in DecisionLabel.Label.values:
        raise ValueError(f"label: must be one of {', '.join(DecisionLabel.Label.values)}")
    if len(comment) > 200:
        raise ValueError("comment: at most 200 characters")
    if not selectors.order_decisions(order_id=order_id):
        raise NotFound(order_id)
    with transaction.atomic():
        record = DecisionLabel.objects.create(order_id=order_id, author=author, label=label, comment=comment)
        kind = LABEL_OUTCOME_KIND.get(label)
        if kind:
            event_id = f"support-label-{record.pk}"
            now = timezone.now()
            store_events([OutcomeEvent(event_id=event_id, order_id=order_id, occurred_at=now, kind=kind,
                                       detail=(f"support:{author.get_username()}" + (f": {comment}" if comment else ""))[:200])],
                         received_at=now)
            record.outcome_event_id = event_id
            record.save(update_fields=["outcome_event_id"])
    return record


def escalate(*, order_id: str, raised_by, reason: str) -> Escalation:
    reason = reason.strip()
    if not reason:
        raise ValueError("reason: say why Risk Ops should look at this order")
    if not selectors.order_decisions(order_id=order_id):
        raise NotFound(order_id)
    escalation = Escalation.objects.create(order_id=order_id, raised_by=raised_by, reason=reason)
    from shopswift_ops import live

    live.announce("support.escalations", {"order_id": order_id, "id": escalation.pk, "reason": reason[:200]})
    return escalation


def open_escalations(limit: int = 20) -> list[Escalation]:
    return list(Escalation.objects.filter(status=Escalation.Status.OPEN).select_related("raised_by")[:limit])


# -- streaming CSV -------------------------------------------------------------------------------
def csv_chunks(sql: str, params, header: list[str], *, booleans=(), times=("occurred_at",),
               chunk_bytes: int = EXPORT_CHUNK_BYTES):
    """Yield CSV bytes of a query, streamed by PostgreSQL itself (COPY ... TO STDOUT): rows are
    formatted by the database and pass through in ~64 KiB chunks, so memory stays flat however
    many rows. Times come out as ISO 8601, the `booleans` columns as yes/no. The COPY runs in a
    transaction of its own (for the SET LOCAL planner setting), which ends with the download."""
    def column(name: str) -> str:
        if name in booleans:
            return f"CASE WHEN q.{name} THEN 'yes' ELSE 'no' END AS {name}"
        if name in times:
            return f"to_json(q.{name})#>>'{{}}' AS {name}"
        return f"q.{name}"

    columns = ", ".join(column(name) for name in header)
    statement = f"COPY (SELECT {columns} FROM ({sql}) q) TO STDOUT WITH (FORMAT csv)"
    # The header goes out at once, before the database has produced its first row, so that the
    # download starts (and proxies see bytes) while a large population is still being joined.
    yield (",".join(header) + "\n").encode()
    with transaction.atomic(), connection.cursor() as cursor:
        selectors.plan_for_bulk(cursor)
        pending = bytearray()
        with cursor.cursor.copy(statement, params) as copy:
            for data in copy:
                pending += data
                if len(pending) >= chunk_bytes:
                    yield bytes(pending)
                    pending.clear()
        if pending:
            yield bytes(pending)


def affected_export(*, request, incident) -> tuple[str, list, list[str]]:
    log_lookup(request=request, kind=LookupLog.Kind.AFFECTED_EXPORT, subject=selectors.incident_display_id(incident))
    sql, params = selectors.affected_orders_sql(incident.affected_population)
    return sql, params, list(selectors.AFFECTED_COLUMNS)


AFFECTED_BOOLEANS = ("buyer_later_succeeded",)


SELLER_BOOLEANS = ("in_open_incident",)
SELLER_EXPORT_COLUMNS = ["order_id", "occurred_at", "buyer_id", "buyer_email_masked", "amount_minor", "currency",
                         "arm", "decision", "decided_by", "policy_version", "in_open_incident", "cause"]


def seller_export(*, request, seller_id: str, since: datetime, until: datetime) -> tuple[str, dict, list[str]]:
    log_lookup(request=request, kind=LookupLog.Kind.SELLER_EXPORT, subject=seller_id)
    sql, params = selectors.seller_failed_orders_stream(seller_id=seller_id, since=since, until=until)
    return sql, params, SELLER_EXPORT_COLUMNS
