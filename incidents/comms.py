"""Status-update drafts from live numbers.

`live_numbers(incident)` reads the KPI engine (metrics.kpis.cohort_kpis, the same document
/api/v1/kpis serves) over the incident's window and the current policy (rollout); `draft()` turns
them into wording per audience. Nothing here invents a number: a figure the engine cannot give
is said to be unavailable.
"""
from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone

from incidents import upstream
from incidents.models import AUDIENCES, Incident


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cohort(document: dict | None, *, arm: str, segment_value=None, feature: str | None = None) -> dict | None:
    """The cohort of `arm` (and segment value) in a KPI document, or None."""
    for item in (document or {}).get("cohorts", []):
        if item.get("arm") != arm:
            continue
        segment = item.get("segment")
        if feature is None and segment is None:
            return item
        if feature is not None and isinstance(segment, dict) and segment.get("feature") == feature \
                and str(segment.get("value")) == str(segment_value):
            return item
    return None


def metric(item: dict | None, name: str, field: str = "value"):
    if not item:
        return None
    value = (item.get("metrics") or {}).get(name)
    if isinstance(value, dict):
        return value.get(field)
    return None


def window(incident: Incident, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """From the start of impact to its end (resolution) or now."""
    now = now or timezone.now()
    end = incident.resolved_at or now
    return incident.started_at, max(end, incident.started_at)


def live_numbers(incident: Incident, *, now: datetime | None = None) -> dict:
    """The figures a status update quotes, with the window they cover (as /api/v1/kpis?from=&to=)."""
    start, end = window(incident, now=now)
    numbers: dict = {"from": _iso(start), "to": _iso(end)}
    overall, missing = upstream.try_call("cohort_kpis", start=start, end=end)
    if missing:
        numbers["unavailable"] = missing
    else:
        numbers["population"] = overall.get("population")
        control = cohort(overall, arm="control")
        treatment = cohort(overall, arm="treatment")
        numbers["overall"] = {
            "control_conversion": metric(control, "conversion"),
            "treatment_conversion": metric(treatment, "conversion"),
            "conversion_delta": metric(treatment, "conversion", "delta"),
            "conversion_ci95": metric(treatment, "conversion", "ci95"),
            "treatment_orders": metric(treatment, "orders"),
            "control_orders": metric(control, "orders"),
            "false_declines": metric(treatment, "false_decline_rate", "numerator"),
            "gmv_lost_minor": metric(treatment, "gmv_lost_minor"),
            "currency": window_currency(start=start, end=end),
        }
    segment = (incident.affected_population or {}).get("segment")
    if segment and not missing:
        by_segment, seg_missing = upstream.try_call("cohort_kpis", start=start, end=end,
                                                    segment_feature=segment["feature"])
        if seg_missing:
            numbers["segment_unavailable"] = seg_missing
        else:
            rows = []
            for value in segment["in"]:
                treatment = cohort(by_segment, arm="treatment", feature=segment["feature"], segment_value=value)
                control = cohort(by_segment, arm="control", feature=segment["feature"], segment_value=value)
                rows.append({
                    "value": value,
                    "treatment_orders": metric(treatment, "orders"),
                    "treatment_conversion": metric(treatment, "conversion"),
                    "control_conversion": metric(control, "conversion"),
                    "conversion_delta": metric(treatment, "conversion", "delta"),
                    "conversion_ci95": metric(treatment, "conversion", "ci95"),
                    "false_declines": metric(treatment, "false_decline_rate", "numerator"),
                    "gmv_lost_minor": metric(treatment, "gmv_lost_minor"),
                })
            numbers["segment"] = {"feature": segment["feature"], "rows": rows}
    affected = numbers.get("segment", {}).get("rows") if segment else None
    source = affected if affected is not None else ([numbers["overall"]] if "overall" in numbers else [])
    if source:
        numbers["exposure_orders"] = _sum(r.get("treatment_orders") for r in source)
        numbers["orders_affected"] = _sum(r.get("false_declines") for r in source)
        numbers["gmv_lost_minor"] = _sum(r.get("gmv_lost_minor") for r in source)
    policy, policy_missing = upstream.try_call("current_policy")
    if policy_missing:
        numbers["mitigation"] = None
        numbers["mitigation_unavailable"] = policy_missing
    else:
        from incidents.services import describe_policy

        numbers["mitigation"] = {"version": policy.get("version"), "summary": describe_policy(policy),
                                 "reason": policy.get("reason")}
    return numbers


def window_currency(*, start: datetime, end: datetime) -> str | None:
    """The currency the window's amounts are in (the simulated marketplace settles in one).

    Reads one row, not the window: the KPI engine sums minor units and carries no currency."""
    from metrics.models import Decision

    return (Decision.objects.filter(occurred_at__gte=start, occurred_at__lt=end, arm="treatment")
            .order_by().values_list("currency", flat=True).first())


def _sum(values) -> int | None:
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def pct(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def pp(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:+.{digits}f} pp"


def money(minor, currency=None) -> str:
    if minor is None:
        return "n/a"
    return f"{minor / 100:,.2f} {currency or ''}".strip()


def count(value) -> str:
    return "n/a" if value is None else f"{value:,}"


def _ci(ci) -> str:
    if not ci or len(ci) != 2 or None in ci:
        return ""
    return f" (95% CI {ci[0] * 100:+.2f} to {ci[1] * 100:+.2f} pp)"


def impact_format(numbers: dict, extra_fraud: dict | None) -> dict:
    """The impact figures as display strings (one formatting for the exec page and postmortem)."""
    overall = numbers.get("overall") or {}
    currency = overall.get("currency")
    return {
        "treatment_conversion": pct(overall.get("treatment_conversion")),
        "control_conversion": pct(overall.get("control_conversion")),
        "conversion_delta": pp(overall.get("conversion_delta")),
        "exposure_orders": count(numbers.get("exposure_orders")),
        "orders_affected": count(numbers.get("orders_affected")),
        "gmv_lost": money(numbers.get("gmv_lost_minor"), currency),
        "extra_fraud": money((extra_fraud or {}).get("minor"), currency),
    }


def numbers_sentence(numbers: dict) -> str:
    if "overall" not in numbers:
        return f"Live numbers are not available yet ({numbers.get('unavailable', 'KPI engine missing')})."
    o = numbers["overall"]
    text = (f"Since {numbers['from']}: model (treatment) conversion {pct(o['treatment_conversion'])} vs control "
            f"{pct(o['control_conversion'])}, {pp(o['conversion_delta'])}{_ci(o['conversion_ci95'])}, over "
            f"{count(o['treatment_orders'])} treatment orders.")
    for row in numbers.get("segment", {}).get("rows", []):
        text += (f" In {numbers['segment']['feature']} = {row['value']}: treatment conversion "
                 f"{pct(row['treatment_conversion'])} vs control {pct(row['control_conversion'])} "
                 f"({pp(row['conversion_delta'])}{_ci(row['conversion_ci95'])}) over "
                 f"{count(row['treatment_orders'])} orders.")
    currency = o.get("currency")
    text += (f" Exposure: {count(numbers.get('exposure_orders'))} orders in the affected population; "
             f"{count(numbers.get('orders_affected'))} legitimate orders declined or challenged without passing; "
             f"GMV lost {money(numbers.get('gmv_lost_minor'), currency)}.")
    return text


def mitigation_sentence(numbers: dict) -> str:
    mitigation = numbers.get("mitigation")
    if not mitigation:
        return f"Current policy not available ({numbers.get('mitigation_unavailable', 'rollout missing')})."
    return f"Current policy v{mitigation['version']}: {mitigation['summary']}."


def draft(*, incident: Incident, audience: str, now: datetime | None = None) -> tuple[dict, dict]:
    """(sections, numbers) for a new draft of this audience."""
    from incidents.services import describe_population

    numbers = live_numbers(incident, now=now)
    population = describe_population(incident.affected_population)
    decisions = list(incident.decisions.order_by("-decided_at")[:3])
    open_hypotheses = [h for h in incident.hypotheses.all() if h.status in ("open", "supported")]
    open_criteria = [c.text for c in incident.exit_criteria.all() if c.met_at is None]
    done = "; ".join(d.decision for d in decisions) or "no decision recorded yet"
    if audience == "tactical":
        needs = [f"evidence on: {h.statement}" for h in open_hypotheses]
        overdue = [i.title for i in incident.action_items.all() if i.is_overdue]
        needs += [f"overdue action: {t}" for t in overdue]
        sections = {
            "conditions": f"{incident.severity} {incident.status}. Affected: {population}. {numbers_sentence(numbers)}",
            "actions": f"{mitigation_sentence(numbers)} Decisions: {done}.",
            "needs": "; ".join(needs) or "nothing outstanding",
        }
    elif audience == "executive":
        sections = {
            "status": f"{incident.reference} {incident.severity}, {incident.status}: {incident.title}.",
            "overview": f"{numbers_sentence(numbers)} {mitigation_sentence(numbers)}",
            "next_steps": ("Relaunch when: " + "; ".join(open_criteria)) if open_criteria
            else "Exit criteria are met or not yet defined; next update per cadence.",
        }
    elif audience == "support":
        when = f"since {numbers['from']}" if incident.is_open else f"between {numbers['from']} and {numbers['to']}"
        sections = {"message": (
            f"Known issue ({incident.reference}): {when} some buyers ({population}) were asked for extra "
            f"verification or declined at checkout although nothing was wrong with their account "
            f"({count(numbers.get('orders_affected'))} orders so far). {mitigation_sentence(numbers)} "
            "Tell the customer it was our error, not their card or account, and that they can retry now.")}
    elif audience == "seller":
        currency = numbers.get("overall", {}).get("currency")
        sections = {"message": (
            f"Some of your buyers' payments were declined or challenged by mistake {('since ' + numbers['from'])}"
            f" ({incident.reference}). Marketplace-wide this cost {count(numbers.get('orders_affected'))} orders "
            f"and about {money(numbers.get('gmv_lost_minor'), currency)} of sales. The cause is identified and "
            "contained; buyers can retry now.")}
    else:
        raise ValueError(f"audience: one of {', '.join(AUDIENCES)}")
    return sections, numbers


def evidence_sentence(evidence: dict) -> str:
    """One line per kind of evidence: what moved, how slow, what other thresholds would do."""
    parts = []
    drift = evidence.get("feature_drift")
    if drift is not None:
        moved = drift.get("moved") or []
        if moved:
            items = []
            for item in moved[:3]:
                seg = item.get("segment")
                where = f" in {seg['feature']} = {seg['value']}" if seg else " (all traffic)"
                items.append(f"{item.get('feature')}{where}: default share {pct(item.get('default_share'))} vs "
                             f"reference {pct(item.get('reference_default_share'))}, PSI "
                             f"{'n/a' if item.get('psi') is None else format(item['psi'], '.2f')} ({item.get('status')})")
            parts.append("Feature drift: " + "; ".join(items) + ".")
        else:
            parts.append(f"Feature drift: no feature moved beyond the rule ({drift.get('rule')}; "
                         f"{drift.get('checked') or 0} checked).")
    latency = evidence.get("latency")
    if latency is not None:
        arms = latency.get("by_arm") or {}
        t, c = arms.get("treatment") or {}, arms.get("control") or {}
        p95 = t.get("latency_p95_ms")
        parts.append(f"Latency: model cohort p95 {'n/a' if p95 is None else format(p95, '.0f') + ' ms'}, timeouts "
                     f"{pct(t.get('timeout_rate'), 2)}, fallback {pct(t.get('fallback_rate'), 2)} of decisions "
                     f"(control fallback {pct(c.get('fallback_rate'), 2)}).")
    thresholds = evidence.get("thresholds")
    if thresholds is not None:
        current = thresholds.get("current_thresholds") or {}
        options = [w for w in (thresholds.get("what_if") or []) if w.get("expected_conversion") is not None]
        best = max(options, key=lambda w: w["expected_conversion"], default=None)
        now = next((w for w in options if w.get("current")), None)
        text = (f"Thresholds: step-up {current.get('step_up', 'n/a')} / decline {current.get('decline', 'n/a')} over "
                f"{count(thresholds.get('scored_orders'))} scored orders")
        if now and best:
            text += (f"; expected conversion {pct(now['expected_conversion'])} now, best alternative "
                     f"{best['thresholds']['step_up']}/{best['thresholds']['decline']} gives "
                     f"{pct(best['expected_conversion'])}")
        parts.append(text + ".")
    return " ".join(parts)
