import random
from datetime import timedelta

import pytest

from metrics.guardrails import evaluate
from tests.factories import iso
from tests.metrics.conftest import cohort_events, random_traffic, store
from tests.metrics.reference import raw_counts

pytestmark = pytest.mark.django_db


def test_kpis_api_by_arm_and_segment(api_client_for, fold, now):
    start = now - timedelta(minutes=20)
    store(random_traffic(random.Random(21), orders=150, start=start, minutes=15))
    fold()
    client = api_client_for("kpis:read")
    response = client.get("/api/v1/kpis", {"from": iso(start), "to": iso(now), "by": "arm,segment:signup_method"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["population"].startswith("orders eligible for treatment in both arms")
    expected = raw_counts(start=start, end=now, segment_feature="signup_method")
    segment_cohorts = {(c["arm"], c["segment"]["value"]): c for c in body["cohorts"] if c["segment"]}
    for key, counts in expected.items():
        metrics = segment_cohorts[key]["metrics"]
        assert metrics["orders"]["value"] == counts["orders"]
        assert metrics["conversion"]["numerator"] == counts["completed"]
    overall = [c for c in body["cohorts"] if c["segment"] is None]
    assert [c["arm"] for c in overall] == ["control", "treatment"]
    treatment = overall[1]["metrics"]
    assert set(treatment) >= {"orders", "conversion", "approve_rate", "step_up_rate", "decline_rate", "step_up_pass_rate",
                              "fallback_rate", "timeout_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                              "false_decline_rate", "support_ticket_rate", "fraud_loss_rate", "chargeback_rate",
                              "gmv_lost_minor"}
    assert "delta" in treatment["conversion"] and len(treatment["conversion"]["ci95"]) == 2
    assert "gmv_lost_minor" not in overall[0]["metrics"]


@pytest.mark.parametrize("params,name", [
    ({"from": "yesterday"}, "from"), ({"to": "2026-11-28T10:00:00"}, "to"), ({"by": "segment"}, "by"),
    ({"by": "arm,segment:device_risk"}, "by"), ({"from": "2026-11-28T10:00:00Z", "to": "2026-11-28T09:00:00Z"}, "from"),
])
def test_kpis_api_names_the_bad_parameter(api_client_for, params, name):
    response = api_client_for("kpis:read").get("/api/v1/kpis", params)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{name}:")


def test_read_apis_need_the_kpis_scope(api_client_for):
    client = api_client_for("events:write")
    for path in ("/api/v1/kpis", "/api/v1/guardrails", "/api/v1/features/health", "/api/v1/diagnosis"):
        assert client.get(path).status_code == 403


def test_guardrails_features_and_diagnosis_apis(api_client_for, fold, now):
    rng = random.Random(22)
    store(cohort_events(rng, n=300, arm="control", start=now - timedelta(minutes=80), minutes=60, conversion=0.7)
          + cohort_events(rng, n=200, arm="treatment", start=now - timedelta(minutes=4), minutes=3, conversion=0.6,
                          features={"signup_method": "social_apple", "account_age_days": 0}))
    fold()
    evaluate(now=now)
    client = api_client_for("kpis:read")
    guardrails = client.get("/api/v1/guardrails").json()["guardrails"]
    assert guardrails and set(guardrails[0]) >= {"name", "metric", "segment", "status", "value", "threshold", "evidence",
                                                 "since", "action", "min_sample_met"}
    health = client.get("/api/v1/features/health", {"from": iso(now - timedelta(minutes=5)), "to": iso(now),
                                                    "segment": "signup_method"}).json()
    assert health["reference"]["kind"] == "early_baseline"
    item = next(i for i in health["features"] if i["feature"] == "account_age_days" and i["segment"]
                and i["segment"]["value"] == "social_apple")
    assert item["default_share"] == 1.0 and item["status"] in ("breach", "insufficient_data")
    assert set(item) >= {"feature", "segment", "default_share", "null_share", "out_of_range_share",
                         "reference_default_share", "psi", "status"}
    assert client.get("/api/v1/features/health", {"segment": "nope"}).status_code == 400
    diagnosis = client.get("/api/v1/diagnosis", {"from": iso(now - timedelta(minutes=10)), "to": iso(now)}).json()
    assert diagnosis["latency"]["by_arm"]["treatment"]["decisions"] == 200
    assert diagnosis["thresholds"]["scored_orders"] == 200
    assert diagnosis["thresholds"]["what_if"]


def test_openapi_documents_the_read_apis(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert {"/api/v1/kpis", "/api/v1/guardrails", "/api/v1/features/health", "/api/v1/diagnosis", "/api/v1/events"} <= set(paths)
