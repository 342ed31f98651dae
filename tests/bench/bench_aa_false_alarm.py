"""aa_false_alarm: 200 A/A runs with no real difference, peeking at every evaluation; the share
of runs in which any conversion or false-decline guardrail (any segment) breaches. Target <= 5%.

One stream of simulator orders (the baseline scenario) is split into arms again and again by an
independent hash of the buyer id with a run-specific salt (re-randomisation: whatever the
simulated buyers do, the arms differ only by chance). Each run peeks every 30 simulated seconds
and evaluates the default conversion and false-decline guardrails on all traffic and every
segment value with the engine's own sequential test (`metrics.guardrails.evaluate_delta`),
alpha Bonferroni-corrected over the same number of comparisons as the live evaluation.
Each look sees what the live evaluation would: orders older than the guardrails' maturity
(settled, whole minutes as the rollups hold them) by the KPI definitions, and for conversion
also the younger orders with the outcomes they have so far, through the engine's own estimate
(`metrics.outcomes_so_far`: completion rates and delays learned per arm from the last 15 minutes
of settled orders).
"""
from __future__ import annotations

import hashlib
import math
import time
from datetime import UTC, datetime, timedelta

RUNS = 200
MINUTES = 20
LOOK_SECONDS = 30
MATURITY_SECONDS = 240


def run():
    import numpy as np

    from metrics.guardrails import Subject, evaluate_delta, family_weight
    from metrics.models import Guardrail
    from metrics.outcomes_so_far import AGE_BIN_SECONDS, MODEL_MINUTES
    from rollout.simulator import generate
    from tests.bench.replay import CLASSES, DIMENSIONS, arm_outcomes, orders_of

    guardrails = [g for g in Guardrail.objects.filter(kind="delta", enabled=True)
                  if g.metric in ("conversion", "false_decline_rate")]
    assert all(g.maturity_minutes * 60 == MATURITY_SECONDS for g in guardrails), "the bench assumes the default maturity"
    all_delta = list(Guardrail.objects.filter(kind="delta", enabled=True))
    started = datetime.now(UTC) - timedelta(hours=2)
    events = list(generate("baseline", seed=5, start=started, duration_minutes=MINUTES, include_late_outcomes=False,
                           policy={"version": 2, "mode": "active", "traffic_pct": 50.0, "salt": "aa",
                                   "model_version": "fraud-gbm-v3", "thresholds": {"step_up": 0.6, "decline": 0.9},
                                   "timeout_ms": 80, "fallback": "step_up", "segment_overrides": []}))
    orders = orders_of(events, started)
    values = {name: sorted({o[5][name] for o in orders}) for name in DIMENSIONS}
    # the live engine's comparison count: every delta guardrail x (all traffic + segment values in scope),
    # and its family weight (part of it held for implicated populations, which an A/A run has none of)
    tests = sum(1 + (sum(len(v) for v in values.values()) if g.segment_feature == "*" else
                     len(values.get(g.segment_feature, [])) if g.segment_feature else 0) for g in all_delta)
    divisor, _ = family_weight(comparisons=tests, covering_guardrails=sum(1 for g in all_delta if g.segment_feature))

    t = np.array([o[1] for o in orders])
    decision = np.array([CLASSES.index(o[2]) for o in orders])
    delay = np.array([np.nan if o[3] is None else o[3] for o in orders])
    completed = ~np.isnan(delay)
    false_decline = np.array([o[4] for o in orders])
    index = np.arange(len(orders))
    populations = [("", "", np.ones(len(orders), dtype=bool))] + [
        (name, value, np.array([o[5][name] == value for o in orders])) for name in DIMENSIONS for value in values[name]]
    offset = started.timestamp()
    looks_at = np.arange(LOOK_SECONDS, MINUTES * 60 + 1e-9, LOOK_SECONDS)

    def settled_end(look):  # first-decision time (s after start) before which orders are settled: whole minutes
        return math.ceil((offset + look - MATURITY_SECONDS) / 60) * 60 - offset

    wall = time.perf_counter()
    runs_with_alarm, looks, young_seen = 0, 0, 0
    for run_index in range(RUNS):
        salt = f"aa-run-{run_index}"
        treated = np.array([int(hashlib.sha256(f"{salt}:{o[0]}".encode()).hexdigest()[:8], 16) % 2 == 1 for o in orders])
        alarmed = False
        for look in looks_at:
            looks += 1
            end = settled_end(look)
            lo = int(np.searchsorted(t, max(0.0, end - MODEL_MINUTES * 60)))
            mid = int(np.searchsorted(t, end))
            hi = int(np.searchsorted(t, look, side="right"))
            for guardrail in guardrails:
                keys = populations if guardrail.segment_feature == "*" else populations[:1]
                for seg_feature, value, in_population in keys:
                    arms = {}
                    for arm, arm_mask in (("treatment", treated), ("control", ~treated)):
                        mask = in_population & arm_mask
                        settled = mask[:mid]
                        arms[arm] = {"orders": int(settled.sum()), "completed": int((settled & completed[:mid]).sum()),
                                     "false_declines": int((settled & false_decline[:mid]).sum())}
                        if guardrail.metric == "conversion":
                            arms[arm + "_young"] = arm_outcomes(np, mask, index, lo, mid, hi, t, look, decision, delay,
                                                                 AGE_BIN_SECONDS)
                    young = (arms["treatment_young"], arms["control_young"]) if guardrail.metric == "conversion" else None
                    young_seen += bool(young and young[0].young_orders)
                    subject = Subject(seg_feature or None, value, arms["treatment"], arms["control"], "A/A", young)
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
           "looks_per_run": len(looks_at), "comparisons": tests, "bonferroni_divisor": round(divisor, 2),
           "conversion_looks_with_young_orders": young_seen, "seconds": round(time.perf_counter() - wall, 1)}
