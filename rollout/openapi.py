"""OpenAPI fragment for /api/v1/rollout/* (assembled by shopswift_ops.openapi)."""
from shopswift_ops.openapi import error_responses

_json = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(description: str, schema: str) -> dict:
    return {"description": description, "content": {_json: {"schema": _ref(schema)}}}


_refusal = {"description": "Conflict: a stale expected_version, or a ramp-up whose requirements are not all met; "
                           "`missing` lists exactly what is missing",
            "content": {_json: {"schema": _ref("RolloutRefusal")}}}
_bad_input = {"description": "Bad input; `errors` maps each field (e.g. `params.traffic_pct`) to its message",
              "content": {_json: {"schema": _ref("RolloutRefusal")}}}

SCHEMAS = {
    "Policy": {
        "type": "object",
        "description": "CONTRACT section 3. Every change creates a new immutable version.",
        "required": ["version", "model_version", "mode", "traffic_pct", "salt", "thresholds", "timeout_ms", "fallback",
                     "segment_overrides", "updated_at", "reason"],
        "properties": {
            "version": {"type": "integer", "minimum": 1},
            "model_version": {"type": ["string", "null"]},
            "mode": {"enum": ["off", "shadow", "active"],
                     "description": "off: everyone control; shadow: everyone control, treatment bucket also scored; active"},
            "traffic_pct": {"type": "number", "minimum": 0, "maximum": 100},
            "salt": {"type": "string"},
            "thresholds": {"type": "object", "required": ["step_up", "decline"],
                           "properties": {"step_up": {"type": "number", "minimum": 0, "maximum": 1},
                                          "decline": {"type": "number", "minimum": 0, "maximum": 1}}},
            "timeout_ms": {"type": "integer", "minimum": 1},
            "fallback": {"enum": ["step_up", "approve", "rules"]},
            "segment_overrides": {"type": "array", "items": {
                "type": "object", "required": ["feature", "in", "arm"],
                "properties": {"feature": {"type": "string"}, "in": {"type": "array"}, "arm": {"const": "control"}}}},
            "updated_at": {"type": "string", "format": "date-time"},
            "reason": {"type": "string"},
        },
    },
    "RolloutAction": {
        "type": "object",
        "required": ["action", "reason"],
        "additionalProperties": False,
        "properties": {
            "action": {"enum": ["kill", "rollback", "set_traffic", "exclude_segment", "include_segment", "set_mode",
                                "set_thresholds", "set_fallback"]},
            "params": {"type": "object", "description": (
                "kill: {}; rollback: {to_version: N} (an earlier version) or {to_stage: NAME} (a stage of the plan, "
                "not above the current traffic); set_traffic: {traffic_pct: 0-100}; exclude_segment/include_segment: "
                "{feature: NAME (from the feature registry), in: [values]}; set_mode: {mode: off|shadow|active}; "
                "set_thresholds: {step_up, decline} in [0,1], step_up <= decline; set_fallback: "
                "{fallback: step_up|approve|rules and/or timeout_ms: 1-10000}")},
            "reason": {"type": "string", "minLength": 1, "maxLength": 2000},
            "expected_version": {"type": "integer", "description": (
                "optional: the version the caller saw; if another change came first the answer is 409 and nothing changes")},
        },
    },
    "RolloutRefusal": {
        "type": "object",
        "required": ["detail"],
        "properties": {
            "detail": {"type": "string"},
            "missing": {"type": "array", "items": {"type": "string"}},
            "errors": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "RampStatus": {
        "type": "object",
        "description": "The ramp plan and what its current stage waits for.",
        "required": ["plan_revision", "paused", "current_stage", "next_stage", "dwell_seconds_left", "gates",
                     "signoffs", "can_advance", "missing", "stages"],
        "properties": {
            "plan_revision": {"type": "integer"},
            "paused": {"type": "boolean"}, "paused_reason": {"type": "string"},
            "auto_advance": {"type": "boolean"},
            "waiting_for_data_since": {"type": ["string", "null"], "format": "date-time"},
            "policy_version": {"type": "integer"}, "mode": {"type": "string"}, "traffic_pct": {"type": "number"},
            "current_stage": {"type": ["object", "null"]}, "next_stage": {"type": ["object", "null"]},
            "dwell_seconds_left": {"type": "integer"},
            "gates": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "status": {"enum": ["ok", "warn", "breach", "insufficient_data", "missing_data"]},
                "passing": {"type": "boolean"}, "missing_data": {"type": "boolean"}, "detail": {"type": "string"}}}},
            "signoffs": {"type": "object", "properties": {
                "required": {"type": "array", "items": {"type": "string"}},
                "present": {"type": "array", "items": {"type": "object"}},
                "missing": {"type": "array", "items": {"type": "string"}}}},
            "advance_request": {"type": ["object", "null"]},
            "can_advance": {"type": "boolean"},
            "missing": {"type": "array", "items": {"type": "string"}},
            "stages": {"type": "array", "items": {"type": "object"}},
        },
    },
}

_ramp_ok = _ok("The ramp plan's status after the call", "RampStatus")

PATHS = {
    "/api/v1/rollout/policy": {
        "get": {
            "operationId": "getPolicy",
            "summary": "The served rollout policy (poll it)",
            "description": (
                "Scope `policy:read`. Answers with `ETag: \"<version>\"`; `If-None-Match` with the current version "
                "(quoted, weak or bare) gets 304 without a body. Changes made elsewhere are visible within 0.5 s; "
                "a revoked token stops working within 1 s."),
            "parameters": [{"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}],
            "responses": {"200": {**_ok("The current policy", "Policy"),
                                  "headers": {"ETag": {"schema": {"type": "string"}}}},
                          "304": {"description": "Unchanged since the version in If-None-Match"},
                          **error_responses(401, 403)},
        }
    },
    "/api/v1/rollout/policy/{version}": {
        "get": {
            "operationId": "getPolicyVersion",
            "summary": "One earlier (or the current) policy version",
            "description": "Scope `policy:read`. Versions are immutable.",
            "parameters": [{"name": "version", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": _ok("That version", "Policy"), **error_responses(401, 403, 404)},
        }
    },
    "/api/v1/rollout/actions": {
        "post": {
            "operationId": "postRolloutAction",
            "summary": "Change the policy: kill, rollback, traffic, segments, mode, thresholds, fallback",
            "description": (
                "Scope `rollout:write`. A reason is required. Decreases of exposure (kill, rollback, exclude, lower "
                "traffic, shadow/off) are never blocked; an increase of traffic_pct goes through the ramp plan (one "
                "stage at a time; dwell time, gates, sign-offs, four-eyes) and is refused with 409 listing what is "
                "missing. A kill also pauses the ramp plan. Repeating a change that changes nothing (a second kill or "
                "rollback) answers 200 with the unchanged policy and is recorded in the audit log. Rate-limited per "
                "client."),
            "requestBody": {"required": True, "content": {_json: {"schema": _ref("RolloutAction")}}},
            "responses": {"200": _ok("The new policy", "Policy"), "400": _bad_input, "409": _refusal,
                          **error_responses(401, 403, 429),
                          "415": {"description": "Content-Type is not application/json",
                                  "content": {_json: {"schema": _ref("Error")}}}},
        }
    },
    "/api/v1/rollout/ramp": {
        "get": {
            "operationId": "getRampStatus",
            "summary": "The ramp plan: current stage, dwell left, gates, sign-offs, what is missing",
            "description": "Scope `policy:read`.",
            "responses": {"200": _ok("Ramp status", "RampStatus"), **error_responses(401, 403)},
        }
    },
    "/api/v1/rollout/ramp/request-advance": {
        "post": {
            "operationId": "requestRampAdvance",
            "summary": "Ask to advance to the next stage (the asker cannot be the only approver)",
            "description": "Scope `rollout:write`. Body: `{\"comment\": \"...\"}` (optional).",
            "requestBody": {"required": False, "content": {_json: {"schema": {"type": "object", "properties": {
                "comment": {"type": "string"}}}}}},
            "responses": {"200": _ramp_ok, "409": _refusal, **error_responses(400, 401, 403),
                          "415": {"description": "Content-Type is not application/json",
                                  "content": {_json: {"schema": _ref("Error")}}}},
        }
    },
    "/api/v1/rollout/ramp/advance": {
        "post": {
            "operationId": "advanceRamp",
            "summary": "Advance to the next stage now (same rules as a traffic increase)",
            "description": "Scope `rollout:write`. Body: `{\"reason\": \"...\"}`. 409 lists what is missing.",
            "requestBody": {"required": True, "content": {_json: {"schema": {"type": "object", "required": ["reason"],
                                                                                 "properties": {"reason": {"type": "string"}}}}}},
            "responses": {"200": _ok("The new policy", "Policy"), "400": _bad_input, "409": _refusal,
                          **error_responses(401, 403, 429),
                          "415": {"description": "Content-Type is not application/json",
                                  "content": {_json: {"schema": _ref("Error")}}}},
        }
    },
    "/api/v1/rollout/ramp/signoffs": {
        "post": {
            "operationId": "signOffRampStage",
            "summary": "Sign off the current stage for one's own role (logged-in people only, not tokens)",
            "description": (
                "Session users with the `rollout:signoff` capability (risk_ops, engineering, compliance, product), for "
                "their own role. Body: `{\"comment\": \"...\", \"stage\": <index seen>}`. A sign-off expires when the "
                "policy or the plan is edited."),
            "requestBody": {"required": False, "content": {_json: {"schema": {"type": "object", "properties": {
                "comment": {"type": "string"}, "stage": {"type": "integer"}}}}}},
            "responses": {"200": _ramp_ok, "409": _refusal, **error_responses(400, 401, 403),
                          "415": {"description": "Content-Type is not application/json",
                                  "content": {_json: {"schema": _ref("Error")}}}},
        }
    },
}
