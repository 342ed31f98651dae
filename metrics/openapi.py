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


# -- read APIs (CONTRACT section 6) ------------------------------------------------------------

_from_to = [
    {"name": "from", "in": "query", "required": False, "schema": {"type": "string", "format": "date-time"},
     "description": "RFC 3339 with offset; default one hour before `to`"},
    {"name": "to", "in": "query", "required": False, "schema": {"type": "string", "format": "date-time"},
     "description": "RFC 3339 with offset; default now. Windows are widened to whole minutes: orders whose first "
                    "decision falls in [floor_minute(from), ceil_minute(to))"},
]
_segment = {"type": ["object", "null"], "required": ["feature", "value"],
            "properties": {"feature": {"type": "string"},
                           "value": {"type": "string", "description": "text of the feature's JSON value (true, null, social_google)"}}}
# Guardrail subjects may pool several values of one dimension (the population feature health implicates)
_guardrail_segment = {"type": ["object", "null"], "required": ["feature", "value", "in"],
                      "properties": {"feature": {"type": "string"},
                                     "value": {"type": "string", "description": "the value, or the pooled values joined by '|' "
                                                                                "(social_apple|social_google)"},
                                     "in": {"type": "array", "items": {"type": "string"},
                                            "description": "the values covered: one, or every value of a pooled population"}}}
_json_ok = lambda ref: {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}}  # noqa: E731

SCHEMAS.update({
    "Segment": _segment,
    "GuardrailSegment": _guardrail_segment,
    "RateMetric": {
        "type": "object",
        "properties": {
            "numerator": {"type": "number", "description": "count (minor units for fraud_loss_rate)"},
            "denominator": {"type": "number"},
            "value": {"type": ["number", "null"], "description": "numerator / denominator (x 1000 for support_ticket_rate)"},
            "delta": {"type": ["number", "null"], "description": "treatment only: treatment - control of the same segment"},
            "ci95": {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
                     "description": "95% CI of delta: Newcombe hybrid score (proportions), delta-method Wald (fraud_loss_rate), "
                                    "differenced order-statistic intervals (latency percentiles)"},
            "count": {"type": "integer", "description": "latency percentiles: model-called decisions"},
        },
    },
    "KpiCohort": {
        "type": "object", "required": ["arm", "segment", "metrics"],
        "properties": {
            "arm": {"enum": ["control", "treatment"]},
            "segment": {"$ref": "#/components/schemas/Segment"},
            "metrics": {"type": "object", "description": (
                "keys: orders, conversion, approve_rate, step_up_rate, decline_rate, step_up_pass_rate (orders with a "
                "step_up decision and step_up_passed / orders with a step_up decision), fallback_rate, timeout_rate, "
                "latency_p50_ms, latency_p95_ms, latency_p99_ms, false_decline_rate, support_ticket_rate (per 1,000 "
                "orders), fraud_loss_rate (minor units), chargeback_rate (completed orders with a chargeback / completed "
                "orders), gmv_lost_minor (treatment only)"),
                "additionalProperties": {"$ref": "#/components/schemas/RateMetric"}},
        },
    },
    "KpiDocument": {
        "type": "object", "required": ["from", "to", "population", "cohorts"],
        "properties": {
            "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"},
            "population": {"type": "string", "description": "which orders the numbers cover: orders eligible for treatment in both arms"},
            "by": {"type": "string"},
            "window": {"type": "object", "description": "the minute-aligned window actually read"},
            "method": {"type": "object"},
            "refreshed_at": {"type": ["string", "null"], "format": "date-time"},
            "cohorts": {"type": "array", "items": {"$ref": "#/components/schemas/KpiCohort"},
                        "description": "all traffic first (segment null), then each segment value, control then treatment"},
        },
    },
    "GuardrailStatus": {
        "type": "object",
        "required": ["name", "metric", "segment", "status", "value", "threshold", "evidence", "since", "action"],
        "properties": {
            "name": {"type": "string"}, "metric": {"type": "string"},
            "segment": {"$ref": "#/components/schemas/GuardrailSegment"},
            "status": {"enum": ["ok", "warn", "breach", "insufficient_data"]},
            "value": {"type": ["number", "null"],
                      "description": "delta kind: treatment - control (for conversion, of the estimated eventual "
                                     "conversion: orders younger than the maturity count with their outcomes so far); "
                                     "limit kind: the treatment value"},
            "threshold": {"type": ["number", "null"]},
            "evidence": {"type": "string", "description": "the numbers: value, interval, sample sizes (settled and "
                                                         "younger orders), method"},
            "since": {"type": "string", "format": "date-time", "description": "when the current status began"},
            "action": {"enum": ["notify", "halt_ramp", "rollback_stage", "exclude_segment", "kill"]},
            "severity": {"enum": ["hard", "soft"]},
            "min_sample_met": {"type": "boolean"},
            "evaluated_at": {"type": "string", "format": "date-time"},
        },
    },
    "Alert": {
        "type": "object",
        "properties": {"alert_id": {"type": "integer"}, "guardrail": {"type": "string"}, "metric": {"type": "string"},
                       "segment": {"$ref": "#/components/schemas/GuardrailSegment"}, "status": {"const": "breach"},
                       "action": {"type": "string"}, "evidence": {"type": "string"},
                       "created_at": {"type": "string", "format": "date-time"}},
    },
    "GuardrailList": {
        "type": "object", "required": ["guardrails"],
        "properties": {"guardrails": {"type": "array", "items": {"$ref": "#/components/schemas/GuardrailStatus"}},
                       "method": {"type": "object"},
                       "alerts": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}}},
    },
    "FeatureHealthItem": {
        "type": "object",
        "required": ["feature", "segment", "default_share", "null_share", "out_of_range_share", "reference_default_share", "psi", "status"],
        "properties": {
            "feature": {"type": "string"}, "segment": {"$ref": "#/components/schemas/Segment"},
            "default_share": {"type": ["number", "null"]}, "null_share": {"type": ["number", "null"]},
            "out_of_range_share": {"type": ["number", "null"]}, "reference_default_share": {"type": ["number", "null"]},
            "default_share_increase": {"type": ["number", "null"]},
            "psi": {"type": ["number", "null"]}, "psi_band": {"enum": ["stable", "moderate", "major", None]},
            "status": {"enum": ["ok", "warn", "breach", "insufficient_data"]},
            "n": {"type": "integer"}, "reference_n": {"type": "integer"},
            "defaults": {"type": "integer", "description": "orders served the default now"},
            "reference_defaults": {"type": "integer"},
            "default_share_rise_lower_bound": {
                "type": ["number", "null"],
                "description": "one-sided lower confidence bound of the rise (Newcombe hybrid score); breach above the margin"},
            "psi_judged": {"type": "boolean", "description": "PSI counts only once its chance level is small enough"},
        },
    },
    "FeatureHealth": {
        "type": "object", "required": ["features"],
        "properties": {"features": {"type": "array", "items": {"$ref": "#/components/schemas/FeatureHealthItem"}},
                       "reference": {"type": ["object", "null"], "description": "kind: week_earlier, pinned or early_baseline; from; to"},
                       "method": {"type": "object"}},
    },
    "Diagnosis": {
        "type": "object", "required": ["feature_drift", "latency", "thresholds"],
        "properties": {"feature_drift": {"type": "object"}, "latency": {"type": "object"},
                       "thresholds": {"type": "object", "description": "score histogram, current thresholds and what-if rows"}},
    },
})

PATHS.update({
    "/api/v1/kpis": {"get": {
        "operationId": "getKpis", "summary": "KPIs per arm (and segment) with treatment-vs-control deltas",
        "description": "Scope `kpis:read`. Answered from the rollups refreshed every few seconds.",
        "parameters": _from_to + [{"name": "by", "in": "query", "required": False,
                                   "schema": {"type": "string", "default": "arm", "pattern": "^arm(,segment:[A-Za-z0-9_]+)?$"},
                                   "description": "`arm` or `arm,segment:FEATURE` (a segment dimension of the feature registry)"}],
        "responses": {**_json_ok("KpiDocument"), **error_responses(400, 401, 403, 503)},
    }},
    "/api/v1/guardrails": {"get": {
        "operationId": "getGuardrails", "summary": "Latest guardrail statuses with evidence",
        "description": "Scope `kpis:read`. Worst first. Method and parameters in `method`.",
        "responses": {**_json_ok("GuardrailList"), **error_responses(401, 403, 503)},
    }},
    "/api/v1/features/health": {"get": {
        "operationId": "getFeatureHealth", "summary": "Default / null / out-of-range shares and PSI per feature and segment",
        "description": "Scope `kpis:read`.",
        "parameters": _from_to + [{"name": "segment", "in": "query", "required": False, "schema": {"type": "string"},
                                   "description": "a segment dimension; all traffic is always included"}],
        "responses": {**_json_ok("FeatureHealth"), **error_responses(400, 401, 403, 503)},
    }},
    "/api/v1/diagnosis": {"get": {
        "operationId": "getDiagnosis", "summary": "Evidence for feature drift, latency and thresholds",
        "description": ("Scope `kpis:read`. Feature drift and latency cover the window; the threshold what-if "
                        "re-decides the stored scores of the window's last hour of treatment traffic."),
        "parameters": _from_to,
        "responses": {**_json_ok("Diagnosis"), **error_responses(400, 401, 403, 503)},
    }},
})


# -- monthly chargebacks and card-network programmes (CONTRACT section 5) ----------------------

_count_rate = {
    "type": "object", "required": ["numerator", "denominator", "value"],
    "properties": {"numerator": {"type": "integer", "description": "completed orders with a chargeback"},
                   "denominator": {"type": "integer", "description": "completed orders"},
                   "value": {"type": ["number", "null"], "description": "numerator / denominator; null without completed orders"}},
}
_status = {"enum": ["ok", "warn", "breach", "insufficient_data"]}

SCHEMAS.update({
    "CountRate": _count_rate,
    "MonthlyChargebackRate": {
        "type": "object",
        "required": ["month", "from", "to", "month_ended", "numerator", "denominator", "value", "threshold", "status", "by_arm"],
        "properties": {
            "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
            "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"},
            "month_ended": {"type": "boolean", "description": "the month is over (its chargebacks still mature for weeks)"},
            **_count_rate["properties"],
            "threshold": {"type": "number", "description": "the monitoring threshold (0.009 = 0.9%)"},
            "status": {**_status, "description": "breach at or above the threshold, warn from 80% of it, "
                                                  "insufficient_data without completed orders"},
            "by_arm": {"type": "object", "properties": {"control": {"$ref": "#/components/schemas/CountRate"},
                                                        "treatment": {"$ref": "#/components/schemas/CountRate"}}},
        },
    },
    "ProgrammeRatio": {
        "type": "object",
        "required": ["name", "network", "formula", "numerator", "denominator", "value", "threshold", "min_count", "status"],
        "properties": {
            "name": {"type": "string"}, "network": {"type": "string"},
            "formula": {"enum": ["vamp", "ecm"], "description": (
                "vamp: (completed orders with fraud_confirmed + completed orders with a chargeback) / completed orders, "
                "all of orders decided in the month; an order with both counts twice. ecm: completed orders whose "
                "first chargeback occurred in the month (by the chargeback's own time, UTC) / completed orders "
                "decided in the previous month")},
            "numerator": {"type": "integer"}, "denominator": {"type": "integer"},
            "value": {"type": ["number", "null"]},
            "numerator_parts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "numerator_month": {"type": "string"}, "denominator_month": {"type": "string"},
            "threshold": {"type": "number", "description": "a fraction: 0.015 = 1.5% = 150 bps"},
            "min_count": {"type": "integer", "description": "numerator below it: insufficient_data"},
            "status": {"enum": ["ok", "breach", "insufficient_data"],
                       "description": "breach at or above the threshold; insufficient_data below the minimum count "
                                      "or without a denominator"},
            "basis": {"type": "string", "description": "the counts in a sentence"},
            "scope": {"type": "string", "description": "which card traffic: all networks (events carry no card network)"},
        },
    },
    "Chargebacks": {
        "type": "object",
        "required": ["month", "population", "scope", "chargeback_rate", "previous_month", "programmes"],
        "properties": {
            "month": {"type": "string"}, "as_of": {"type": "string", "format": "date-time"},
            "population": {"type": "string"}, "scope": {"type": "string"},
            "chargeback_rate": {"$ref": "#/components/schemas/MonthlyChargebackRate"},
            "previous_month": {"$ref": "#/components/schemas/MonthlyChargebackRate"},
            "programmes": {"type": "array", "items": {"$ref": "#/components/schemas/ProgrammeRatio"}},
            "method": {"type": "object"},
            "refreshed_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
})

PATHS["/api/v1/chargebacks"] = {"get": {
    "operationId": "getChargebacks",
    "summary": "Monthly chargeback rate (by arm) and card-network programme ratios",
    "description": (
        "Scope `kpis:read`. The chargeback rate of a UTC calendar month counts the orders whose first decision lies "
        "in the month: completed orders with a chargeback / completed orders, a late chargeback counting for its "
        "order's month; the previous month is given beside it. Population: every order of both arms, "
        "segment-excluded ones included (what a card network sees). Programme ratios are configured per card "
        "network by administrators; events carry no card network, so each is computed over all card traffic. "
        "Answered from the rollups refreshed every few seconds."),
    "parameters": [{"name": "month", "in": "query", "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                    "description": "YYYY-MM (UTC); default the current month; a month that has not begun is a 400"}],
    "responses": {**_json_ok("Chargebacks"), **error_responses(400, 401, 403, 503)},
}}
