"""The war room: one page of live KPIs, guardrails, evidence and ramp controls.

The page and its live updates render the same named partials of
templates/incidents/war_room.html: the view renders the page (or one partial for an htmx swap),
incidents/consumers.py renders the partials again when news arrives over Channels.

Data comes from metrics and rollout (and incidents' own selectors). Those modules are imported
lazily so the page keeps working, panel by panel, while a source is missing ("not available yet").
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.db import connection
from django.http import Http404, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from shopswift_ops.access import request_can, requires
from shopswift_ops.read_scope import read_scope, reads_once

logger = logging.getLogger(__name__)

TEMPLATE = "incidents/war_room.html"
RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24)}
RANGE_LABELS = {"15m": "15 min", "1h": "1 h", "6h": "6 h", "24h": "24 h", "custom": "custom"}
# Chart resolution per range: enough points to see a trend, few enough to draw fast. Rollups are
# per minute and per hour: a day in whole hours is read from the hourly rollups (25 points, the
# first and last hour partial), where 15-minute points had to sum 1,440 minutes of histograms.
BUCKET_SECONDS = {"15m": 60, "1h": 60, "6h": 300, "24h": 3600}
SEGMENT_FEATURES = ("signup_method", "is_repeat_buyer", "amount_band")
SEGMENT_SORTS = {"orders": "orders", "conversion_delta": "conversion_delta", "gmv_lost": "gmv_lost_minor"}
# Panels and the live topics that make them stale (consumers re-render them on that news).
PANELS = ("header", "guardrails", "summary", "chargebacks", "segments", "features", "diagnosis", "feed", "incident",
          "controls")
PANELS_BY_TOPIC = {
    "kpis": ("header", "summary", "chargebacks", "segments", "features", "diagnosis"),
    "guardrails": ("header", "guardrails"),
    "alerts": ("guardrails", "feed", "incident"),
    "policy": ("header", "feed", "controls", "incident"),
    "signoffs": ("header", "feed"),
    "incidents": ("header", "incident"),
}
ACTIONS = {
    "kill": "Kill switch: everyone to control",
    "rollback": "Roll back to a stage",
    "set_traffic": "Set traffic share",
    "exclude_segment": "Exclude a segment (to control)",
    "include_segment": "Include a segment again",
    "set_mode": "Set mode (off / shadow / active)",
    "set_thresholds": "Set score thresholds",
    "set_fallback": "Set fallback policy",
}
# Charts: (id, title, unit, metrics drawn, how values are scaled for display).
CHARTS = [
    {"id": "conversion", "title": "Conversion", "unit": "%", "metrics": ["conversion"], "scale": 100},
    {"id": "decision_mix", "title": "Decision mix (approve / step-up / decline)", "unit": "% of orders",
     "metrics": ["approve_rate", "step_up_rate", "decline_rate"], "scale": 100},
    {"id": "false_declines", "title": "False-decline proxy and payment_failed tickets", "unit": "% of orders / per 1,000",
     "metrics": ["false_decline_rate", "support_ticket_rate"], "scale": {"false_decline_rate": 100, "support_ticket_rate": 1}},
    {"id": "fraud_loss", "title": "Fraud-loss proxy", "unit": "% of GMV", "metrics": ["fraud_loss_rate"], "scale": 100},
    {"id": "latency", "title": "Scoring latency p50 / p95 / p99 and fallback rate", "unit": "ms (fallback: % right axis)",
     "metrics": ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "fallback_rate"],
     "scale": {"fallback_rate": 100}, "y2": ["fallback_rate"]},
]


class BadParameter(ValueError):
    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _source(module: str, name: str):
    """The function `name` of `module`, or None while that module (or name) does not exist yet."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            return None
        raise
    return getattr(mod, name, None)


def _call(module: str, name: str, **kwargs):
    """Call a data source; (available, result or error text). A failing source breaks one panel only."""
    fn = _source(module, name)
    if fn is None:
        return False, None
    try:
        return True, fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 - one panel's failure must not take the page down
        logger.exception("war room source failed", extra={"source": f"{module}.{name}"})
        return True, {"error": f"{module}.{name} failed: {exc.__class__.__name__}"}


# ---------------------------------------------------------------------------------------------
# Page state (everything shareable lives in the URL)

@dataclass(frozen=True)
class State:
    range: str = "1h"
    start: datetime | None = None
    end: datetime | None = None
    paused: bool = False
    incident_id: int | None = None
    sort: str = "gmv_lost"
    segment: str = "signup_method"
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def live(self) -> bool:
        return self.range != "custom" and not self.paused

    @property
    def window(self) -> tuple[datetime, datetime]:
        if self.range == "custom":
            return self.start, self.end
        return self.now - RANGES[self.range], self.now

    @property
    def bucket_seconds(self) -> int:
        if self.range != "custom":
            return BUCKET_SECONDS[self.range]
        span = (self.end - self.start).total_seconds()
        seconds = max(60, int(span // 120 // 60 * 60))
        # hour-sized points of a long range are whole hours, which the hourly rollups answer
        return seconds // 3600 * 3600 if seconds >= 3600 else seconds

    def query(self, **changes) -> str:
        params = {"range": self.range}
        if self.range == "custom":
            params["from"] = _iso(self.start)
            params["to"] = _iso(self.end)
        if self.paused:
            params["paused"] = "1"
        if self.incident_id:
            params["incident"] = str(self.incident_id)
        if self.sort != "gmv_lost":
            params["sort"] = self.sort
        if self.segment != "signup_method":
            params["segment"] = self.segment
        params.update({k: v for k, v in changes.items() if v is not None})
        for key in [k for k, v in changes.items() if v is None]:
            params.pop(key, None)
        return urlencode(params)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str, field_name: str) -> datetime:
    parsed = parse_datetime(value.strip().replace(" ", "T")) if value else None
    if parsed is None:
        raise BadParameter(field_name, "expected an RFC 3339 time such as 2026-11-28T14:05:00Z")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_state(params, *, incident_id: int | None = None) -> State:
    """Page state from query parameters; BadParameter names the field that is wrong."""
    range_ = params.get("range") or "1h"
    if range_ not in RANGE_LABELS:
        raise BadParameter("range", f"must be one of {', '.join(RANGE_LABELS)}")
    start = end = None
    if range_ == "custom":
        start = _parse_time(params.get("from", ""), "from")
        end = _parse_time(params.get("to", ""), "to")
        if end <= start:
            raise BadParameter("to", "must be after 'from'")
        if end - start > timedelta(days=31):
            raise BadParameter("to", "a custom range may span at most 31 days")
    paused = params.get("paused", "") in ("1", "true", "on")
    raw_incident = params.get("incident") or ""
    if incident_id is None and raw_incident:
        if not raw_incident.isdigit():
            raise BadParameter("incident", "must be an incident id (a number)")
        incident_id = int(raw_incident)
    sort = params.get("sort") or "gmv_lost"
    if sort not in SEGMENT_SORTS:
        raise BadParameter("sort", f"must be one of {', '.join(SEGMENT_SORTS)}")
    segment = params.get("segment") or "signup_method"
    if segment not in SEGMENT_FEATURES:
        raise BadParameter("segment", f"must be one of {', '.join(SEGMENT_FEATURES)}")
    return State(range=range_, start=start, end=end, paused=paused, incident_id=incident_id, sort=sort,
                 segment=segment)


# ---------------------------------------------------------------------------------------------
# Panel contexts (selectors: read only, keyword-only)

def last_event_at() -> datetime | None:
    # The last 15 minutes of raw decisions are a few block ranges (BRIN on occurred_at); older than
    # that, the folded facts' first_at index answers without scanning a day of decisions.
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(occurred_at) FROM metrics_decision WHERE occurred_at > now() - interval '15 minutes'")
        row = cursor.fetchone()
        if row and row[0] is not None:
            return row[0]
        cursor.execute("SELECT max(first_at) FROM metrics_order_fact")
        row = cursor.fetchone()
    return row[0] if row else None


_STATUS_RANK = {"breach": 3, "warn": 2, "insufficient_data": 1, "ok": 0}


@reads_once
def _guardrail_items():
    if _source("metrics.guardrails", "latest_statuses") is None:
        return None, None
    # The ramp gates read the same statuses through rollout.gates (once per render): one read for
    # the header, the guardrails panel and the ramp status.
    available, result = _call("rollout.gates", "latest_guardrail_statuses")
    if not available:
        available, result = _call("metrics.guardrails", "latest_statuses")
    elif isinstance(result, tuple):
        statuses, why = result
        result = {"error": f"metrics.guardrails.latest_statuses failed: {why}"} if statuses is None else statuses
    if isinstance(result, dict) and "error" in result:
        return result, None
    items = result.get("guardrails", result) if isinstance(result, dict) else result
    items = list(items or [])
    return items, None


def header_context(*, state: State) -> dict:
    policy_available, policy = _call("rollout.services", "current_policy")
    ramp_available, ramp = _call("rollout.services", "ramp_status")
    guardrails, _ = _guardrail_items()
    overall = None
    if isinstance(guardrails, list):
        statuses = [g.get("status") for g in guardrails if isinstance(g, dict)]
        overall = max(statuses, key=lambda s: _STATUS_RANK.get(s, 0)) if statuses else "insufficient_data"
    last_event = last_event_at()
    age = (state.now - last_event).total_seconds() if last_event else None
    incident = None
    if state.incident_id:
        incident = _incident(state.incident_id)
    else:
        _, incident = _call("incidents.selectors", "open_incident")
    return {"policy": policy, "policy_available": policy_available, "ramp": ramp, "ramp_available": ramp_available,
            "overall_status": overall, "last_event_at": last_event, "last_event_age_s": age, "incident": incident}


def _incident(incident_id: int):
    try:
        models = importlib.import_module("incidents.models")
    except ModuleNotFoundError:
        return None
    model = getattr(models, "Incident", None)
    if model is None:
        return None
    incident = model.objects.filter(pk=incident_id).first()
    if incident is None:
        raise Http404("no such incident")
    return incident


def guardrails_context(*, state: State) -> dict:
    items, _ = _guardrail_items()
    return {"guardrails": items, "guardrails_available": items is not None}


def _cohorts(document) -> list[dict]:
    if not isinstance(document, dict):
        return []
    return [c for c in document.get("cohorts", []) if isinstance(c, dict)]


def _metric(cohort: dict, name: str) -> dict:
    value = (cohort.get("metrics") or {}).get(name)
    return value if isinstance(value, dict) else {}


SUMMARY_METRICS = [
    ("orders", "Orders", "count"), ("conversion", "Conversion", "pct"), ("approve_rate", "Approve rate", "pct"),
    ("step_up_rate", "Step-up rate", "pct"), ("decline_rate", "Decline rate", "pct"),
    ("false_decline_rate", "False-decline proxy", "pct"), ("support_ticket_rate", "payment_failed tickets / 1,000", "num"),
    ("fraud_loss_rate", "Fraud-loss proxy (% GMV)", "pct"), ("latency_p95_ms", "Latency p95 (ms)", "num"),
    ("latency_p99_ms", "Latency p99 (ms)", "num"), ("fallback_rate", "Fallback rate", "pct"),
    ("timeout_rate", "Timeout rate", "pct"), ("chargeback_rate", "Chargeback rate (orders in window)", "pct"),
    ("gmv_lost_minor", "GMV lost (minor units)", "count"),
]


def _fmt(value, kind: str, *, delta: bool = False) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{value * 100:+.2f} pp" if delta else f"{value * 100:.2f}%"
    if kind == "count" and not delta:
        return f"{int(value):,}"
    return f"{value:+.2f}" if delta else f"{value:,.2f}"


def _fmt_ci(ci, kind: str) -> str:
    if not ci or len(ci) != 2 or ci[0] is None:
        return "–"
    scale = 100 if kind == "pct" else 1
    return f"[{ci[0] * scale:+.2f}, {ci[1] * scale:+.2f}]"


def summary_context(*, state: State) -> dict:
    start, end = state.window
    available, document = _call("metrics.kpis", "cohort_kpis", start=start, end=end)
    if not available:
        return {"summary_available": False}
    if isinstance(document, dict) and "error" in document:
        return {"summary_available": True, "summary_error": document["error"]}
    by_arm = {c.get("arm"): c for c in _cohorts(document) if c.get("segment") is None}
    rows = []
    for key, label, kind in SUMMARY_METRICS:
        control, treatment = _metric(by_arm.get("control", {}), key), _metric(by_arm.get("treatment", {}), key)
        if not control and not treatment:
            continue
        rows.append({"key": key, "label": label, "kind": kind, "control": control, "treatment": treatment,
                     "control_display": _fmt(control.get("value"), kind),
                     "treatment_display": _fmt(treatment.get("value"), kind),
                     "delta_display": _fmt(treatment.get("delta"), kind, delta=True),
                     "ci_display": _fmt_ci(treatment.get("ci95"), kind)})
    return {"summary_available": True, "summary_rows": rows, "population": (document or {}).get("population")}


def chargebacks_context(*, state: State) -> dict:
    """The monthly chargeback rate and programme ratios of the month the window ends in."""
    month = min(state.window[1], state.now)
    available, document = _call("metrics.chargebacks", "chargeback_document", month=month, now=state.now)
    if not available:
        return {"chargebacks_available": False}
    if isinstance(document, dict) and "error" in document:
        return {"chargebacks_available": True, "chargebacks_error": document["error"]}
    months = [_month_row(document["chargeback_rate"]), _month_row(document["previous_month"])]
    programmes = [{**p, "value_display": _pct_bps(p["value"]), "threshold_display": _pct_bps(p["threshold"])}
                  for p in document["programmes"]]
    return {"chargebacks_available": True, "chargeback_months": months, "chargeback_programmes": programmes,
            "chargeback_scope": document["scope"], "chargeback_population": document["population"],
            "chargeback_threshold_display": _fmt(document["chargeback_rate"]["threshold"], "pct")}


def _month_row(rate: dict) -> dict:
    return {**rate, "value_display": _fmt(rate["value"], "pct"),
            "arms": [{"arm": arm, **counts, "value_display": _fmt(counts["value"], "pct")}
                     for arm, counts in rate["by_arm"].items()]}


def _pct_bps(value) -> str:
    return "–" if value is None else f"{value * 100:.2f}% ({value * 10000:.0f} bps)"


def segments_context(*, state: State) -> dict:
    start, end = state.window
    available, document = _call("metrics.kpis", "cohort_kpis", start=start, end=end, segment_feature=state.segment)
    if not available:
        return {"segments_available": False}
    if isinstance(document, dict) and "error" in document:
        return {"segments_available": True, "segments_error": document["error"]}
    rows: dict[str, dict] = {}
    for cohort in _cohorts(document):
        segment = cohort.get("segment")
        if not segment:
            continue
        row = rows.setdefault(str(segment.get("value")), {"value": segment.get("value"), "feature": segment.get("feature")})
        row[cohort.get("arm")] = cohort
    table = []
    for value, row in rows.items():
        treatment, control = row.get("treatment", {}), row.get("control", {})
        conversion = _metric(treatment, "conversion")
        table.append({
            "value": value, "feature": row["feature"],
            "orders": (_metric(treatment, "orders").get("value") or 0) + (_metric(control, "orders").get("value") or 0),
            "treatment_orders": _metric(treatment, "orders").get("value") or 0,
            "control_orders": _metric(control, "orders").get("value") or 0,
            "conversion_delta": conversion.get("delta"), "ci95": conversion.get("ci95"),
            "conversion_delta_display": _fmt(conversion.get("delta"), "pct", delta=True),
            "ci_display": _fmt_ci(conversion.get("ci95"), "pct"),
            "gmv_lost_minor": _metric(treatment, "gmv_lost_minor").get("value") or 0,
        })
    key = SEGMENT_SORTS[state.sort]
    # "Impact" first: the largest loss or the most negative conversion delta at the top.
    if key == "conversion_delta":
        table.sort(key=lambda r: (r[key] is None, r[key] if r[key] is not None else 0))
    else:
        table.sort(key=lambda r: -(r[key] or 0))
    return {"segments_available": True, "segment_rows": table, "segment_feature": state.segment,
            "segment_features": SEGMENT_FEATURES, "sorts": SEGMENT_SORTS}


def features_context(*, state: State) -> dict:
    start, end = state.window
    available, document = _call("metrics.feature_health", "feature_health", start=start, end=end,
                                segment_feature=state.segment)
    if not available:
        return {"features_available": False}
    if isinstance(document, dict) and "error" in document:
        return {"features_available": True, "features_error": document["error"]}
    items = document.get("features", []) if isinstance(document, dict) else list(document or [])
    chart = {}
    for item in items:
        segment = item.get("segment")
        label = f"{segment.get('feature')}={segment.get('value')}" if isinstance(segment, dict) else "all"
        entry = chart.setdefault(item.get("feature"), {"segments": [], "default_share": [], "reference": []})
        entry["segments"].append(label)
        entry["default_share"].append(item.get("default_share"))
        entry["reference"].append(item.get("reference_default_share"))
    return {"features_available": True, "feature_items": items, "feature_chart": chart}


def diagnosis_context(*, state: State) -> dict:
    start, end = state.window
    available, document = _call("metrics.diagnosis", "diagnosis", start=start, end=end, trend=False)
    if not available:
        return {"diagnosis_available": False}
    if isinstance(document, dict) and "error" in document:
        return {"diagnosis_available": True, "diagnosis_error": document["error"]}
    hypotheses = document.get("hypotheses") if isinstance(document, dict) else None
    if isinstance(hypotheses, dict):
        hypotheses = [{"name": name, **(value if isinstance(value, dict) else {"evidence": value})}
                      for name, value in hypotheses.items()]
    if hypotheses is None and isinstance(document, dict):
        hypotheses = [{"name": name, **(value if isinstance(value, dict) else {"evidence": value})}
                      for name, value in document.items() if name not in ("from", "to")]
    return {"diagnosis_available": True, "hypotheses": hypotheses or []}


def _feed_items(*, state: State) -> list[dict]:
    """Policy changes, guardrail alerts and sign-offs of the window, newest first."""
    from metrics.models import Alert
    from rollout.models import PolicyVersion, SignOff

    start, end = state.window
    items: list[dict] = []
    for version in PolicyVersion.objects.filter(updated_at__gte=start, updated_at__lte=end).order_by("-updated_at")[:50]:
        items.append({"at": version.updated_at, "kind": "policy", "who": version.actor,
                      "text": f"v{version.version} {version.action}: {version.reason}",
                      "summary": f"{version.mode}, {version.traffic_pct:g}%"})
    for alert in Alert.objects.select_related("guardrail").filter(created_at__gte=start, created_at__lte=end) \
            .order_by("-created_at")[:50]:
        segment = f" [{alert.seg_feature}={alert.seg_value}]" if alert.seg_feature else ""
        items.append({"at": alert.created_at, "kind": "alert", "who": "guardrails",
                      "text": f"{alert.guardrail.name}{segment} breached ({alert.action}): {alert.evidence}"})
    for signoff in SignOff.objects.filter(signed_at__gte=start, signed_at__lte=end).order_by("-signed_at")[:50]:
        items.append({"at": signoff.signed_at, "kind": "signoff", "who": signoff.username,
                      "text": f"{signoff.role} signed off stage {signoff.stage} (policy v{signoff.policy_version})"
                              + (f": {signoff.comment}" if signoff.comment else "")})
    items.sort(key=lambda item: item["at"], reverse=True)
    return items[:100]


def feed_context(*, state: State) -> dict:
    items = _feed_items(state=state)
    return {"feed": items, "annotations": [{"at": _iso(i["at"]), "kind": i["kind"], "text": i["text"][:80]}
                                           for i in items if i["kind"] in ("policy", "alert")]}


def exposed_orders_per_hour(*, segment_feature: str | None = None) -> dict:
    """Orders per hour of the last hour, per arm (and segment value): the basis of expected effects."""
    now = datetime.now(UTC)
    available, document = _call("metrics.kpis", "cohort_kpis", start=now - timedelta(hours=1), end=now,
                                segment_feature=segment_feature)
    counts: dict = {"available": available and not (isinstance(document, dict) and "error" in document),
                    "control": 0, "treatment": 0, "segments": {}}
    for cohort in _cohorts(document):
        orders = _metric(cohort, "orders").get("value") or 0
        segment = cohort.get("segment")
        if segment is None:
            counts[cohort.get("arm")] = orders
        else:
            counts["segments"].setdefault(str(segment.get("value")), {"control": 0, "treatment": 0})[cohort.get("arm")] = orders
    return counts


def _stage_pct(ramp, stage_name: str) -> float | None:
    stages = (ramp or {}).get("stages", []) if isinstance(ramp, dict) else []
    for stage in stages:
        if isinstance(stage, dict) and stage.get("name") == stage_name:
            return float(stage.get("traffic_pct", 0))
    return None


def expected_effect(*, action: str, params: dict) -> dict:
    """Exposed (treatment) orders per hour now and after the action, from the last hour's counts."""
    _, policy = _call("rollout.services", "current_policy")
    policy = policy if isinstance(policy, dict) and "error" not in policy else {}
    feature = params.get("feature") if action in ("exclude_segment", "include_segment") else None
    counts = exposed_orders_per_hour(segment_feature=feature)
    before = counts["treatment"]
    total = counts["control"] + counts["treatment"]
    pct = float(policy.get("traffic_pct") or 0)
    after = before
    note = ""
    if action == "kill" or (action == "set_mode" and params.get("mode") in ("off", "shadow")):
        after, note = 0, "every buyer is decided by control"
    elif action == "set_mode":
        after = round(total * pct / 100) if policy.get("mode") != "active" else before
    elif action in ("set_traffic", "rollback"):
        target = params.get("traffic_pct")
        if action == "rollback":
            _, ramp = _call("rollout.services", "ramp_status")
            target = _stage_pct(ramp, params.get("to_stage", "")) if params.get("to_stage") else None
            if target is None:
                note = "the version's traffic share is not known here; the exposure follows it"
        if target is not None:
            after = round(before * float(target) / pct) if pct > 0 else round(total * float(target) / 100)
    elif action in ("exclude_segment", "include_segment"):
        values = [str(v) for v in params.get("in", [])]
        segment = [counts["segments"].get(v, {"control": 0, "treatment": 0}) for v in values]
        if action == "exclude_segment":
            after = before - sum(s["treatment"] for s in segment)
            note = "those buyers go to control"
        else:
            after = before + round(sum(s["control"] for s in segment) * pct / 100)
    else:
        note = "the same buyers stay exposed; their decisions change"
    return {"before": before, "after": max(0, after), "note": note, "available": counts["available"],
            "basis": "treatment orders in the last hour"}


def controls_context(*, state: State) -> dict:
    _, policy = _call("rollout.services", "current_policy")
    _, ramp = _call("rollout.services", "ramp_status")
    stages = [s.get("name") for s in (ramp or {}).get("stages", []) if isinstance(s, dict)] if isinstance(ramp, dict) else []
    return {"actions": ACTIONS, "stages": stages, "policy_for_controls": policy if isinstance(policy, dict) else {}}


def incident_context(*, state: State) -> dict:
    if state.incident_id:
        incident = _incident(state.incident_id)
    else:
        _, incident = _call("incidents.selectors", "open_incident")
    if incident is None or isinstance(incident, dict):
        return {"scoped_incident": None}
    from incidents.selectors import timeline

    return {"scoped_incident": incident, "timeline_entries": timeline(incident, include_system=True)}


def charts_context(*, state: State) -> dict:
    return {"charts": CHARTS}


CONTEXTS = {
    "header": header_context, "guardrails": guardrails_context, "summary": summary_context,
    "chargebacks": chargebacks_context,
    "segments": segments_context, "features": features_context, "diagnosis": diagnosis_context,
    "feed": feed_context, "controls": controls_context, "incident": incident_context,
}


def series(*, state: State, since: datetime | None = None) -> dict:
    """Chart points of the window (or since the given bucket, inclusive), as kpi_timeseries gives them."""
    start, end = state.window
    if since is not None and since > start:
        start = since
    available, document = _call("metrics.kpis", "kpi_timeseries", start=start, end=end,
                                bucket_seconds=state.bucket_seconds)
    if not available:
        return {"available": False, "buckets": [], "arms": {}}
    if isinstance(document, dict) and "error" in document:
        return {"available": True, "error": document["error"], "buckets": [], "arms": {}}
    return {"available": True, **document}


def panel_context(*, state: State, panels, can_write: bool) -> dict:
    context = {"state": state, "can_write": can_write, "range_labels": RANGE_LABELS, "live": state.live}
    # Panels share their sources (policy, ramp, guardrails, the window's counts): one read each.
    with read_scope():
        for name in panels:
            context.update(CONTEXTS[name](state=state))
    return context


def render_panels(*, state: State, panels, can_write: bool, request=None) -> str:
    """The named partials, each one out-of-band swappable by its id (the websocket's message)."""
    with read_scope():
        context = panel_context(state=state, panels=panels, can_write=can_write)
        context["oob"] = True
        return "".join(render_to_string(f"{TEMPLATE}#{name}", context, request=request).strip() for name in panels)


def war_room_url(state: State) -> str:
    base = reverse("war-room")
    if state.incident_id:
        base = reverse("incident-war-room", args=[state.incident_id])
    query = state.query(incident=None) if state.incident_id else state.query()
    return f"{base}?{query}"


# ---------------------------------------------------------------------------------------------
# Views (thin: parse, call, render)

def _state_or_400(request, incident_id=None):
    try:
        return parse_state(request.GET, incident_id=incident_id), None
    except BadParameter as exc:
        return None, HttpResponseBadRequest(f"Bad request: {exc}", content_type="text/plain")


@requires("warroom:view")
@require_GET
def war_room(request, incident_id: int | None = None):
    state, error = _state_or_400(request, incident_id)
    if error:
        return error
    can_write = request_can(request, "rollout:write")
    with read_scope():
        return _war_room_page(request, state, can_write)


def _war_room_page(request, state: State, can_write: bool):
    context = panel_context(state=state, panels=PANELS, can_write=can_write)
    context.update(charts_context(state=state))
    initial_series = series(state=state)
    ws_query = state.query()
    context.update({
        "series": initial_series,
        "chart_config": {"charts": CHARTS, "bucket_seconds": state.bucket_seconds,
                         "window_seconds": int((state.window[1] - state.window[0]).total_seconds()),
                         "series_url": f"{reverse('war-room-series')}?{ws_query}",
                         "panels_url": f"{reverse('war-room-panels')}?{ws_query}",
                         "annotations": context.get("annotations", []), "live": state.live,
                         "timeout_ms": (context.get("policy") or {}).get("timeout_ms")
                         if isinstance(context.get("policy"), dict) else None},
        "ws_url": f"/ws/war-room/?{ws_query}",
        "page_url": war_room_url(state),
        "range_links": [{"key": key, "label": label, "url": f"{request.path}?{state.query(range=key, **{'from': None, 'to': None})}"}
                        for key, label in RANGE_LABELS.items() if key != "custom"],
        "pause_url": f"{request.path}?{state.query(paused=None if state.paused else '1')}",
        "sort_links": {key: f"{request.path}?{state.query(sort=key)}" for key in SEGMENT_SORTS},
        "window_start": state.window[0], "window_end": state.window[1],
    })
    return render(request, TEMPLATE, context)


@requires("warroom:view")
@require_GET
def war_room_panels(request):
    """One or more panels (`?panel=guardrails&panel=feed`, default all): the htmx swap and the catch-up."""
    state, error = _state_or_400(request)
    if error:
        return error
    names = request.GET.getlist("panel") or list(PANELS)
    unknown = [n for n in names if n not in CONTEXTS]
    if unknown:
        return HttpResponseBadRequest(f"Bad request: panel: unknown {', '.join(unknown)}", content_type="text/plain")
    from django.http import HttpResponse

    return HttpResponse(render_panels(state=state, panels=names, can_write=request_can(request, "rollout:write"),
                                      request=request))


@requires("warroom:view")
@require_GET
def war_room_series(request):
    """Chart points since `since` (the last bucket the browser holds): reconnect catch-up."""
    state, error = _state_or_400(request)
    if error:
        return error
    since = None
    if request.GET.get("since"):
        try:
            since = _parse_time(request.GET["since"], "since")
        except BadParameter as exc:
            return JsonResponse({"detail": str(exc)}, status=400)
    return JsonResponse(series(state=state, since=since))


def parse_action(data) -> tuple[str, dict, str]:
    """(action, params, reason) from a form; BadParameter names the field."""
    action = (data.get("action") or "").strip()
    if action not in ACTIONS:
        raise BadParameter("action", f"must be one of {', '.join(ACTIONS)}")
    params: dict = {}

    def number(name, cast=float):
        raw = (data.get(name) or "").strip()
        try:
            return cast(raw)
        except ValueError:
            raise BadParameter(name, "must be a number") from None

    if action == "rollback":
        if (data.get("to_stage") or "").strip():
            params["to_stage"] = data["to_stage"].strip()
        elif (data.get("to_version") or "").strip():
            params["to_version"] = number("to_version", int)
        else:
            raise BadParameter("to_stage", "choose a stage (or give to_version)")
    elif action == "set_traffic":
        params["traffic_pct"] = number("traffic_pct")
    elif action in ("exclude_segment", "include_segment"):
        feature = (data.get("feature") or "").strip()
        if not feature:
            raise BadParameter("feature", "required")
        values = [v.strip() for raw in data.getlist("in") for v in raw.split(",") if v.strip()] \
            if hasattr(data, "getlist") else [v.strip() for v in str(data.get("in", "")).split(",") if v.strip()]
        if not values:
            raise BadParameter("in", "name at least one segment value")
        params = {"feature": feature, "in": [_feature_value(feature, v) for v in values]}
    elif action == "set_mode":
        mode = (data.get("mode") or "").strip()
        if mode not in ("off", "shadow", "active"):
            raise BadParameter("mode", "must be off, shadow or active")
        params["mode"] = mode
    elif action == "set_thresholds":
        params = {"step_up": number("step_up"), "decline": number("decline")}
    elif action == "set_fallback":
        fallback = (data.get("fallback") or "").strip()
        if fallback not in ("step_up", "approve", "rules"):
            raise BadParameter("fallback", "must be step_up, approve or rules")
        params["fallback"] = fallback
        if (data.get("timeout_ms") or "").strip():
            params["timeout_ms"] = number("timeout_ms", int)
    reason = (data.get("reason") or "").strip()
    return action, params, reason


def _feature_value(feature: str, text: str):
    """A segment value typed in a form, as the JSON value the feature carries (true, 3, null, "email")."""
    from metrics.models import FeatureDefinition

    kind = FeatureDefinition.objects.filter(name=feature).values_list("kind", flat=True).first()
    if text == "null":
        return None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise BadParameter("in", f"{feature} is a boolean feature: use true or false")
        return text.lower() == "true"
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise BadParameter("in", f"{feature} is a number feature: {text!r} is not a number") from None
        return int(number) if number.is_integer() else number
    return text


def _safe_next(value: str) -> str:
    if value.startswith("/war-room/") or (value.startswith("/incidents/") and "//" not in value):
        return value
    return reverse("war-room")


@requires("rollout:write")
def war_room_confirm(request):
    """The confirmation: what the action will do (exposed orders per hour before/after), and a reason."""
    source = request.POST if request.method == "POST" else request.GET
    try:
        action, params, reason = parse_action(source)
    except BadParameter as exc:
        return _action_refused(request, status=400, detail=str(exc), next_url=_safe_next(source.get("next", "")))
    context = {"action": action, "action_label": ACTIONS[action], "params": params, "reason": reason,
               "effect": expected_effect(action=action, params=params), "next": _safe_next(source.get("next", "")),
               "hidden_fields": _hidden_fields(action, params)}
    if request.htmx:
        return render(request, f"{TEMPLATE}#confirm", context)
    return render(request, TEMPLATE, {**context, "confirm_page": True})


def _hidden_fields(action: str, params: dict) -> list[tuple[str, str]]:
    fields = [("action", action)]
    for key, value in params.items():
        if isinstance(value, list):
            fields.extend((key, str(v)) for v in value)
        else:
            fields.append((key, str(value)))
    return fields


@requires("rollout:write")
@require_POST
def war_room_action(request):
    """Apply a containment action through rollout.services (the only place a policy changes)."""
    next_url = _safe_next(request.POST.get("next", ""))
    try:
        action, params, reason = parse_action(request.POST)
        if not reason:
            raise BadParameter("reason", "required: say why (it goes to the audit log and the incident timeline)")
    except BadParameter as exc:
        return _action_refused(request, status=400, detail=str(exc), next_url=next_url)
    apply_action = _source("rollout.services", "apply_action")
    if apply_action is None:
        return _action_refused(request, status=503, detail="the rollout control plane is not available yet",
                               next_url=next_url)
    error_class = _source("rollout.services", "ActionError")
    try:
        apply_action(action=action, params=params, reason=reason, actor=request.user.get_username())
    except Exception as exc:
        if error_class is None or not isinstance(exc, error_class):
            raise
        return _action_refused(request, status=getattr(exc, "status", 409), detail=str(getattr(exc, "detail", exc)),
                               missing=getattr(exc, "missing", None), next_url=next_url)
    return HttpResponseRedirect(next_url)


def _action_refused(request, *, status: int, detail: str, next_url: str, missing=None):
    context = {"confirm_error": detail, "missing": missing, "next": next_url, "action_label": ""}
    if request.htmx:
        return render(request, f"{TEMPLATE}#confirm", context, status=status)
    return render(request, TEMPLATE, {**context, "confirm_page": True}, status=status)
