"""OpenAPI fragment for GET /api/v1/orders/{order_id}."""
from shopswift_ops.openapi import error_responses

_value = {"type": ["number", "string", "boolean", "null"]}

SCHEMAS = {
    "StoredDecision": {
        "allOf": [{"$ref": "#/components/schemas/DecisionEvent"}],
        "description": ("A decision as ingested. The buyer e-mail is never returned: only `buyer_email_masked` "
                        "(e.g. `j***@example.com`) when the event carried one."),
        "properties": {"buyer_email_masked": {"type": ["string", "null"]}},
    },
    "DataQualityFlag": {
        "type": "object",
        "required": ["feature", "served_value", "problem", "detail"],
        "properties": {
            "feature": {"type": "string"},
            "served_value": _value,
            "problem": {"enum": ["default", "out_of_range", "contradicts_history"],
                        "description": ("`default`: equals the feature registry's declared default; `out_of_range`: "
                                        "outside the declared range or allowed values; `contradicts_history`: the "
                                        "buyer's own events disagree (e.g. account age vs first decision stored)")},
            "detail": {"type": "string"},
        },
    },
    "Explanation": {
        "type": "object",
        "required": ["decided_by", "summary", "reasons", "data_quality_flags", "incident", "customer_message"],
        "properties": {
            "decided_by": {"enum": ["model", "fallback", "rules", "manual"],
                           "description": "of the order's final (last) decision"},
            "summary": {"type": "string", "description": "who decided, with model version, score and the thresholds "
                                                         "(or latency and timeout for the fallback) of that policy version"},
            "reasons": {"type": "array", "items": {"type": "object", "required": ["code", "text"],
                                                   "properties": {"code": {"type": "string"}, "text": {"type": "string"}}}},
            "data_quality_flags": {"type": "array", "items": {"$ref": "#/components/schemas/DataQualityFlag"}},
            "incident": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["id", "title"],
                                                       "properties": {"id": {"type": "string"}, "title": {"type": "string"}}}]},
            "customer_message": {"type": "string", "description": "what Support may tell the customer: at most four "
                                                                  "reasons, never the score, never card data"},
            "top_contributions": {"type": "array", "description": "when the decision carried `contributions`: the "
                                  "largest by absolute value, with the served value",
                                  "items": {"type": "object", "properties": {
                                      "feature": {"type": "string"}, "contribution": {"type": "number"},
                                      "served_value": _value}}},
        },
    },
    "Order": {
        "type": "object",
        "required": ["order_id", "decisions", "outcomes", "explanation"],
        "properties": {
            "order_id": {"type": "string"},
            "decisions": {"type": "array", "items": {"$ref": "#/components/schemas/StoredDecision"},
                          "description": "every attempt, in time order"},
            "outcomes": {"type": "array", "items": {"$ref": "#/components/schemas/OutcomeEvent"}},
            "explanation": {"$ref": "#/components/schemas/Explanation"},
        },
    },
}

PATHS = {
    "/api/v1/orders/{order_id}": {
        "get": {
            "operationId": "getOrder",
            "summary": "One order's decisions, outcomes and explanation",
            "description": "Scope `orders:read`. Every call is recorded in the look-up log that Compliance reads.",
            "parameters": [{"name": "order_id", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 64}}],
            "responses": {
                "200": {"description": "The order", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}},
                **error_responses(400, 401, 403, 404),
            },
        }
    }
}
