import uuid

from shopswift_ops.logging import request_id_var

# Only the app's own static files: no inline script, no CDN. Plotly needs inline *styles* it
# injects at runtime, hence 'unsafe-inline' for style-src only.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-Id"] = request_id
        return response


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class OpsMetricsMiddleware:
    """Counts responses per route and status, and ingest results, for /metrics (see opsmetrics)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        try:
            self._count(request, response)
        except Exception:  # noqa: BLE001 - metrics must never fail a request
            pass
        return response

    @staticmethod
    def _count(request, response) -> None:
        import json

        from shopswift_ops import opsmetrics

        match = getattr(request, "resolver_match", None)
        route = "/" + match.route if match is not None and match.route is not None else "unmatched"
        if route.startswith("/static/"):
            return
        status = str(response.status_code)
        increments = {("shopswift_http_responses_total", (("route", route), ("status", status))): 1}
        if match is not None and match.url_name == "api-events":
            increments[("shopswift_ingest_batches_total", (("status", status),))] = 1
            if response.status_code == 200 and not getattr(response, "streaming", False):
                result = json.loads(response.content)
                increments[("shopswift_ingest_events_total", (("result", "accepted"),))] = result["accepted"]
                increments[("shopswift_ingest_events_total", (("result", "duplicate"),))] = result["duplicates"]
                increments[("shopswift_ingest_events_total", (("result", "rejected"),))] = len(result["rejected"])
        opsmetrics.count(increments)
