"""OpenAPI fragment for the endpoints of this app (assembled by shopswift_ops.openapi)."""
from shopswift_ops.openapi import error_responses

_id = {"type": "string", "minLength": 1, "maxLength": 64}
_time = {"type": "string", "format": "date-time", "description": "RFC 3339 with offset; at most 5 minutes in the future"}
_feature_value = {"type": ["number", "string", "boolean", "null"]}

SCHEMAS = {
    "DecisionEvent": {
        "type": "object",
        "required": ["event_id", "type", "order_id", "occurred_at", "buyer_id", "seller_id", "amount_minor", "currency",
                     "arm", "policy_version", "model_version", "score", "decision", "decided_by", "reason_codes",
                     "latency_ms", "timed_out", "features"],
        "properties": {
            "event_id": {**_id, "description": "unique forever; a repeat is a duplicate, stored once"},
            "type": {"const": "decision"},
            "order_id": _id,
            "occurred_at": _time,
            "buyer_id": _id,
            "seller_id": _id,
            "amount_minor": {"type": "integer", "minimum": 1, "description": "in the currency's minor unit"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "arm": {"enum": ["control", "treatment"]},
            "policy_version": {"type": "integer", "minimum": 1},
            "model_version": {"type": ["string", "null"], "maxLength": 64},
            "score": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "decision": {"enum": ["approve", "step_up", "decline"]},
            "decided_by": {"enum": ["model", "fallback", "rules", "manual"]},
            "reason_codes": {"type": "array", "maxItems": 32, "items": {"type": "string", "pattern": "^[A-Z0-9_]{2,40}$"}},
            "latency_ms": {"type": "number", "minimum": 0},
            "timed_out": {"type": "boolean"},
            "features": {"type": "object", "maxProperties": 64, "additionalProperties": _feature_value},
            "shadow": {
                "type": ["object", "null"], "required": ["score", "decision"],
                "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1},
                               "decision": {"enum": ["approve", "step_up", "decline"]}},
            },
            "contributions": {"type": ["object", "null"], "maxProperties": 64, "additionalProperties": {"type": "number"}},
            "buyer_email": {"type": ["string", "null"], "maxLength": 254,
                            "description": "optional; never stored in the clear (keyed hash + masked form)"},
        },
    },
    "OutcomeEvent": {
        "type": "object",
        "required": ["event_id", "type", "order_id", "occurred_at", "kind"],
        "properties": {
            "event_id": _id,
            "type": {"const": "outcome"},
            "order_id": _id,
            "occurred_at": _time,
            "kind": {"enum": ["checkout_completed", "checkout_abandoned", "step_up_passed", "step_up_failed",
                              "step_up_abandoned", "chargeback", "fraud_confirmed", "high_risk_signal",
                              "review_legit", "review_fraud", "support_ticket"]},
            "amount_minor": {"type": ["integer", "null"], "minimum": 1, "description": "with currency; for chargeback and fraud_confirmed"},
            "currency": {"type": ["string", "null"], "pattern": "^[A-Z]{3}$"},
            "detail": {"type": ["string", "null"], "maxLength": 200},
        },
    },
    "EventBatch": {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {
            "type": "array", "minItems": 1, "maxItems": 5000,
            "items": {"oneOf": [{"$ref": "#/components/schemas/DecisionEvent"}, {"$ref": "#/components/schemas/OutcomeEvent"}],
                      "discriminator": {"propertyName": "type"}},
        }},
    },
    "IngestResult": {
        "type": "object",
        "required": ["accepted", "duplicates", "rejected"],
        "properties": {
            "accepted": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "rejected": {"type": "array", "items": {
                "type": "object", "required": ["index", "event_id", "errors"],
                "properties": {"index": {"type": "integer"}, "event_id": {"type": ["string", "null"]},
                               "errors": {"type": "array", "items": {"type": "string"},
                                          "description": "each 'field: message'"}},
            }},
        },
    },
}

PATHS = {
    "/api/v1/events": {
        "post": {
            "operationId": "postEvents",
            "summary": "Post decision and outcome events",
            "description": (
                "1 to 5000 events, at most 8 MiB. Valid events are stored even when others of the batch are "
                "rejected; a whole batch may be resent safely (duplicates are counted, not stored twice). "
                "Events of unknown extra fields are accepted and the extra fields ignored. Scope `events:write`."
            ),
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventBatch"}}}},
            "responses": {
                "200": {"description": "Batch processed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}},
                **error_responses(400, 401, 403, 413, 429, 503),
                "415": {"description": "Content-Type is not application/json",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }
    }
}
