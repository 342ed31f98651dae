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


# -- read APIs (CONTRACT section 6) -------------------------------------------------------------

from datetime import timedelta  # noqa: E402

from django.utils import timezone  # noqa: E402
from django.utils.dateparse import parse_datetime  # noqa: E402
from django.views.decorators.http import require_GET  # noqa: E402

MAX_RANGE = timedelta(days=93)


class BadParameter(ValueError):
    pass


def parse_time(request, name: str, default):
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse_datetime(raw.replace(" ", "+"))  # a '+' in a query string often arrives as a space
    except ValueError:
        value = None
    if value is None:
        raise BadParameter(f"{name}: not an RFC 3339 date-time: {raw!r}")
    if value.tzinfo is None:
        raise BadParameter(f"{name}: needs a UTC offset (e.g. 2026-11-28T14:00:00Z)")
    if not 2000 <= value.year <= 2999:
        raise BadParameter(f"{name}: out of range (years 2000-2999)")
    return value


def parse_range(request):
    now = timezone.now()
    end = parse_time(request, "to", now)
    start = parse_time(request, "from", end - timedelta(hours=1))
    if start >= end:
        raise BadParameter("from: must be before to")
    if end - start > MAX_RANGE:
        raise BadParameter(f"from: the range may span at most {MAX_RANGE.days} days")
    return start, end


def segment_dimension(name: str, raw: str) -> str:
    from metrics.models import FeatureDefinition

    if not FeatureDefinition.objects.filter(name=raw, segment_dimension=True).exists():
        known = ", ".join(FeatureDefinition.objects.filter(segment_dimension=True).values_list("name", flat=True))
        raise BadParameter(f"{name}: {raw!r} is not a segment dimension (known: {known})")
    return raw


def parse_by(request) -> str | None:
    raw = request.GET.get("by", "arm")
    if raw == "arm":
        return None
    parts = raw.split(",")
    if len(parts) == 2 and parts[0] == "arm" and parts[1].startswith("segment:"):
        return segment_dimension("by", parts[1][len("segment:"):])
    raise BadParameter(f"by: expected 'arm' or 'arm,segment:FEATURE', got {raw!r}")


def _read(view):
    """Bad query parameters answer 400 naming the parameter; a database outage 503."""
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except BadParameter as exc:
            return json_error(400, str(exc))
        except (OperationalError, InterfaceError):
            return json_error(503, "storage unavailable; retry later")
    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


@api("kpis:read")
@require_GET
@_read
def get_kpis(request):
    from metrics.kpis import cohort_kpis
    from metrics.rollups import refresh_state

    start, end = parse_range(request)
    segment_feature = parse_by(request)
    document = cohort_kpis(start=start, end=end, segment_feature=segment_feature)
    refreshed = refresh_state()["refreshed_at"]
    document["refreshed_at"] = refreshed.isoformat() if refreshed else None
    return JsonResponse(document)


@api("kpis:read")
@require_GET
@_read
def get_guardrails(request):
    from metrics.guardrails import latest_statuses, method_summary, recent_alerts

    return JsonResponse({"guardrails": latest_statuses(), "method": method_summary(), "alerts": recent_alerts(limit=20)})


@api("kpis:read")
@require_GET
@_read
def get_feature_health(request):
    from metrics.feature_health import feature_health_document

    start, end = parse_range(request)
    raw = request.GET.get("segment")
    segment_feature = segment_dimension("segment", raw) if raw else None
    return JsonResponse(feature_health_document(start=start, end=end, segment_feature=segment_feature))


@api("kpis:read")
@require_GET
@_read
def get_diagnosis(request):
    from metrics.diagnosis import diagnosis

    start, end = parse_range(request)
    return JsonResponse(diagnosis(start=start, end=end))


@api("kpis:read")
@require_GET
@_read
def get_chargebacks(request):
    from metrics.chargebacks import BadMonth, chargeback_document, parse_month
    from metrics.rollups import refresh_state

    now = timezone.now()
    try:
        month = parse_month(request.GET.get("month"), now=now)
    except BadMonth as exc:
        raise BadParameter(str(exc)) from exc
    document = chargeback_document(month=month, now=now)
    refreshed = refresh_state()["refreshed_at"]
    document["refreshed_at"] = refreshed.isoformat() if refreshed else None
    return JsonResponse(document)
