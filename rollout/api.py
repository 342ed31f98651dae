"""/api/v1/rollout/*: thin endpoints over rollout.services (CONTRACT sections 3 and 6).

GET /api/v1/rollout/policy with a bearer token is normally answered by rollout.fastpath before
Django; this view answers the same for session users and whenever the fast path steps aside.
"""
from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from metrics.api import rate_limited
from rollout import services
from rollout.fastpath import etag_matches
from shopswift_ops.access import api, json_error, user_role


def etag_for(version: int) -> str:
    return f'"{version}"'


def actor_of(request) -> str:
    if request.api_token is not None:
        return f"token:{request.api_token.name}"
    return request.user.get_username()


def _error(exc: services.ActionError) -> JsonResponse:
    return json_error(exc.status, exc.detail, **{k: v for k, v in exc.as_dict().items() if k != "detail"})


def _json_body(request) -> dict:
    if (request.content_type or "") != "application/json":
        raise services.ActionError(415, "Content-Type must be application/json")
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise services.ActionError(400, f"body: not valid JSON ({exc})", errors={"body": "not valid JSON"}) from exc
    if not isinstance(body, dict):
        raise services.ActionError(400, "body: a JSON object is required", errors={"body": "a JSON object is required"})
    return body


@api("policy:read")
@require_GET
def policy(request):
    version, body = services.current_policy_body()
    if etag_matches(request.headers.get("If-None-Match", ""), version):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag_for(version)
    response["Cache-Control"] = "no-cache"
    return response


@api("policy:read")
@require_GET
def policy_version(request, version: int):
    try:
        document = services.policy_document(version)
    except services.PolicyNotFound:
        return json_error(404, f"no policy version {version}")
    response = JsonResponse(document)
    response["ETag"] = etag_for(version)
    return response


@api("rollout:write")
@require_POST
def actions(request):
    limited = rate_limited(request, "rollout-actions", settings.RATE_LIMIT_ACTIONS_PER_S)
    if limited:
        return limited
    try:
        body = _json_body(request)
        unknown = sorted(set(body) - {"action", "params", "reason", "expected_version"})
        if unknown:
            raise services.ActionError(400, f"{unknown[0]}: unknown field", errors={f: "unknown field" for f in unknown})
        if not isinstance(body.get("action"), str):
            raise services.ActionError(400, "action: required, one of " + ", ".join(services.ACTIONS),
                                       errors={"action": "required"})
        document = services.apply_action(action=body["action"], params=body.get("params") or {},
                                         reason=body.get("reason"), actor=actor_of(request),
                                         expected_version=body.get("expected_version"))
    except services.ActionError as exc:
        return _error(exc)
    return JsonResponse(document)


@api("policy:read")
@require_GET
def ramp(request):
    return JsonResponse(services.ramp_status())


@api("rollout:write")
@require_POST
def ramp_request_advance(request):
    try:
        body = _json_body(request)
        return JsonResponse(services.request_advance(actor=actor_of(request), comment=str(body.get("comment") or "")))
    except services.ActionError as exc:
        return _error(exc)


@api("rollout:write")
@require_POST
def ramp_advance(request):
    limited = rate_limited(request, "rollout-actions", settings.RATE_LIMIT_ACTIONS_PER_S)
    if limited:
        return limited
    try:
        body = _json_body(request)
        return JsonResponse(services.advance(actor=actor_of(request), reason=body.get("reason")))
    except services.ActionError as exc:
        return _error(exc)


@api("rollout:signoff")
@require_POST
def ramp_signoff(request):
    """Sign-offs are personal: a session user signs for their own role (tokens cannot)."""
    if request.api_token is not None:
        return json_error(403, "sign-offs are given by people for their own role; log in to sign off")
    try:
        body = _json_body(request)
        stage = body.get("stage")
        if stage is not None and (isinstance(stage, bool) or not isinstance(stage, int)):
            raise services.ActionError(400, "stage: an integer stage index", errors={"stage": "an integer"})
        return JsonResponse(services.sign_off(username=request.user.get_username(), role=user_role(request.user),
                                              comment=str(body.get("comment") or ""), stage=stage))
    except services.ActionError as exc:
        return _error(exc)
