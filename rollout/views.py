"""Pages: the ramp plan (stages, what the current one waits for, sign-offs, advance) and the audit
log (filterable in the URL, CSV export). Thin: parse, call one service, render."""
from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, time, timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.http import require_GET, require_POST

from rollout import services
from rollout.models import AuditEntry
from shopswift_ops.access import request_can, requires, user_role

AUDIT_PAGE_SIZE = 100


@requires("policy:read")
@require_GET
def ramp_plan(request):
    status = services.ramp_status()
    role = user_role(request.user)
    signed_roles = {s["role"] for s in status["signoffs"]["present"]}
    context = {
        "status": status,
        "policy": services.current_policy(),
        "my_role": role,
        "can_sign": (request_can(request, "rollout:signoff") and role in status["signoffs"]["required"]
                     and role not in signed_roles),
        "can_write": request_can(request, "rollout:write"),
    }
    if request.htmx:
        return render(request, "rollout/ramp.html#plan", context)
    return render(request, "rollout/ramp.html", context)


def _run(request, call, success: str):
    try:
        call()
        messages.success(request, success)
    except services.ActionError as exc:
        messages.error(request, exc.detail)
        for item in exc.missing:
            messages.warning(request, item)
    return redirect("rollout-ramp")


@requires("rollout:write")
@require_POST
def request_advance(request):
    return _run(request, lambda: services.request_advance(actor=request.user.get_username(),
                                                          comment=request.POST.get("comment", "")),
                "Advance requested; the stage's sign-offs are now awaited.")


@requires("rollout:write")
@require_POST
def advance(request):
    return _run(request, lambda: services.advance(actor=request.user.get_username(), reason=request.POST.get("reason", "")),
                "Advanced to the next stage.")


@requires("rollout:signoff")
@require_POST
def sign_off(request):
    stage = request.POST.get("stage", "")
    return _run(request, lambda: services.sign_off(username=request.user.get_username(), role=user_role(request.user),
                                                   comment=request.POST.get("comment", ""),
                                                   stage=int(stage) if stage.lstrip("-").isdigit() else None),
                "Signed off.")


@requires("rollout:write")
@require_POST
def pause(request):
    return _run(request, lambda: services.pause_plan(actor=request.user.get_username(), reason=request.POST.get("reason", "")),
                "Plan paused.")


@requires("rollout:write")
@require_POST
def resume(request):
    return _run(request, lambda: services.resume_plan(actor=request.user.get_username(), reason=request.POST.get("reason", "")),
                "Plan resumed.")


# --- audit log ------------------------------------------------------------------------------------

def _moment(text: str, *, end: bool) -> datetime | None:
    if not text:
        return None
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            return None
        moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


def audit_filters(params) -> tuple[dict, dict, list[str]]:
    """(ORM filters, the cleaned values for the form, errors) from GET params."""
    values = {key: params.get(key, "").strip() for key in ("kind", "actor", "action", "version", "from", "to", "q")}
    filters, errors = {}, []
    if values["kind"]:
        if values["kind"] in AuditEntry.Kind.values:
            filters["kind"] = values["kind"]
        else:
            errors.append(f"kind: unknown kind {values['kind']!r}")
    if values["actor"]:
        filters["actor__icontains"] = values["actor"]
    if values["action"]:
        filters["action__icontains"] = values["action"]
    if values["version"]:
        if values["version"].isdigit():
            filters["policy_version"] = int(values["version"])
        else:
            errors.append("version: a policy version number")
    for key, lookup, end in (("from", "at__gte", False), ("to", "at__lt", True)):
        if values[key]:
            moment = _moment(values[key], end=end)
            if moment is None:
                errors.append(f"{key}: a date (YYYY-MM-DD) or RFC 3339 time")
            else:
                filters[lookup] = moment
    if values["q"]:
        filters["reason__icontains"] = values["q"]
    return filters, values, errors


@requires("audit:read")
@require_GET
def audit_log(request):
    filters, values, errors = audit_filters(request.GET)
    entries = AuditEntry.objects.filter(**filters).order_by("-at", "-id")
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "rollout/audit.html", {
        "page": page, "values": values, "errors": errors, "kinds": AuditEntry.Kind.choices,
        "query": query.urlencode(),
    })


class _Echo:
    def write(self, value):
        return value


@requires("audit:read")
@require_GET
def audit_csv(request):
    filters, _, errors = audit_filters(request.GET)
    if errors:
        return render(request, "rollout/audit.html", {"errors": errors, "values": {}, "kinds": AuditEntry.Kind.choices,
                                                      "page": None, "query": ""}, status=400)
    writer = csv.writer(_Echo())
    rows = AuditEntry.objects.filter(**filters).order_by("at", "id").values_list(
        "id", "at", "kind", "actor", "action", "policy_version", "reason", "detail")

    def stream():
        yield writer.writerow(["id", "at_utc", "kind", "actor", "action", "policy_version", "reason", "detail_json"])
        for entry_id, at, kind, actor, action, version, reason, detail in rows.iterator(chunk_size=2000):
            yield writer.writerow([entry_id, at.isoformat().replace("+00:00", "Z"), kind, actor, action,
                                   "" if version is None else version, reason, json.dumps(detail, sort_keys=True)])

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rollout-audit-{timezone.now():%Y%m%dT%H%M%SZ}.csv"'
    return response
