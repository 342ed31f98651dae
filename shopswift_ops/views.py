from django.contrib.auth import views as auth_views
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

from shopswift_ops import openapi
from shopswift_ops.access import api, json_error, public, requires
from shopswift_ops.login_throttle import ThrottledAuthenticationForm

login = public(auth_views.LoginView.as_view(template_name="login.html", redirect_authenticated_user=True,
                                           authentication_form=ThrottledAuthenticationForm))
logout = public(auth_views.LogoutView.as_view())


@requires("policy:read")
def home(request):
    return render(request, "home.html")


@public
def healthz(request):
    return JsonResponse({"status": "ok"})


@public
def openapi_json(request):
    return JsonResponse(openapi.document())


# Stale after this long: the worker/beat heartbeats (see shopswift_ops.heartbeat) and the KPI
# refresh lag (age of the oldest order waiting in metrics_pending_order).
READY_MAX_KPI_LAG_S = 120


@public
def readyz(request):
    """Database and Redis decide readiness (503 takes this web process out of the load balancer);
    worker, beat and KPI lag are reported and make the status `degraded` without failing it, since
    a web process cannot fix a dead worker and pulling it out would only add an outage."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure
        checks["database"] = {"ok": False, "error": str(exc)[:200]}
    from shopswift_ops import heartbeat, ratelimit

    try:
        ratelimit.client().ping()
        checks["redis"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = {"ok": False, "error": str(exc)[:200]}
    advisory = {}
    if checks["redis"]["ok"]:
        try:
            beats = heartbeat.status()
            fresh_worker = heartbeat.WORKER_INTERVAL * heartbeat.STALE_AFTER_INTERVALS
            fresh_beat = heartbeat.BEAT_INTERVAL * heartbeat.STALE_AFTER_INTERVALS
            alive = {name: age for name, age in beats["workers"].items() if age < fresh_worker}
            advisory["worker_heartbeat"] = {"ok": bool(alive), "workers": beats["workers"], "max_age_s": fresh_worker}
            advisory["beat_heartbeat"] = {"ok": beats["beat_age_s"] is not None and beats["beat_age_s"] < fresh_beat,
                                          "age_s": beats["beat_age_s"], "max_age_s": fresh_beat}
        except Exception as exc:  # noqa: BLE001
            advisory["worker_heartbeat"] = advisory["beat_heartbeat"] = {"ok": False, "error": str(exc)[:200]}
    else:
        advisory["worker_heartbeat"] = advisory["beat_heartbeat"] = {"ok": False, "error": "Redis unavailable"}
    if checks["database"]["ok"]:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*), extract(epoch FROM now() - min(queued_at)) FROM metrics_pending_order")
                pending, lag = cursor.fetchone()
            lag = round(float(lag or 0.0), 1)
            advisory["kpi_watermark_lag"] = {"ok": lag <= READY_MAX_KPI_LAG_S, "lag_s": lag, "pending_orders": pending,
                                             "max_lag_s": READY_MAX_KPI_LAG_S}
        except Exception as exc:  # noqa: BLE001
            advisory["kpi_watermark_lag"] = {"ok": False, "error": str(exc)[:200]}
    else:
        advisory["kpi_watermark_lag"] = {"ok": False, "error": "database unavailable"}
    ready = all(check["ok"] for check in checks.values())
    status = "not_ready" if not ready else ("ready" if all(c["ok"] for c in advisory.values()) else "degraded")
    return JsonResponse({"status": status, "checks": {**checks, **advisory}}, status=200 if ready else 503)


@api("ops:metrics")
def metrics(request):
    """Prometheus text format. Scrape with a token holding the `ops:metrics` scope
    (`Authorization: Bearer ...`), or open it logged in as engineering or admin."""
    from shopswift_ops import opsmetrics

    return HttpResponse(opsmetrics.exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")


def not_found(request, exception=None):
    """handler404: under /api/ every answer is JSON with a `detail` (CONTRACT), also for a path
    that matches no route (e.g. /api/v1/incidents/-1, which the int converter refuses)."""
    if request.path.startswith("/api/"):
        return json_error(404, "not found")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def _storage_unavailable() -> bool:
    """handler500 runs inside Django's `except`: is the error being handled a database outage?"""
    import sys

    import psycopg
    from django.db import InterfaceError, OperationalError

    error = sys.exc_info()[1]
    return isinstance(error, (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError))


def server_error(request):
    """handler500. A database outage anywhere in a request (also before the view, e.g. the API
    token look-up) is a 503 "retry later", never a 500: the client's retry then lands the batch."""
    if _storage_unavailable():
        if request.path.startswith("/api/"):
            response = json_error(503, "storage unavailable: nothing of this request was stored; retry later")
        else:
            response = HttpResponse("The database is unavailable; try again in a few seconds.", status=503,
                                    content_type="text/plain; charset=utf-8")
        response["Retry-After"] = "2"
        return response
    if request.path.startswith("/api/"):
        return json_error(500, "internal error; the request id in X-Request-Id identifies it in the logs")
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)
