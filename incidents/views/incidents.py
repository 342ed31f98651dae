"""Incident pages: list, one incident (timeline, decision log, hypotheses, action items, status
updates, relaunch plan), the postmortem (page and Markdown), and the responders' POST actions.

Thin views: parse the form, call one service, redirect (POST/redirect/GET) or re-render with the
error that names the field. Reads are open to `incidents:read` (support sees only the support
wording of status updates); every change needs `incidents:write`.
"""
from __future__ import annotations

from datetime import UTC, date, datetime

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from incidents import postmortem, selectors, services, upstream
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
    UPDATE_CADENCE,
    ActionItem,
    ExitCriterion,
    Hypothesis,
    Incident,
    StatusUpdate,
)
from shopswift_ops.access import request_can, requires, user_role

TEMPLATE = "incidents/incident.html"
PARTIALS = ("header", "timeline", "decisions", "hypotheses", "action_items", "updates", "relaunch")


def _responders():
    return get_user_model().objects.filter(is_active=True).order_by("username")


@requires("incidents:read")
@require_GET
def incident_list(request):
    status = request.GET.get("status", "all")
    if status not in ("open", "resolved", "all"):
        status = "all"
    return render(request, "incidents/list.html", {
        "incidents": selectors.incident_list(status=status), "status": status, "severities": SEVERITIES,
        "cadence": {k: int(v.total_seconds() // 60) for k, v in UPDATE_CADENCE.items()},
    })


@requires("incidents:write")
@require_POST
def incident_open(request):
    started = _parse_moment(request.POST.get("started_at"))
    try:
        incident = services.open_incident_manually(actor=request.user, title=request.POST.get("title", ""),
                                                   severity=request.POST.get("severity", ""), started_at=started)
    except services.IncidentError as exc:
        messages.error(request, str(exc))
        return redirect("incident-list")
    return redirect("incident-detail", incident_id=incident.pk)


def incident_context(request, incident: Incident) -> dict:
    include_system = request.GET.get("system", "1") != "0"
    can_write = request_can(request, "incidents:write")
    audiences = selectors.visible_audiences(role=user_role(request.user), can_write=can_write)
    ramp, ramp_missing = upstream.try_call("ramp_status")
    guardrails, guardrails_missing = upstream.try_call("latest_statuses")
    if isinstance(guardrails, dict):
        guardrails = guardrails.get("guardrails", [])
    return {
        "incident": incident,
        "timeline_entries": selectors.timeline(incident, include_system=include_system, audiences=audiences),
        "include_system": include_system,
        "system_toggle_url": f"{request.path}?system={'0' if include_system else '1'}",
        "can_write": can_write,
        "severities": SEVERITIES,
        "statuses": STATUSES,
        "roles": [(key, label, getattr(incident, key)) for key, label in ROLES.items()],
        "people": _responders() if can_write else [],
        "population": services.describe_population(incident.affected_population),
        "ttd": postmortem.duration(incident.time_to_detect),
        "ttm": postmortem.duration(incident.time_to_mitigate),
        "ttr": postmortem.duration(incident.time_to_resolve),
        "decisions": list(incident.decisions.select_related("decided_by")),
        "policy_versions": [(e.data.get("version"), e.text[:90]) for e in selectors.timeline(incident)
                            if e.kind == "policy_change" and e.data.get("version")][::-1] if can_write else [],
        "hypotheses": list(incident.hypotheses.all()),
        "hypothesis_kinds": HYPOTHESIS_KINDS,
        "hypothesis_statuses": HYPOTHESIS_STATUSES,
        "action_items": list(incident.action_items.select_related("owner")),
        "action_item_kinds": ACTION_ITEM_KINDS,
        "action_item_statuses": ACTION_ITEM_STATUSES,
        "updates": selectors.status_updates(incident, audiences=audiences, include_drafts=can_write),
        "audiences": {k: v[0] for k, v in AUDIENCES.items() if k in audiences},
        "update_due": selectors.update_due(incident),
        "exit_criteria": list(incident.exit_criteria.all()),
        "ramp": ramp, "ramp_missing": ramp_missing,
        "guardrails": guardrails, "guardrails_missing": guardrails_missing,
        "now": timezone.now(),
    }


@requires("incidents:read")
@require_GET
def incident_detail(request, incident_id: int):
    incident = get_object_or_404(Incident, pk=incident_id)
    context = incident_context(request, incident)
    partial = request.GET.get("partial")
    if partial in PARTIALS:
        return render(request, f"{TEMPLATE}#{partial}", context)
    if partial == "live":
        return render(request, "incidents/incident.html#live", context)
    return render(request, TEMPLATE, context)


@requires("incidents:read")
@require_GET
def postmortem_page(request, incident_id: int):
    incident = get_object_or_404(Incident, pk=incident_id)
    return render(request, "incidents/postmortem.html", {
        **postmortem.build(incident), "can_write": request_can(request, "incidents:write")})


@requires("incidents:read")
@require_GET
def postmortem_markdown(request, incident_id: int):
    incident = get_object_or_404(Incident, pk=incident_id)
    response = HttpResponse(postmortem.to_markdown(incident), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="postmortem-{incident.reference}.md"'
    return response


# ---------------------------------------------------------------- POST actions

def _parse_moment(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value.strip().replace("Z", "+00:00"))
    if parsed is None:
        raise services.IncidentError("time", f"{value!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC)")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # forms take UTC, as the page shows
    return parsed


def _parse_int(value, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise services.IncidentError(field, "a whole number is required") from None


def _person(value, field: str, *, required: bool = False):
    if not value:
        if required:
            raise services.IncidentError(field, "choose a person")
        return None
    person = get_user_model().objects.filter(pk=_parse_int(value, field)).first()
    if person is None:
        raise services.IncidentError(field, "no such person")
    return person


def _owned(model, incident_id: int, pk):
    obj = model.objects.filter(incident_id=incident_id, pk=pk).first()
    if obj is None:
        raise Http404(f"no such {model._meta.verbose_name} on this incident")
    return obj


def _do_note(request, incident_id):
    services.add_note(incident_id=incident_id, actor=request.user, text=request.POST.get("text", ""),
                      link=request.POST.get("link", "").strip(), kind=request.POST.get("kind", "note"),
                      corrects_id=_parse_int(request.POST["corrects"], "corrects") if request.POST.get("corrects") else None)


def _do_status(request, incident_id):
    services.change_status(incident_id=incident_id, version=_parse_int(request.POST.get("version"), "version"),
                           status=request.POST.get("status", ""), actor=request.user, note=request.POST.get("note", ""))


def _do_severity(request, incident_id):
    services.change_severity(incident_id=incident_id, version=_parse_int(request.POST.get("version"), "version"),
                             severity=request.POST.get("severity", ""), actor=request.user,
                             reason=request.POST.get("reason", ""))


def _do_roles(request, incident_id):
    people = {role: _person(request.POST.get(role), role) for role in ROLES if role in request.POST}
    services.assign_roles(incident_id=incident_id, version=_parse_int(request.POST.get("version"), "version"),
                          actor=request.user, people=people)


def _do_times(request, incident_id):
    services.set_times(incident_id=incident_id, version=_parse_int(request.POST.get("version"), "version"),
                       actor=request.user, started_at=_parse_moment(request.POST.get("started_at")),
                       detected_at=_parse_moment(request.POST.get("detected_at")))


def _do_decision(request, incident_id):
    options = [{"option": o.strip(), "expected_effect": e.strip()}
               for o, e in zip(request.POST.getlist("option"), request.POST.getlist("expected_effect"), strict=False)]
    action = request.POST.get("carry_out_action", "").strip()
    carry_out = None
    if action:
        params = {}
        if action == "exclude_segment":
            segment = (Incident.objects.get(pk=incident_id).affected_population or {}).get("segment")
            if not segment:
                raise services.IncidentError("carry_out_action", "the affected population names no segment to exclude")
            params = {"feature": segment["feature"], "in": segment["in"]}
        elif action == "set_mode":
            params = {"mode": "shadow"}
        elif action != "kill":
            raise services.IncidentError("carry_out_action", "one of kill, exclude_segment, set_mode (shadow)")
        carry_out = {"action": action, "params": params}
    version = request.POST.get("policy_version", "").strip()
    services.record_decision(
        incident_id=incident_id, actor=request.user, decision=request.POST.get("decision", ""),
        rationale=request.POST.get("rationale", ""), options=options, trade_offs=request.POST.get("trade_offs", ""),
        consulted=request.POST.get("consulted", ""),
        policy_version=_parse_int(version, "policy_version") if version else None, carry_out=carry_out)


def _do_hypothesis(request, incident_id):
    services.add_hypothesis(incident_id=incident_id, actor=request.user, kind=request.POST.get("kind", ""),
                            statement=request.POST.get("statement", ""))


def _do_assess(request, incident_id):
    hypothesis = _owned(Hypothesis, incident_id, request.POST.get("hypothesis"))
    services.assess_hypothesis(hypothesis_id=hypothesis.pk, version=_parse_int(request.POST.get("version"), "version"),
                               actor=request.user, status=request.POST.get("status", ""),
                               note=request.POST.get("note", ""))


def _do_action_item(request, incident_id):
    due = request.POST.get("due_on", "")
    try:
        due_on = date.fromisoformat(due) if due else None
    except ValueError:
        raise services.IncidentError("due_on", f"{due!r} is not a date (YYYY-MM-DD)") from None
    services.add_action_item(incident_id=incident_id, actor=request.user, kind=request.POST.get("kind", ""),
                             title=request.POST.get("title", ""), owner=_person(request.POST.get("owner"), "owner"),
                             due_on=due_on)


def _do_action_item_status(request, incident_id):
    item = _owned(ActionItem, incident_id, request.POST.get("item"))
    services.set_action_item_status(item_id=item.pk, version=_parse_int(request.POST.get("version"), "version"),
                                    actor=request.user, status=request.POST.get("status", ""))


def _do_draft(request, incident_id):
    services.create_draft(incident_id=incident_id, actor=request.user, audience=request.POST.get("audience", ""))


def _do_edit_update(request, incident_id):
    update = _owned(StatusUpdate, incident_id, request.POST.get("update"))
    sections = {name: request.POST.get(name, "") for name in AUDIENCES[update.audience][1]}
    services.edit_draft(update_id=update.pk, actor=request.user, sections=sections)
    if request.POST.get("publish"):
        services.publish_update(update_id=update.pk, actor=request.user)


def _do_publish(request, incident_id):
    update = _owned(StatusUpdate, incident_id, request.POST.get("update"))
    services.publish_update(update_id=update.pk, actor=request.user)


def _do_exit_criterion(request, incident_id):
    services.add_exit_criterion(incident_id=incident_id, actor=request.user, text=request.POST.get("text", ""))


def _do_criterion_met(request, incident_id):
    criterion = _owned(ExitCriterion, incident_id, request.POST.get("criterion"))
    services.mark_exit_criterion_met(criterion_id=criterion.pk, actor=request.user)


def _do_postmortem(request, incident_id):
    for key in POSTMORTEM_SECTIONS:
        if key in request.POST:
            services.save_postmortem_section(incident_id=incident_id, actor=request.user, key=key,
                                             body=request.POST.get(key, ""))


def _do_catch_up(request, incident_id):
    services.catch_up(incident_id=incident_id)


ACTIONS = {
    "catch-up": (_do_catch_up, "timeline"),
    "note": (_do_note, "timeline"), "status": (_do_status, "header"), "severity": (_do_severity, "header"),
    "roles": (_do_roles, "header"), "times": (_do_times, "header"), "decision": (_do_decision, "decisions"),
    "hypothesis": (_do_hypothesis, "hypotheses"), "assess": (_do_assess, "hypotheses"),
    "action-item": (_do_action_item, "action-items"), "action-item-status": (_do_action_item_status, "action-items"),
    "draft": (_do_draft, "updates"), "edit-update": (_do_edit_update, "updates"), "publish": (_do_publish, "updates"),
    "exit-criterion": (_do_exit_criterion, "relaunch"), "criterion-met": (_do_criterion_met, "relaunch"),
    "postmortem": (_do_postmortem, None),
}


@requires("incidents:write")
@require_POST
def incident_action(request, incident_id: int, action: str):
    get_object_or_404(Incident, pk=incident_id)
    if action not in ACTIONS:
        raise Http404("unknown incident action")
    handler, anchor = ACTIONS[action]
    try:
        handler(request, incident_id)
    except services.Conflict as exc:
        return _back(incident_id, anchor, action, status=409, request=request, error=str(exc))
    except services.IncidentError as exc:
        return _back(incident_id, anchor, action, status=400, request=request, error=str(exc))
    return _back(incident_id, anchor, action)


def _back(incident_id, anchor, action, *, status=302, request=None, error=None):
    if action == "postmortem":
        url = reverse("incident-postmortem", args=[incident_id])
    else:
        url = reverse("incident-detail", args=[incident_id]) + (f"#{anchor}" if anchor else "")
    if status == 302:
        return redirect(url)
    # The error names the field; nothing was changed.
    return render(request, "incidents/error.html", {"error": error, "back_url": url}, status=status)
