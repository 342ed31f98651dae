"""The OpenAPI 3.1 document served at /api/v1/openapi.json, assembled from fragments that each
app registers (in its AppConfig.ready) next to the endpoints it describes."""
from __future__ import annotations

_paths: dict = {}
_schemas: dict = {}

ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string"}},
}


def register(*, paths: dict | None = None, schemas: dict | None = None) -> None:
    _paths.update(paths or {})
    _schemas.update(schemas or {})


def error_responses(*codes: int) -> dict:
    text = {
        400: "Malformed request (the detail names the field)",
        401: "No or invalid credentials",
        403: "The token or role lacks the required scope",
        404: "Not found",
        409: "Conflict (the detail says with what)",
        413: "Request too large",
        429: "Rate limited; see Retry-After",
        503: "Storage unavailable; nothing was stored, retry later",
    }
    out = {}
    for code in codes:
        out[str(code)] = {
            "description": text[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if code == 429:
            out[str(code)]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return out


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ShopSwift Ops API",
            "version": "1.0.0",
            "description": (
                "Events in, rollout policy out, KPIs, guardrails, orders and incidents. Machine clients "
                "send `Authorization: Bearer <token>`; browser users use their session. Times are RFC 3339; "
                "money is integer minor units with an ISO 4217 currency."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": dict(sorted(_paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
            },
            "schemas": {"Error": ERROR, **_schemas},
        },
    }
