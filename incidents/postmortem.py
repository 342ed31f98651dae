"""The postmortem: assembled from the incident record (timeline, decisions, hypotheses, action
items), impact computed from the KPI engine, plus the narrative sections people write.
Rendered as a page and exported as Markdown."""
from __future__ import annotations

from datetime import timedelta

from incidents import comms, selectors
from incidents.models import POSTMORTEM_SECTIONS, Incident
from incidents.services import describe_population


def duration(delta: timedelta | None) -> str:
    if delta is None:
        return "n/a"
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def build(incident: Incident) -> dict:
    sections = {s.key: s for s in incident.postmortem_sections.all()}
    impact = comms.live_numbers(incident)
    return {
        "incident": incident,
        "population": describe_population(incident.affected_population),
        "ttd": duration(incident.time_to_detect),
        "ttm": duration(incident.time_to_mitigate),
        "ttr": duration(incident.time_to_resolve),
        "impact": impact,
        "impact_fmt": comms.impact_format(impact, None),
        "timeline": selectors.timeline(incident, include_system=True),
        "decisions": list(incident.decisions.select_related("decided_by")),
        "hypotheses": list(incident.hypotheses.all()),
        "action_items": list(incident.action_items.select_related("owner")),
        "narrative": [(key, label, sections[key].body if key in sections else "")
                      for key, label in POSTMORTEM_SECTIONS.items()],
    }


def _md(text: str) -> str:
    return (text or "").replace("\r\n", "\n").strip()


def _cell(text) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def to_markdown(incident: Incident) -> str:
    data = build(incident)
    impact = data["impact"]
    overall = impact.get("overall") or {}
    currency = overall.get("currency")
    lines = [
        f"# Postmortem {incident.reference}: {incident.title}", "",
        f"- Severity: {incident.severity} ({incident.severity_definition})",
        f"- Status: {incident.status}",
        f"- Affected population: {data['population']}",
        f"- Impact started: {incident.started_at:%Y-%m-%d %H:%M:%S} UTC",
        f"- Detected: {incident.detected_at:%Y-%m-%d %H:%M:%S} UTC (time to detect {data['ttd']})",
        f"- Mitigated: {incident.mitigated_at:%Y-%m-%d %H:%M:%S} UTC (time to mitigate {data['ttm']})"
        if incident.mitigated_at else "- Mitigated: not yet",
        f"- Resolved: {incident.resolved_at:%Y-%m-%d %H:%M:%S} UTC (time to resolve {data['ttr']})"
        if incident.resolved_at else "- Resolved: not yet",
        "", "## Impact (computed from events)", "",
    ]
    if "overall" in impact:
        lines += [
            f"Window {impact['from']} to {impact['to']} ({impact.get('population') or 'all eligible orders'}).", "",
            f"- Conversion: treatment {comms.pct(overall['treatment_conversion'])} vs control "
            f"{comms.pct(overall['control_conversion'])} ({comms.pp(overall['conversion_delta'])})",
            f"- Orders exposed in the affected population: {comms.count(impact.get('exposure_orders'))}",
            f"- Legitimate orders declined or challenged without passing: {comms.count(impact.get('orders_affected'))}",
            f"- GMV lost: {comms.money(impact.get('gmv_lost_minor'), currency)}",
        ]
    else:
        lines.append(f"Not available: {impact.get('unavailable')}")
    for key, label, body in data["narrative"]:
        lines += ["", f"## {label}", "", _md(body) or "_(not written yet)_"]
    lines += ["", "## Decisions", ""]
    for decision in data["decisions"]:
        who = decision.decided_by.get_username() if decision.decided_by else decision.recorded_by
        lines.append(f"### {decision.decided_at:%Y-%m-%d %H:%M} UTC: {decision.decision}")
        lines.append(f"Decided by {who}; consulted: {decision.consulted or 'nobody recorded'}"
                     + (f"; carried out as policy v{decision.policy_version}" if decision.policy_version else ""))
        if decision.rationale:
            lines += ["", _md(decision.rationale)]
        for option in decision.options:
            lines.append(f"- Option: {option.get('option')}: {option.get('expected_effect') or ''}")
        if decision.trade_offs:
            lines += ["", f"Trade-offs: {_md(decision.trade_offs)}"]
        lines.append("")
    lines += ["## Hypotheses", "", "| hypothesis | kind | status |", "|---|---|---|"]
    for hypothesis in data["hypotheses"]:
        lines.append(f"| {_cell(hypothesis.statement)} | {hypothesis.get_kind_display()} | {hypothesis.status} |")
    lines += ["", "## Action items", "", "| item | kind | owner | due | status |", "|---|---|---|---|---|"]
    for item in data["action_items"]:
        owner = item.owner.get_username() if item.owner else ""
        lines.append(f"| {_cell(item.title)} | {item.kind} | {_cell(owner)} | {item.due_on} | "
                     f"{item.status}{' (overdue)' if item.is_overdue else ''} |")
    lines += ["", "## Timeline (UTC)", "", "| time | kind | source | entry |", "|---|---|---|---|"]
    for entry in data["timeline"]:
        lines.append(f"| {entry.at:%Y-%m-%d %H:%M:%S} | {entry.kind} | {_cell(entry.source)} | {_cell(entry.text)} |")
    return "\n".join(lines) + "\n"
