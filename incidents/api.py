"""GET /api/v1/incidents and /api/v1/incidents/{id} (CONTRACT section 6), scope incidents:read.

Integrations (chat bots, status pages) read these. Published status updates only; a support
user (session) sees the support wording only, as on the pages.
"""
from __future__ import annotations

from datetime import UTC

from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from incidents import selectors
from incidents.models import Incident
from shopswift_ops.access import api, json_error, user_role


def _iso(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def summary(incident: Incident) -> dict:
    return {
        "id": incident.pk,
        "reference": incident.reference,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "opened_at": _iso(incident.opened_at),
        "started_at": _iso(incident.started_at),
        "detected_at": _iso(incident.detected_at),
        "mitigated_at": _iso(incident.mitigated_at),
        "resolved_at": _iso(incident.resolved_at),
        "affected_population": incident.affected_population,
        "url": reverse("incident-detail", args=[incident.pk]),
    }


def detail(incident: Incident, *, audiences) -> dict:
    document = summary(incident)
    document["timeline"] = [
        {"at": _iso(e.at), "kind": e.kind, "source": e.source, "text": e.text,
         **({"link": e.link} if e.link else {}), **({"corrects_at": _iso(e.corrects.at)} if e.corrects_id else {})}
        for e in selectors.timeline(incident, include_system=True, audiences=audiences)]
    document["decisions"] = [
        {"decided_at": _iso(d.decided_at), "decision": d.decision, "rationale": d.rationale, "options": d.options,
         "trade_offs": d.trade_offs, "decided_by": d.decided_by.get_username() if d.decided_by else d.recorded_by,
         "consulted": d.consulted, "policy_version": d.policy_version, "numbers": d.numbers}
        for d in incident.decisions.select_related("decided_by")]
    document["action_items"] = [
        {"title": i.title, "kind": i.kind, "owner": i.owner.get_username() if i.owner else None,
         "due_on": i.due_on.isoformat(), "status": i.status, "overdue": i.is_overdue}
        for i in incident.action_items.select_related("owner")]
    document["status_updates"] = [
        {"audience": u.audience, "published_at": _iso(u.published_at), "published_by": u.published_by,
         "sections": {name: text for name, _, text in u.section_items()}}
        for u in selectors.status_updates(incident, audiences=audiences)]
    return document


def _audiences(request):
    if request.api_token is not None:
        return selectors.visible_audiences(role=None, can_write=False)
    return selectors.visible_audiences(role=user_role(request.user), can_write="incidents:write" in request.capabilities)


@api("incidents:read")
@require_GET
def incidents_list(request):
    status = request.GET.get("status", "open")
    if status not in ("open", "resolved", "all"):
        return json_error(400, "status: one of open, resolved, all")
    return JsonResponse({"incidents": [summary(i) for i in selectors.incident_list(status=status)[:500]]})


@api("incidents:read")
@require_GET
def incident_detail(request, incident_id: int):
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        return json_error(404, f"no incident {incident_id}")
    return JsonResponse(detail(incident, audiences=_audiences(request)))
