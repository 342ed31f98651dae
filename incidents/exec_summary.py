"""The executive summary: headline, KPIs against the company's targets, impact, trade-offs, plan
and gates, open risks. Every figure comes from metrics/rollout/incident records at request time.

Targets are the business's (BRIEF): conversion baseline 71.0%, monthly chargeback rate under the
0.9% card-network threshold (with the network programme ratios beside it; threshold and
programmes live in metrics.chargebacks), fraud-loss down 20% quarter on quarter, scoring within
its latency budget and checkout p95 under 350 ms.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from incidents import comms, selectors, upstream
from incidents.models import ActionItem, Incident

TARGETS = getattr(settings, "EXEC_TARGETS", {
    "conversion_baseline": 0.710,
    "fraud_loss_qoq_goal": -0.20,
    "scoring_latency_p95_ms": 80.0,
    "checkout_latency_p95_ms": 350.0,
})


def quarter_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return now.replace(month=3 * ((now.month - 1) // 3) + 1, day=1, hour=0, minute=0, second=0, microsecond=0)


def previous_quarter_start(start: datetime) -> datetime:
    month, year = start.month - 3, start.year
    if month < 1:
        month, year = month + 12, year - 1
    return start.replace(year=year, month=month)


def _pooled(document: dict | None, name: str) -> tuple[float | None, int | None, int | None]:
    """A rate over both arms (all traffic): summed numerators / summed denominators."""
    numerator = denominator = 0
    seen = False
    for item in (document or {}).get("cohorts", []):
        if item.get("segment") is not None:
            continue
        value = (item.get("metrics") or {}).get(name) or {}
        if value.get("denominator") is not None:
            numerator += value.get("numerator") or 0
            denominator += value["denominator"]
            seen = True
    if not seen or not denominator:
        return None, numerator if seen else None, denominator if seen else None
    return numerator / denominator, numerator, denominator


STATUS_LABELS = {"ok": "on target", "warn": "at risk", "breach": "off target", "insufficient_data": "not enough data"}


def _row(name, value_text, target_text, status, basis="", note=""):
    return {"name": name, "value": value_text, "target": target_text, "status": status,
            "status_label": STATUS_LABELS[status], "basis": basis, "note": note}


def kpi_rows(*, now: datetime, start: datetime) -> tuple[list[dict], str | None]:
    rows: list[dict] = []
    window, missing = upstream.try_call("cohort_kpis", start=start, end=now)
    if missing:
        return rows, missing
    treatment = comms.cohort(window, arm="treatment")
    control = comms.cohort(window, arm="control")
    conv = comms.metric(treatment, "conversion")
    target = TARGETS["conversion_baseline"]
    rows.append(_row(
        "Checkout conversion (model cohort)", comms.pct(conv), f"≥ {comms.pct(target)} baseline",
        "insufficient_data" if conv is None else ("ok" if conv >= target else "breach"),
        basis=f"{comms.count(comms.metric(treatment, 'conversion', 'numerator'))} / "
              f"{comms.count(comms.metric(treatment, 'conversion', 'denominator'))} orders; control "
              f"{comms.pct(comms.metric(control, 'conversion'))}"))

    rows += chargeback_rows(now=now)

    this_quarter = quarter_start(now)
    previous = previous_quarter_start(this_quarter)
    current_doc, m1 = upstream.try_call("cohort_kpis", start=this_quarter, end=now)
    previous_doc, m2 = upstream.try_call("cohort_kpis", start=previous, end=this_quarter)
    if not (m1 or m2):
        current, cn, cd = _pooled(current_doc, "fraud_loss_rate")
        before, pn, pd = _pooled(previous_doc, "fraud_loss_rate")
        goal = TARGETS["fraud_loss_qoq_goal"]
        change = (current - before) / before if current is not None and before else None
        rows.append(_row(
            "Fraud-loss proxy, quarter on quarter", "n/a" if change is None else f"{change * 100:+.1f}%",
            f"≤ {goal * 100:+.0f}% QoQ", "insufficient_data" if change is None else ("ok" if change <= goal else "warn"),
            basis=f"this quarter {comms.pct(current, 2)} of GMV ({comms.count(cd)} minor units completed); "
                  f"last quarter {comms.pct(before, 2)} ({comms.count(pd)})"))

    p95 = comms.metric(treatment, "latency_p95_ms")
    budget = TARGETS["scoring_latency_p95_ms"]
    rows.append(_row(
        "Scoring latency p95 (model cohort)", "n/a" if p95 is None else f"{p95:.0f} ms", f"< {budget:.0f} ms",
        "insufficient_data" if p95 is None else ("ok" if p95 < budget else "breach"),
        basis=f"timeouts {comms.pct(comms.metric(treatment, 'timeout_rate'), 2)}, fallback "
              f"{comms.pct(comms.metric(treatment, 'fallback_rate'), 2)} of decisions"))
    rows.append(_row(
        "Checkout latency p95 (end to end)", "not measured", f"< {TARGETS['checkout_latency_p95_ms']:.0f} ms",
        "insufficient_data", note="Events carry scoring latency only; end-to-end checkout latency is the "
                                  "payments service's measurement."))
    return rows, None


def _bps(value) -> str:
    return "n/a" if value is None else f"{comms.pct(value, 2)} ({value * 10000:.0f} bps)"


def chargeback_rows(*, now: datetime) -> list[dict]:
    """This month's chargeback rate (last month's beside it) and each card-network programme ratio."""
    document, missing = upstream.try_call("chargebacks", month=now, now=now)
    if missing:
        return [_row("Monthly chargeback rate", "n/a", "", "insufficient_data", note=f"Not available yet ({missing}).")]
    rate, previous = document["chargeback_rate"], document["previous_month"]
    rows = [_row(
        f"Monthly chargeback rate ({rate['month']}, month to date)", comms.pct(rate["value"], 2),
        f"< {comms.pct(rate['threshold'], 1)}", rate["status"],
        basis=f"{comms.count(rate['numerator'])} chargebacks / {comms.count(rate['denominator'])} completed orders "
              f"decided in {rate['month']}; {previous['month']}: {comms.pct(previous['value'], 2)} "
              f"({comms.count(previous['numerator'])} / {comms.count(previous['denominator'])}, {previous['status'].replace('_', ' ')})",
        note="Chargebacks mature over weeks and count for their order's month: the month-to-date rate is a floor "
             "of the month's final rate.")]
    for programme in document["programmes"]:
        target = f"< {_bps(programme['threshold'])}"
        if programme["min_count"]:
            target += f", applies from {comms.count(programme['min_count'])}"
        rows.append(_row(f"{programme['name']} ratio ({rate['month']})", _bps(programme["value"]), target,
                         programme["status"], basis=programme["basis"], note=f"{programme['scope'].capitalize()}."))
    return rows


def build(*, now: datetime | None = None, start: datetime | None = None) -> dict:
    now = now or timezone.now()
    incident = selectors.open_incident() or Incident.objects.order_by("-opened_at").first()
    start = start or (incident.started_at if incident and incident.is_open else now - timedelta(hours=24))
    rows, kpis_missing = kpi_rows(now=now, start=start)
    impact = comms.live_numbers(incident, now=now) if incident else None
    extra_fraud = _extra_fraud_exposure(incident, now=now) if incident else None
    decisions = list(incident.decisions.select_related("decided_by").order_by("decided_at")) if incident else []
    ramp, ramp_missing = upstream.try_call("ramp_status")
    policy, policy_missing = upstream.try_call("current_policy")
    guardrails, guardrails_missing = upstream.try_call("latest_statuses")
    return {
        "now": now,
        "from": start,
        "incident": incident,
        "headline": headline(incident),
        "kpis": rows,
        "kpis_missing": kpis_missing,
        "impact": impact,
        "extra_fraud": extra_fraud,
        "impact_fmt": comms.impact_format(impact, extra_fraud) if impact else None,
        "decisions": decisions,
        "ramp": ramp,
        "ramp_missing": ramp_missing,
        "policy": policy,
        "policy_missing": policy_missing,
        "risks": open_risks(incident=incident, guardrails=guardrails, now=now),
        "guardrails_missing": guardrails_missing,
        "exit_criteria": list(incident.exit_criteria.all()) if incident else [],
    }


def headline(incident: Incident | None) -> str:
    if incident is None:
        return "No incident on record. The rollout is running under its plan."
    if incident.is_open:
        return (f"{incident.reference} ({incident.severity}) is {incident.status}: {incident.title}. "
                f"Started {incident.started_at:%Y-%m-%d %H:%M} UTC.")
    return (f"Last incident {incident.reference} ({incident.severity}) resolved "
            f"{incident.resolved_at:%Y-%m-%d %H:%M} UTC: {incident.title}.")


def _extra_fraud_exposure(incident: Incident, *, now: datetime) -> dict | None:
    """(treatment fraud-loss rate − control rate) × treatment completed GMV, when positive."""
    start, end = comms.window(incident, now=now)
    document, missing = upstream.try_call("cohort_kpis", start=start, end=end)
    if missing:
        return None
    treatment = comms.cohort(document, arm="treatment")
    control = comms.cohort(document, arm="control")
    t_rate, c_rate = comms.metric(treatment, "fraud_loss_rate"), comms.metric(control, "fraud_loss_rate")
    t_gmv = comms.metric(treatment, "fraud_loss_rate", "denominator")
    if t_rate is None or c_rate is None or t_gmv is None:
        return {"minor": None, "treatment_rate": t_rate, "control_rate": c_rate}
    return {"minor": max(0, round((t_rate - c_rate) * t_gmv)), "treatment_rate": t_rate, "control_rate": c_rate,
            "treatment_completed_minor": t_gmv}


def open_risks(*, incident: Incident | None, guardrails, now: datetime) -> list[str]:
    risks: list[str] = []
    if isinstance(guardrails, dict):
        guardrails = guardrails.get("guardrails", [])
    for item in guardrails or []:
        status = item.get("status") if isinstance(item, dict) else getattr(item, "status", None)
        if status in ("warn", "breach", "insufficient_data"):
            name = item.get("name") if isinstance(item, dict) else getattr(item, "name", "?")
            evidence = item.get("evidence") if isinstance(item, dict) else getattr(item, "evidence", "")
            risks.append(f"Guardrail {name} is {status.replace('_', ' ')}: {evidence}")
    if incident:
        for hypothesis in incident.hypotheses.filter(status__in=("open", "supported")):
            risks.append(f"Unconfirmed hypothesis ({hypothesis.get_kind_display()}): {hypothesis.statement}")
        for criterion in incident.exit_criteria.filter(met_at__isnull=True):
            risks.append(f"Exit criterion not met: {criterion.text}")
        overdue = ActionItem.objects.filter(incident=incident, status__in=("open", "in_progress"),
                                            due_on__lt=now.date())
        for item in overdue:
            risks.append(f"Overdue action item: {item.title} (due {item.due_on})")
    return risks
