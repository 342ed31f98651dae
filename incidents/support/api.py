"""GET /api/v1/orders/{order_id} (CONTRACT section 6). Thin: look up (logged), serialise."""
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from incidents.support import services
from shopswift_ops.access import api, json_error


def _iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def decision_json(d) -> dict:
    return {
        "event_id": d.event_id, "type": "decision", "order_id": d.order_id, "occurred_at": _iso(d.occurred_at),
        "buyer_id": d.buyer_id, "seller_id": d.seller_id, "buyer_email_masked": d.buyer_email_masked,
        "amount_minor": d.amount_minor, "currency": d.currency, "arm": d.arm, "policy_version": d.policy_version,
        "model_version": d.model_version, "score": d.score, "decision": d.decision, "decided_by": d.decided_by,
        "reason_codes": list(d.reason_codes or []), "latency_ms": d.latency_ms, "timed_out": d.timed_out,
        "features": d.features, "shadow": d.shadow, "contributions": d.contributions,
    }


def outcome_json(o) -> dict:
    return {"event_id": o.event_id, "type": "outcome", "order_id": o.order_id, "occurred_at": _iso(o.occurred_at),
            "kind": o.kind, "amount_minor": o.amount_minor, "currency": o.currency, "detail": o.detail}


@api("orders:read")
@require_GET
def order(request, order_id: str):
    if not 1 <= len(order_id) <= 64:
        return json_error(400, "order_id: 1 to 64 characters")
    try:
        view = services.order_view(order_id=order_id, request=request)
    except services.NotFound:
        return json_error(404, f"order_id: no decision stored for order {order_id!r}")
    explanation = {key: value for key, value in view["explanation"].items() if key != "reason_details"}
    return JsonResponse({
        "order_id": order_id,
        "decisions": [decision_json(d) for d in view["decisions"]],
        "outcomes": [outcome_json(o) for o in view["outcomes"]],
        "explanation": explanation,
    })
