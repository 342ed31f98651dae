"""Evidence for the three competing hypotheses of an incident, side by side:
- feature drift: which monitored features moved in which segments, by how much, since when;
- latency: p50/p95/p99 per arm, timeout and fallback rates, the share of treatment decisions
  made by the fallback, and the treatment p95 / fallback-rate trend;
- thresholds: the treatment score distribution against the policy's thresholds, and a what-if:
  the decision mix and expected conversion of the window's treatment traffic re-decided under
  other thresholds, from the stored scores. Expected conversion applies the conversion observed
  per final decision in the window (approve, step-up; decline converts nobody) to the new mix:
  an estimate that assumes buyers react to a decision as they did in the window.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection

from metrics import stats
from metrics.feature_health import _thresholds, feature_health, reference_window, rule_text
from metrics.kpis import (PERCENTILES, _empty_counts, cohort_counts, kpi_timeseries, latency_histograms,
                          segment_value_text)
from metrics.models import FeatureDefinition
from metrics.population import policy_document
from metrics.rollups import latency_bin_value

SCORE_BINS = 50
WHAT_IF_STEP_UP = (0.5, 0.6, 0.7, 0.8)
WHAT_IF_DECLINE = (0.85, 0.9, 0.95)


def _iso(moment):
    return moment.isoformat() if moment else None


def feature_drift(*, start: datetime, end: datetime) -> dict:
    margin, psi_threshold, min_sample = _thresholds()
    items = []
    for seg in [None, *FeatureDefinition.objects.filter(segment_dimension=True).values_list("name", flat=True)]:
        items += feature_health(start=start, end=end, segment_feature=seg, include_overall=seg is None)
    moved = [i for i in items if i["status"] in ("breach", "warn")]
    moved.sort(key=lambda i: (-(i["default_share_increase"] or 0), -(i["psi"] or 0)))
    for item in moved[:12]:
        item["since"] = _drift_since(item, start=start, end=end, margin=margin)
    reference = reference_window(start=start, end=end)
    return {"reference": {"kind": reference["kind"], "from": _iso(reference["from"]), "to": _iso(reference["to"])} if reference else None,
            "rule": rule_text(margin=margin, psi_threshold=psi_threshold, min_sample=min_sample),
            "moved": moved, "checked": len(items)}


def _drift_since(item: dict, *, start: datetime, end: datetime, margin: float) -> str | None:
    """The first minute of the window whose default share exceeds the reference by the margin."""
    if item["reference_default_share"] is None:
        return None
    seg = item["segment"]
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT bucket, sum(defaults)::float8 / nullif(sum(n), 0) FROM metrics_rollup_feature_minute
               WHERE bucket >= %s AND bucket < %s AND feature = %s AND seg_feature = %s AND seg_value = %s
               GROUP BY bucket HAVING sum(n) >= 5 ORDER BY bucket""",
            [start - timedelta(hours=1), end, item["feature"], seg["feature"] if seg else "", seg["value"] if seg else ""])
        rows = cursor.fetchall()
    since = None
    for bucket, share in rows:
        if share is not None and share - item["reference_default_share"] > margin:
            since = since or bucket
        else:
            since = None
    return _iso(since)


def latency(*, start: datetime, end: datetime, trend: bool = True) -> dict:
    counts = cohort_counts(start=start, end=end)
    histograms = latency_histograms(start=start, end=end)
    by_arm = {}
    for arm in ("control", "treatment"):
        c = counts.get((arm, "")) or _empty_counts()
        h = histograms.get((arm, "")) or {}
        by_arm[arm] = {
            **{key: stats.histogram_quantile(h, q, latency_bin_value) for key, q in PERCENTILES},
            "model_called_decisions": c["called_decisions"],
            "decisions": c["decisions"],
            "timeout_rate": c["timeout_decisions"] / c["decisions"] if c["decisions"] else None,
            "fallback_rate": c["fallback_decisions"] / c["decisions"] if c["decisions"] else None,
        }
    document = {"by_arm": by_arm, "treatment_fallback_share": by_arm["treatment"]["fallback_rate"]}
    if not trend:  # the war room draws these series in its own charts already
        return document
    seconds = max(60, int((end - start).total_seconds() // 30) // 60 * 60)
    series = kpi_timeseries(start=start, end=end, bucket_seconds=seconds)
    treatment = series["arms"]["treatment"]
    document["trend"] = {"buckets": series["buckets"], "treatment_p95_ms": treatment["latency_p95_ms"]["value"],
                         "treatment_fallback_rate": treatment["fallback_rate"]["value"]}
    return document


WHAT_IF_WINDOW = timedelta(hours=1)


def thresholds(*, start: datetime, end: datetime) -> dict:
    # The what-if re-decides the last hour's treatment traffic (however long the page's range):
    # the thresholds in force now against the traffic of now, and a bounded scan of raw decisions.
    start = max(start, end - WHAT_IF_WINDOW)
    with connection.cursor() as cursor:
        # The first decision's score sits on the order's fact: one range scan of the facts, no
        # join of an hour of raw decisions (the war room's largest query before).
        cursor.execute(
            f"""SELECT least(width_bucket(first_model_score, 0, 1, {SCORE_BINS}), {SCORE_BINS}) AS b, final_decision,
                       count(*), count(*) FILTER (WHERE completed)
                FROM metrics_order_fact
                WHERE first_at >= %s AND first_at < %s AND arm = 'treatment' AND first_model_score IS NOT NULL
                GROUP BY 1, 2""", [start, end])
        rows = cursor.fetchall()
        # The newest treatment order's policy version, from the facts' first_at index (a scan of
        # the raw decisions would sort the whole window).
        cursor.execute(
            """SELECT policy_version FROM metrics_order_fact WHERE first_at >= %s AND first_at < %s
               AND arm = 'treatment' ORDER BY first_at DESC LIMIT 1""", [start, end])
        latest = cursor.fetchone()
    histogram = defaultdict(int)
    by_decision = defaultdict(lambda: [0, 0])
    for index, decision, n, completed in rows:
        histogram[index] += n
        by_decision[decision][0] += n
        by_decision[decision][1] += completed
    conversion_given = {d: (by_decision[d][1] / by_decision[d][0] if by_decision[d][0] else None)
                        for d in ("approve", "step_up", "decline")}
    total = sum(histogram.values())
    document = policy_document(latest[0]) if latest else None
    current = (document or {}).get("thresholds")
    bins = [{"from": (i - 1) / SCORE_BINS, "to": i / SCORE_BINS, "orders": histogram.get(i, 0)} for i in range(1, SCORE_BINS + 1)]
    candidates = {(s, d) for s in WHAT_IF_STEP_UP for d in WHAT_IF_DECLINE if d > s}
    if current and "step_up" in current and "decline" in current:
        candidates.add((float(current["step_up"]), float(current["decline"])))
    what_if = []
    for step_up, decline in sorted(candidates):
        mix = {"approve": 0, "step_up": 0, "decline": 0}
        for i, n in histogram.items():
            mid = (i - 0.5) / SCORE_BINS
            mix["approve" if mid < step_up else "step_up" if mid < decline else "decline"] += n
        expected = None
        if total and conversion_given["approve"] is not None:
            expected = (mix["approve"] * conversion_given["approve"]
                        + mix["step_up"] * (conversion_given["step_up"] or 0.0)) / total
        what_if.append({"thresholds": {"step_up": step_up, "decline": decline},
                        "current": bool(current) and (step_up, decline) == (float(current["step_up"]), float(current["decline"])),
                        "decision_mix": {k: (v / total if total else None) for k, v in mix.items()},
                        "expected_conversion": expected})
    return {"policy_version": latest[0] if latest else None, "current_thresholds": current,
            "scored_orders": total, "score_histogram": bins,
            "conversion_given_decision": conversion_given,
            "method": "treatment orders decided by the model in the last hour of the window, first decision's stored score; "
                      "expected conversion = sum over decisions of (new share x conversion observed for that decision)",
            "what_if": what_if}


def diagnosis(*, start: datetime, end: datetime, trend: bool = True) -> dict:
    """`trend`: include the latency trend series (the API does; the war room has its charts)."""
    return {"from": start.isoformat(), "to": end.isoformat(),
            "feature_drift": feature_drift(start=start, end=end),
            "latency": latency(start=start, end=end, trend=trend),
            "thresholds": thresholds(start=start, end=end)}


__all__ = ["diagnosis", "segment_value_text"]
