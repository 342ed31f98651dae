"""POST /api/v1/events (CONTRACT section 2). Thin: limits, parse, call ingest, answer."""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views.decorators.http import require_POST

from metrics import ingest
from shopswift_ops import ratelimit
from shopswift_ops.access import api, json_error


def client_key(request) -> str:
    return f"token:{request.api_token.pk}" if request.api_token else f"user:{request.user.pk}"


def rate_limited(request, name: str, per_second: float):
    wait = ratelimit.check(f"{name}:{client_key(request)}", per_second=per_second)
    if wait is None:
        return None
    response = json_error(429, f"rate limit for {name} exceeded; retry after {wait:.0f} s")
    response["Retry-After"] = str(int(wait + 0.999))
    return response


@api("events:write")
@require_POST
def post_events(request):
    content_type = request.content_type or ""
    if content_type != "application/json":
        return json_error(415, "Content-Type must be application/json")
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > settings.EVENTS_MAX_BYTES:
        return json_error(413, f"body: at most {settings.EVENTS_MAX_BYTES} bytes")
    limited = rate_limited(request, "events", settings.RATE_LIMIT_EVENTS_PER_S)
    if limited:
        return limited
    try:
        body = request.body
    except RequestDataTooBig:
        return json_error(413, f"body: at most {settings.EVENTS_MAX_BYTES} bytes")
    if len(body) > settings.EVENTS_MAX_BYTES:
        return json_error(413, f"body: at most {settings.EVENTS_MAX_BYTES} bytes")
    try:
        result = ingest.ingest_body(body)
    except ingest.EnvelopeError as exc:
        return json_error(400, str(exc))
    except ingest.BatchTooLarge as exc:
        return json_error(413, str(exc))
    except (OperationalError, InterfaceError):
        return json_error(503, "storage unavailable: nothing of this batch was stored; retry later")
    return JsonResponse(result.as_dict())
