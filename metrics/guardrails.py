"""Guardrail evaluation: statuses with evidence, and alerts for new breaches.

Evaluation only: the rollout app turns an alert into its action (it subscribes to the live
"alerts" topic and fires the action once per alert_id).

Methods (shown in every evidence sentence and in GET /api/v1/guardrails):
- `delta` guardrails (treatment vs control, e.g. conversion): on the orders of the *current
  policy version* since it began (the newest version with settled orders), so a ramp's effect is
  not diluted by the previous stage's data; `window_minutes` only caps how far back that reaches.
  One-sided mSPRT on theta = harm - margin (harm: treatment minus control in the harmful
  direction) with a half-normal mixing distribution over theta > 0, tau = 20 x the margin (see
  TAU_MARGIN_MULTIPLE). Breach when Lambda >= 1/alpha, i.e. the always-valid one-sided lower
  bound of the harm is above the margin; alpha = 0.05, weighted Holm-Bonferroni over the m
  guardrail x segment comparisons (each judged at 0.05 x its weight / the weight not yet
  rejected).
  Always-valid p-values keep the family-wise error at 0.05 however often it is looked at.
  A third of the family's weight is held for the populations feature health implicates: once a
  feature breaches in some values of a dimension (e.g. both social-login methods), each delta
  guardrail comparing segments also tests those values pooled, at that held weight (see
  IMPLICATED_ALPHA_SHARE); the held weight counts at every look, so the family's error holds. Warn:
  the estimate is beyond the margin but not yet significant.
- `limit` guardrails (treatment p95 latency, fallback rate): a service level on the last few
  minutes of the newest policy version that has the minimum sample there (a spike that comes
  with a ramp is not diluted by the previous stage's traffic): breach when the value is past the threshold on at least the minimum sample, warn from
  80 % of it; the evidence carries the 95 % interval (distribution-free order statistic for a
  percentile, Wilson for a rate).
- `srm`: chi-square of the arm split of eligible orders against the policy version's expected
  treatment share (breach at p < 0.001), and buyers seen in both arms under one version
  (breach above 1 %).
- `feature_health`: per monitored feature and segment value, the rule of
  `metrics.feature_health.item_status` (the default-share rise's one-sided lower bound above the
  margin, or a judged PSI above the threshold). When a feature breaches in several segments, the
  cause is told from its shadows: segments are taken in order of their rise; one is a cause
  unless, once the orders of the causes already found (segments of other dimensions) are left
  out, its own rise no longer breaches. An explained segment (e.g. is_repeat_buyer=false, whose
  rise is the social-login buyers it contains) is `warn` with evidence naming what explains it,
  and takes no action; all traffic is treated the same way.
Too little data is `insufficient_data`, never `ok`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from metrics import outcomes_so_far, stats
from metrics.feature_health import _thresholds as feature_thresholds
from metrics.feature_health import counts_excluding, feature_health, item_status, reference_window, rule_text
from metrics.kpis import (PERCENTILE_BY_KEY, RATE_BY_KEY, _empty_counts, ceil_minute, cohort_counts, floor_minute,
                          latency_histograms)
from metrics.models import Alert, FeatureDefinition, Guardrail, GuardrailStatus, group_value, segment_dict, segment_values
from metrics.population import expected_treatment_share
from metrics.rollups import latency_bin_value
from shopswift_ops.read_scope import read_scope, reads_once

ALPHA = 0.05
SRM_P = 0.001
BOTH_ARMS_MAX_SHARE = 0.01
EVALUATION_LOCK_KEY = 0x5D0A11F1
WARN_FRACTION = 0.8
# The mixing scale of the mSPRT. The test is quickest for harm near tau (the optimum is
# tau^2 ~ theta^2 - V at the look where it crosses). What must be caught fast is a segment whose
# first few hundred settled orders per arm show harm of many margins (the seed incident: -10 to
# -13 pp of conversion for social-login buyers, 20-26 x the 0.5 pp margin); harm of a few margins
# on a segment needs tens of thousands of orders whatever tau is. tau = 4 x margin (the former
# value) left the seed's segment undetected after 16 minutes; 20 x margin finds it as soon as the
# data allows, and costs all-traffic tests, where n is large, about 15 % more orders.
TAU_MARGIN_MULTIPLE = 20.0
# The share of alpha held for the populations feature health implicates (see
# `implicated_populations`). A broken feature shows in the features the moment it is served, well
# before outcomes settle; testing the outcome guardrails on exactly that population (e.g. every
# social-login buyer, pooled) with a good part of the alpha finds the harm minutes sooner than 27
# comparisons of single segment values at alpha / 27 each. Valid because which population is
# implicated depends on the served features only, never on outcomes, and the held share is in the
# family's total weight at every look, implicated population or not (weighted Holm-Bonferroni).
IMPLICATED_ALPHA_SHARE = 1 / 3


@dataclass
class Result:
    guardrail: Guardrail
    metric: str
    segment: tuple[str, str] | None
    status: str
    value: float | None = None
    threshold: float | None = None
    evidence: str = ""
    min_sample_met: bool = False
    details: dict = field(default_factory=dict)

    @property
    def key(self):
        seg_feature, seg_value = self.segment or ("", "")
        return (self.guardrail.pk, self.metric, seg_feature, seg_value)


class Subject(NamedTuple):
    """One treatment-vs-control comparison's data: a segment (or all traffic), each arm's rollup
    counters, the population the numbers cover, and for a metric counted with outcomes so far
    (metrics/outcomes_so_far.py) each arm's young orders."""
    seg_feature: str | None
    value: str
    treatment: dict
    control: dict
    scope: str = "orders of the evaluation window"
    young: tuple | None = None  # (treatment, control) ArmOutcomes


def _fmt(value, unit=""):
    if value is None:
        return "n/a"
    return f"{value:.4g}{unit}"


def _pct(value):
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _segment_text(segment):
    if not segment:
        return "all traffic"
    values = segment_values(segment[1])
    return f"{segment[0]}={values[0]}" if len(values) == 1 else f"{segment[0]} in ({', '.join(values)})"


def _segment_features(guardrail: Guardrail) -> list[str | None]:
    scope = guardrail.segment_feature
    if not scope:
        return [None]
    if scope == "*":
        return [None, *FeatureDefinition.objects.filter(segment_dimension=True).values_list("name", flat=True)]
    return [scope]


class Context:
    """The windows of one evaluation. Its reads are shared through `read_scope` (compute() runs in
    one): guardrails asking for the same counts cost one query."""

    def __init__(self, now: datetime):
        self.now = now

    def counts(self, minutes: int, segment_feature, maturity: int = 0, policy_version: int | None = None):
        return cohort_counts(start=self.now - timedelta(minutes=minutes), end=self.now - timedelta(minutes=maturity),
                             segment_feature=segment_feature, policy_version=policy_version)

    def current_version(self, minutes: int, maturity: int = 0) -> tuple[int, datetime] | None:
        """(newest policy version with settled eligible orders in the window, minute of its first
        order there), or None."""
        return current_policy_version(start=self.now - timedelta(minutes=minutes),
                                      end=self.now - timedelta(minutes=maturity))

    def histograms(self, minutes: int, segment_feature, policy_version: int | None = None):
        return latency_histograms(start=self.now - timedelta(minutes=minutes), end=self.now,
                                  segment_feature=segment_feature, policy_version=policy_version)

    def version_counts(self, minutes: int, segment_feature, policy_version: int):
        return self.counts(minutes, segment_feature, 0, policy_version)


def _limit_version(guardrail: Guardrail, ctx: Context) -> int | None:
    """The newest policy version with the minimum sample of treatment in the window: a limit is
    judged on the current stage alone, so a spike that comes with a ramp is not diluted by the
    previous stage's traffic. None (all versions) when no version has enough on its own."""
    for version in reversed(_versions_in_window(ctx.now - timedelta(minutes=guardrail.window_minutes), ctx.now)):
        if guardrail.metric in PERCENTILE_BY_KEY:
            n = sum((ctx.histograms(guardrail.window_minutes, None, version).get(("treatment", "")) or {}).values())
        else:
            n = (ctx.version_counts(guardrail.window_minutes, None, version).get(("treatment", "")) or _empty_counts())[
                RATE_BY_KEY[guardrail.metric].denominator]
        if n >= guardrail.min_sample:
            return version
    return None


def _values(counts: dict, segment_feature) -> list[str]:
    return sorted({value for _, value in counts}) if segment_feature else [""]


# -- delta -------------------------------------------------------------------------------------

@reads_once
def current_policy_version(*, start: datetime, end: datetime) -> tuple[int, datetime] | None:
    """The newest policy version with eligible orders whose first decision lies in [start, end)
    (minutes as the KPI windows widen them), and the minute of its first such order."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT policy_version, min(bucket) FROM metrics_rollup_minute
               WHERE bucket >= %s AND bucket < %s AND seg_feature = '' AND eligible AND orders > 0
               GROUP BY policy_version ORDER BY policy_version DESC LIMIT 1""",
            [floor_minute(start), ceil_minute(end)])
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def delta_subjects(guardrail: Guardrail, ctx: Context) -> list[Subject]:
    """Every subject of a delta guardrail, on the settled orders of the current policy version
    (and, for a metric counted with outcomes so far, its young orders)."""
    current = ctx.current_version(guardrail.window_minutes, guardrail.maturity_minutes)
    version = current[0] if current else None
    so_far = bool(current and guardrail.maturity_minutes and guardrail.metric in outcomes_so_far.METRICS)
    if so_far:
        settled = (f"; orders younger than {guardrail.maturity_minutes} min count with their outcomes so far "
                   f"(completion rate and delay per final decision learned per arm from the last "
                   f"{outcomes_so_far.MODEL_MINUTES} min of settled orders)")
    else:
        settled = f" older than {guardrail.maturity_minutes} min (outcomes settled)" if guardrail.maturity_minutes else ""
    scope = (f"orders of policy v{version} since {current[1]:%H:%M} UTC (its first order in the last "
             f"{guardrail.window_minutes} min){settled}" if current else
             f"no settled eligible orders in the last {guardrail.window_minutes} min{settled}")
    young = {}
    if so_far:
        settled_end = ceil_minute(ctx.now - timedelta(minutes=guardrail.maturity_minutes))
        model_start = max(current[1], settled_end - timedelta(minutes=outcomes_so_far.MODEL_MINUTES),
                          ctx.now - timedelta(minutes=guardrail.window_minutes))
        young = outcomes_so_far.arm_outcomes(settled_end=settled_end, now=ctx.now, policy_version=version,
                                             model_start=model_start)
    subjects = []
    for seg_feature in _segment_features(guardrail):
        counts = ctx.counts(guardrail.window_minutes, seg_feature, guardrail.maturity_minutes, version) if current else {}
        for value in _values(counts, seg_feature):
            key = (seg_feature or "", value)
            subjects.append(Subject(seg_feature, value, counts.get(("treatment", value)) or _empty_counts(),
                                    counts.get(("control", value)) or _empty_counts(), scope,
                                    (young.get(("treatment", *key)) or outcomes_so_far.ArmOutcomes(),
                                     young.get(("control", *key)) or outcomes_so_far.ArmOutcomes()) if so_far else None))
    return subjects


def delta_taus(guardrail: Guardrail) -> tuple[float]:
    rate = RATE_BY_KEY[guardrail.metric]
    return (max(TAU_MARGIN_MULTIPLE * guardrail.margin / rate.scale, 1e-4),)


def evaluate_delta(guardrail: Guardrail, subject: Subject, *, divisor: float, correction: str | None = None) -> Result:
    """One treatment-vs-control comparison at alpha = ALPHA / `divisor` (weighted Holm: the
    unrejected weight of the family over this comparison's weight). `correction` says how the
    divisor came about (default: plain Bonferroni over `divisor` comparisons)."""
    seg_feature, value, treatment, control, scope, young = Subject(*subject)
    segment = (seg_feature, value) if seg_feature else None
    rate = RATE_BY_KEY[guardrail.metric]
    harmful_up = guardrail.direction == Guardrail.Direction.HIGHER_IS_WORSE
    threshold = guardrail.margin if harmful_up else -guardrail.margin
    n_t, n_c = treatment[rate.denominator], control[rate.denominator]
    so_far = young and [outcomes_so_far.estimate(settled_orders=n, settled_completed=counts[rate.numerator], outcomes=arm)
                        for n, counts, arm in ((n_t, treatment, young[0]), (n_c, control, young[1]))]
    if so_far and None in so_far:
        so_far = None
        if young[0].young_orders or young[1].young_orders:
            scope += " (a young order's final decision has no settled order to learn from: settled orders only)"
    alpha = ALPHA / max(1.0, divisor)
    margin = guardrail.margin / rate.scale
    taus = delta_taus(guardrail)
    correction = correction or f"alpha={ALPHA}/{divisor:.4g} (Bonferroni)"
    method = (f"one-sided mSPRT, half-normal mixture tau={taus[0]:.4g} (= {TAU_MARGIN_MULTIPLE:g} x margin), "
              f"on harm beyond the margin, {correction}={alpha:.2g}; {scope}")
    base = dict(guardrail=guardrail, metric=guardrail.metric, segment=segment, threshold=threshold)
    if n_t < guardrail.min_sample or n_c < guardrail.min_sample:
        return Result(**base, status="insufficient_data",
                      evidence=(f"{guardrail.metric} ({_segment_text(segment)}): {n_t} treatment / {n_c} control "
                                f"{rate.denominator}, below the minimum sample of {guardrail.min_sample} per arm; {method}"),
                      details={"n_treatment": n_t, "n_control": n_c, "alpha": alpha, "divisor": divisor, "method": method})
    p_t = treatment[rate.numerator] / n_t
    p_c = control[rate.numerator] / n_c
    if so_far:
        p_t, p_c = so_far[0].value, so_far[1].value
        variance = so_far[0].variance + so_far[1].variance
    elif rate.money:
        from metrics.kpis import _money_variance
        variance = _money_variance(treatment) + _money_variance(control)
    else:
        clip_t = min(max(p_t, 0.5 / n_t), 1 - 0.5 / n_t)
        clip_c = min(max(p_c, 0.5 / n_c), 1 - 0.5 / n_c)
        variance = clip_t * (1 - clip_t) / n_t + clip_c * (1 - clip_c) / n_c
    delta = p_t - p_c
    harm = delta if harmful_up else -delta
    theta = harm - margin
    likelihood_ratio = stats.msprt_one_sided(estimate=theta, variance=variance, taus=taus)
    harm_bound = stats.always_valid_lower_bound(estimate=harm, variance=variance, taus=taus, alpha=alpha)
    significant = likelihood_ratio >= 1 / alpha
    status = "breach" if significant else "warn" if theta > 0 else "ok"
    if rate.scale == 1000:
        show, value_unit, delta_unit, margin_text = 1000, " per 1,000", " per 1,000", f"{guardrail.margin:g} per 1,000"
    else:
        show, value_unit, margin_text = 100, "%", f"{margin * 100:.2f} pp"
        delta_unit = " pp of GMV" if rate.money else " pp"
    direction_word = "above" if harmful_up else "below"
    bound_text = ("n/a" if harm_bound is None else f"{harm_bound * show:+.3f}{delta_unit}")
    if so_far:
        counts_text = [f"{t[rate.numerator]}/{n} settled + {e.young_orders} younger ({e.young_completed} completed so far, "
                       f"{e.expected_completions:.1f} expected)" for t, n, e in ((treatment, n_t, so_far[0]), (control, n_c, so_far[1]))]
    else:
        counts_text = [f"{treatment[rate.numerator]}/{n_t}", f"{control[rate.numerator]}/{n_c}"]
    evidence = (
        f"{guardrail.metric} ({_segment_text(segment)}): treatment {p_t * show:.3f}{value_unit} "
        f"({counts_text[0]}) vs control {p_c * show:.3f}{value_unit} ({counts_text[1]}); "
        f"delta {delta * show:+.3f}{delta_unit}; harm (treatment {direction_word} control) at least {bound_text} "
        f"with always-valid {100 * (1 - alpha):.4g}% confidence; "
        f"threshold: {'not above' if harmful_up else 'not below'} control by more than {margin_text}; "
        f"{method}: Lambda={likelihood_ratio:.3g} vs 1/alpha={1 / alpha:.3g} -> {status}"
    )
    bound_metric = None if harm_bound is None else (harm_bound if harmful_up else -harm_bound) * rate.scale
    return Result(**base, status=status, value=delta * rate.scale, evidence=evidence, min_sample_met=True,
                  details={"treatment": {"numerator": treatment[rate.numerator], "denominator": n_t},
                           "control": {"numerator": control[rate.numerator], "denominator": n_c},
                           "outcomes_so_far": None if not so_far else {
                               arm: {"orders": e.orders, "young_orders": e.young_orders,
                                     "young_completed": e.young_completed,
                                     "expected_completions": round(e.expected_completions, 3), "estimate": e.value}
                               for arm, e in (("treatment", so_far[0]), ("control", so_far[1]))},
                           "delta": delta * rate.scale, "harm_lower_bound": None if harm_bound is None else harm_bound * rate.scale,
                           "delta_bound": bound_metric,
                           "likelihood_ratio": likelihood_ratio, "alpha": alpha, "divisor": divisor,
                           "tau": taus[0], "method": method})


def implicated_populations(results: list[Result]) -> dict[str, list[str]]:
    """{segment dimension: the values feature health names as a cause (breach, not explained by
    another dimension)}: the population a broken feature reaches."""
    populations: dict[str, set[str]] = {}
    for result in results:
        if result.metric.startswith("feature_health:") and result.status == "breach" and result.segment:
            populations.setdefault(result.segment[0], set()).add(result.segment[1])
    return {dimension: sorted(values) for dimension, values in sorted(populations.items())}


def family_weight(*, comparisons: int, covering_guardrails: int) -> tuple[float, float]:
    """(total weight of the delta family, weight held for each guardrail with segment comparisons):
    every ordinary comparison weighs 1; IMPLICATED_ALPHA_SHARE of the total is held, split evenly
    over the guardrails that compare segments, whether or not a population is implicated now."""
    if not covering_guardrails or not comparisons:
        return float(comparisons), 0.0
    held = comparisons * IMPLICATED_ALPHA_SHARE / (1 - IMPLICATED_ALPHA_SHARE)
    return comparisons + held, held / covering_guardrails


def _pool(subjects: list[Subject], dimension: str, values: list[str]) -> Subject | None:
    """The implicated population of one dimension as one subject: its values' counts summed (the
    rollup counters, squares included, are additive; so are young orders' counts)."""
    parts = [s for s in subjects if s.seg_feature == dimension and s.value in values]
    if not parts:
        return None
    treatment, control = _empty_counts(), _empty_counts()
    for part in parts:
        for name in treatment:
            treatment[name] += part.treatment.get(name, 0)
            control[name] += part.control.get(name, 0)
    young = None
    if parts[0].young is not None:
        young = (outcomes_so_far.ArmOutcomes(), outcomes_so_far.ArmOutcomes())
        for part in parts:
            young = (young[0].add(part.young[0]), young[1].add(part.young[1]))
    return Subject(dimension, group_value(values), treatment, control, parts[0].scope, young)


def delta_work(guardrails: list[Guardrail], ctx: Context, implicated: dict[str, list[str]]) -> tuple[list[tuple], float, float]:
    """([(guardrail, subject, weight)], total weight, share of it held): every ordinary comparison at weight 1, and
    per guardrail comparing segments its held weight on the implicated populations of its scope
    (a one-value population adds it to that value's own comparison; several values are pooled)."""
    subjects = {g.pk: delta_subjects(g, ctx) for g in guardrails}
    ordinary = [(g, subject, 1.0) for g in guardrails for subject in subjects[g.pk]]
    covering = [g for g in guardrails if g.segment_feature]
    total, held = family_weight(comparisons=len(ordinary), covering_guardrails=len(covering))
    work = ordinary
    for guardrail in covering:
        populations = [(dimension, values) for dimension, values in implicated.items()
                       if guardrail.segment_feature in ("*", dimension)]
        for dimension, values in populations:
            weight = held / len(populations)
            if len(values) == 1:
                work = [(g, s, w + weight if g is guardrail and s.seg_feature == dimension and s.value == values[0] else w)
                        for g, s, w in work]
                continue
            pooled = _pool(subjects[guardrail.pk], dimension, values)
            if pooled is not None:
                work.append((guardrail, pooled, weight))
    return work, total, IMPLICATED_ALPHA_SHARE if held else 0.0


def evaluate_deltas(work: list[tuple], *, total_weight: float | None = None, held_share: float = 0.0) -> list[Result]:
    """Every delta comparison, weighted Holm-Bonferroni step-down over the family: comparison i
    is judged at alpha x w_i / (weight not yet rejected); while some breach, the others are judged
    again with the weight freed. `work`: (guardrail, subject, weight); `total_weight` (default:
    the work's) may include weight held for comparisons not made now. Valid with always-valid
    p-values: a first false breach needs a true null's p below alpha x its weight / the true nulls'
    weight."""
    total = total_weight if total_weight is not None else sum(w for _, _, w in work)

    def judge(guardrail, subject, weight, remaining):
        divisor = remaining / weight
        breached = total - remaining
        text = f"alpha={ALPHA}/{divisor:.4g} (weighted Holm-Bonferroni: weight {weight:.3g} of {remaining:.4g} unrejected"
        if held_share:
            text += f"; {held_share:.0%} of the weight held for populations feature health implicates"
        if breached:
            text += f"; {breached:.4g} rejected"
        return evaluate_delta(guardrail, subject, divisor=divisor, correction=text + ")")

    results = [judge(g, s, w, total) for g, s, w in work]
    while True:
        remaining = total - sum(w for (_, _, w), r in zip(work, results) if r.status == "breach")
        if remaining <= 0:
            return results
        newly = False
        for index, (g, subject, weight) in enumerate(work):
            result = results[index]
            if result.status == "breach" or not result.min_sample_met:
                continue
            if result.details.get("divisor") == remaining / weight:
                continue
            results[index] = judge(g, subject, weight, remaining)
            newly = newly or results[index].status == "breach"
        if not newly:
            return results


# -- limit -------------------------------------------------------------------------------------

def evaluate_limit(guardrail: Guardrail, ctx: Context) -> list[Result]:
    results = []
    harmful_up = guardrail.direction == Guardrail.Direction.HIGHER_IS_WORSE
    threshold = guardrail.threshold
    version = _limit_version(guardrail, ctx)
    for seg_feature in _segment_features(guardrail):
        if guardrail.metric in PERCENTILE_BY_KEY:
            data = ctx.histograms(guardrail.window_minutes, seg_feature, version)
        elif version is not None:
            data = ctx.version_counts(guardrail.window_minutes, seg_feature, version)
        else:
            data = ctx.counts(guardrail.window_minutes, seg_feature)
        for value in _values(data, seg_feature):
            segment = (seg_feature, value) if seg_feature else None
            base = dict(guardrail=guardrail, metric=guardrail.metric, segment=segment, threshold=threshold)
            where = (f"{guardrail.metric} of treatment ({_segment_text(segment)}, last {guardrail.window_minutes} min, "
                     f"{f'policy v{version}' if version is not None else 'all policy versions'})")
            if guardrail.metric in PERCENTILE_BY_KEY:
                q = PERCENTILE_BY_KEY[guardrail.metric]
                histogram = data.get(("treatment", value)) or {}
                n = sum(histogram.values())
                estimate = stats.histogram_quantile(histogram, q, latency_bin_value)
                band = stats.histogram_quantile_ci(histogram, q, latency_bin_value)
                shown = lambda x: _fmt(x, " ms")  # noqa: E731
                method = "distribution-free 95% order-statistic interval of the percentile"
            else:
                rate = RATE_BY_KEY[guardrail.metric]
                counts = data.get(("treatment", value)) or _empty_counts()
                n = counts[rate.denominator]
                estimate = counts[rate.numerator] / n if n else None
                band = stats.wilson_interval(counts[rate.numerator], n) if n else None
                shown = _pct
                method = f"95% Wilson interval ({counts[rate.numerator]}/{n} {rate.denominator})"
            if n < guardrail.min_sample or estimate is None:
                results.append(Result(**base, status="insufficient_data", details={"n": n},
                                      evidence=f"{where}: {n} samples, below the minimum of {guardrail.min_sample}"))
                continue
            low, high = band
            # A limit is a service level: the window's value past the threshold (on at least the
            # minimum sample) is a breach; the interval is shown to say how sure that is.
            if harmful_up:
                status = "breach" if estimate > threshold else "warn" if estimate >= WARN_FRACTION * threshold else "ok"
                rule = f"breach when above {shown(threshold)} on at least {guardrail.min_sample} samples"
            else:
                status = "breach" if estimate < threshold else "warn" if estimate <= threshold / WARN_FRACTION else "ok"
                rule = f"breach when below {shown(threshold)} on at least {guardrail.min_sample} samples"
            results.append(Result(
                **base, status=status, value=estimate, min_sample_met=True,
                evidence=f"{where}: {shown(estimate)}, 95% interval [{shown(low)}, {shown(high)}], n={n}; {method}; {rule} -> {status}",
                details={"n": n, "interval": [low, high], "method": method}))
    return results


# -- sample ratio ------------------------------------------------------------------------------

def _versions_in_window(start: datetime, end: datetime) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT DISTINCT policy_version FROM metrics_rollup_minute
               WHERE bucket >= %s AND bucket < %s AND seg_feature = '' AND eligible AND orders > 0""",
            [start.replace(second=0, microsecond=0), end])
        return sorted(row[0] for row in cursor.fetchall())


def buyers_in_both_arms(version: int) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*) FILTER (WHERE control_orders > 0 AND treatment_orders > 0),
                      count(*) FILTER (WHERE control_orders > 0 OR treatment_orders > 0)
               FROM metrics_buyer_arm WHERE policy_version = %s""", [version])
        both, total = cursor.fetchone()
    return int(both), int(total)


def evaluate_srm(guardrail: Guardrail, ctx: Context) -> list[Result]:
    results = []
    start = ctx.now - timedelta(minutes=guardrail.window_minutes)
    for version in _versions_in_window(start, ctx.now):
        expected = expected_treatment_share(version)
        for seg_feature in _segment_features(guardrail):
            counts = cohort_counts(start=start, end=ctx.now, segment_feature=seg_feature, policy_version=version)
            for value in _values(counts, seg_feature):
                segment = (seg_feature, value) if seg_feature else None
                control = (counts.get(("control", value)) or _empty_counts())["orders"]
                treatment = (counts.get(("treatment", value)) or _empty_counts())["orders"]
                n = control + treatment
                base = dict(guardrail=guardrail, metric=f"sample_ratio:v{version}", segment=segment, threshold=SRM_P)
                where = f"policy v{version} ({_segment_text(segment)}): {treatment} treatment / {n} eligible orders"
                if expected is None:
                    results.append(Result(**base, status="insufficient_data",
                                          evidence=f"{where}; expected share unknown (no policy document for v{version})"))
                    continue
                if n < guardrail.min_sample:
                    results.append(Result(**base, status="insufficient_data",
                                          evidence=f"{where}, below the minimum sample of {guardrail.min_sample}"))
                    continue
                if expected in (0.0, 1.0):
                    wrong = treatment if expected == 0.0 else control
                    status = "breach" if wrong else "ok"
                    results.append(Result(**base, status=status, value=treatment / n, min_sample_met=True,
                                          evidence=f"{where}; expected share {expected:.0%}: {wrong} orders in the wrong arm -> {status}"))
                    continue
                statistic, p_value = stats.chi_square_srm(control=control, treatment=treatment, expected_treatment_share=expected)
                status = "breach" if p_value < SRM_P else "warn" if p_value < 0.01 else "ok"
                results.append(Result(
                    **base, status=status, value=treatment / n, min_sample_met=True,
                    evidence=(f"{where}: observed treatment share {treatment / n:.4f} vs expected {expected:.4f}; "
                              f"chi-square {statistic:.2f} (1 df), p={p_value:.3g}; breach at p < {SRM_P}"),
                    details={"statistic": statistic, "p_value": p_value, "expected": expected,
                             "control": control, "treatment": treatment}))
        both, total = buyers_in_both_arms(version)
        base = dict(guardrail=guardrail, metric=f"buyers_in_both_arms:v{version}", segment=None, threshold=BOTH_ARMS_MAX_SHARE)
        if total < guardrail.min_sample:
            results.append(Result(**base, status="insufficient_data",
                                  evidence=f"policy v{version}: {both} of {total} eligible buyers seen in both arms, below the minimum sample of {guardrail.min_sample}"))
        else:
            share = both / total
            status = "breach" if share > BOTH_ARMS_MAX_SHARE else "warn" if both else "ok"
            results.append(Result(**base, status=status, value=share, min_sample_met=True,
                                  evidence=f"policy v{version}: {both} of {total} eligible buyers ({share:.2%}) seen in both arms; breach above {BOTH_ARMS_MAX_SHARE:.0%}"))
    if not results:
        results.append(Result(guardrail=guardrail, metric="sample_ratio", segment=None, status="insufficient_data",
                              threshold=SRM_P, evidence=f"no eligible orders in the last {guardrail.window_minutes} min"))
    return results


# -- feature health ----------------------------------------------------------------------------

def _residual_verdict(guardrail: Guardrail, item: dict, causes: list[dict], *, start: datetime, end: datetime,
                      reference: dict) -> dict:
    """The item's default-share test once the orders of `causes` (segments of other dimensions)
    are left out, now and in the reference."""
    exclude: dict[str, list[str]] = {}
    for cause in causes:
        exclude.setdefault(cause["segment"]["feature"], []).append(cause["segment"]["value"])
    segment = (item["segment"]["feature"], item["segment"]["value"]) if item["segment"] else None
    now = counts_excluding(feature=item["feature"], start=start, end=end, segment=segment, exclude=exclude)
    ref = counts_excluding(feature=item["feature"], start=reference["from"], end=reference["to"], segment=segment,
                           exclude=exclude)
    margin, psi_threshold, min_sample = feature_thresholds()
    verdict = item_status(n=now["n"], defaults=now["defaults"], ref_n=ref["n"], ref_defaults=ref["defaults"],
                          psi_value=stats.psi(now["bins"], ref["bins"]), bins=len(set(now["bins"]) | set(ref["bins"])),
                          margin=margin, psi_threshold=psi_threshold, min_sample=min_sample)
    return {**verdict, "n": now["n"], "defaults": now["defaults"], "ref_n": ref["n"], "ref_defaults": ref["defaults"]}


def attribute_feature_breaches(guardrail: Guardrail, items: list[dict], *, start: datetime, end: datetime,
                               reference: dict | None) -> dict[int, tuple[list[dict], dict]]:
    """For one feature's items: {index of an explained breaching item: (the causes that explain
    it, its residual verdict)}. Breaching items are taken in order of their rise (the most
    concentrated first); an item is a cause unless leaving out the orders of the causes found so
    far (of other dimensions) takes its rise below a breach."""
    order = sorted((i for i, item in enumerate(items) if item["status"] == "breach"),
                   key=lambda i: (items[i]["segment"] is None, -(items[i]["default_share_increase"] or 0.0),
                                  -(items[i]["psi"] or 0.0)))
    causes: list[dict] = []
    explained: dict[int, tuple[list[dict], dict]] = {}
    for index in order:
        item = items[index]
        dimension = item["segment"]["feature"] if item["segment"] else None
        others = [c for c in causes if c["segment"]["feature"] != dimension]
        if others and reference is not None:
            residual = _residual_verdict(guardrail, item, others, start=start, end=end, reference=reference)
            if residual["status"] != "breach":
                explained[index] = (others, residual)
                continue
        if item["segment"] is not None:
            causes.append(item)
    return explained


def evaluate_feature_health(guardrail: Guardrail, ctx: Context) -> list[Result]:
    start = ctx.now - timedelta(minutes=guardrail.window_minutes)
    reference = reference_window(start=start, end=ctx.now)
    items = []
    for seg_feature in _segment_features(guardrail):
        items += feature_health(start=start, end=ctx.now, segment_feature=seg_feature,
                                include_overall=seg_feature is None)
    by_feature: dict[str, list[dict]] = {}
    for item in items:
        by_feature.setdefault(item["feature"], []).append(item)
    margin, psi_threshold, min_sample = feature_thresholds()
    rule = rule_text(margin=margin, psi_threshold=psi_threshold, min_sample=min_sample)
    results = []
    for feature, feature_items in by_feature.items():
        explained = attribute_feature_breaches(guardrail, feature_items, start=start, end=ctx.now, reference=reference)
        for index, item in enumerate(feature_items):
            segment = (item["segment"]["feature"], item["segment"]["value"]) if item["segment"] else None
            status, note = item["status"], ""
            if index in explained:
                causes, residual = explained[index]
                cause_text = ", ".join(f"{c['segment']['feature']}={c['segment']['value']}" for c in causes)
                share = residual["defaults"] / residual["n"] if residual["n"] else None
                ref_share = residual["ref_defaults"] / residual["ref_n"] if residual["ref_n"] else None
                rise = share - ref_share if share is not None and ref_share is not None else None
                status = "warn"
                note = (f"; explained by {cause_text}: without their orders the default share is {_pct(share)} vs "
                        f"reference {_pct(ref_share)} ({'n/a' if rise is None else f'{rise * 100:+.2f} pp'}, "
                        f"n={residual['n']} vs {residual['ref_n']}), {residual['status'].replace('_', ' ')} on its own; "
                        f"no action")
            lower = item.get("default_share_rise_lower_bound")
            increase = item["default_share_increase"]
            evidence = (
                f"{feature} ({_segment_text(segment)}, last {guardrail.window_minutes} min): default share "
                f"{_pct(item['default_share'])} ({item['defaults']}/{item['n']}) vs reference "
                f"{_pct(item['reference_default_share'])} ({item['reference_defaults']}/{item['reference_n']}), rise "
                f"{'n/a' if increase is None else f'{increase * 100:+.2f} pp'}"
                f" (lower bound {'n/a' if lower is None else f'{lower * 100:+.2f} pp'}); null {_pct(item['null_share'])}, "
                f"out of range {_pct(item['out_of_range_share'])}, PSI {_fmt(item['psi'])} ({item['psi_band'] or 'n/a'}"
                f"{'' if item.get('psi_judged') else ', within chance at this sample'}); {rule} -> {status}{note}")
            results.append(Result(guardrail=guardrail, metric=f"feature_health:{feature}", segment=segment,
                                  status=status, value=item["default_share"], threshold=guardrail.margin,
                                  evidence=evidence, min_sample_met=item["status"] != "insufficient_data",
                                  details={"psi": item["psi"], "default_share_increase": item["default_share_increase"],
                                           "default_share_rise_lower_bound": lower, "n": item["n"],
                                           "reference_n": item["reference_n"],
                                           "explained_by": [c["segment"] for c in explained[index][0]] if index in explained else None}))
    if not results:
        results.append(Result(guardrail=guardrail, metric="feature_health", segment=None, status="insufficient_data",
                              threshold=guardrail.margin, evidence=f"no feature data in the last {guardrail.window_minutes} min"))
    return results


# -- evaluation and recording ------------------------------------------------------------------

def compute(*, now: datetime | None = None) -> list[Result]:
    with read_scope():
        return _compute(Context(now or timezone.now()))


def _compute(ctx: Context) -> list[Result]:
    guardrails = list(Guardrail.objects.filter(enabled=True))
    others: list[Result] = []
    for guardrail in guardrails:
        if guardrail.kind == Guardrail.Kind.LIMIT:
            others += evaluate_limit(guardrail, ctx)
        elif guardrail.kind == Guardrail.Kind.SRM:
            others += evaluate_srm(guardrail, ctx)
        elif guardrail.kind == Guardrail.Kind.FEATURE_HEALTH:
            others += evaluate_feature_health(guardrail, ctx)
    # Feature health first: the delta family tests the populations it implicates.
    work, total, held_share = delta_work([g for g in guardrails if g.kind == Guardrail.Kind.DELTA], ctx,
                                         implicated_populations(others))
    return evaluate_deltas(work, total_weight=total, held_share=held_share) + others


def effective_action(guardrail_action: str, seg_feature: str) -> str:
    # Excluding a segment needs a segment; a breach on all traffic steps back a stage instead.
    if guardrail_action == Guardrail.Action.EXCLUDE_SEGMENT and not seg_feature:
        return Guardrail.Action.ROLLBACK_STAGE
    return guardrail_action


def evaluate(*, now: datetime | None = None) -> dict:
    """Evaluate every enabled guardrail, record statuses, record and announce new breaches."""
    from shopswift_ops.live import announce

    now = now or timezone.now()
    results = compute(now=now)
    new_alerts, changed = [], False
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EVALUATION_LOCK_KEY])
        existing = {(s.guardrail_id, s.metric, s.seg_feature, s.seg_value): s for s in GuardrailStatus.objects.all()}
        seen, to_create, to_update = set(), [], []
        for result in results:
            key = result.key
            seen.add(key)
            row = existing.get(key)
            if row is None:
                row = GuardrailStatus(guardrail=result.guardrail, metric=result.metric, seg_feature=key[2],
                                      seg_value=key[3], since=now, status=result.status)
                to_create.append(row)
                changed = True
                was_breach = False
            else:
                was_breach = row.status == "breach"
                if row.status != result.status:
                    row.since, changed = now, True
                to_update.append(row)
            row.status, row.value, row.threshold = result.status, result.value, result.threshold
            row.evidence, row.details, row.min_sample_met, row.evaluated_at = (
                result.evidence, result.details, result.min_sample_met, now)
            if result.status == "breach" and not was_breach:
                alert, created = Alert.objects.get_or_create(
                    guardrail=result.guardrail, metric=result.metric, seg_feature=key[2], seg_value=key[3],
                    episode_started_at=row.since,
                    defaults={"action": effective_action(result.guardrail.action, key[2]), "evidence": result.evidence,
                              "details": result.details})
                if created:
                    new_alerts.append(alert)
        for key, row in existing.items():
            if key not in seen and row.status != "insufficient_data":
                row.status, row.since, row.evaluated_at, row.min_sample_met = "insufficient_data", now, now, False
                row.value, row.evidence = None, "no data for this subject in the evaluation window"
                to_update.append(row)
                changed = True
        GuardrailStatus.objects.bulk_create(to_create)
        GuardrailStatus.objects.bulk_update(
            to_update, ["status", "value", "threshold", "evidence", "details", "min_sample_met", "since", "evaluated_at"])
        if changed:
            announce("guardrails", {"guardrails": latest_statuses()})
        for alert in new_alerts:
            announce("alerts", alert.as_message())
    return {"evaluated": len(results), "alerts": [a.pk for a in new_alerts], "changed": changed}


def status_item(row: GuardrailStatus) -> dict:
    guardrail = row.guardrail
    return {
        "name": guardrail.name,
        "metric": row.metric,
        "segment": segment_dict(row.seg_feature, row.seg_value),
        "status": row.status,
        "value": row.value,
        "threshold": row.threshold,
        "evidence": row.evidence,
        "since": row.since.isoformat(),
        "action": effective_action(guardrail.action, row.seg_feature),
        "severity": guardrail.severity,
        "min_sample_met": row.min_sample_met,
        "evaluated_at": row.evaluated_at.isoformat(),
    }


def latest_statuses() -> list[dict]:
    """CONTRACT /api/v1/guardrails items (+ severity, min_sample_met, evaluated_at), worst first."""
    order = {"breach": 0, "warn": 1, "insufficient_data": 2, "ok": 3}
    rows = GuardrailStatus.objects.select_related("guardrail").filter(guardrail__enabled=True)
    items = [status_item(row) for row in rows]
    items.sort(key=lambda i: (order.get(i["status"], 9), i["name"], i["metric"],
                              (i["segment"] or {}).get("feature") or "", (i["segment"] or {}).get("value") or ""))
    return items


def recent_alerts(*, limit: int = 50) -> list[dict]:
    return [alert.as_message() for alert in Alert.objects.select_related("guardrail")[:limit]]


def method_summary() -> dict:
    return {
        "delta": (f"one-sided mSPRT (half-normal mixture over harm > 0, tau = {TAU_MARGIN_MULTIPLE:g} x margin) on "
                  f"treatment - control beyond the margin, on the orders of the current policy version since it began: "
                  f"settled ones (older than the guardrail's maturity); for {', '.join(outcomes_so_far.METRICS)} also the "
                  f"younger ones with their outcomes so far (completion rate and delay per final decision learned per arm "
                  f"from the last {outcomes_so_far.MODEL_MINUTES} min of settled orders; sandwich variance); "
                  f"alpha {ALPHA} weighted Holm-Bonferroni over the guardrail x segment comparisons, "
                  f"{IMPLICATED_ALPHA_SHARE:.0%} of the weight held for the populations feature health implicates "
                  f"(their values pooled); valid at every look"),
        "limit": "treatment value of the last minutes past the threshold on at least the minimum sample (warn from 80%)",
        "srm": f"chi-square of the arm split vs the policy's expected share, breach at p < {SRM_P}; "
               f"buyers in both arms above {BOTH_ARMS_MAX_SHARE:.0%}",
        "feature_health": ("per feature and segment: the default-share rise's one-sided lower bound (Newcombe) above "
                           "the margin, or PSI over the threshold once beyond chance, vs the reference window; a segment "
                           "whose rise disappears without the orders of a breached segment of another dimension is "
                           "warn (explained), not a breach"),
        "insufficient_data": "below the minimum sample or no data: never ok",
    }
