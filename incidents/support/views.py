"""Support and Compliance pages. Thin: parse, call one service/selector, render."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_http_methods, require_POST

from incidents.support import selectors, services
from incidents.support.models import DecisionLabel, LookupLog
from shopswift_ops.access import request_can, requires

SEARCH_KINDS = [("order", "Order id"), ("buyer", "Buyer id"), ("seller", "Seller id")]


# -- helpers -----------------------------------------------------------------------------------
def parse_window(request, *, default_hours: int) -> tuple[datetime, datetime, list[str]]:
    """`from`/`to` (RFC 3339) from the query string; defaults: the last `default_hours` hours."""
    errors = []
    now = timezone.now()
    values = {}
    for name, default in (("from", now - timedelta(hours=default_hours)), ("to", now)):
        raw = request.GET.get(name, "").strip()
        if not raw:
            values[name] = default
            continue
        parsed = parse_datetime(raw.replace(" ", "+"))
        if parsed is None:
            errors.append(f"{name}: not an RFC 3339 time (e.g. 2026-11-28T14:00:00Z)")
            values[name] = default
        else:
            values[name] = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if values["from"] >= values["to"]:
        errors.append("from: must be before to")
    return values["from"], values["to"], errors


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _next_chunk(chunks):
    return next(chunks, None)


def streaming_csv(request, chunks, filename: str) -> StreamingHttpResponse:
    """Stream CSV chunks. Under ASGI a sync iterator would be read whole into memory first, so
    there the generator is driven chunk by chunk on the request's own thread (same connection,
    same open transaction)."""
    if isinstance(request, ASGIRequest):
        async def content():
            step = sync_to_async(_next_chunk, thread_sensitive=True)
            try:
                while (chunk := await step(chunks)) is not None:
                    yield chunk
            finally:
                await sync_to_async(chunks.close, thread_sensitive=True)()
        body = content()
    else:
        body = chunks
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _audit_log_url() -> str | None:
    for name in ("rollout:audit", "rollout-audit", "audit-log", "rollout_audit"):
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return None


# -- pages -----------------------------------------------------------------------------------------
@requires("support:view")
@require_http_methods(["GET", "POST"])
def search(request):
    """GET ?by=order|buyer|seller&q=... (shareable). E-mail searches are POSTed so the clear
    address never lands in a URL, a browser history or an access log."""
    by = request.POST.get("by", "email") if request.method == "POST" else request.GET.get("by", "order")
    query = (request.POST.get("email", "") if request.method == "POST" else request.GET.get("q", "")).strip()
    results, error = None, None
    if by not in ("order", "buyer", "seller", "email"):
        error, by = "by: must be one of order, buyer, seller, email", "order"
    elif by == "email" and request.method == "GET" and query:
        error, query = "by: e-mail searches use the e-mail form (the address must not sit in a URL)", ""
    elif query:
        try:
            results = services.search(request=request, by=by, query=query)
        except ValueError as exc:
            error = str(exc)
        if results is not None and len(results) == 1 and by == "order" and not request.htmx:
            return redirect("support:order", order_id=results[0]["order_id"])
    context = {
        "by": by, "q": query if by != "email" else "", "results": results, "error": error,
        "searched_email": by == "email" and bool(query), "kinds": SEARCH_KINDS,
        "recent": selectors.recent_searches(user=request.user),
        "escalations": services.open_escalations() if request_can(request, "support:act") else [],
    }
    template = "support/search.html#results" if request.htmx else "support/search.html"
    return render(request, template, context)


@requires("support:view")
def order(request, order_id: str):
    try:
        view = services.order_view(order_id=order_id, request=request)
    except services.NotFound:
        raise Http404(f"No decision for order {order_id}")
    return render(request, "support/order.html", {**view, "labels_choices": DecisionLabel.Label.choices})


def _act(request, order_id, action):
    try:
        action()
    except services.NotFound:
        raise Http404(f"No decision for order {order_id}")
    except ValueError as exc:
        try:
            view = services.order_view(order_id=order_id)
        except services.NotFound:
            raise Http404(f"No decision for order {order_id}")
        return render(request, "support/order.html",
                      {**view, "labels_choices": DecisionLabel.Label.choices, "action_error": str(exc)}, status=400)
    return redirect("support:order", order_id=order_id)


@requires("support:act")
@require_POST
def add_note(request, order_id: str):
    return _act(request, order_id, lambda: services.add_note(order_id=order_id, author=request.user,
                                                             text=request.POST.get("text", "")))


@requires("support:act")
@require_POST
def label(request, order_id: str):
    return _act(request, order_id, lambda: services.label_decision(
        order_id=order_id, author=request.user, label=request.POST.get("label", ""),
        comment=request.POST.get("comment", "").strip()))


@requires("support:act")
@require_POST
def escalate(request, order_id: str):
    return _act(request, order_id, lambda: services.escalate(order_id=order_id, raised_by=request.user,
                                                             reason=request.POST.get("reason", "")))


@requires("support:view")
def buyer(request, buyer_id: str):
    orders = selectors.buyer_orders(buyer_id=buyer_id)
    services.log_lookup(request=request, kind=LookupLog.Kind.BUYER, subject=buyer_id, results=len(orders))
    return render(request, "support/buyer.html", {"buyer_id": buyer_id, "orders": orders})


@requires("support:view")
def seller(request, seller_id: str):
    since, until, errors = parse_window(request, default_hours=24 * 7)
    data = None if errors else selectors.seller_failed_orders(seller_id=seller_id, since=since, until=until)
    if data is not None:
        services.log_lookup(request=request, kind=LookupLog.Kind.SELLER, subject=seller_id, results=data["total"])
    return render(request, "support/seller.html", {
        "seller_id": seller_id, "since": since, "until": until, "errors": errors, "data": data,
        "from_iso": _iso(since), "to_iso": _iso(until),
    }, status=400 if errors else 200)


@requires("support:view")
def seller_export(request, seller_id: str):
    since, until, errors = parse_window(request, default_hours=24 * 7)
    if errors:
        return render(request, "support/seller.html", {"seller_id": seller_id, "errors": errors, "data": None,
                                                       "since": since, "until": until}, status=400)
    sql, params, header = services.seller_export(request=request, seller_id=seller_id, since=since, until=until)
    return streaming_csv(request, services.csv_chunks(sql, params, header, booleans=services.SELLER_BOOLEANS),
                         f"failed-orders-{seller_id}-{since:%Y%m%d}-{until:%Y%m%d}.csv")


def _incident_or_404(incident_id):
    incident = selectors.get_incident(incident_id)
    if incident is None or not getattr(incident, "affected_population", None):
        raise Http404("No such incident, or it has no affected population yet")
    return incident


@requires("support:view")
def affected(request, incident_id: str):
    incident = _incident_or_404(incident_id)
    services.log_lookup(request=request, kind=LookupLog.Kind.AFFECTED, subject=selectors.incident_display_id(incident))
    return render(request, "support/affected.html", {
        "incident": services.incident_summary(incident), "population": incident.affected_population,
        "summary": selectors.affected_summary(incident.affected_population),
        "sample": selectors.affected_sample(incident.affected_population),
    })


@requires("support:view")
def affected_export(request, incident_id: str):
    incident = _incident_or_404(incident_id)
    sql, params, header = services.affected_export(request=request, incident=incident)
    return streaming_csv(request, services.csv_chunks(sql, params, header, booleans=services.AFFECTED_BOOLEANS),
                         f"affected-{selectors.incident_display_id(incident)}.csv")


@requires("compliance:view")
def compliance(request):
    since, until, errors = parse_window(request, default_hours=24)
    actor, subject = request.GET.get("actor", "").strip(), request.GET.get("subject", "").strip()
    volume = [] if errors else selectors.decline_volume(since=since, until=until)
    arms = sorted({row["arm"] for row in volume})
    by_code: dict[str, dict] = {}
    for row in volume:
        by_code.setdefault(row["code"], {})[row["arm"]] = row["declines"]
    from incidents.support.selectors import reason_catalogue

    catalogue = reason_catalogue(by_code)
    return render(request, "support/compliance.html", {
        "since": since, "until": until, "errors": errors, "from_iso": _iso(since), "to_iso": _iso(until),
        "arms": arms, "by_code": [{"code": code, "per_arm": [counts.get(arm, 0) for arm in arms],
                                   "total": sum(counts.values()), "entry": catalogue.get(code)}
                                  for code, counts in sorted(by_code.items(), key=lambda kv: -sum(kv[1].values()))],
        "uncatalogued": [] if errors else selectors.uncatalogued_codes(since=since, until=until),
        "log": selectors.lookup_log(actor=actor, subject=subject), "actor": actor, "subject": subject,
        "audit_log_url": _audit_log_url(),
    }, status=400 if errors else 200)
