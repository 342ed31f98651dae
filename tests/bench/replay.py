"""Orders replayed outside the product, as the conversion guardrail would see them at a look
(shared by the benchmarks that replay many runs: aa_false_alarm, detect_spread)."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

CLASSES = ("approve", "step_up", "decline")
DIMENSIONS = ("signup_method", "is_repeat_buyer", "amount_band")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def orders_of(events, started: datetime):
    """Per order, in time order: (buyer, seconds after `started` of its first decision, final
    decision, seconds to its completion or None, false decline, segment values, arm)."""
    decisions, kinds, completed_at = {}, defaultdict(set), {}
    for event in events:
        if event["type"] == "decision":
            decisions.setdefault(event["order_id"], []).append(event)
        else:
            kinds[event["order_id"]].add(event["kind"])
            if event["kind"] == "checkout_completed":
                completed_at.setdefault(event["order_id"], _parse(event["occurred_at"]))
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
                           else str(features.get(name))) for name in DIMENSIONS}
        at = _parse(first["occurred_at"])
        done = completed_at.get(order_id)
        orders.append((first["buyer_id"], (at - started).total_seconds(), last["decision"],
                       None if done is None else max(0.0, (done - at).total_seconds()), refused and legit, segments, first["arm"]))
    return sorted(orders, key=lambda o: o[1])


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def arm_outcomes(np, mask, index, lo, mid, hi, t, look, decision, delay, bin_seconds):
    """ArmOutcomes of the orders in `mask`: settled ones in [lo, mid) teach, young ones in
    [mid, hi) count with their outcomes at `look` (as metrics.outcomes_so_far reads them)."""
    from metrics.outcomes_so_far import ArmOutcomes

    outcomes = ArmOutcomes()
    sel = index[lo:mid][mask[lo:mid]]
    if len(sel):
        done = ~np.isnan(delay[sel]) & (t[sel] + np.nan_to_num(delay[sel], nan=0.0) <= look)
        bins = np.where(done, np.floor(np.nan_to_num(delay[sel], nan=0.0) / bin_seconds), -1).astype(int)
        for c, name in enumerate(CLASSES):
            in_class = decision[sel] == c
            m = int(in_class.sum())
            if not m:
                continue
            completed_bins = bins[in_class & done]
            values, counts = np.unique(completed_bins, return_counts=True)
            outcomes.classes[name] = [m, int(len(completed_bins)), {int(v): int(n) for v, n in zip(values, counts)}]
    sel = index[mid:hi][mask[mid:hi]]
    if len(sel):
        age = look - t[sel]
        done = ~np.isnan(delay[sel]) & (np.nan_to_num(delay[sel], nan=1e9) <= age)
        keys = decision[sel] * 2 * 1000 + done * 1000 + np.floor(age / bin_seconds).astype(int)
        values, counts = np.unique(keys, return_counts=True)
        for v, n in zip(values.tolist(), counts.tolist()):
            outcomes.young[(CLASSES[v // 2000], bool((v // 1000) % 2), v % 1000)] = n
    return outcomes
