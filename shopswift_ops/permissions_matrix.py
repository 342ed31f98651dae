"""The permissions matrix, generated from the code so that the written one cannot drift.

`routes()` walks every HTTP URL pattern (recursively, through includes) and every websocket route
with the access rule each one declares; `markdown()` renders who may use what from
`shopswift_ops.access.ROLE_CAPABILITIES` (`manage.py permissions_matrix` prints it, and
tests/shopswift_ops/test_access_matrix.py checks both the rules and the written copy).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

from shopswift_ops.access import ALL_CAPABILITIES, CAPABILITY_LABELS, PUBLIC, ROLE_CAPABILITIES, ROLE_LABELS, ROLES, SCOPES

PRINCIPALS = (*ROLES, "admin")
ADMIN_SITE = "django-admin (staff only)"
_CONVERTER_SAMPLES = {
    "int": "987654",
    "str": "matrix-sample",
    "slug": "matrix-sample",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "path": "matrix/sample",
}
_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass(frozen=True)
class Route:
    kind: str  # "http" or "websocket"
    pattern: str  # as written, e.g. /api/v1/orders/<str:order_id>
    rule: str | None  # a capability, "public", ADMIN_SITE, or None (no rule: a bug)
    view: object
    is_api: bool

    def sample_path(self) -> str:
        """A concrete path that resolves to this route (parameters filled with sample values)."""
        return _PARAM.sub(lambda m: _CONVERTER_SAMPLES.get(m.group("converter") or "str", "matrix-sample"), self.pattern)


def _pattern_text(pattern) -> str:
    text = str(pattern.pattern)
    # A regex pattern (re_path) reads as its anchored regex; route() patterns read as written.
    return text.lstrip("^").rstrip("$").replace("\\Z", "")


def _walk_http(resolver, prefix: str):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin":
                yield Route("http", "/" + prefix + _pattern_text(entry) + "…", ADMIN_SITE, None, False)
                continue
            yield from _walk_http(entry, prefix + _pattern_text(entry))
        elif isinstance(entry, URLPattern):
            path = "/" + prefix + _pattern_text(entry)
            view = entry.callback
            rule = getattr(view, "access", None)
            is_api = getattr(view, "is_api", False) or path.startswith("/api/")
            yield Route("http", path, rule, view, is_api)


def _websocket_callback_class(callback):
    return getattr(callback, "consumer_class", None) or getattr(callback, "view_class", None) or callback


def _walk_websocket(patterns, prefix: str):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk_websocket(entry.url_patterns, prefix + _pattern_text(entry))
            continue
        consumer = _websocket_callback_class(entry.callback)
        yield Route("websocket", "/" + prefix + _pattern_text(entry), getattr(consumer, "access", None), consumer, False)


def routes() -> list[Route]:
    from shopswift_ops.routing import websocket_urlpatterns

    found = list(_walk_http(get_resolver(), "")) + list(_walk_websocket(websocket_urlpatterns, ""))
    return sorted(found, key=lambda r: (r.kind, r.pattern))


def capabilities_of(principal: str) -> frozenset[str]:
    """What a principal may do: a role's capabilities, everything for admin, a token's scope."""
    if principal == "admin":
        return ALL_CAPABILITIES
    if principal == "anonymous":
        return frozenset()
    if principal.startswith("token:"):
        return frozenset({principal.removeprefix("token:")})
    return ROLE_CAPABILITIES[principal]


def may_use(principal: str, route: Route) -> bool:
    if principal.startswith("token:") and not route.is_api:
        return False  # the middleware accepts Authorization headers on /api/ routes only
    if route.rule == PUBLIC:
        return True
    if route.rule == ADMIN_SITE:
        return principal == "admin"
    return route.rule in capabilities_of(principal)


def markdown() -> str:
    header_roles = " | ".join(ROLE_LABELS[p] for p in PRINCIPALS)
    route_principals = (*PRINCIPALS, "anonymous")
    lines = [
        "### Capabilities by role",
        "",
        f"| capability | what it allows | {header_roles} |",
        "|---|---|" + "---|" * len(PRINCIPALS),
    ]
    for capability in sorted(ALL_CAPABILITIES):
        marks = " | ".join("yes" if capability in capabilities_of(p) else "" for p in PRINCIPALS)
        lines.append(f"| `{capability}` | {CAPABILITY_LABELS[capability]} | {marks} |")
    lines += [
        "",
        "API tokens carry scopes instead of a role; a token may use an `/api/` route whose rule is one of",
        "its scopes (" + ", ".join(f"`{s}`" for s in SCOPES) + ").",
        "",
        "### Routes",
        "",
        f"| route | kind | rule | {header_roles} | Anonymous | token scope |",
        "|---|---|---|" + "---|" * len(route_principals) + "---|",
    ]
    for route in routes():
        marks = " | ".join("yes" if may_use(p, route) else "" for p in route_principals)
        if route.rule == PUBLIC and route.is_api:
            token = "any"
        elif route.is_api and route.rule in SCOPES:
            token = f"`{route.rule}`"
        else:
            token = ""
        rule = route.rule if route.rule in (PUBLIC, ADMIN_SITE) else f"`{route.rule}`"
        kind = "API" if route.is_api else ("websocket" if route.kind == "websocket" else "page")
        lines.append(f"| `{route.pattern}` | {kind} | {rule} | {marks} | {token} |")
    return "\n".join(lines) + "\n"
