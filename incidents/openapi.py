"""OpenAPI fragment for the incidents read API (registered from IncidentsConfig.ready)."""
from shopswift_ops.openapi import error_responses

_TIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS = {
    "AffectedPopulation": {
        "type": "object",
        "description": "A filter over decisions: arm, optional segment (feature in values) and time range.",
        "properties": {
            "arm": {"type": ["string", "null"], "enum": ["treatment", "control", None]},
            "segment": {"type": ["object", "null"], "required": ["feature", "in"],
                        "properties": {"feature": {"type": "string"}, "in": {"type": "array", "items": {}}}},
            "from": _TIME, "to": _TIME,
        },
    },
    "IncidentSummary": {
        "type": "object",
        "required": ["id", "title", "severity", "status", "opened_at", "detected_at", "mitigated_at",
                     "resolved_at", "affected_population", "url"],
        "properties": {
            "id": {"type": "integer"},
            "reference": {"type": "string", "example": "INC-7"},
            "title": {"type": "string"},
            "severity": {"type": "string", "enum": ["SEV1", "SEV2", "SEV3", "SEV4"]},
            "status": {"type": "string", "enum": ["investigating", "identified", "mitigating", "monitoring", "resolved"]},
            "opened_at": _TIME, "started_at": _TIME, "detected_at": _TIME, "mitigated_at": _TIME, "resolved_at": _TIME,
            "affected_population": {"$ref": "#/components/schemas/AffectedPopulation"},
            "url": {"type": "string", "description": "Path of the incident page"},
        },
    },
    "IncidentDetail": {
        "allOf": [{"$ref": "#/components/schemas/IncidentSummary"}, {
            "type": "object",
            "required": ["timeline", "decisions", "action_items", "status_updates"],
            "properties": {
                "timeline": {"type": "array", "description": "In time order; never edited (corrections are entries).",
                             "items": {"type": "object", "required": ["at", "kind", "source", "text"],
                                       "properties": {"at": _TIME, "kind": {"type": "string"},
                                                      "source": {"type": "string",
                                                                 "description": "'system' or a username"},
                                                      "text": {"type": "string"}, "link": {"type": "string"}}}},
                "decisions": {"type": "array", "items": {"type": "object", "properties": {
                    "decided_at": _TIME, "decision": {"type": "string"}, "rationale": {"type": "string"},
                    "options": {"type": "array", "items": {"type": "object"}}, "trade_offs": {"type": "string"},
                    "decided_by": {"type": "string"}, "consulted": {"type": "string"},
                    "policy_version": {"type": ["integer", "null"]},
                    "numbers": {"type": "object", "description": "KPI figures at the moment of deciding"}}}},
                "action_items": {"type": "array", "items": {"type": "object", "properties": {
                    "title": {"type": "string"}, "kind": {"type": "string", "enum": ["corrective", "preventive"]},
                    "owner": {"type": ["string", "null"]}, "due_on": {"type": "string", "format": "date"},
                    "status": {"type": "string"}, "overdue": {"type": "boolean"}}}},
                "status_updates": {"type": "array", "description": "Published updates only (support users: support "
                                                                   "wording only).",
                                   "items": {"type": "object", "properties": {
                                       "audience": {"type": "string",
                                                    "enum": ["tactical", "executive", "support", "seller"]},
                                       "published_at": _TIME, "published_by": {"type": "string"},
                                       "sections": {"type": "object", "additionalProperties": {"type": "string"}}}}},
            },
        }],
    },
}

PATHS = {
    "/api/v1/incidents": {"get": {
        "summary": "List incidents", "operationId": "listIncidents", "tags": ["incidents"],
        "description": "Scope `incidents:read`. Newest first, at most 500.",
        "parameters": [{"name": "status", "in": "query", "schema": {"type": "string", "enum": ["open", "resolved", "all"],
                                                                     "default": "open"}}],
        "responses": {"200": {"description": "Incidents", "content": {"application/json": {"schema": {
            "type": "object", "required": ["incidents"],
            "properties": {"incidents": {"type": "array", "items": {"$ref": "#/components/schemas/IncidentSummary"}}}}}}},
            **error_responses(400, 401, 403)},
    }},
    "/api/v1/incidents/{incident_id}": {"get": {
        "summary": "One incident with timeline, decisions, action items and published status updates",
        "operationId": "getIncident", "tags": ["incidents"], "description": "Scope `incidents:read`.",
        "parameters": [{"name": "incident_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "The incident", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/IncidentDetail"}}}}, **error_responses(401, 403, 404)},
    }},
}
