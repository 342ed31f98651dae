"""An independent reference for the KPI counts: plain Python over the raw events read back from
PostgreSQL, following CONTRACT section 5 word by word."""
from __future__ import annotations

from collections import defaultdict

from metrics.models import Decision, Outcome


def raw_counts(*, start, end, segment_feature=None) -> dict:
    decisions = defaultdict(list)
    for d in Decision.objects.all():
        decisions[d.order_id].append(d)
    outcomes = defaultdict(list)
    for o in Outcome.objects.all():
        outcomes[o.order_id].append(o)
    result = defaultdict(lambda: defaultdict(int))
    for order_id, rows in decisions.items():
        rows.sort(key=lambda d: (d.occurred_at, d.event_id))
        first, last = rows[0], rows[-1]
        if not (start <= first.occurred_at < end):
            continue
        kinds = {o.kind for o in outcomes[order_id]}
        features = first.features
        if segment_feature:
            value = features.get(segment_feature)
            value = "null" if value is None else ("true" if value is True else "false" if value is False else str(value))
        else:
            value = ""
        c = result[(first.arm, value)]
        c["orders"] += 1
        c["decisions"] += len(rows)
        c["fallback_decisions"] += sum(d.decided_by == "fallback" for d in rows)
        c["timeout_decisions"] += sum(d.timed_out for d in rows)
        c["called_decisions"] += sum(d.decided_by in ("model", "fallback") for d in rows)
        completed = "checkout_completed" in kinds
        c["completed"] += completed
        c[f"{last.decision}_final"] += 1
        step_up = any(d.decision == "step_up" for d in rows)
        c["step_up_orders"] += step_up
        c["step_up_passed"] += step_up and "step_up_passed" in kinds
        legit = "review_legit" in kinds or (
            features.get("is_repeat_buyer") is True and isinstance(features.get("prior_good_orders"), (int, float))
            and features["prior_good_orders"] >= 3 and not kinds & {"chargeback", "fraud_confirmed", "review_fraud"})
        refused = last.decision == "decline" or (last.decision == "step_up" and "step_up_passed" not in kinds)
        c["false_declines"] += refused and legit
        c["support_tickets"] += any(o.kind == "support_ticket" and o.detail == "payment_failed" for o in outcomes[order_id])
        c["chargebacks"] += completed and "chargeback" in kinds
        c["amount_sum"] += first.amount_minor
        if completed:
            c["completed_amount"] += first.amount_minor
            if kinds & {"fraud_confirmed", "chargeback", "high_risk_signal"}:
                c["fraud_loss_amount"] += first.amount_minor
    return result


def raw_latencies(*, start, end) -> dict[str, list[float]]:
    firsts = {}
    for d in Decision.objects.order_by("occurred_at", "event_id"):
        firsts.setdefault(d.order_id, d)
    values = defaultdict(list)
    for d in Decision.objects.all():
        first = firsts[d.order_id]
        if start <= first.occurred_at < end and d.decided_by in ("model", "fallback"):
            values[first.arm].append(d.latency_ms)
    return values
