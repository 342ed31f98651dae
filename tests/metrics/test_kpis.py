import random
from datetime import timedelta

import numpy as np
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from metrics.kpis import RATES, cohort_kpis
from metrics.rollups import latency_bin_value, latency_bin, LATENCY_RATIO
from tests.factories import decision_event, iso, outcome_event
from tests.metrics.conftest import random_traffic, store
from tests.metrics.reference import raw_counts, raw_latencies

pytestmark = pytest.mark.django_db


def _cohort(document, arm, value=None):
    for cohort in document["cohorts"]:
        seg = cohort["segment"]
        if cohort["arm"] == arm and ((seg is None and value is None) or (seg and seg["value"] == value)):
            return cohort["metrics"]
    raise AssertionError(f"no cohort {arm} {value}")


@pytest.mark.parametrize("segment_feature", [None, "signup_method", "is_repeat_buyer", "amount_band"])
def test_every_numerator_and_denominator_equals_a_count_over_raw_events(fold, now, segment_feature):
    start = now - timedelta(minutes=20)
    store(random_traffic(random.Random(7), orders=400, start=start, minutes=15))
    fold()
    document = cohort_kpis(start=start, end=now, segment_feature=segment_feature)
    expected = raw_counts(start=start, end=now, segment_feature=segment_feature)
    assert expected
    for (arm, value), counts in expected.items():
        metrics = _cohort(document, arm, value if segment_feature else None)
        assert metrics["orders"]["value"] == counts["orders"]
        for rate in RATES:
            assert metrics[rate.key]["numerator"] == counts[rate.numerator], (rate.key, arm, value)
            assert metrics[rate.key]["denominator"] == counts[rate.denominator], (rate.key, arm, value)


def test_treatment_delta_ci_equals_statsmodels_newcombe(fold, now):
    start = now - timedelta(minutes=20)
    store(random_traffic(random.Random(11), orders=300, start=start, minutes=15))
    fold()
    document = cohort_kpis(start=start, end=now)
    treatment, control = _cohort(document, "treatment"), _cohort(document, "control")
    for key in ("conversion", "decline_rate", "false_decline_rate", "fallback_rate"):
        t, c = treatment[key], control[key]
        low, high = confint_proportions_2indep(t["numerator"], t["denominator"], c["numerator"], c["denominator"],
                                               method="newcomb", compare="diff")
        assert treatment[key]["ci95"] == pytest.approx([low, high], abs=1e-9)
        assert treatment[key]["delta"] == pytest.approx(t["value"] - c["value"])


def test_latency_percentiles_match_raw_order_statistics_within_a_bin(fold, now):
    start = now - timedelta(minutes=20)
    store(random_traffic(random.Random(3), orders=300, start=start, minutes=15))
    fold()
    document = cohort_kpis(start=start, end=now)
    raw = raw_latencies(start=start, end=now)
    for arm in ("control", "treatment"):
        for key, q in (("latency_p50_ms", 50), ("latency_p95_ms", 95), ("latency_p99_ms", 99)):
            exact = float(np.percentile(raw[arm], q, method="inverted_cdf"))
            assert _cohort(document, arm)[key]["value"] == pytest.approx(exact, rel=LATENCY_RATIO - 1)
            assert latency_bin_value(latency_bin(exact)) == _cohort(document, arm)[key]["value"]


def test_late_outcome_updates_the_orders_original_window(fold, now):
    early = now - timedelta(minutes=50)
    decision = decision_event(occurred_at=iso(early), arm="control")
    store([decision])
    fold()
    window = dict(start=early - timedelta(minutes=1), end=early + timedelta(minutes=1))
    assert _cohort(cohort_kpis(**window), "control")["conversion"]["numerator"] == 0
    store([outcome_event(decision["order_id"], "checkout_completed", occurred_at=iso(now - timedelta(seconds=5))),
           outcome_event(decision["order_id"], "chargeback", occurred_at=iso(now - timedelta(seconds=5)),
                         amount_minor=4599, currency="EUR")])
    fold()
    metrics = _cohort(cohort_kpis(**window), "control")
    assert metrics["orders"]["value"] == 1
    assert metrics["conversion"]["numerator"] == 1
    assert metrics["chargeback_rate"]["numerator"] == 1
    assert metrics["fraud_loss_rate"]["numerator"] == 4599
    recent = _cohort(cohort_kpis(start=now - timedelta(minutes=5), end=now), "control")
    assert recent["orders"]["value"] == 0


def test_an_outcome_before_its_decision_joins_when_the_decision_arrives(fold, now):
    decision = decision_event(occurred_at=iso(now - timedelta(minutes=3)), arm="treatment")
    store([outcome_event(decision["order_id"], "checkout_completed")])
    fold()
    assert _cohort(cohort_kpis(start=now - timedelta(minutes=10), end=now), "treatment")["orders"]["value"] == 0
    store([decision])
    fold()
    metrics = _cohort(cohort_kpis(start=now - timedelta(minutes=10), end=now), "treatment")
    assert metrics["conversion"]["numerator"] == metrics["orders"]["value"] == 1


def test_refolding_the_same_orders_changes_nothing(fold, now):
    from django.db import connection

    start = now - timedelta(minutes=20)
    events = random_traffic(random.Random(5), orders=100, start=start, minutes=15)
    store(events)
    fold()
    before = cohort_kpis(start=start, end=now, segment_feature="signup_method")
    with connection.cursor() as cursor:  # queue every order again, as a re-run after a crash would
        cursor.execute("INSERT INTO metrics_pending_order (order_id, queued_at) SELECT order_id, now() FROM metrics_order_fact")
    fold()
    assert cohort_kpis(start=start, end=now, segment_feature="signup_method") == before


def test_hour_rollups_answer_the_same_as_minutes(fold, now):
    start = now - timedelta(hours=3)
    store(random_traffic(random.Random(9), orders=200, start=start, minutes=170))
    fold()
    long_window = cohort_kpis(start=start, end=now)
    expected = raw_counts(start=start, end=now)
    for (arm, _), counts in expected.items():
        assert _cohort(long_window, arm)["orders"]["value"] == counts["orders"]
        assert _cohort(long_window, arm)["conversion"]["numerator"] == counts["completed"]


def test_segment_override_orders_are_left_out_of_the_population(fold, now):
    from metrics import population

    population.set_policy_provider(lambda version: {"version": version, "mode": "active", "traffic_pct": 50,
                                                    "segment_overrides": [{"feature": "signup_method", "in": ["social_google"], "arm": "control"}]}
                                   if version == 7 else None)
    social = decision_event(policy_version=7, arm="control", occurred_at=iso(now - timedelta(minutes=2)),
                            features={"signup_method": "social_google", "is_repeat_buyer": True})
    other = decision_event(policy_version=7, arm="control", occurred_at=iso(now - timedelta(minutes=2)),
                           features={"signup_method": "email", "is_repeat_buyer": True})
    store([social, other])
    fold()
    document = cohort_kpis(start=now - timedelta(minutes=5), end=now)
    assert _cohort(document, "control")["orders"]["value"] == 1
    assert "eligible" in document["population"]


def test_timeseries_buckets_add_up_to_the_window(fold, now):
    from metrics.kpis import TIMESERIES_METRICS, kpi_timeseries

    start = now - timedelta(minutes=20)
    store(random_traffic(random.Random(13), orders=200, start=start, minutes=20))
    fold()
    series = kpi_timeseries(start=start, end=now, bucket_seconds=300)
    assert len(series["buckets"]) == 4
    document = cohort_kpis(start=start, end=now)
    for arm in ("control", "treatment"):
        assert sum(series["arms"][arm]["orders"]) == _cohort(document, arm)["orders"]["value"]
        for key in TIMESERIES_METRICS:
            band = series["arms"][arm][key]
            assert len(band["value"]) == len(band["lo"]) == len(band["hi"]) == 4
            for value, low, high in zip(band["value"], band["lo"], band["hi"]):
                if value is not None:
                    assert low <= value <= high
    email = kpi_timeseries(start=start, end=now, bucket_seconds=600, segment={"feature": "signup_method", "value": "email"})
    emails = _cohort(cohort_kpis(start=start, end=now, segment_feature="signup_method"), "control", "email")
    assert sum(email["arms"]["control"]["orders"]) == emails["orders"]["value"]


def test_hourly_timeseries_buckets_equal_raw_counts_of_their_part_of_the_window(fold, now):
    """Hour-sized buckets lie on the hour grid: complete hours come from the hourly rollups, the
    window's ragged first and last hour from the per-minute ones; each bucket must equal a direct
    count over the raw events of its part of the window (orders before the window left out)."""
    from collections import Counter

    from metrics import stats
    from metrics.kpis import kpi_timeseries

    start = now - timedelta(minutes=157)
    if start.minute == 0:
        start -= timedelta(minutes=1)
    store(random_traffic(random.Random(21), orders=500, start=start - timedelta(minutes=10), minutes=166))
    fold()
    series = kpi_timeseries(start=start, end=now, bucket_seconds=3600)
    origin = start.replace(minute=0)
    hour = timedelta(hours=1)
    assert series["buckets"][0] == origin.isoformat()
    assert len(series["buckets"]) == -(-(now - origin) // hour)
    checked = 0
    for i, label in enumerate(series["buckets"]):
        assert label == (origin + i * hour).isoformat()
        part_start, part_end = max(start, origin + i * hour), min(now, origin + (i + 1) * hour)
        expected = raw_counts(start=part_start, end=part_end)
        latencies = raw_latencies(start=part_start, end=part_end)
        for arm in ("control", "treatment"):
            counts = expected.get((arm, ""), {})
            orders = counts.get("orders", 0)
            assert series["arms"][arm]["orders"][i] == orders, (label, arm)
            conversion = series["arms"][arm]["conversion"]["value"][i]
            assert conversion == (pytest.approx(counts["completed"] / orders) if orders else None)
            histogram = Counter(latency_bin(v) for v in latencies.get(arm, []))
            assert series["arms"][arm]["latency_p95_ms"]["value"][i] == stats.histogram_quantile(histogram, 0.95,
                                                                                                  latency_bin_value)
            checked += orders
    assert checked == sum(c["orders"] for c in raw_counts(start=start, end=now).values())


def test_feature_health_in_a_read_scope_equals_the_one_dimension_reads(fold, now):
    """Inside a page render (read_scope) feature counts of every segment dimension come from one
    scan; each dimension's answer must be what its own read gives."""
    from metrics.feature_health import feature_counts, feature_health
    from shopswift_ops.read_scope import read_scope

    start = now - timedelta(hours=2, minutes=17)
    store(random_traffic(random.Random(31), orders=300, start=start, minutes=130))
    fold()
    alone = {seg: feature_counts(start=start, end=now, segment_feature=seg)
             for seg in (None, "signup_method", "is_repeat_buyer", "amount_band")}
    health = {seg: feature_health(start=start, end=now, segment_feature=seg) for seg in ("signup_method", "amount_band")}
    assert alone[None] and alone["signup_method"]
    with read_scope():
        for seg, counts in alone.items():
            assert feature_counts(start=start, end=now, segment_feature=seg) == counts, seg
        for seg, items in health.items():
            assert feature_health(start=start, end=now, segment_feature=seg) == items, seg
