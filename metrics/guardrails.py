"""Guardrail evaluation: statuses with evidence, and alerts for new breaches.

Evaluation only: the rollout app turns an alert into its action (it subscribes to the live
"alerts" topic and fires the action once per alert_id).

Methods (shown in every evidence sentence and in GET /api/v1/guardrails):
- `delta` guardrails (treatment vs control, e.g. conversion): one-sided mSPRT with a normal
  mixture N(0, tau^2), tau = 4 x the margin, on theta = harm - margin, where harm is the
  treatment-minus-control difference in the harmful direction. Breach when the estimate shows
  harm beyond the margin AND Lambda >= 1/alpha, alpha = 0.05 / m (Bonferroni over the m
  guardrail x segment comparisons evaluated). The mSPRT p-value is valid at every look, so
  evaluating every few seconds does not inflate false alarms. Warn: the estimate is beyond the
  margin but not yet significant.
- `limit` guardrails (treatment p95 latency, fallback rate): a service level on the last few
  minutes of the newest policy version that has the minimum sample there (a spike that comes
  with a ramp is not diluted by the previous stage's traffic): breach when the value is past the threshold on at least the minimum sample, warn from
  80 % of it; the evidence carries the 95 % interval (distribution-free order statistic for a
  percentile, Wilson for a rate).
- `srm`: chi-square of the arm split of eligible orders against the policy version's expected
  treatment share (breach at p < 0.001), and buyers seen in both arms under one version
  (breach above 1 %).
- `feature_health`: default share up by more than the margin vs the reference, or PSI above
  the threshold, per monitored feature and segment value; a breach is attributed to the
  segment values that carry most of the rise (at least half of the largest rise), the others
  (all traffic, segments that merely contain the culprit) are `warn` with a pointer to it.
Too little data is `insufficient_data`, never `ok`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from metrics import stats
from metrics.feature_health import feature_health
from metrics.kpis import PERCENTILE_BY_KEY, RATE_BY_KEY, _empty_counts, cohort_counts, latency_histograms
from metrics.models import Alert, FeatureDefinition, Guardrail, GuardrailStatus
from metrics.population import expected_treatment_share
from metrics.rollups import latency_bin_value

ALPHA = 0.05
SRM_P = 0.001
BOTH_ARMS_MAX_SHARE = 0.01
EVALUATION_LOCK_KEY = 0x5D0A11F1
WARN_FRACTION = 0.8
# The mixing scale of the mSPRT: harm of a few margins is what the test is tuned to find fast
# (a tau far below the effects of interest makes the test slow; far above, noisy at small n).
TAU_MARGIN_MULTIPLE = 4.0


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


def _fmt(value, unit=""):
    if value is None:
        return "n/a"
    return f"{value:.4g}{unit}"


def _pct(value):
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _segment_text(segment):
    return "all traffic" if not segment else f"{segment[0]}={segment[1]}"


def _segment_features(guardrail: Guardrail) -> list[str | None]:
    scope = guardrail.segment_feature
    if not scope:
        return [None]
    if scope == "*":
        return [None, *FeatureDefinition.objects.filter(segment_dimension=True).values_list("name", flat=True)]
    return [scope]


class Context:
    """Rollup reads shared by the guardrails of one evaluation."""

    def __init__(self, now: datetime):
        self.now = now
        self._counts, self._hists = {}, {}

    def counts(self, minutes: int, segment_feature, maturity: int = 0):
        key = (minutes, segment_feature, maturity)
        if key not in self._counts:
            self._counts[key] = cohort_counts(start=self.now - timedelta(minutes=minutes),
                                              end=self.now - timedelta(minutes=maturity),
                                              segment_feature=segment_feature)
        return self._counts[key]

    def histograms(self, minutes: int, segment_feature, policy_version: int | None = None):
        key = (minutes, segment_feature, policy_version)
        if key not in self._hists:
            self._hists[key] = latency_histograms(start=self.now - timedelta(minutes=minutes), end=self.now,
                                                  segment_feature=segment_feature, policy_version=policy_version)
        return self._hists[key]

    def version_counts(self, minutes: int, segment_feature, policy_version: int):
        key = (minutes, segment_feature, "v", policy_version)
        if key not in self._counts:
            self._counts[key] = cohort_counts(start=self.now - timedelta(minutes=minutes), end=self.now,
                                              segment_feature=segment_feature, policy_version=policy_version)
        return self._counts[key]


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

def delta_subjects(guardrail: Guardrail, ctx: Context) -> list[tuple]:
    subjects = []
    for seg_feature in _segment_features(guardrail):
        counts = ctx.counts(guardrail.window_minutes, seg_feature, guardrail.maturity_minutes)
        for value in _values(counts, seg_feature):
            subjects.append((seg_feature, value, counts.get(("treatment", value)) or _empty_counts(),
                             counts.get(("control", value)) or _empty_counts()))
    return subjects


def evaluate_delta(guardrail: Guardrail, subject, *, tests: int) -> Result:
    seg_feature, value, treatment, control = subject
    segment = (seg_feature, value) if seg_feature else None
    rate = RATE_BY_KEY[guardrail.metric]
    harmful_up = guardrail.direction == Guardrail.Direction.HIGHER_IS_WORSE
    threshold = guardrail.margin if harmful_up else -guardrail.margin
    n_t, n_c = treatment[rate.denominator], control[rate.denominator]
    alpha = ALPHA / max(1, tests)
    margin = guardrail.margin / rate.scale
    tau = max(TAU_MARGIN_MULTIPLE * margin, 1e-4)
    method = (f"mSPRT, normal mixture tau={tau:.4g}, one-sided for harm beyond the margin, "
              f"alpha={ALPHA}/{tests} (Bonferroni)={alpha:.2g}, orders of the last {guardrail.window_minutes} min"
              + (f" older than {guardrail.maturity_minutes} min (outcomes settled)" if guardrail.maturity_minutes else ""))
    base = dict(guardrail=guardrail, metric=guardrail.metric, segment=segment, threshold=threshold)
    if n_t < guardrail.min_sample or n_c < guardrail.min_sample:
        return Result(**base, status="insufficient_data",
                      evidence=(f"{guardrail.metric} ({_segment_text(segment)}): {n_t} treatment / {n_c} control "
                                f"{rate.denominator}, below the minimum sample of {guardrail.min_sample} per arm; {method}"),
                      details={"n_treatment": n_t, "n_control": n_c, "method": method})
    p_t = treatment[rate.numerator] / n_t
    p_c = control[rate.numerator] / n_c
    if rate.money:
        from metrics.kpis import _money_variance
        variance = _money_variance(treatment) + _money_variance(control)
    else:
        clip_t = min(max(p_t, 0.5 / n_t), 1 - 0.5 / n_t)
        clip_c = min(max(p_c, 0.5 / n_c), 1 - 0.5 / n_c)
        variance = clip_t * (1 - clip_t) / n_t + clip_c * (1 - clip_c) / n_c
    delta = p_t - p_c
    harm = delta if harmful_up else -delta
    theta = harm - margin
    likelihood_ratio = stats.msprt_normal(estimate=theta, variance=variance, tau=tau)
    radius = stats.confidence_sequence_radius(variance=variance, tau=tau, alpha=alpha)
    significant = theta > 0 and likelihood_ratio >= 1 / alpha
    status = "breach" if significant else "warn" if theta > 0 else "ok"
    if rate.scale == 1000:
        show, value_unit, delta_unit, margin_text = 1000, " per 1,000", " per 1,000", f"{guardrail.margin:g} per 1,000"
    else:
        show, value_unit, margin_text = 100, "%", f"{margin * 100:.2f} pp"
        delta_unit = " pp of GMV" if rate.money else " pp"
    evidence = (
        f"{guardrail.metric} ({_segment_text(segment)}): treatment {p_t * show:.3f}{value_unit} "
        f"({treatment[rate.numerator]}/{n_t}) vs control {p_c * show:.3f}{value_unit} ({control[rate.numerator]}/{n_c}); "
        f"delta {delta * show:+.3f}{delta_unit}, always-valid {100 * (1 - alpha):.3g}% CS "
        f"[{(delta - radius) * show:+.3f}, {(delta + radius) * show:+.3f}]{delta_unit}; "
        f"threshold: {'not above' if harmful_up else 'not below'} control by more than {margin_text}; "
        f"{method}: Lambda={likelihood_ratio:.3g} vs 1/alpha={1 / alpha:.3g} -> {status}"
    )
    return Result(**base, status=status, value=delta * rate.scale, evidence=evidence, min_sample_met=True,
                  details={"treatment": {"numerator": treatment[rate.numerator], "denominator": n_t},
                           "control": {"numerator": control[rate.numerator], "denominator": n_c},
                           "delta": delta * rate.scale, "cs": [(delta - radius) * rate.scale, (delta + radius) * rate.scale],
                           "likelihood_ratio": likelihood_ratio, "alpha": alpha, "tests": tests, "tau": tau,
                           "method": method})


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

def evaluate_feature_health(guardrail: Guardrail, ctx: Context) -> list[Result]:
    start = ctx.now - timedelta(minutes=guardrail.window_minutes)
    items = []
    seg_features = _segment_features(guardrail)
    for seg_feature in seg_features:
        items += feature_health(start=start, end=ctx.now, segment_feature=seg_feature,
                                include_overall=seg_feature is None)
    by_feature: dict[str, list[dict]] = {}
    for item in items:
        by_feature.setdefault(item["feature"], []).append(item)
    results = []
    for feature, feature_items in by_feature.items():
        breaching = [i for i in feature_items if i["status"] == "breach"]
        segment_breaches = [i for i in breaching if i["segment"]]

        def weight(item):
            return (max(item["default_share_increase"] or 0.0, 0.0), item["psi"] or 0.0)

        top_increase = max((weight(i)[0] for i in segment_breaches), default=0.0)
        top_psi = max((weight(i)[1] for i in segment_breaches), default=0.0)
        culprits = [i for i in segment_breaches
                    if (top_increase > 0 and weight(i)[0] >= 0.5 * top_increase)
                    or (top_increase == 0 and weight(i)[1] >= 0.5 * top_psi)]
        culprit_text = ", ".join(f"{i['segment']['feature']}={i['segment']['value']}" for i in culprits)
        for item in feature_items:
            segment = (item["segment"]["feature"], item["segment"]["value"]) if item["segment"] else None
            status = item["status"]
            note = ""
            if status == "breach" and culprits and item not in culprits:
                status, note = "warn", f"; the rise is carried by {culprit_text}"
            evidence = (
                f"{feature} ({_segment_text(segment)}, last {guardrail.window_minutes} min): default share "
                f"{_pct(item['default_share'])} vs reference {_pct(item['reference_default_share'])} "
                f"(n={item['n']} vs {item['reference_n']}), null {_pct(item['null_share'])}, out of range "
                f"{_pct(item['out_of_range_share'])}, PSI {_fmt(item['psi'])} ({item['psi_band'] or 'n/a'}); "
                f"breach when the default share rises by more than {guardrail.margin * 100:.1f} pp or PSI > "
                f"{guardrail.threshold:g} with at least {guardrail.min_sample} orders -> {status}{note}")
            results.append(Result(guardrail=guardrail, metric=f"feature_health:{feature}", segment=segment,
                                  status=status, value=item["default_share"], threshold=guardrail.margin,
                                  evidence=evidence, min_sample_met=item["status"] != "insufficient_data",
                                  details={"psi": item["psi"], "default_share_increase": item["default_share_increase"],
                                           "n": item["n"], "reference_n": item["reference_n"]}))
    if not results:
        results.append(Result(guardrail=guardrail, metric="feature_health", segment=None, status="insufficient_data",
                              threshold=guardrail.margin, evidence=f"no feature data in the last {guardrail.window_minutes} min"))
    return results


# -- evaluation and recording ------------------------------------------------------------------

def compute(*, now: datetime | None = None) -> list[Result]:
    ctx = Context(now or timezone.now())
    guardrails = list(Guardrail.objects.filter(enabled=True))
    delta_work = [(g, subject) for g in guardrails if g.kind == Guardrail.Kind.DELTA for subject in delta_subjects(g, ctx)]
    results = [evaluate_delta(g, subject, tests=len(delta_work)) for g, subject in delta_work]
    for guardrail in guardrails:
        if guardrail.kind == Guardrail.Kind.LIMIT:
            results += evaluate_limit(guardrail, ctx)
        elif guardrail.kind == Guardrail.Kind.SRM:
            results += evaluate_srm(guardrail, ctx)
        elif guardrail.kind == Guardrail.Kind.FEATURE_HEALTH:
            results += evaluate_feature_health(guardrail, ctx)
    return results


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
        "segment": {"feature": row.seg_feature, "value": row.seg_value} if row.seg_feature else None,
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
        "delta": (f"one-sided mSPRT (normal mixture, tau = {TAU_MARGIN_MULTIPLE:g} x margin) on treatment - control beyond the margin; "
                  f"alpha {ALPHA} Bonferroni-corrected over the guardrail x segment comparisons; valid at every look"),
        "limit": "treatment value of the last minutes past the threshold on at least the minimum sample (warn from 80%)",
        "srm": f"chi-square of the arm split vs the policy's expected share, breach at p < {SRM_P}; "
               f"buyers in both arms above {BOTH_ARMS_MAX_SHARE:.0%}",
        "feature_health": "default share rise over the margin or PSI over the threshold vs the reference window",
        "insufficient_data": "below the minimum sample or no data: never ok",
    }
