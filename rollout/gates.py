"""Ramp gates: named guardrails that must hold before a stage may be left.

A gate names a guardrail (by its `name`, or by its `metric` to cover every guardrail on that
metric, all segments included). It passes only when every matching guardrail is `ok` AND has met
its minimum sample. Anything else blocks: `warn`/`breach` fail the gate, while
`insufficient_data`, an unmet minimum sample, no matching guardrail or no guardrail engine at all
count as missing data, which never passes (the stage is extended instead; see services).
"""
from __future__ import annotations

import logging

from shopswift_ops.read_scope import reads_once

logger = logging.getLogger(__name__)

MISSING_DATA = "missing_data"
INSUFFICIENT = "insufficient_data"


@reads_once
def latest_guardrail_statuses() -> tuple[list[dict] | None, str]:
    """The guardrail engine's latest statuses, or (None, why) when they cannot be read."""
    try:
        from metrics.guardrails import latest_statuses
    except ImportError:
        return None, "the guardrail engine is not installed yet"
    try:
        return list(latest_statuses()), ""
    except Exception as exc:  # noqa: BLE001 - an unreadable engine is missing data, never a pass
        logger.warning("guardrail statuses unavailable", exc_info=True)
        return None, f"guardrail statuses unavailable ({type(exc).__name__})"


def _segment_text(segment) -> str:
    if not segment:
        return "all traffic"
    return f"{segment.get('feature')}={segment.get('value')}"


def evaluate_gates(names: list[str], statuses: list[dict] | None = None, unavailable: str = "") -> list[dict]:
    """One result per gate: {name, status, passing, missing_data, detail, guardrails}."""
    if statuses is None and not unavailable:
        statuses, unavailable = latest_guardrail_statuses()
    results = []
    for name in names:
        if statuses is None:
            results.append({"name": name, "status": MISSING_DATA, "passing": False, "missing_data": True,
                            "detail": f"no data: {unavailable}", "guardrails": []})
            continue
        matching = [item for item in statuses if item.get("name") == name or item.get("metric") == name]
        if not matching:
            results.append({"name": name, "status": MISSING_DATA, "passing": False, "missing_data": True,
                            "detail": f"no data: no guardrail named {name!r} reports a status", "guardrails": []})
            continue
        problems = []
        worst = "ok"
        for item in matching:
            status = item.get("status")
            enough = bool(item.get("min_sample_met"))
            where = _segment_text(item.get("segment"))
            if status in ("breach", "warn"):
                problems.append(f"{item.get('name')} ({where}) is {status}: {item.get('evidence', '')}".strip())
                worst = "breach" if status == "breach" or worst == "breach" else "warn"
            elif status != "ok" or not enough:
                problems.append(f"{item.get('name')} ({where}) lacks its minimum sample: {item.get('evidence', '')}".strip())
                if worst == "ok":
                    worst = INSUFFICIENT
        passing = worst == "ok"
        results.append({
            "name": name, "status": worst, "passing": passing, "missing_data": worst == INSUFFICIENT,
            "detail": "ok with its minimum sample" if passing else "; ".join(problems),
            "guardrails": [{"name": i.get("name"), "segment": i.get("segment"), "status": i.get("status"),
                            "min_sample_met": bool(i.get("min_sample_met"))} for i in matching],
        })
    return results
