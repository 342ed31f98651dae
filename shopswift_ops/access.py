"""Who may do what: one mechanism for every page, API endpoint and websocket.

Every view declares the capability it needs with `@requires(...)` (or `@public`); the
`AccessMiddleware` refuses any route that declares nothing, so a new route without a rule fails
closed (and fails the matrix test in tests/shopswift_ops/test_access_matrix.py).
People get capabilities from their role (a Django group); machine clients from their API token's
scopes. API scopes are capabilities too, so one check serves both.
"""
from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

logger = logging.getLogger(__name__)

ROLES = ("risk_ops", "product", "support", "leadership", "engineering", "compliance")
ROLE_LABELS = {
    "risk_ops": "Risk Ops",
    "product": "Product",
    "support": "Support",
    "leadership": "Leadership",
    "engineering": "Payments / ML engineering",
    "compliance": "Legal / Compliance",
    "admin": "Administrator",
}
# API token scopes (CONTRACT section 1).
SCOPES = ("events:write", "policy:read", "kpis:read", "orders:read", "rollout:write", "incidents:read",
          # Beyond the contract: lets a Prometheus scraper read /metrics with a token of its own.
          "ops:metrics")

CAPABILITY_LABELS = {
    "events:write": "post decision and outcome events",
    "policy:read": "read the rollout policy",
    "kpis:read": "read KPIs, guardrails and feature health",
    "orders:read": "read one order's decisions, outcomes and explanation (API)",
    "rollout:write": "change the rollout policy (kill, rollback, exclude, ramp, thresholds, fallback)",
    "incidents:read": "read incidents",
    "warroom:view": "open the war room",
    "rollout:signoff": "sign off a ramp stage for one's own role",
    "incidents:write": "run an incident: timeline notes, decisions, hypotheses, action items, status updates",
    "support:view": "look up orders, buyers and sellers; see explanations (e-mails masked)",
    "support:act": "add notes, label decisions and escalate from the support pages",
    "compliance:view": "reason-code catalogue, decline volumes, look-up log",
    "audit:read": "read and export the audit log",
    "exec:view": "read the executive summary",
    "ops:metrics": "read operational metrics (/metrics)",
}

_READ_EVERYTHING = {"policy:read", "kpis:read", "incidents:read", "warroom:view", "exec:view"}
ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    "risk_ops": frozenset(_READ_EVERYTHING | {"orders:read", "rollout:write", "rollout:signoff", "incidents:write",
                                             "support:view", "support:act", "audit:read", "compliance:view"}),
    "product": frozenset(_READ_EVERYTHING | {"rollout:write", "rollout:signoff", "incidents:write"}),
    "engineering": frozenset(_READ_EVERYTHING | {"orders:read", "rollout:write", "rollout:signoff", "incidents:write",
                                                "support:view", "ops:metrics"}),
    "compliance": frozenset(_READ_EVERYTHING | {"orders:read", "rollout:signoff", "support:view", "audit:read",
                                               "compliance:view"}),
    "support": frozenset({"policy:read", "warroom:view", "incidents:read", "orders:read", "support:view", "support:act"}),
    "leadership": frozenset(_READ_EVERYTHING),
}
ALL_CAPABILITIES = frozenset(CAPABILITY_LABELS)
PUBLIC = "public"


def requires(capability: str):
    """Declare the capability a view needs (checked by AccessMiddleware)."""
    if capability not in ALL_CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}")

    def decorate(view):
        view.access = capability
        return view

    return decorate


def public(view):
    view.access = PUBLIC
    return view


def api(capability: str):
    """An API view: token or session auth, JSON errors; CSRF is checked only for session auth."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            return view(request, *args, **kwargs)

        wrapper.access = capability
        wrapper.is_api = True
        return csrf_exempt(wrapper)

    return decorate


def user_role(user) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return "admin"
    cached = getattr(user, "_shopswift_role", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = next((role for role in ROLES if role in names), "")
        user._shopswift_role = cached
    return cached or None


def capabilities_of_user(user) -> frozenset[str]:
    role = user_role(user)
    if role == "admin":
        return ALL_CAPABILITIES
    return ROLE_CAPABILITIES.get(role, frozenset())


def user_can(user, capability: str) -> bool:
    return capability in capabilities_of_user(user)


def request_can(request, capability: str) -> bool:
    return capability in getattr(request, "capabilities", frozenset())


def json_error(status: int, detail: str, **extra) -> JsonResponse:
    response = JsonResponse({"detail": detail, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="shopswift-ops"'
    return response


class AccessMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self._csrf = CsrfViewMiddleware(get_response)

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        from shopswift_ops.tokens import authenticate_bearer

        match = request.resolver_match
        if match is not None and match.app_name == "admin":
            return None  # Django admin keeps its own staff check.
        rule = getattr(view_func, "access", None)
        is_api = getattr(view_func, "is_api", False) or request.path.startswith("/api/")
        request.api_token = None
        request.capabilities = frozenset()
        if rule is None:
            logger.error("route without an access rule refused", extra={"path": request.path})
            return json_error(403, "this route declares no access rule") if is_api else render(
                request, "403.html", {"reason": "This page declares no access rule."}, status=403)
        header = request.headers.get("Authorization", "")
        if header:
            if not is_api:
                return json_error(400, "Authorization headers are accepted on /api/ routes only")
            token = authenticate_bearer(header)
            if token is None:
                return json_error(401, "invalid, unknown or revoked API token")
            request.api_token = token
            request.capabilities = frozenset(token.scopes)
        elif request.user.is_authenticated:
            request.capabilities = capabilities_of_user(request.user)
            if getattr(view_func, "is_api", False) and request.method not in ("GET", "HEAD", "OPTIONS"):
                rejected = self._csrf.process_view(request, None, (), {})
                if rejected is not None:
                    return json_error(403, "CSRF check failed for a session-authenticated request")
        if rule == PUBLIC:
            return None
        if request.api_token is None and not request.user.is_authenticated:
            if is_api:
                return json_error(401, "authentication required: send 'Authorization: Bearer <token>' or log in")
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if rule not in request.capabilities:
            if is_api:
                return json_error(403, f"this needs the '{rule}' permission, which your "
                                       f"{'token' if request.api_token else 'role'} does not have")
            return render(request, "403.html", {"reason": f"Your role cannot {CAPABILITY_LABELS[rule]}."}, status=403)
        return None


# The main navigation: (label, path, capability). Apps add their pages with `add_nav_item`.
NAV_ITEMS: list[tuple[str, str, str]] = []


def add_nav_item(label: str, url: str, capability: str) -> None:
    if (label, url, capability) not in NAV_ITEMS:
        NAV_ITEMS.append((label, url, capability))


def roles_context(request):
    user = getattr(request, "user", None)
    caps = getattr(request, "capabilities", None)
    if not caps and user is not None:
        caps = capabilities_of_user(user)
    caps = caps or frozenset()
    role = user_role(user) if user is not None else None
    return {
        "can": {cap.replace(":", "_"): True for cap in caps},
        "user_role": role,
        "user_role_label": ROLE_LABELS.get(role or "", ""),
        "nav_items": [{"label": label, "url": url} for label, url, cap in NAV_ITEMS if cap in caps],
    }
