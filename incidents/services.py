"""Every change to an incident record goes through these functions (views, API, subscribers).

Rules kept here:
- One open incident per rollout (a partial unique index): a breach opens one or attaches to it.
- A timeline entry is written once per upstream fact (unique (incident, source_key)), never
  updated (a database trigger refuses UPDATE and DELETE); corrections are new entries.
- Concurrent edits use conditional updates on `version` (or on "still a draft"), never
  read-modify-write.
- After each change, `live.announce("incidents", {"incident_id", "kind"})` tells open pages.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from incidents import upstream
from incidents.models import (
    ACTION_ITEM_KINDS,
    ACTION_ITEM_STATUSES,
    AUDIENCES,
    HYPOTHESIS_KINDS,
    HYPOTHESIS_STATUSES,
    POSTMORTEM_SECTIONS,
    ROLES,
    SEVERITIES,
    STATUSES,
    ActionItem,
    DecisionRecord,
    ExitCriterion,
    Hypothesis,
    Incident,
    PostmortemSection,
    StatusUpdate,
    SystemNews,
    TimelineEntry,
)
from metrics.models import segment_members
from shopswift_ops import live

logger = logging.getLogger(__name__)

DEFAULT_ROLLOUT = getattr(settings, "INCIDENTS_DEFAULT_ROLLOUT", "fraud-model")
# Upstream facts this long before detection are put on a new incident's timeline (what led to it).
BACKFILL = timedelta(hours=getattr(settings, "INCIDENTS_BACKFILL_HOURS", 12))
# Policy actions that reduce exposure: the first one during an incident marks it mitigated.
CONTAINMENT_ACTIONS = {"kill", "rollback", "exclude_segment"}


def is_containment(news: dict) -> bool:
    """A policy change that reduces exposure (kill, rollback, exclusion, shadow or off)."""
    action = news.get("action")
    mode = (news.get("policy") or {}).get("mode")
    return action in CONTAINMENT_ACTIONS or (action == "set_mode" and mode in ("shadow", "off"))
# A breach whose guardrail action is this drastic opens a SEV2; anything else a SEV3.
SEV2_ACTIONS = {"kill", "rollback", "roll_back_stage", "exclude_segment", "exclude"}


class IncidentError(ValueError):
    """Bad input or a refused change; `field` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Conflict(IncidentError):
    """Someone else changed the record first (stale version), or it can no longer change."""


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _parse_at(value, default=None) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        parsed = parse_datetime(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return default or timezone.now()


def _announce(incident_id: int, kind: str) -> None:
    live.announce("incidents", {"incident_id": incident_id, "kind": kind})


def _actor_name(actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return actor.get_username()


# ---------------------------------------------------------------- timeline

def add_timeline_entry(*, incident: Incident, kind: str, text: str, source: str, at: datetime | None = None,
                       source_key: str | None = None, link: str = "", data: dict | None = None,
                       corrects: TimelineEntry | None = None) -> TimelineEntry | None:
    """Append an entry; with a source_key, a second call for the same fact is a no-op (None)."""
    entry = TimelineEntry(incident=incident, kind=kind, text=text[:4000], source=source, at=at or timezone.now(),
                          source_key=source_key, link=link, data=data or {}, corrects=corrects)
    if source_key is None:
        entry.save()
    else:
        try:
            with transaction.atomic():
                entry.save()
        except IntegrityError:
            return None  # this fact is already on the timeline
    _announce(incident.pk, "timeline")
    return entry


def add_note(*, incident_id: int, actor, text: str, link: str = "", kind: str = "note",
             corrects_id: int | None = None) -> TimelineEntry:
    text = (text or "").strip()
    if not text:
        raise IncidentError("text", "write something")
    if kind not in ("note", "evidence", "correction"):
        raise IncidentError("kind", "one of note, evidence, correction")
    if link and not link.startswith(("http://", "https://", "/")):
        raise IncidentError("link", "an http(s) URL or a path on this site")
    incident = Incident.objects.get(pk=incident_id)
    corrects = None
    if corrects_id:
        corrects = TimelineEntry.objects.filter(incident=incident, pk=corrects_id).first()
        if corrects is None:
            raise IncidentError("corrects", f"no entry {corrects_id} on this incident's timeline")
        kind = "correction"
    return add_timeline_entry(incident=incident, kind=kind, text=text, link=link, source=_actor_name(actor),
                              corrects=corrects)


# ---------------------------------------------------------------- upstream news (subscribers)

def _record_news(*, topic: str, source_key: str, kind: str, at: datetime, text: str, data: dict) -> None:
    SystemNews.objects.bulk_create(
        [SystemNews(source_key=source_key, topic=topic, kind=kind, at=at, text=text, data=data)],
        ignore_conflicts=True)


def _news_to_open_incident(*, rollout_key: str, topic: str, source_key: str, kind: str, at: datetime, text: str,
                           data: dict) -> Incident | None:
    _record_news(topic=topic, source_key=source_key, kind=kind, at=at, text=text, data=data)
    incident = Incident.objects.exclude(status="resolved").filter(rollout_key=rollout_key).first()
    if incident is not None:
        add_timeline_entry(incident=incident, kind=kind, text=text, source="system", at=at,
                           source_key=source_key, data=data)
    return incident


def _json_safe(payload) -> dict:
    return json.loads(json.dumps(payload, default=str)) if isinstance(payload, dict) else {"value": str(payload)}


def describe_policy(policy: dict | None) -> str:
    if not policy:
        return "policy unknown"
    parts = [f"mode {policy.get('mode')}", f"traffic {policy.get('traffic_pct')}%"]
    overrides = policy.get("segment_overrides") or []
    for override in overrides:
        parts.append(f"{override.get('feature')} in {', '.join(map(str, override.get('in', [])))} -> control")
    if policy.get("thresholds"):
        t = policy["thresholds"]
        parts.append(f"thresholds step-up {t.get('step_up')} / decline {t.get('decline')}")
    if policy.get("fallback"):
        parts.append(f"fallback {policy.get('fallback')} after {policy.get('timeout_ms')} ms")
    return "; ".join(parts)


def _policy_text(payload: dict) -> str:
    return (f"Policy v{payload.get('version')}: {payload.get('action') or 'change'} by "
            f"{payload.get('actor') or 'unknown'} ({payload.get('reason') or 'no reason given'}). "
            f"Now: {describe_policy(payload.get('policy'))}.")


def _alert_text(payload: dict) -> str:
    segment = payload.get("segment")
    where = f" in {segment['feature']} = {segment['value']}" if segment else ""
    return (f"Guardrail {payload.get('guardrail')} ({payload.get('metric')}{where}): {payload.get('status')}. "
            f"{payload.get('evidence') or ''} Action: {payload.get('action') or 'none'}.").strip()


def on_policy(payload: dict) -> None:
    """Subscriber of "policy": {"version", "policy", "action", "actor", "reason", "at"}."""
    version = payload.get("version")
    at = _parse_at(payload.get("at"))
    text = _policy_text(payload)
    rollout_key = payload.get("rollout") or DEFAULT_ROLLOUT
    with transaction.atomic():
        incident = _news_to_open_incident(rollout_key=rollout_key, topic="policy", source_key=f"policy:{version}",
                                          kind="policy_change", at=at, text=text, data=_json_safe(payload))
        if incident is not None and is_containment(payload):
            _mark_mitigated(incident=incident, at=at)
            _record_automatic_decision(incident=incident, news=payload, at=at)


def on_alert(payload: dict) -> None:
    """Subscriber of "alerts": a breach opens an incident or attaches to the open one."""
    alert_id = payload.get("alert_id")
    at = _parse_at(payload.get("at") or payload.get("created_at") or payload.get("since"))
    text = _alert_text(payload)
    rollout_key = payload.get("rollout") or DEFAULT_ROLLOUT
    source_key = f"alert:{alert_id}"
    with transaction.atomic():
        if payload.get("status") == "breach":
            incident, _ = open_or_attach(rollout_key=rollout_key, alert=payload, at=at)
            _record_news(topic="alerts", source_key=source_key, kind="alert", at=at, text=text,
                         data=_json_safe(payload))
            add_timeline_entry(incident=incident, kind="alert", text=text, source="system", at=at,
                               source_key=source_key, data=_json_safe(payload))
        else:
            _news_to_open_incident(rollout_key=rollout_key, topic="alerts", source_key=source_key, kind="alert",
                                   at=at, text=text, data=_json_safe(payload))


def on_signoff(payload: dict) -> None:
    """Subscriber of "signoffs": a sign-off given (or expired) on a ramp stage."""
    key = payload.get("id") or payload.get("signoff_id") or hashlib.sha256(
        json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]
    at = _parse_at(payload.get("at"))
    who = payload.get("actor") or payload.get("username") or payload.get("by") or "someone"
    event = payload.get("event") or "signed_off"
    details = [f"role {payload['role']}" if payload.get("role") else "",
               f"stage {payload['stage']}" if payload.get("stage") is not None else "",
               f"to stage {payload['to_stage']}" if payload.get("to_stage") else "",
               payload.get("comment") or payload.get("reason") or ""]
    text = f"Ramp plan: {event.replace('_', ' ')} by {who}" + "".join(f"; {d}" for d in details if d) + "."
    with transaction.atomic():
        _news_to_open_incident(rollout_key=payload.get("rollout") or DEFAULT_ROLLOUT, topic="signoffs",
                               source_key=f"signoff:{key}:{event}", kind="signoff", at=at, text=text,
                               data=_json_safe(payload))


def on_guardrails(payload: dict) -> None:
    """Subscriber of "guardrails": status changes to warn/breach (not every re-evaluation) while open."""
    items = payload.get("guardrails") if isinstance(payload.get("guardrails"), list) else [payload]
    for item in items:
        status = item.get("status")
        if status not in ("warn", "breach"):
            continue
        since = item.get("since") or item.get("at")
        segment = item.get("segment")
        where = f" in {segment['feature']} = {segment['value']}" if isinstance(segment, dict) else ""
        key = f"guardrail:{item.get('name')}:{json.dumps(segment, sort_keys=True)}:{status}:{since}"
        text = f"Guardrail {item.get('name')}{where} is {status}: {item.get('evidence') or ''}".strip()
        with transaction.atomic():
            incident = Incident.objects.exclude(status="resolved").filter(
                rollout_key=item.get("rollout") or DEFAULT_ROLLOUT).first()
            if incident is not None:
                add_timeline_entry(incident=incident, kind="guardrail", text=text, source="system",
                                   at=_parse_at(since), source_key=key[:200], data=_json_safe(item))


# ---------------------------------------------------------------- opening and attaching

def _population_for(alert: dict, *, start: datetime) -> dict:
    segment = alert.get("segment")
    return {
        "arm": "treatment",
        "segment": {"feature": segment["feature"], "in": segment_members(segment)} if segment else None,
        "from": _iso(start),
        "to": None,
    }


def _widen(population: dict, alert: dict) -> dict:
    """A further breach widens the population: another value of the segment, or all traffic."""
    segment = alert.get("segment")
    current = population.get("segment")
    merged = dict(population)
    if current is None:
        return merged  # already all treatment traffic
    if segment is None or segment["feature"] != current["feature"]:
        merged["segment"] = None
    elif any(value not in current["in"] for value in segment_members(segment)):
        merged["segment"] = {"feature": current["feature"],
                             "in": [*current["in"], *(v for v in segment_members(segment) if v not in current["in"])]}
    return merged


def open_or_attach(*, rollout_key: str, alert: dict, at: datetime) -> tuple[Incident, bool]:
    """The open incident of this rollout (widened by the alert), or a new one; (incident, created)."""
    with transaction.atomic():
        incident = (Incident.objects.select_for_update().exclude(status="resolved")
                    .filter(rollout_key=rollout_key).first())
        if incident is None:
            segment = alert.get("segment")
            where = f" in {segment['feature']} = {segment['value']}" if segment else ""
            severity = "SEV2" if (alert.get("action") or "") in SEV2_ACTIONS else "SEV3"
            exposure_change = _last_exposure_change(before=at)
            started = exposure_change.at if exposure_change else at
            try:
                with transaction.atomic():
                    incident = Incident.objects.create(
                        title=f"Guardrail breach: {alert.get('guardrail') or alert.get('metric')}{where}"[:200],
                        severity=severity, rollout_key=rollout_key, started_at=started, detected_at=at,
                        affected_population=_population_for(alert, start=started), opened_by="system")
            except IntegrityError:
                incident = None  # opened concurrently: attach below
            if incident is not None:
                add_timeline_entry(incident=incident, kind="incident_opened", source="system", at=at,
                                   source_key="opened",
                                   text=f"{incident.reference} opened automatically ({severity}) by the breach of "
                                        f"{alert.get('guardrail')}{where}.")
                if exposure_change:
                    add_timeline_entry(
                        incident=incident, kind="note", source="system", at=at, source_key="impact_start",
                        text=f"Impact start estimated at {_iso(started)}: the last change that raised exposure "
                             f"({exposure_change.text[:200]}). Correct the times if the evidence says otherwise.")
                _backfill(incident=incident, until=at)
                catch_up(incident_id=incident.pk)
                incident.refresh_from_db()
                _seed_hypotheses(incident=incident)
                _announce(incident.pk, "opened")
                return incident, True
            incident = (Incident.objects.select_for_update().exclude(status="resolved")
                        .get(rollout_key=rollout_key))
        widened = _widen(incident.affected_population, alert)
        if widened != incident.affected_population:
            Incident.objects.filter(pk=incident.pk).update(affected_population=widened, version=F("version") + 1)
            incident.affected_population = widened
            add_timeline_entry(incident=incident, kind="alert", source="system", at=at,
                               source_key=f"population:{json.dumps(widened.get('segment'), sort_keys=True)}"[:200],
                               text=f"Affected population widened to {describe_population(widened)}.")
        _announce(incident.pk, "attached")
        return incident, False


def _last_exposure_change(*, before: datetime) -> SystemNews | None:
    """The latest policy change before detection that was not a containment (a ramp, a new
    model or threshold...): the best first estimate of when impact started."""
    recent = SystemNews.objects.filter(topic="policy", at__lte=before, at__gte=before - BACKFILL).order_by("-at")[:50]
    return next((news for news in recent if not is_containment(news.data)), None)


def _backfill(*, incident: Incident, until: datetime) -> None:
    """The upstream facts that preceded the incident go on its timeline too (same keys: once).

    Subscribers run in registration order, so the rollout's automatic containment for the very
    breach that opens the incident may already be news: it counts as the mitigation.
    """
    latest = max(until, timezone.now())
    for news in SystemNews.objects.filter(at__gte=until - BACKFILL, at__lte=latest):
        add_timeline_entry(incident=incident, kind=news.kind, text=news.text, source="system", at=news.at,
                           source_key=news.source_key, data=news.data)
        if news.topic == "policy" and is_containment(news.data) and news.at >= incident.started_at:
            _mark_mitigated(incident=incident, at=news.at)
            incident.refresh_from_db()
            _record_automatic_decision(incident=incident, news=news.data, at=news.at)


def catch_up_unresolved_incidents() -> int:
    """`catch_up` for every incident not yet resolved (beat, every minute): a delivery lost while
    PostgreSQL was away reaches the timeline within a minute, without anyone pressing a button."""
    added = 0
    for incident_id in Incident.objects.exclude(status="resolved").values_list("pk", flat=True):
        added += catch_up(incident_id=incident_id)
    return added


def catch_up(*, incident_id: int) -> int:
    """Put on the timeline what the record of the layers below holds for the incident's window but a
    lost delivery (a subscriber that failed while PostgreSQL was away) never brought: policy
    versions (rollout) and breach alerts (metrics). Same keys as the live path, so nothing lands
    twice; returns how many entries were added."""
    incident = Incident.objects.get(pk=incident_id)
    since = incident.started_at - BACKFILL
    until = incident.resolved_at or timezone.now()
    added = 0
    try:
        from rollout.models import PolicyVersion
    except ImportError:
        PolicyVersion = None  # noqa: N806 - rollout not installed
    if PolicyVersion is not None:
        for row in PolicyVersion.objects.filter(updated_at__gte=since, updated_at__lte=until).order_by("version"):
            payload = {"version": row.version, "policy": row.document(), "action": row.action, "actor": row.actor,
                       "reason": row.reason, "at": _iso(row.updated_at)}
            with transaction.atomic():
                _record_news(topic="policy", source_key=f"policy:{row.version}", kind="policy_change",
                             at=row.updated_at, text=_policy_text(payload), data=_json_safe(payload))
                entry = add_timeline_entry(incident=incident, kind="policy_change", source="system", at=row.updated_at,
                                           source_key=f"policy:{row.version}", text=_policy_text(payload),
                                           data=_json_safe(payload))
                if entry is not None:
                    added += 1
                    if is_containment(payload) and row.updated_at >= incident.started_at:
                        _mark_mitigated(incident=incident, at=row.updated_at)
                        incident.refresh_from_db()
                        _record_automatic_decision(incident=incident, news=payload, at=row.updated_at)
    try:
        from metrics.models import Alert
    except ImportError:
        Alert = None  # noqa: N806 - metrics alerts not installed
    if Alert is not None:
        for alert in Alert.objects.select_related("guardrail").filter(created_at__gte=since, created_at__lte=until):
            payload = alert.as_message()
            if add_timeline_entry(incident=incident, kind="alert", source="system", at=alert.created_at,
                                  source_key=f"alert:{alert.pk}", text=_alert_text(payload),
                                  data=_json_safe(payload)) is not None:
                added += 1
    return added


def describe_population(population: dict) -> str:
    if not population:
        return "not set"
    segment = population.get("segment")
    text = f"{population.get('arm') or 'all'} arm"
    if segment:
        text += f", {segment['feature']} in {', '.join(map(str, segment['in']))}"
    text += f", from {population.get('from') or '?'}"
    text += f" to {population['to']}" if population.get("to") else " (ongoing)"
    return text


AUTOMATIC_ACTORS = {"guardrail", "ramp-engine", "system"}


def _record_automatic_decision(*, incident: Incident, news: dict, at: datetime) -> None:
    """A containment the system carried out itself (a guardrail's action) is a decision too: it
    goes in the decision log with its reason, policy version and the numbers at that moment.
    People's own policy changes are linked by the person recording the decision."""
    from incidents import comms

    actor = news.get("actor") or ""
    if actor not in AUTOMATIC_ACTORS and not actor.startswith("ramp"):
        return
    version = news.get("version")
    record = DecisionRecord(
        incident=incident, decided_at=at, decision=f"Automatic containment: {news.get('action')} (policy v{version})",
        rationale=news.get("reason") or "", options=[], trade_offs="",
        consulted="nobody: taken automatically under the guardrail's configured action",
        policy_version=version, policy_action=news.get("action") or "", numbers=comms.live_numbers(incident),
        recorded_by=actor, source_key=f"policy:{version}")
    try:
        with transaction.atomic():
            record.save()
    except IntegrityError:
        return  # already in the log
    add_timeline_entry(incident=incident, kind="decision", source="system", at=at,
                       source_key=f"decision:{record.pk}", text=f"Decision recorded: {record.decision}. {record.rationale}")


def _mark_mitigated(*, incident: Incident, at: datetime) -> None:
    population = dict(incident.affected_population or {})
    population["to"] = _iso(at)
    changed = Incident.objects.filter(pk=incident.pk, mitigated_at__isnull=True).update(
        mitigated_at=at, affected_population=population, version=F("version") + 1)
    if changed:
        add_timeline_entry(incident=incident, kind="status_change", source="system", at=at, source_key="mitigated",
                           text="Mitigation in effect (containment policy change); time to mitigate recorded.")


def open_incident_manually(*, actor, title: str, severity: str, started_at: datetime | None = None,
                           rollout_key: str = DEFAULT_ROLLOUT, population: dict | None = None) -> Incident:
    title = (title or "").strip()
    if not title:
        raise IncidentError("title", "required")
    if severity not in SEVERITIES:
        raise IncidentError("severity", f"one of {', '.join(SEVERITIES)}")
    now = timezone.now()
    started = started_at or now
    if started > now:
        raise IncidentError("started_at", "cannot be in the future")
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                title=title[:200], severity=severity, rollout_key=rollout_key, started_at=started, detected_at=now,
                affected_population=population or {"arm": "treatment", "segment": None, "from": _iso(started),
                                                   "to": None},
                opened_by=_actor_name(actor), commander=actor if not isinstance(actor, str) else None)
            add_timeline_entry(incident=incident, kind="incident_opened", source=_actor_name(actor), at=now,
                               source_key="opened", text=f"{incident.reference} opened ({severity}): {title}")
            _backfill(incident=incident, until=now)
            catch_up(incident_id=incident.pk)
    except IntegrityError as exc:
        raise Conflict("rollout", "an incident for this rollout is already open; work in that one") from exc
    _announce(incident.pk, "opened")
    return incident


# ---------------------------------------------------------------- status, severity, roles, times

def _conditional_update(incident_id: int, version: int, **fields) -> Incident:
    changed = Incident.objects.filter(pk=incident_id, version=version).update(version=F("version") + 1, **fields)
    if not changed:
        raise Conflict("version", "the incident changed meanwhile; reload and try again")
    return Incident.objects.get(pk=incident_id)


def change_status(*, incident_id: int, version: int, status: str, actor, note: str = "") -> Incident:
    if status not in STATUSES:
        raise IncidentError("status", f"one of {', '.join(STATUSES)}")
    incident = Incident.objects.get(pk=incident_id)
    if incident.status == "resolved":
        raise Conflict("status", "a resolved incident stays resolved; open a new one")
    if status == incident.status:
        raise IncidentError("status", f"already {status}")
    now = timezone.now()
    fields = {"status": status}
    if status in ("monitoring", "resolved") and incident.mitigated_at is None:
        fields["mitigated_at"] = now
        population = dict(incident.affected_population or {})
        population.setdefault("to", None)
        if population.get("to") is None:
            population["to"] = _iso(now)
        fields["affected_population"] = population
    if status == "resolved":
        fields["resolved_at"] = now
    with transaction.atomic():
        updated = _conditional_update(incident_id, version, **fields)
        add_timeline_entry(incident=updated, kind="status_change", source=_actor_name(actor), at=now,
                           text=f"Status {incident.status} -> {status}.{' ' + note if note else ''}")
    return updated


def change_severity(*, incident_id: int, version: int, severity: str, actor, reason: str = "") -> Incident:
    if severity not in SEVERITIES:
        raise IncidentError("severity", f"one of {', '.join(SEVERITIES)}")
    incident = Incident.objects.get(pk=incident_id)
    if severity == incident.severity:
        raise IncidentError("severity", f"already {severity}")
    with transaction.atomic():
        updated = _conditional_update(incident_id, version, severity=severity)
        add_timeline_entry(incident=updated, kind="severity_change", source=_actor_name(actor),
                           text=f"Severity {incident.severity} -> {severity}.{' ' + reason if reason else ''}")
    return updated


def assign_roles(*, incident_id: int, version: int, actor, people: dict) -> Incident:
    """people: {"commander": user or None, ...} for the roles to change."""
    unknown = set(people) - set(ROLES)
    if unknown:
        raise IncidentError(sorted(unknown)[0], "not an incident role")
    incident = Incident.objects.get(pk=incident_id)
    changes = {role: person for role, person in people.items() if getattr(incident, f"{role}_id") != (
        person.pk if person else None)}
    if not changes:
        return incident
    with transaction.atomic():
        updated = _conditional_update(incident_id, version, **changes)
        text = "; ".join(f"{ROLES[role]}: {person.get_username() if person else 'nobody'}"
                         for role, person in changes.items())
        add_timeline_entry(incident=updated, kind="role_change", source=_actor_name(actor), text=f"Roles: {text}.")
    return updated


def set_times(*, incident_id: int, version: int, actor, started_at: datetime | None = None,
              detected_at: datetime | None = None) -> Incident:
    """Correct when impact started or when it was detected (the TTx figures follow)."""
    incident = Incident.objects.get(pk=incident_id)
    started = started_at or incident.started_at
    detected = detected_at or incident.detected_at
    if started > detected:
        raise IncidentError("started_at", "impact cannot start after it was detected")
    if detected > timezone.now():
        raise IncidentError("detected_at", "cannot be in the future")
    population = dict(incident.affected_population or {})
    population["from"] = _iso(started)
    with transaction.atomic():
        updated = _conditional_update(incident_id, version, started_at=started, detected_at=detected,
                                      affected_population=population)
        add_timeline_entry(incident=updated, kind="correction", source=_actor_name(actor),
                           text=f"Times corrected: impact started {_iso(started)}, detected {_iso(detected)}.")
    return updated


# ---------------------------------------------------------------- decision log

def record_decision(*, incident_id: int, actor, decision: str, rationale: str = "", options: list | None = None,
                    trade_offs: str = "", consulted: str = "", policy_version: int | None = None,
                    carry_out: dict | None = None) -> DecisionRecord:
    """Record a decision with the numbers at this moment; `carry_out` {"action", "params"} applies
    it through rollout.services.apply_action and links the resulting policy version."""
    from incidents import comms

    decision = (decision or "").strip()
    if not decision:
        raise IncidentError("decision", "say what was decided")
    options = [o for o in (options or []) if (o.get("option") or "").strip()]
    for index, option in enumerate(options):
        if not isinstance(option, dict) or not isinstance(option.get("option"), str):
            raise IncidentError(f"options[{index}]", "an object with 'option' and 'expected_effect'")
    incident = Incident.objects.get(pk=incident_id)
    if not incident.is_open and carry_out:
        raise Conflict("carry_out", "the incident is resolved; policy actions go through the rollout page")
    numbers = comms.live_numbers(incident)
    action_name = ""
    if carry_out:
        action_name = carry_out.get("action") or ""
        if not action_name:
            raise IncidentError("carry_out.action", "required to carry the decision out")
        try:
            apply_action = upstream.function("apply_action")
        except upstream.Unavailable as exc:
            raise IncidentError("carry_out.action", str(exc)) from exc
        try:
            policy = apply_action(action=action_name, params=carry_out.get("params") or {},
                                  reason=f"{decision} ({incident.reference})", actor=_actor_name(actor))
        except Exception as exc:  # rollout's ActionError (400/409): nothing changed; say why
            if not hasattr(exc, "status"):
                raise
            missing = "; ".join(getattr(exc, "missing", None) or [])
            raise IncidentError("carry_out_action", f"{exc}{' (' + missing + ')' if missing else ''}") from exc
        policy_version = (policy or {}).get("version") if isinstance(policy, dict) else getattr(policy, "version", None)
    with transaction.atomic():
        record = DecisionRecord.objects.create(
            incident=incident, decision=decision[:300], rationale=rationale, options=options, trade_offs=trade_offs,
            decided_by=actor if not isinstance(actor, str) else None, consulted=consulted[:500],
            policy_version=policy_version, policy_action=action_name, numbers=numbers,
            recorded_by=_actor_name(actor))
        link = f" (policy v{policy_version})" if policy_version else ""
        add_timeline_entry(incident=incident, kind="decision", source=_actor_name(actor),
                           source_key=f"decision:{record.pk}", text=f"Decision: {decision}{link}. {rationale}".strip())
    return record


# ---------------------------------------------------------------- hypotheses

def add_hypothesis(*, incident_id: int, actor, kind: str, statement: str) -> Hypothesis:
    if kind not in HYPOTHESIS_KINDS:
        raise IncidentError("kind", f"one of {', '.join(HYPOTHESIS_KINDS)}")
    statement = (statement or "").strip()
    if not statement:
        raise IncidentError("statement", "required")
    incident = Incident.objects.get(pk=incident_id)
    with transaction.atomic():
        hypothesis = Hypothesis.objects.create(incident=incident, kind=kind, statement=statement[:500],
                                               evidence=capture_evidence(incident=incident, kind=kind))
        add_timeline_entry(incident=incident, kind="hypothesis", source=_actor_name(actor),
                           source_key=f"hypothesis:{hypothesis.pk}:open",
                           text=f"Hypothesis ({HYPOTHESIS_KINDS[kind]}): {statement}")
    return hypothesis


def assess_hypothesis(*, hypothesis_id: int, version: int, actor, status: str, note: str = "") -> Hypothesis:
    if status not in HYPOTHESIS_STATUSES:
        raise IncidentError("status", f"one of {', '.join(HYPOTHESIS_STATUSES)}")
    hypothesis = Hypothesis.objects.select_related("incident").get(pk=hypothesis_id)
    evidence = capture_evidence(incident=hypothesis.incident, kind=hypothesis.kind)
    with transaction.atomic():
        changed = Hypothesis.objects.filter(pk=hypothesis_id, version=version).update(
            status=status, evidence_note=note, evidence=evidence, updated_at=timezone.now(),
            version=F("version") + 1)
        if not changed:
            raise Conflict("version", "the hypothesis changed meanwhile; reload and try again")
        add_timeline_entry(incident=hypothesis.incident, kind="hypothesis", source=_actor_name(actor),
                           text=f"Hypothesis \"{hypothesis.statement}\" is now {status}.{' ' + note if note else ''}")
    return Hypothesis.objects.get(pk=hypothesis_id)


STANDARD_HYPOTHESES = {
    "feature_drift": "A model feature is served wrong (defaults, drift) in the affected segment",
    "latency": "Scoring latency and timeouts send buyers to the fallback rule",
    "thresholds": "The score thresholds are miscalibrated for this traffic",
}


def _seed_hypotheses(*, incident: Incident) -> None:
    """The three competing explanations, open, each with the KPI engine's evidence attached."""
    diagnosis = _diagnosis(incident)
    Hypothesis.objects.bulk_create([
        Hypothesis(incident=incident, kind=kind, statement=statement,
                   evidence=capture_evidence(incident=incident, kind=kind, diagnosis=diagnosis))
        for kind, statement in STANDARD_HYPOTHESES.items()])


def _diagnosis(incident: Incident):
    return upstream.try_call("diagnosis", start=incident.started_at, end=timezone.now())


def capture_evidence(*, incident: Incident, kind: str, diagnosis=None) -> dict:
    """The KPI engine's evidence for this kind of hypothesis over the incident's window (the parts
    that tell the hypotheses apart, not the chart series), with a one-line summary."""
    from incidents import comms

    end = timezone.now()
    start = incident.started_at
    result, missing = diagnosis if diagnosis is not None else upstream.try_call("diagnosis", start=start, end=end)
    evidence = {"from": _iso(start), "to": _iso(end)}
    if missing:
        evidence["unavailable"] = missing
        evidence["summary"] = f"No evidence yet: {missing}."
        return evidence
    result = result if isinstance(result, dict) else {}
    drift = result.get("feature_drift") or {}
    latency = result.get("latency") or {}
    thresholds = result.get("thresholds") or {}
    if kind in ("feature_drift", "custom"):
        evidence["feature_drift"] = {"rule": drift.get("rule"), "checked": drift.get("checked"),
                                     "moved": (drift.get("moved") or [])[:10]}
    if kind in ("latency", "custom"):
        evidence["latency"] = {"by_arm": latency.get("by_arm"),
                               "treatment_fallback_share": latency.get("treatment_fallback_share")}
    if kind in ("thresholds", "custom"):
        evidence["thresholds"] = {key: thresholds.get(key) for key in (
            "current_thresholds", "scored_orders", "conversion_given_decision", "what_if", "method")}
    evidence = json.loads(json.dumps(evidence, default=str))
    evidence["summary"] = comms.evidence_sentence(evidence)
    return evidence


# ---------------------------------------------------------------- action items

def add_action_item(*, incident_id: int, actor, kind: str, title: str, owner, due_on: date) -> ActionItem:
    if kind not in ACTION_ITEM_KINDS:
        raise IncidentError("kind", f"one of {', '.join(ACTION_ITEM_KINDS)}")
    title = (title or "").strip()
    if not title:
        raise IncidentError("title", "required")
    if owner is None:
        raise IncidentError("owner", "every action item needs an owner")
    if due_on is None:
        raise IncidentError("due_on", "a date (YYYY-MM-DD)")
    incident = Incident.objects.get(pk=incident_id)
    with transaction.atomic():
        item = ActionItem.objects.create(incident=incident, kind=kind, title=title[:300], owner=owner, due_on=due_on)
        add_timeline_entry(incident=incident, kind="action_item", source=_actor_name(actor),
                           source_key=f"action_item:{item.pk}",
                           text=f"Action item ({kind}): {title}; owner {owner.get_username()}, due {due_on}.")
    return item


def set_action_item_status(*, item_id: int, version: int, actor, status: str) -> ActionItem:
    if status not in ACTION_ITEM_STATUSES:
        raise IncidentError("status", f"one of {', '.join(ACTION_ITEM_STATUSES)}")
    item = ActionItem.objects.select_related("incident").get(pk=item_id)
    with transaction.atomic():
        if not ActionItem.objects.filter(pk=item_id, version=version).update(status=status, version=F("version") + 1):
            raise Conflict("version", "the action item changed meanwhile; reload and try again")
        add_timeline_entry(incident=item.incident, kind="action_item", source=_actor_name(actor),
                           text=f"Action item \"{item.title}\" is now {status.replace('_', ' ')}.")
    return ActionItem.objects.get(pk=item_id)


# ---------------------------------------------------------------- status updates

def create_draft(*, incident_id: int, actor, audience: str) -> StatusUpdate:
    """A draft for the audience, generated from the live numbers (comms.draft)."""
    from incidents import comms

    if audience not in AUDIENCES:
        raise IncidentError("audience", f"one of {', '.join(AUDIENCES)}")
    incident = Incident.objects.get(pk=incident_id)
    sections, numbers = comms.draft(incident=incident, audience=audience)
    update = StatusUpdate.objects.create(incident=incident, audience=audience, sections=sections, numbers=numbers,
                                         created_by=_actor_name(actor))
    _announce(incident.pk, "draft")
    return update


def edit_draft(*, update_id: int, actor, sections: dict) -> StatusUpdate:
    update = StatusUpdate.objects.get(pk=update_id)
    allowed = AUDIENCES[update.audience][1]
    clean = {name: (sections.get(name) or "").strip() for name in allowed}
    if not any(clean.values()):
        raise IncidentError(allowed[0], "an update needs some text")
    if not StatusUpdate.objects.filter(pk=update_id, published_at__isnull=True).update(sections=clean):
        raise Conflict("status_update", "already published; published updates cannot change (write a new one)")
    _announce(update.incident_id, "draft")
    return StatusUpdate.objects.get(pk=update_id)


def publish_update(*, update_id: int, actor) -> StatusUpdate:
    now = timezone.now()
    update = StatusUpdate.objects.select_related("incident").get(pk=update_id)
    with transaction.atomic():
        if not StatusUpdate.objects.filter(pk=update_id, published_at__isnull=True).update(
                published_at=now, published_by=_actor_name(actor)):
            raise Conflict("status_update", "already published")
        label = AUDIENCES[update.audience][0]
        first = next((text for _, _, text in update.section_items() if text), "")
        add_timeline_entry(incident=update.incident, kind="status_update", source=_actor_name(actor), at=now,
                           source_key=f"status_update:{update.pk}", data={"audience": update.audience},
                           text=f"{label} update published: {first[:300]}")
    return StatusUpdate.objects.get(pk=update_id)


# ---------------------------------------------------------------- relaunch exit criteria, postmortem

def add_exit_criterion(*, incident_id: int, actor, text: str) -> ExitCriterion:
    text = (text or "").strip()
    if not text:
        raise IncidentError("text", "required")
    incident = Incident.objects.get(pk=incident_id)
    with transaction.atomic():
        criterion = ExitCriterion.objects.create(incident=incident, text=text[:300])
        add_timeline_entry(incident=incident, kind="exit_criterion", source=_actor_name(actor),
                           text=f"Exit criterion added: {text}")
    return criterion


def mark_exit_criterion_met(*, criterion_id: int, actor) -> ExitCriterion:
    criterion = ExitCriterion.objects.select_related("incident").get(pk=criterion_id)
    now = timezone.now()
    with transaction.atomic():
        if not ExitCriterion.objects.filter(pk=criterion_id, met_at__isnull=True).update(
                met_at=now, met_by=_actor_name(actor)):
            raise Conflict("exit_criterion", "already met")
        add_timeline_entry(incident=criterion.incident, kind="exit_criterion", source=_actor_name(actor), at=now,
                           source_key=f"exit_criterion:{criterion.pk}:met",
                           text=f"Exit criterion met: {criterion.text}")
    return ExitCriterion.objects.get(pk=criterion_id)


def save_postmortem_section(*, incident_id: int, actor, key: str, body: str) -> PostmortemSection:
    if key not in POSTMORTEM_SECTIONS:
        raise IncidentError("section", f"one of {', '.join(POSTMORTEM_SECTIONS)}")
    incident = Incident.objects.get(pk=incident_id)
    now = timezone.now()
    # INSERT ... ON CONFLICT DO UPDATE: two editors never lose the row, the later text wins.
    PostmortemSection.objects.bulk_create(
        [PostmortemSection(incident=incident, key=key, body=body, updated_at=now, updated_by=_actor_name(actor))],
        update_conflicts=True, unique_fields=["incident", "key"], update_fields=["body", "updated_at", "updated_by"])
    _announce(incident.pk, "postmortem")
    return PostmortemSection.objects.get(incident=incident, key=key)
