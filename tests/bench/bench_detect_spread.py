"""detect_spread: how much detect_seed's conversion figure owes to chance. The seed incident cuts
social-login conversion in treatment by ~14 pp, but only ~86 treatment orders of that population
arrive per minute, so when the first few hundred settle decides the breach: one stream's figure
is one draw. Here 15 simulator seeds x 5 positions of the ramp within the minute (rollups are per
minute) are replayed outside the product, each look (every 5 s) judged by the engine's own
`evaluate_delta` on the population feature health implicates (both social-login methods
pooled), with the weight held for it and no Holm step-down (the live evaluation frees more
alpha once other comparisons breach, so this is the slower side):
- counting younger orders with their outcomes so far (`metrics.outcomes_so_far`, as live), and
- settled orders only (as before), side by side on the same orders.
The figure is orders decided after the ramp until the breach, in minutes at 21 orders/s. Feature
health names the population in the first minute (detect_seed), before any comparison has its
minimum sample, so the pooled population is judged from the ramp on.
"""
from __future__ import annotations

import math
import statistics
import time
from datetime import UTC, datetime, timedelta

SEEDS = range(15)
RAMP_SECONDS_IN_MINUTE = (0, 12, 24, 36, 48)
RAMP_MINUTE = 40
POST_RAMP_MINUTES = 16
STEP_SECONDS = 5
SHOPSWIFT_RATE = 21.0
SOCIAL = ("social_apple", "social_google")


def _first_breach(np, guardrail, divisor, orders, offset: float, young: bool) -> float | None:
    """Minutes (orders after the ramp at 21/s) to the first breach; the ramp falls `offset`
    seconds into a minute."""
    from metrics.guardrails import Subject, evaluate_delta
    from metrics.models import group_value
    from metrics.outcomes_so_far import AGE_BIN_SECONDS, MODEL_MINUTES
    from tests.bench.replay import arm_outcomes

    t, treated, social, decision, delay = orders
    completed = ~np.isnan(delay)
    index = np.arange(len(t))
    maturity = guardrail.maturity_minutes * 60
    look = 0.0
    while look < POST_RAMP_MINUTES * 60:
        look += STEP_SECONDS
        settled_end = math.ceil((offset + look - maturity) / 60) * 60 - offset
        lo = int(np.searchsorted(t, max(0.0, settled_end - MODEL_MINUTES * 60)))
        mid = int(np.searchsorted(t, settled_end))
        hi = int(np.searchsorted(t, look, side="right"))
        counts, outcomes = {}, {}
        for arm, mask in (("treatment", social & treated), ("control", social & ~treated)):
            counts[arm] = {"orders": int(mask[:mid].sum()), "completed": int((mask[:mid] & completed[:mid]).sum())}
            if young:
                outcomes[arm] = arm_outcomes(np, mask, index, lo, mid, hi, t, look, decision, delay, AGE_BIN_SECONDS)
        subject = Subject("signup_method", group_value(list(SOCIAL)), counts["treatment"], counts["control"], "replay",
                          (outcomes["treatment"], outcomes["control"]) if young else None)
        if evaluate_delta(guardrail, subject, divisor=divisor).status == "breach":
            return hi / SHOPSWIFT_RATE / 60
    return None


def _summary(values: list[float | None]) -> dict:
    minutes = [v if v is not None else math.inf for v in values]
    finite = [v for v in minutes if v != math.inf]
    return {"median": round(statistics.median(minutes), 2), "max": round(max(minutes), 2) if finite else None,
            "within_10_min": sum(v <= 10 for v in minutes), "none_within_16_min": sum(v == math.inf for v in minutes),
            "p90": round(sorted(minutes)[int(0.9 * (len(minutes) - 1))], 2)}


def run():
    import numpy as np

    from metrics.guardrails import family_weight
    from metrics.models import Guardrail
    from rollout.simulator import generate
    from tests.bench.replay import CLASSES, DIMENSIONS, orders_of

    guardrail = Guardrail.objects.get(name="conversion")
    all_delta = list(Guardrail.objects.filter(kind="delta", enabled=True))
    wall = time.perf_counter()
    divisor = None
    so_far, settled_only, per_seed = [], [], {}
    for seed in SEEDS:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        ramp = start + timedelta(minutes=RAMP_MINUTE)
        events = list(generate("seed-incident", seed=seed, start=start, duration_minutes=RAMP_MINUTE + POST_RAMP_MINUTES,
                               include_late_outcomes=False))
        replayed = [o for o in orders_of(events, ramp) if o[1] >= 0]
        if divisor is None:
            # the live family: every delta guardrail x (all traffic + the segment values in its scope)
            values = {name: {o[5][name] for o in replayed} for name in DIMENSIONS}
            comparisons = sum(1 + (sum(len(v) for v in values.values()) if g.segment_feature == "*" else
                                   len(values.get(g.segment_feature, ())) if g.segment_feature else 0) for g in all_delta)
            total, held = family_weight(comparisons=comparisons,
                                        covering_guardrails=sum(1 for g in all_delta if g.segment_feature))
            divisor = total / held
        orders = (np.array([o[1] for o in replayed]), np.array([o[6] == "treatment" for o in replayed]),
                  np.array([o[5]["signup_method"] in SOCIAL for o in replayed]),
                  np.array([CLASSES.index(o[2]) for o in replayed]),
                  np.array([np.nan if o[3] is None else o[3] for o in replayed]))
        row = []
        for offset in RAMP_SECONDS_IN_MINUTE:
            so_far.append(_first_breach(np, guardrail, divisor, orders, offset, young=True))
            settled_only.append(_first_breach(np, guardrail, divisor, orders, offset, young=False))
            row.append([None if v is None else round(v, 2) for v in (so_far[-1], settled_only[-1])])
        per_seed[seed] = row
    yield {"name": "detect_spread.conversion_segment_median", "value": _summary(so_far)["median"],
           "unit": "minutes at 21 orders/s", "target": 10.0, "passed": _summary(so_far)["median"] <= 10.0,
           "runs": len(so_far), "alpha": round(0.05 / divisor, 4), "comparisons": comparisons, **_summary(so_far),
           "settled_only": _summary(settled_only), "seconds": round(time.perf_counter() - wall, 1)}
    yield {"name": "detect_spread.per_seed", "value": len(per_seed), "unit": "seeds",
           "detail": "per seed, per ramp position: [with younger orders, settled only] minutes",
           "runs": {str(seed): row for seed, row in per_seed.items()}}
