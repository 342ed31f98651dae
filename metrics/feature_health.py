"""Feature health: per monitored feature and segment value, the share of default / null /
out-of-range values served to the model and the PSI of the distribution against a reference.

Counts come from the feature rollups folded by the KPI refresh (one entry per order: the
features of its first decision). The reference is, in order of preference:
1. `week_earlier`: the same window seven days before, when it holds data;
2. `pinned`: the baseline window in settings METRICS_FEATURE_BASELINE = (from, to) ISO strings;
3. `early_baseline`: the first hour of data, when it ends before the window starts (a fresh
   demo database has no week-earlier data).
The answer says which reference was used.

Status of one feature and segment value (`item_status`), the rule in one place for the API and
the feature-health guardrail:
- breach when the default share rose by more than the margin *with confidence*: the one-sided
  lower bound (Newcombe hybrid score, alpha RISE_ALPHA) of (share now - reference share) is above
  the margin. A rise of 5 pp is decisive on a few hundred orders when the reference is stable,
  and noise never breaches: on a small segment a chance rise past the margin is not enough;
- or when PSI is above its threshold and judged: only once PSI's chance level (what it is when
  nothing changed, (bins - 1)(1/n + 1/n_ref)) is at most a fifth of the threshold, so a small
  sample's noisy histogram does not pass for drift;
- warn when the estimate alone is past half the margin, or PSI is moderate (>= 0.1) and judged;
- insufficient_data below the minimum sample (current or reference) or without a reference.
Which of several breaching segments is the cause (and which merely contain its orders) is
decided by the guardrail (`metrics.guardrails.evaluate_feature_health`).
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils.dateparse import parse_datetime

from metrics import stats
from metrics.kpis import _union
from shopswift_ops.read_scope import in_read_scope, reads_once

DEFAULT_SHARE_MARGIN = 0.05
PSI_THRESHOLD = 0.25
MIN_SAMPLE = 100
# One-sided level of the default-share rise test per feature and segment value and look:
# 0.05 Bonferroni-divided over up to 100 feature x segment items. The margin sits inside the null
# hypothesis (rise <= margin), which is what keeps repeated looks at a stable feature quiet.
RISE_ALPHA = 0.0005
PSI_CHANCE_FRACTION = 0.2
EARLY_BASELINE = timedelta(hours=1)


@reads_once
def feature_counts(*, start: datetime, end: datetime, segment_feature: str | None) -> dict:
    """{(feature, seg_value): {"n", "defaults", "nulls", "out_of_range", "bins": {bin: n}}}."""
    if in_read_scope():
        # A page asks for several dimensions of the same window (feature health of its segment,
        # the diagnosis board's drift over every dimension): one scan reads them all.
        by_dimension = feature_counts_by_dimension(start=start, end=end)
        if segment_feature in by_dimension:
            return by_dimension[segment_feature]
    return _feature_counts(start=start, end=end, segment_features=(segment_feature,))[segment_feature]


@reads_once
def segment_dimensions() -> tuple[str | None, ...]:
    """None (all traffic) and every segment dimension of the registry."""
    from metrics.models import FeatureDefinition

    return (None, *FeatureDefinition.objects.filter(segment_dimension=True).order_by("name")
            .values_list("name", flat=True))


@reads_once
def feature_counts_by_dimension(*, start: datetime, end: datetime) -> dict:
    """feature_counts of the window for all traffic and every segment dimension, in one scan."""
    return _feature_counts(start=start, end=end, segment_features=segment_dimensions())


def _feature_counts(*, start: datetime, end: datetime, segment_features) -> dict:
    where = "seg_feature = ANY(%s)"
    source, args = _union("metrics_rollup_feature", start, end, where, [[s or "" for s in segment_features]])
    result: dict = {s: defaultdict(lambda: {"n": 0, "defaults": 0, "nulls": 0, "out_of_range": 0, "bins": {}})
                    for s in segment_features}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT seg_feature, feature, seg_value, bin, sum(n), sum(defaults), sum(nulls), sum(out_of_range)
                FROM ({source}) r GROUP BY 1, 2, 3, 4 HAVING sum(n) > 0""", args)
        for seg_feature, feature, value, bin_label, n, defaults, nulls, out_of_range in cursor.fetchall():
            entry = result[seg_feature or None][(feature, value)]
            entry["n"] += int(n)
            entry["defaults"] += int(defaults)
            entry["nulls"] += int(nulls)
            entry["out_of_range"] += int(out_of_range)
            entry["bins"][bin_label] = int(n)
    return {s: dict(counts) for s, counts in result.items()}


def _has_data(start: datetime, end: datetime) -> bool:
    source, args = _union("metrics_rollup_feature", start, end, "seg_feature = ''", [])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM ({source}) r WHERE n > 0 LIMIT 1", args)
        return cursor.fetchone() is not None


@reads_once
def reference_window(*, start: datetime, end: datetime) -> dict | None:
    week = timedelta(days=7)
    if _has_data(start - week, end - week):
        return {"kind": "week_earlier", "from": start - week, "to": end - week}
    pinned = getattr(settings, "METRICS_FEATURE_BASELINE", None)
    if pinned:
        return {"kind": "pinned", "from": parse_datetime(pinned[0]), "to": parse_datetime(pinned[1])}
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(bucket) FROM metrics_rollup_feature_minute WHERE seg_feature = '' AND n > 0")
        (earliest,) = cursor.fetchone()
    if earliest is None:
        return None
    baseline_end = min(earliest + EARLY_BASELINE, start)
    if baseline_end <= earliest:
        return None
    return {"kind": "early_baseline", "from": earliest, "to": baseline_end}


@reads_once
def _thresholds() -> tuple[float, float, int]:
    from metrics.models import Guardrail

    guardrail = Guardrail.objects.filter(kind=Guardrail.Kind.FEATURE_HEALTH, enabled=True).order_by("pk").first()
    if guardrail is None:
        return DEFAULT_SHARE_MARGIN, PSI_THRESHOLD, MIN_SAMPLE
    return guardrail.margin, guardrail.threshold if guardrail.threshold is not None else PSI_THRESHOLD, guardrail.min_sample


def item_status(*, n: int, defaults: int, ref_n: int, ref_defaults: int, psi_value: float | None, bins: int,
                margin: float, psi_threshold: float, min_sample: int) -> dict:
    """{"status", "rise_lower_bound", "psi_judged", "psi_chance"} of one feature and segment value."""
    verdict = {"status": "insufficient_data", "rise_lower_bound": None, "psi_judged": False, "psi_chance": None}
    if n < min_sample or ref_n < min_sample:
        return verdict
    increase = defaults / n - ref_defaults / ref_n
    lower = stats.default_share_rise_lower_bound(defaults=defaults, n=n, ref_defaults=ref_defaults, ref_n=ref_n,
                                                 alpha=RISE_ALPHA)
    chance = stats.psi_chance_level(bins=bins, n=n, ref_n=ref_n)
    psi_judged = psi_value is not None and chance is not None and chance <= PSI_CHANCE_FRACTION * psi_threshold
    verdict.update(rise_lower_bound=lower, psi_judged=psi_judged, psi_chance=chance)
    if (lower is not None and lower > margin) or (psi_judged and psi_value > psi_threshold):
        verdict["status"] = "breach"
    elif increase > margin / 2 or (psi_judged and psi_value >= 0.1):
        verdict["status"] = "warn"
    else:
        verdict["status"] = "ok"
    return verdict


def rule_text(*, margin: float, psi_threshold: float, min_sample: int) -> str:
    return (f"breach when the one-sided {100 * (1 - RISE_ALPHA):g}% lower bound (Newcombe) of the default-share rise "
            f"is above {margin * 100:.1f} pp, or PSI > {psi_threshold:g} once its chance level is at most "
            f"{PSI_CHANCE_FRACTION * psi_threshold:g}; at least {min_sample} orders now and in the reference")


def counts_excluding(*, feature: str, start: datetime, end: datetime, segment: tuple[str, str] | None = None,
                     exclude: dict[str, list[str]] | None = None) -> dict:
    """{"n", "defaults", "bins"} of one feature over the orders of the window (widened to whole
    minutes, as the rollups are) in `segment` and outside every segment value of `exclude`
    ({segment feature: [values]}). Read from the order facts: these cross-segment counts are what
    the one-dimension rollups cannot give."""
    from metrics.kpis import ceil_minute, floor_minute

    where, args = ["first_at >= %s", "first_at < %s"], [floor_minute(start), ceil_minute(end)]
    if segment:
        where.append("segments ->> %s = %s")
        args += [segment[0], segment[1]]
    for seg_feature, values in (exclude or {}).items():
        where.append("coalesce(segments ->> %s, '') <> ALL(%s)")
        args += [seg_feature, list(values)]
    result = {"n": 0, "defaults": 0, "bins": {}}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT health -> %s ->> 0, count(*), count(*) FILTER (WHERE health -> %s ->> 1 = 'default')
                FROM metrics_order_fact WHERE {' AND '.join(where)} AND health ? %s GROUP BY 1""",
            [feature, feature, *args, feature])
        for bin_label, n, defaults in cursor.fetchall():
            result["n"] += int(n)
            result["defaults"] += int(defaults)
            result["bins"][bin_label] = int(n)
    return result


def feature_health(*, start: datetime, end: datetime, segment_feature: str | None = None,
                   include_overall: bool = True) -> list[dict]:
    """Items of GET /api/v1/features/health: per monitored feature and segment value (and all
    traffic, segment null)."""
    margin, psi_threshold, min_sample = _thresholds()
    reference = reference_window(start=start, end=end)
    feature_sets = []
    if include_overall or not segment_feature:
        feature_sets.append(None)
    if segment_feature:
        feature_sets.append(segment_feature)
    items = []
    for seg in feature_sets:
        current = feature_counts(start=start, end=end, segment_feature=seg)
        previous = feature_counts(start=reference["from"], end=reference["to"], segment_feature=seg) if reference else {}
        for (feature, value) in sorted(set(current) | set(previous)):
            now_counts = current.get((feature, value)) or {"n": 0, "defaults": 0, "nulls": 0, "out_of_range": 0, "bins": {}}
            ref_counts = previous.get((feature, value)) or {"n": 0, "defaults": 0, "nulls": 0, "out_of_range": 0, "bins": {}}
            n, ref_n = now_counts["n"], ref_counts["n"]
            default_share = now_counts["defaults"] / n if n else None
            ref_default_share = ref_counts["defaults"] / ref_n if ref_n else None
            increase = default_share - ref_default_share if default_share is not None and ref_default_share is not None else None
            psi_value = stats.psi(now_counts["bins"], ref_counts["bins"])
            verdict = item_status(n=n, defaults=now_counts["defaults"], ref_n=ref_n, ref_defaults=ref_counts["defaults"],
                                  psi_value=psi_value, bins=len(set(now_counts["bins"]) | set(ref_counts["bins"])),
                                  margin=margin, psi_threshold=psi_threshold, min_sample=min_sample)
            items.append({
                "feature": feature,
                "segment": {"feature": seg, "value": value} if seg else None,
                "default_share": default_share,
                "null_share": now_counts["nulls"] / n if n else None,
                "out_of_range_share": now_counts["out_of_range"] / n if n else None,
                "reference_default_share": ref_default_share,
                "default_share_increase": increase,
                "psi": psi_value,
                "psi_band": stats.psi_band(psi_value),
                "status": verdict["status"],
                "default_share_rise_lower_bound": verdict["rise_lower_bound"],
                "psi_judged": verdict["psi_judged"],
                "n": n,
                "reference_n": ref_n,
                "defaults": now_counts["defaults"],
                "reference_defaults": ref_counts["defaults"],
            })
    return items


def feature_health_document(*, start: datetime, end: datetime, segment_feature: str | None = None) -> dict:
    reference = reference_window(start=start, end=end)
    margin, psi_threshold, min_sample = _thresholds()
    return {
        "from": start.isoformat(), "to": end.isoformat(),
        "reference": {"kind": reference["kind"], "from": reference["from"].isoformat(), "to": reference["to"].isoformat()}
        if reference else None,
        "method": {"unit": "orders, features of their first decision",
                   "breach": rule_text(margin=margin, psi_threshold=psi_threshold, min_sample=min_sample),
                   "psi_bands": "< 0.1 stable, 0.1-0.25 moderate, > 0.25 major", "min_sample": min_sample},
        "features": feature_health(start=start, end=end, segment_feature=segment_feature),
    }
