"""Read-side queries for incidents (used by views, the API, the war room and the support app)."""
from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from incidents.models import AUDIENCES, Incident, StatusUpdate, TimelineEntry
from shopswift_ops.read_scope import reads_once

DEFAULT_ROLLOUT = getattr(settings, "INCIDENTS_DEFAULT_ROLLOUT", "fraud-model")


@reads_once
def open_incident(*, rollout_key: str | None = None) -> Incident | None:
    """The open incident (of a rollout, or the most recently opened of any), or None."""
    qs = Incident.objects.exclude(status="resolved")
    if rollout_key:
        qs = qs.filter(rollout_key=rollout_key)
    return qs.order_by("-opened_at").first()


def incident_list(*, status: str = "all"):
    qs = Incident.objects.all().order_by("-opened_at")
    if status == "open":
        qs = qs.exclude(status="resolved")
    elif status == "resolved":
        qs = qs.filter(status="resolved")
    return qs


def timeline(incident: Incident, include_system: bool = True, audiences=None):
    """Entries in time order (ties in the order they were recorded). With `audiences`, the entries
    of status updates for other audiences are left out (support reads the support wording only)."""
    qs = TimelineEntry.objects.filter(incident=incident).order_by("at", "id")
    if not include_system:
        qs = qs.exclude(source="system")
    if audiences is not None and set(audiences) != set(AUDIENCES):
        qs = qs.exclude(Q(kind="status_update") & ~Q(data__audience__in=list(audiences)))
    return list(qs)


def visible_audiences(*, role: str | None, can_write: bool) -> tuple[str, ...]:
    """Support sees the support wording only; responders and leadership see every audience."""
    if role == "support" and not can_write:
        return ("support",)
    return tuple(AUDIENCES)


def status_updates(incident: Incident, *, audiences=tuple(AUDIENCES), include_drafts: bool = False):
    qs = StatusUpdate.objects.filter(incident=incident, audience__in=audiences)
    if not include_drafts:
        qs = qs.filter(published_at__isnull=False)
    return list(qs.order_by("created_at", "id"))


def update_due(incident: Incident, *, now=None) -> dict | None:
    """When the next status update is due under the severity's cadence (None once resolved)."""
    if not incident.is_open:
        return None
    now = now or timezone.now()
    last = (StatusUpdate.objects.filter(incident=incident, published_at__isnull=False,
                                        audience__in=("tactical", "executive"))
            .order_by("-published_at").values_list("published_at", flat=True).first())
    base = last or incident.opened_at
    due_at = base + incident.update_cadence
    return {"due_at": due_at, "last_published_at": last, "overdue": now >= due_at,
            "cadence_minutes": int(incident.update_cadence.total_seconds() // 60)}
