"""aa_false_alarm: 200 A/A runs with no real difference, peeking at every evaluation; the share
of runs in which any conversion or false-decline guardrail (any segment) breaches. Target <= 5%.

One stream of simulator orders (the baseline scenario) is split into arms again and again by an
independent hash of the buyer id with a run-specific salt (re-randomisation: whatever the
simulated buyers do, the arms differ only by chance). Each run peeks every 30 simulated seconds
and evaluates the default conversion and false-decline guardrails on all traffic and every
segment value with the engine's own sequential test (`metrics.guardrails.evaluate_delta`),
alpha Bonferroni-corrected over the same number of comparisons as the live evaluation.
Counts per look are the KPI definitions applied to the simulated orders.
"""
from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

RUNS = 200
MINUTES = 20
LOOK_EVERY_ORDERS = 630  # 30 s at 21 orders/s


def _orders(events):
    decisions, kinds = {}, defaultdict(set)
    for event in events:
        if event["type"] == "decision":
            decisions.setdefault(event["order_id"], []).append(event)
        else:
            kinds[event["order_id"]].add(event["kind"])
    orders = []
    for order_id, rows in decisions.items():
        first, last = rows[0], rows[-1]
        k = kinds[order_id]
        features = first["features"]
        legit = "review_legit" in k or (features.get("is_repeat_buyer") is True
                                         and (features.get("prior_good_orders") or 0) >= 3
                                         and not k & {"chargeback", "fraud_confirmed", "review_fraud"})
        refused = last["decision"] == "decline" or (last["decision"] == "step_up" and "step_up_passed" not in k)
        segments = {name: ("null" if features.get(name) is None else
                           "true" if features.get(name) is True else "false" if features.get(name) is False
                           else str(features.get(name))) for name in ("signup_method", "is_repeat_buyer", "amount_band")}
        orders.append((first["buyer_id"], "checkout_completed" in k, refused and legit, segments))
    return orders


def run():
    from metrics.guardrails import evaluate_delta, family_weight
    from metrics.kpis import _empty_counts
    from metrics.models import Guardrail
    from rollout.simulator import generate

    guardrails = [g for g in Guardrail.objects.filter(kind="delta", enabled=True)
                  if g.metric in ("conversion", "false_decline_rate")]
    all_delta = list(Guardrail.objects.filter(kind="delta", enabled=True))
    started = datetime.now(UTC) - timedelta(hours=2)
    events = list(generate("baseline", seed=5, start=started, duration_minutes=MINUTES, include_late_outcomes=False,
                           policy={"version": 2, "mode": "active", "traffic_pct": 50.0, "salt": "aa",
                                   "model_version": "fraud-gbm-v3", "thresholds": {"step_up": 0.6, "decline": 0.9},
                                   "timeout_ms": 80, "fallback": "step_up", "segment_overrides": []}))
    orders = _orders(events)
    values = {name: sorted({o[3][name] for o in orders}) for name in ("signup_method", "is_repeat_buyer", "amount_band")}
    # the live engine's comparison count: every delta guardrail x (all traffic + segment values in scope),
    # and its family weight (part of it held for implicated populations, which an A/A run has none of)
    tests = sum(1 + (sum(len(v) for v in values.values()) if g.segment_feature == "*" else
                     len(values.get(g.segment_feature, [])) if g.segment_feature else 0) for g in all_delta)
    divisor, _ = family_weight(comparisons=tests, covering_guardrails=sum(1 for g in all_delta if g.segment_feature))
    wall = time.perf_counter()
    runs_with_alarm, looks = 0, 0
    for run_index in range(RUNS):
        salt = f"aa-run-{run_index}"
        counts = defaultdict(_empty_counts)
        alarmed = False
        for i, (buyer, completed, false_decline, segments) in enumerate(orders, start=1):
            bucket = int(hashlib.sha256(f"{salt}:{buyer}".encode()).hexdigest()[:8], 16) % 2
            arm = "treatment" if bucket else "control"
            for key in [("", ""), *segments.items()]:
                c = counts[(arm, key)]
                c["orders"] += 1
                c["completed"] += completed
                c["false_declines"] += false_decline
            if i % LOOK_EVERY_ORDERS and i != len(orders):
                continue
            looks += 1
            for guardrail in guardrails:
                keys = [("", "")] + ([(name, value) for name in values for value in values[name]]
                                     if guardrail.segment_feature == "*" else [])
                for seg_feature, value in keys:
                    subject = (seg_feature or None, value, counts[("treatment", (seg_feature, value))],
                               counts[("control", (seg_feature, value))])
                    if evaluate_delta(guardrail, subject, divisor=divisor).status == "breach":
                        alarmed = True
                        break
                if alarmed:
                    break
            if alarmed:
                break
        runs_with_alarm += alarmed
    share = runs_with_alarm / RUNS
    yield {"name": "aa_false_alarm.share_of_runs_with_a_breach", "value": share, "unit": "share of runs",
           "target": 0.05, "passed": share <= 0.05, "runs": RUNS, "orders_per_run": len(orders),
           "looks_per_run": -(-len(orders) // LOOK_EVERY_ORDERS), "comparisons": tests, "bonferroni_divisor": round(divisor, 2),
           "seconds": round(time.perf_counter() - wall, 1)}
