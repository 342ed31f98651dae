"""Turn a guardrail breach (announced by metrics on the "alerts" topic) into its rollout action,
exactly once per alert: the claim is an INSERT on a unique alert_id in the same transaction as
the action, so a repeated or concurrent delivery does nothing, and a failed action leaves the
alert unclaimed for the next delivery.
"""
from __future__ import annotations

import logging

from django.db import transaction

from metrics.models import segment_members
from rollout import services
from rollout.models import AuditEntry, GuardrailActionRecord

logger = logging.getLogger(__name__)
ACTOR = "guardrail"
GUARDRAIL_ACTIONS = ("notify", "halt_ramp", "rollback_stage", "exclude_segment", "kill")


def _rollback_stage(reason: str) -> dict:
    status = services.ramp_status()
    current = status["current_stage"]
    if current is None or current["index"] <= 0:
        # Below the first stage there is nothing to step back to but no exposure at all.
        return services.apply_action(action="kill", params={}, reason=reason, actor=ACTOR)
    previous = status["stages"][current["index"] - 1]["name"]
    return services.apply_action(action="rollback", params={"to_stage": previous}, reason=reason, actor=ACTOR)


def _pause(reason: str) -> None:
    if not services.ramp_status()["paused"]:
        services.pause_plan(actor=ACTOR, reason=reason)


def handle_alert(payload: dict) -> str:
    """Subscriber of the "alerts" topic. Returns what was done (for logs and tests)."""
    if payload.get("status") != "breach":
        return "ignored: not a breach"
    alert_id, action = payload.get("alert_id"), payload.get("action")
    name = str(payload.get("guardrail") or "?")
    if not isinstance(alert_id, int) or action not in GUARDRAIL_ACTIONS:
        logger.error("malformed alert payload ignored", extra={"alert_id": alert_id, "action": action})
        return "ignored: malformed"
    reason = f"guardrail {name} breached: {payload.get('evidence', '')}".strip()
    with transaction.atomic():
        if not services.record_guardrail_alert(alert_id=alert_id, guardrail=name, action=action):
            return "duplicate: already handled"
        outcome, version = _perform(action, payload, reason)
        GuardrailActionRecord.objects.filter(alert_id=alert_id).update(outcome=outcome, policy_version=version)
        AuditEntry.objects.create(at=GuardrailActionRecord.objects.get(alert_id=alert_id).handled_at,
                                  kind=AuditEntry.Kind.GUARDRAIL, actor=ACTOR, action=action, policy_version=version,
                                  reason=reason, detail={"alert_id": alert_id, "guardrail": name,
                                                         "metric": payload.get("metric"),
                                                         "segment": payload.get("segment"), "outcome": outcome})
    return outcome


def _perform(action: str, payload: dict, reason: str) -> tuple[str, int | None]:
    try:
        if action == "notify":
            return "notified (no policy change)", None
        if action == "halt_ramp":
            _pause(reason)
            return "ramp halted", services.current_policy()["version"]
        if action == "kill":
            document = services.apply_action(action="kill", params={}, reason=reason, actor=ACTOR)
            return "killed: everyone to control", document["version"]
        if action == "exclude_segment":
            segment = payload.get("segment") or {}
            if segment.get("feature"):
                values = segment_members(segment)  # a pooled population: both social-login methods
                document = services.apply_action(
                    action="exclude_segment", params={"feature": segment["feature"], "in": values},
                    reason=reason, actor=ACTOR)
                _pause(reason)
                where = f"={values[0]}" if len(values) == 1 else f" in ({', '.join(values)})"
                return f"excluded {segment['feature']}{where}", document["version"]
            # A breach on all traffic has no segment to exclude: step back a stage instead.
        document = _rollback_stage(reason)
        _pause(reason)
        return f"rolled back to {document['traffic_pct']:g}%", document["version"]
    except services.ActionError as exc:
        # A refusal is a definite answer (e.g. nothing left to roll back); it is recorded, not retried.
        return f"refused: {exc.detail}", services.current_policy()["version"]
