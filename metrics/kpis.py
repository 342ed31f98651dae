"""Every KPI of CONTRACT section 5, defined once, answered from the rollups.

An order belongs to the window, arm and segment of its first decision. Windows are widened to
whole minutes: an order counts when the minute of its first decision lies in
[floor_minute(from), ceil_minute(to)). Whole hours inside a window are read from the hourly
rollups, the edges from the per-minute ones.

Population: "orders eligible for treatment in both arms" (metrics/population.py): orders that
no segment override of their policy version sent to control, so both arms hold the same mix.
Deltas (treatment - control) come with 95 % intervals: Newcombe hybrid score for proportions,
delta-method Wald for the money-weighted fraud-loss rate, and for latency percentiles the
conservative difference of the two distribution-free order-statistic intervals.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from metrics import stats
from metrics.population import POPULATION_ELIGIBLE
from metrics.rollups import COUNTER_NAMES, latency_bin_value
from shopswift_ops.read_scope import reads_once

ARMS = ("control", "treatment")


@dataclass(frozen=True)
class Rate:
    key: str
    numerator: str  # rollup counter
    denominator: str
    scale: float = 1.0  # support tickets are per 1,000 orders
    money: bool = False  # fraud loss is weighted by order amount (minor units)


RATES = (
    Rate("conversion", "completed", "orders"),
    Rate("approve_rate", "approve_final", "orders"),
    Rate("step_up_rate", "step_up_final", "orders"),
    Rate("decline_rate", "decline_final", "orders"),
    # numerator: orders with a step_up decision that also have step_up_passed
    Rate("step_up_pass_rate", "step_up_passed", "step_up_orders"),
    Rate("fallback_rate", "fallback_decisions", "decisions"),
    Rate("timeout_rate", "timeout_decisions", "decisions"),
    Rate("false_decline_rate", "false_declines", "orders"),
    Rate("support_ticket_rate", "support_tickets", "orders", scale=1000.0),
    Rate("fraud_loss_rate", "fraud_loss_amount", "completed_amount", money=True),
    # over the requested window; the contract's calendar-month rate and the card-network
    # programme ratios read these same counters per UTC month (metrics/chargebacks.py)
    Rate("chargeback_rate", "chargebacks", "completed"),
)
RATE_BY_KEY = {rate.key: rate for rate in RATES}
PERCENTILES = (("latency_p50_ms", 0.50), ("latency_p95_ms", 0.95), ("latency_p99_ms", 0.99))
PERCENTILE_BY_KEY = dict(PERCENTILES)
METRIC_KEYS = ("orders", *(r.key for r in RATES), *(k for k, _ in PERCENTILES), "gmv_lost_minor")

METHOD = {
    "window": "orders by the minute of their first decision, [floor_minute(from), ceil_minute(to))",
    "population": POPULATION_ELIGIBLE,
    "rate_ci": "95% Newcombe hybrid score interval (Wilson-based) for treatment - control",
    "money_rate_ci": "95% Wald interval, delta-method variance of the ratio of sums",
    "percentile_ci": "95% distribution-free order-statistic intervals per arm, differenced conservatively",
    "latency": "log-spaced histogram bins (4% wide); percentiles are nearest-rank, accurate to 4%",
}


# -- windows ---------------------------------------------------------------------------------

def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def ceil_minute(moment: datetime) -> datetime:
    floored = floor_minute(moment)
    return floored if floored == moment else floored + timedelta(minutes=1)


def _ceil_hour(moment: datetime) -> datetime:
    floored = moment.replace(minute=0, second=0, microsecond=0)
    return floored if floored == moment else floored + timedelta(hours=1)


def window_sources(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """(grain, from, to) pieces covering the widened window, hours where whole hours fit."""
    a, b = floor_minute(start), ceil_minute(end)
    if b <= a:
        return []
    ha, hb = _ceil_hour(a), b.replace(minute=0, second=0, microsecond=0)
    if ha < hb:
        pieces = [("minute", a, ha), ("hour", ha, hb), ("minute", hb, b)]
        return [p for p in pieces if p[1] < p[2]]
    return [("minute", a, b)]


def _union(table: str, start: datetime, end: datetime, where: str, params: list) -> tuple[str, list]:
    parts, args = [], []
    for grain, a, b in window_sources(start, end):
        parts.append(f"SELECT * FROM {table}_{grain} WHERE bucket >= %s AND bucket < %s AND {where}")
        args += [a, b, *params]
    if not parts:
        parts.append(f"SELECT * FROM {table}_minute WHERE false")
    return " UNION ALL ".join(parts), args


# -- reading the rollups ---------------------------------------------------------------------

@reads_once
def cohort_counts(*, start: datetime, end: datetime, segment_feature: str | None = None,
                  eligible_only: bool = True, policy_version: int | None = None) -> dict[tuple[str, str], dict]:
    """{(arm, segment value or ''): {counter: sum}} over the window."""
    where = "seg_feature = %s"
    params: list = [segment_feature or ""]
    if eligible_only:
        where += " AND eligible"
    if policy_version is not None:
        where += " AND policy_version = %s"
        params.append(policy_version)
    source, args = _union("metrics_rollup", start, end, where, params)
    sums = ", ".join(f"sum({name})" for name in COUNTER_NAMES)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT arm, seg_value, {sums} FROM ({source}) r GROUP BY arm, seg_value", args)
        rows = cursor.fetchall()
    return {(row[0], row[1]): {name: (float(v) if name.endswith("_sq") else int(v or 0)) for name, v in zip(COUNTER_NAMES, row[2:])}
            for row in rows}


@reads_once
def latency_histograms(*, start: datetime, end: datetime, segment_feature: str | None = None,
                       eligible_only: bool = True, policy_version: int | None = None) -> dict[tuple[str, str], dict[int, int]]:
    where = "seg_feature = %s" + (" AND eligible" if eligible_only else "")
    params: list = [segment_feature or ""]
    if policy_version is not None:
        where += " AND policy_version = %s"
        params.append(policy_version)
    source, args = _union("metrics_rollup_latency", start, end, where, params)
    result: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT arm, seg_value, bin, sum(count) FROM ({source}) r GROUP BY 1, 2, 3 HAVING sum(count) > 0", args)
        for arm, value, index, count in cursor.fetchall():
            result[(arm, value)][index] = int(count)
    return result


# -- the metric definitions applied to counts --------------------------------------------------

def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    return numerator / denominator * scale if denominator else None


def _money_variance(counts: dict) -> float:
    n = counts["completed"]
    return stats.ratio_variance(
        sum_y=counts["fraud_loss_amount"], sum_x=counts["completed_amount"],
        sum_yy=counts["fraud_loss_amount_sq"], sum_xx=counts["completed_amount_sq"],
        sum_xy=counts["fraud_loss_amount_sq"], n=n)


def rate_delta(rate: Rate, treatment: dict, control: dict) -> tuple[float | None, list[float] | None]:
    """Treatment - control of one rate and its 95 % interval (in the metric's unit)."""
    t = _ratio(treatment[rate.numerator], treatment[rate.denominator])
    c = _ratio(control[rate.numerator], control[rate.denominator])
    if t is None or c is None:
        return None, None
    if rate.money:
        low, high = stats.wald_diff_ci(t, _money_variance(treatment), c, _money_variance(control))
    else:
        low, high = stats.newcombe_diff_ci(treatment[rate.numerator], treatment[rate.denominator],
                                           control[rate.numerator], control[rate.denominator])
    return (t - c) * rate.scale, [low * rate.scale, high * rate.scale]


def rate_metric(rate: Rate, counts: dict) -> dict:
    return {"numerator": counts[rate.numerator], "denominator": counts[rate.denominator],
            "value": _ratio(counts[rate.numerator], counts[rate.denominator], rate.scale)}


def percentile_metric(histogram: dict[int, int], q: float) -> dict:
    return {"value": stats.histogram_quantile(histogram, q, latency_bin_value), "count": sum(histogram.values())}


def percentile_delta(treatment: dict[int, int], control: dict[int, int], q: float):
    t = stats.histogram_quantile(treatment, q, latency_bin_value)
    c = stats.histogram_quantile(control, q, latency_bin_value)
    if t is None or c is None:
        return None, None
    t_ci = stats.histogram_quantile_ci(treatment, q, latency_bin_value)
    c_ci = stats.histogram_quantile_ci(control, q, latency_bin_value)
    return t - c, [t_ci[0] - c_ci[1], t_ci[1] - c_ci[0]]


def _empty_counts() -> dict:
    return {name: 0 for name in COUNTER_NAMES}


def cohort_metrics(arm: str, counts: dict, histogram: dict[int, int], control_counts: dict | None,
                   control_histogram: dict[int, int] | None) -> dict:
    metrics: dict = {"orders": {"value": counts["orders"]}}
    for rate in RATES:
        metrics[rate.key] = rate_metric(rate, counts)
        if arm == "treatment" and control_counts is not None:
            delta, ci = rate_delta(rate, counts, control_counts)
            metrics[rate.key].update(delta=delta, ci95=ci)
    for key, q in PERCENTILES:
        metrics[key] = percentile_metric(histogram, q)
        if arm == "treatment" and control_histogram is not None:
            delta, ci = percentile_delta(histogram, control_histogram, q)
            metrics[key].update(delta=delta, ci95=ci)
    if arm == "treatment" and control_counts is not None:
        metrics["gmv_lost_minor"] = gmv_lost(counts, control_counts)
    return metrics


def gmv_lost(treatment: dict, control: dict) -> dict:
    """(control conversion - treatment conversion) x treatment orders x treatment mean amount,
    when positive; the interval maps the conversion-delta interval the same way."""
    n_t = treatment["orders"]
    if not n_t or not control["orders"]:
        return {"value": None, "ci95": None}
    mean_amount = treatment["amount_sum"] / n_t
    gap = control["completed"] / control["orders"] - treatment["completed"] / n_t
    ci = stats.newcombe_diff_ci(control["completed"], control["orders"], treatment["completed"], n_t)
    scale = n_t * mean_amount
    return {"value": max(0, round(gap * scale)), "ci95": [max(0, round(ci[0] * scale)), max(0, round(ci[1] * scale))],
            "treatment_orders": n_t, "treatment_mean_amount_minor": round(mean_amount)}


def cohort_kpis(*, start: datetime, end: datetime, segment_feature: str | None = None) -> dict:
    """The /api/v1/kpis document: by arm, and by arm and segment value when a feature is given."""
    cohorts = _cohorts(start=start, end=end, segment_feature=None)
    if segment_feature:
        cohorts += _cohorts(start=start, end=end, segment_feature=segment_feature)
    return {"from": start.isoformat(), "to": end.isoformat(), "population": POPULATION_ELIGIBLE,
            "by": "arm" + (f",segment:{segment_feature}" if segment_feature else ""),
            "window": {"from": floor_minute(start).isoformat(), "to": ceil_minute(end).isoformat()},
            "method": METHOD, "cohorts": cohorts}


def _cohorts(*, start, end, segment_feature):
    counts = cohort_counts(start=start, end=end, segment_feature=segment_feature)
    histograms = latency_histograms(start=start, end=end, segment_feature=segment_feature)
    values = sorted({value for _, value in counts} | {value for _, value in histograms}) if segment_feature else [""]
    cohorts = []
    for value in values:
        control = counts.get(("control", value)) or _empty_counts()
        control_hist = histograms.get(("control", value)) or {}
        for arm in ARMS:
            own = counts.get((arm, value)) or _empty_counts()
            hist = histograms.get((arm, value)) or {}
            cohorts.append({
                "arm": arm,
                "segment": {"feature": segment_feature, "value": value} if segment_feature else None,
                "metrics": cohort_metrics(arm, own, hist, control, control_hist),
            })
    return cohorts


def segment_value_text(value) -> str:
    """Segment values are stored as the text of the feature's JSON value (true, null, email)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- time series for charts ------------------------------------------------------------------

TIMESERIES_METRICS = ("conversion", "approve_rate", "step_up_rate", "decline_rate", "false_decline_rate",
                      "support_ticket_rate", "fraud_loss_rate", "latency_p50_ms", "latency_p95_ms",
                      "latency_p99_ms", "fallback_rate")


def _rate_band(rate: Rate, counts: dict) -> tuple[float | None, float | None, float | None]:
    value = _ratio(counts[rate.numerator], counts[rate.denominator])
    if value is None:
        return None, None, None
    if rate.money:
        half = stats.Z95 * _money_variance(counts) ** 0.5
        low, high = max(0.0, value - half), value + half
    else:
        low, high = stats.wilson_interval(counts[rate.numerator], counts[rate.denominator])
    low, high = min(low, value), max(high, value)  # rounding at 0 and 1
    return value * rate.scale, low * rate.scale, high * rate.scale


def kpi_timeseries(*, start: datetime, end: datetime, bucket_seconds: int, segment: dict | None = None) -> dict:
    """Per-bucket values with 95 % bands, per arm, for charts.

    Buckets of whole hours lie on the UTC hour grid (the first one starts at the hour the window
    starts in and holds only the window's part of it), so the hourly rollups answer every complete
    hour and the per-minute ones only the window's ragged first and last hour. Other bucket sizes
    start at the window's first minute and read the per-minute rollups."""
    if bucket_seconds < 60 or bucket_seconds % 60:
        raise ValueError("bucket_seconds: a positive multiple of 60")
    a, b = floor_minute(start), ceil_minute(end)
    hourly = bucket_seconds % 3600 == 0
    origin = a.replace(minute=0) if hourly else a
    count = max(0, -(-int((b - origin).total_seconds()) // bucket_seconds)) if b > a else 0
    buckets = [origin + timedelta(seconds=i * bucket_seconds) for i in range(count)]
    seg_feature, seg_value = (segment["feature"], segment_value_text(segment.get("value"))) if segment else ("", "")
    where, params = "seg_feature = %s AND seg_value = %s AND eligible", [seg_feature, seg_value]
    if hourly:
        counts_source, counts_args = _union("metrics_rollup", a, b, where, params)
        latency_source, latency_args = _union("metrics_rollup_latency", a, b, where, params)
    else:
        minutes = f"WHERE bucket >= %s AND bucket < %s AND {where}"
        counts_source, counts_args = f"SELECT * FROM metrics_rollup_minute {minutes}", [a, b, *params]
        latency_source, latency_args = f"SELECT * FROM metrics_rollup_latency_minute {minutes}", [a, b, *params]
    index_sql = "floor(extract(epoch FROM bucket - %s) / %s)::int"
    sums = ", ".join(f"sum({name})" for name in COUNTER_NAMES)
    per_bucket: dict[tuple[str, int], dict] = {}
    hist_bucket: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT arm, {index_sql}, {sums} FROM ({counts_source}) r GROUP BY 1, 2",
                       [origin, bucket_seconds, *counts_args])
        for row in cursor.fetchall():
            per_bucket[(row[0], row[1])] = {name: (float(v) if name.endswith("_sq") else int(v or 0))
                                            for name, v in zip(COUNTER_NAMES, row[2:])}
        cursor.execute(f"SELECT arm, {index_sql}, bin, sum(count) FROM ({latency_source}) r GROUP BY 1, 2, 3",
                       [origin, bucket_seconds, *latency_args])
        for arm, index, bin_index, total in cursor.fetchall():
            hist_bucket[(arm, index)][bin_index] = int(total)
    arms: dict = {}
    for arm in ARMS:
        series = {key: {"value": [], "lo": [], "hi": []} for key in TIMESERIES_METRICS}
        for i in range(count):
            counts = per_bucket.get((arm, i)) or _empty_counts()
            hist = hist_bucket.get((arm, i)) or {}
            for key in TIMESERIES_METRICS:
                if key in RATE_BY_KEY:
                    value, low, high = _rate_band(RATE_BY_KEY[key], counts)
                else:
                    q = PERCENTILE_BY_KEY[key]
                    value = stats.histogram_quantile(hist, q, latency_bin_value)
                    band = stats.histogram_quantile_ci(hist, q, latency_bin_value)
                    low, high = band if band else (None, None)
                series[key]["value"].append(value)
                series[key]["lo"].append(low)
                series[key]["hi"].append(high)
        series["orders"] = [(per_bucket.get((arm, i)) or _empty_counts())["orders"] for i in range(count)]
        arms[arm] = series
    return {"buckets": [moment.isoformat() for moment in buckets], "bucket_seconds": bucket_seconds,
            "segment": segment, "population": POPULATION_ELIGIBLE, "arms": arms}
