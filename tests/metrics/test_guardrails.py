import random
import re
from datetime import timedelta

import pytest

from metrics import population
from metrics.guardrails import evaluate, latest_statuses
from metrics.models import Alert, Guardrail
from shopswift_ops import live
from tests.metrics.conftest import cohort_events, store

pytestmark = pytest.mark.django_db


def _status(items, name, metric=None, segment=None):
    for item in items:
        subject = {"feature": item["segment"]["feature"], "value": item["segment"]["value"]} if item["segment"] else None
        if item["name"] == name and (metric is None or item["metric"] == metric) and subject == segment:
            return item
    raise AssertionError(f"no status {name} {metric} {segment}: {[(i['name'], i['metric'], i['segment']) for i in items]}")


@pytest.fixture
def alerts_seen():
    seen = []
    live.subscribe("alerts", seen.append)
    yield seen
    live._subscribers["alerts"].remove(seen.append)


def test_no_data_is_insufficient_data_never_ok(fold, now):
    fold()
    evaluate(now=now)
    items = latest_statuses()
    assert items
    assert {i["status"] for i in items} == {"insufficient_data"}
    assert not any(i["min_sample_met"] for i in items)


def test_a_clear_conversion_drop_breaches_and_alerts_once(fold, now, alerts_seen, django_capture_on_commit_callbacks):
    rng = random.Random(1)
    start = now - timedelta(minutes=30)
    store(cohort_events(rng, n=1500, arm="control", start=start, minutes=29, conversion=0.72)
          + cohort_events(rng, n=1500, arm="treatment", start=start, minutes=29, conversion=0.62))
    fold()
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(now=now)
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(now=now + timedelta(seconds=5))
    item = _status(latest_statuses(), "conversion", "conversion", None)
    assert item["status"] == "breach"
    assert item["action"] == "halt_ramp"
    assert "mSPRT" in item["evidence"] and "Bonferroni" in item["evidence"]
    # sample sizes shown: the settled orders, and the younger ones with their outcomes so far
    assert re.search(r"\(\d+/1[34]\d\d settled \+ \d+ younger \(\d+ completed so far, [\d.]+ expected\)\) vs control",
                     item["evidence"])
    conversion_alerts = Alert.objects.filter(guardrail__name="conversion", seg_feature="")
    assert conversion_alerts.count() == 1
    messages = [m for m in alerts_seen if m["guardrail"] == "conversion" and m["segment"] is None]
    assert len(messages) == 1
    assert messages[0]["alert_id"] == conversion_alerts.get().pk
    assert messages[0]["status"] == "breach" and messages[0]["action"] == "halt_ramp"


def test_equal_arms_stay_ok(fold, now):
    rng = random.Random(2)
    start = now - timedelta(minutes=30)
    store(cohort_events(rng, n=1200, arm="control", start=start, minutes=29, conversion=0.71)
          + cohort_events(rng, n=1200, arm="treatment", start=start, minutes=29, conversion=0.71))
    fold()
    evaluate(now=now)
    assert _status(latest_statuses(), "conversion", "conversion", None)["status"] in ("ok", "warn")
    assert not Alert.objects.exists()


def test_latency_and_fallback_limits(fold, now):
    rng = random.Random(3)
    start = now - timedelta(seconds=110)
    store(cohort_events(rng, n=300, arm="treatment", start=start, minutes=1.5, conversion=0.7, latency_ms=120)
          + cohort_events(rng, n=30, arm="treatment", start=start, minutes=1.5, conversion=0.7, decided_by="fallback"))
    fold()
    evaluate(now=now)
    items = latest_statuses()
    latency = _status(items, "scoring-latency-p95")
    assert latency["status"] == "breach" and latency["value"] > 80
    assert latency["action"] == "rollback_stage"
    assert _status(items, "fallback-rate")["status"] == "breach"


def test_feature_health_names_the_feature_and_the_segment(fold, now):
    rng = random.Random(4)
    baseline = now - timedelta(minutes=90)
    social = {"signup_method": "social_google", "is_repeat_buyer": True}
    store(cohort_events(rng, n=600, arm="control", start=baseline, minutes=60, conversion=0.7)
          + cohort_events(rng, n=300, arm="control", start=baseline, minutes=60, conversion=0.7,
                          features={**social, "account_age_days": 900}))
    recent = now - timedelta(minutes=4)
    store(cohort_events(rng, n=400, arm="control", start=recent, minutes=3, conversion=0.7)
          + cohort_events(rng, n=200, arm="control", start=recent, minutes=3, conversion=0.7,
                          features={**social, "account_age_days": 0}))
    fold()
    evaluate(now=now)
    items = latest_statuses()
    culprit = _status(items, "feature-health", "feature_health:account_age_days",
                      {"feature": "signup_method", "value": "social_google"})
    assert culprit["status"] == "breach"
    assert culprit["action"] == "exclude_segment"
    assert "account_age_days" in culprit["evidence"]
    bystander = _status(items, "feature-health", "feature_health:account_age_days",
                        {"feature": "is_repeat_buyer", "value": "true"})
    assert bystander["status"] == "warn" and "signup_method=social_google" in bystander["evidence"]
    alert = Alert.objects.get(guardrail__name="feature-health", metric="feature_health:account_age_days", seg_value="social_google")
    assert alert.as_message()["segment"] == {"feature": "signup_method", "value": "social_google", "in": ["social_google"]}
    assert not Alert.objects.filter(guardrail__name="feature-health", seg_feature="is_repeat_buyer").exists()


def test_sample_ratio_mismatch_against_the_policy_share(fold, now):
    population.set_policy_provider(lambda v: {"version": v, "mode": "active", "traffic_pct": 50.0, "segment_overrides": []})
    rng = random.Random(5)
    start = now - timedelta(minutes=30)
    store(cohort_events(rng, n=700, arm="control", start=start, minutes=29, conversion=0.7)
          + cohort_events(rng, n=450, arm="treatment", start=start, minutes=29, conversion=0.7))
    fold()
    evaluate(now=now)
    item = _status(latest_statuses(), "sample-ratio", "sample_ratio:v2", None)
    assert item["status"] == "breach"
    assert "chi-square" in item["evidence"]


def test_buyers_in_both_arms_breach(fold, now):
    population.set_policy_provider(lambda v: {"version": v, "mode": "active", "traffic_pct": 50.0, "segment_overrides": []})
    rng = random.Random(6)
    start = now - timedelta(minutes=30)
    store(cohort_events(rng, n=300, arm="control", start=start, minutes=29, conversion=0.7, buyer_prefix="same")
          + cohort_events(rng, n=300, arm="treatment", start=start, minutes=29, conversion=0.7, buyer_prefix="same"))
    from django.db import connection
    with connection.cursor() as cursor:  # make a fifth of the buyers appear on both sides
        cursor.execute("UPDATE metrics_decision SET buyer_id = 'shared-' || (abs(hashtext(order_id)) % 60)")
        cursor.execute("INSERT INTO metrics_pending_order (order_id, queued_at) SELECT order_id, now() FROM metrics_decision")
    Guardrail.objects.filter(name="sample-ratio").update(min_sample=50)
    fold()
    evaluate(now=now)
    item = _status(latest_statuses(), "sample-ratio", "buyers_in_both_arms:v2", None)
    assert item["status"] == "breach"


def test_a_breach_fires_its_rollout_action_once(fold, now, django_capture_on_commit_callbacks):
    """The rollout app subscribes to "alerts" (RolloutConfig.ready); a persisting breach and a
    repeated delivery still make one action."""
    from rollout.models import GuardrailActionRecord

    rng = random.Random(8)
    start = now - timedelta(minutes=30)
    store(cohort_events(rng, n=1500, arm="control", start=start, minutes=29, conversion=0.72)
          + cohort_events(rng, n=1500, arm="treatment", start=start, minutes=29, conversion=0.60))
    fold()
    for offset in (0, 3, 6):
        with django_capture_on_commit_callbacks(execute=True):
            evaluate(now=now + timedelta(seconds=offset))
    alert = Alert.objects.get(guardrail__name="conversion", seg_feature="")
    records = GuardrailActionRecord.objects.filter(alert_id=alert.pk)
    assert records.count() == 1
    live._deliver("alerts", alert.as_message())  # a second delivery of the same alert
    assert GuardrailActionRecord.objects.filter(alert_id=alert.pk).count() == 1
