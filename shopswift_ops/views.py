from django.contrib.auth import views as auth_views
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from shopswift_ops import openapi
from shopswift_ops.access import public, requires

login = public(auth_views.LoginView.as_view(template_name="login.html", redirect_authenticated_user=True))
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


@public
def readyz(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure
        checks["database"] = {"ok": False, "error": str(exc)[:200]}
    from shopswift_ops import ratelimit

    try:
        ratelimit.client().ping()
        checks["redis"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = {"ok": False, "error": str(exc)[:200]}
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503)



