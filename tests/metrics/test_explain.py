"""metrics.explain: reasons, data-quality flags (default, range, history) and the customer answer,
on events stored through the real ingest endpoint."""
from datetime import UTC, datetime, timedelta

import pytest

from metrics import explain
from metrics.models import Decision, FeatureDefinition, ReasonCode
from tests.factories import decision_event, iso, outcome_event

pytestmark = pytest.mark.django_db
URL = "/api/v1/events"


@pytest.fixture
def store(events_client):
    def post(*events):
        response = events_client.post_json(URL, {"events": list(events)})
        assert response.status_code == 200 and response.json()["rejected"] == [], response.content
    return post


def explained(order_id, **kwargs):
    decision = Decision.objects.filter(order_id=order_id).order_by("-occurred_at").first()
    return explain.explain_decision(decision, **kwargs)


def flags_by_problem(explanation):
    return {(f["feature"], f["problem"]) for f in explanation["data_quality_flags"]}


def test_registry_default_and_out_of_range_flags(store):
    event = decision_event(buyer_id="b-fresh", features={
        "account_age_days": 0, "signup_method": "fax", "device_risk": 1.7, "velocity_1h": 3, "prior_good_orders": 0})
    store(event)
    result = explained(event["order_id"])
    assert flags_by_problem(result) == {
        ("account_age_days", "default"), ("prior_good_orders", "default"),
        ("signup_method", "out_of_range"), ("device_risk", "out_of_range")}
    device = next(f for f in result["data_quality_flags"] if f["feature"] == "device_risk")
    assert device["served_value"] == 1.7 and "[0, 1]" in device["detail"]


def test_registry_edit_changes_the_flags(store):
    event = decision_event(features={"velocity_1h": 40})
    store(event)
    assert ("velocity_1h", "out_of_range") not in flags_by_problem(explained(event["order_id"]))
    FeatureDefinition.objects.filter(name="velocity_1h").update(max_value=20)
    assert ("velocity_1h", "out_of_range") in flags_by_problem(explained(event["order_id"]))


def test_account_age_contradicted_by_first_order_in_store(store):
    two_years_ago = datetime.now(UTC) - timedelta(days=730)
    old = decision_event(buyer_id="b-loyal", occurred_at=iso(two_years_ago), features={"signup_method": "email"})
    new = decision_event(buyer_id="b-loyal", decision="decline", features={"account_age_days": 0, "signup_method": "social_apple"})
    store(old, new)
    result = explained(new["order_id"])
    assert ("account_age_days", "contradicts_history") in flags_by_problem(result)
    assert ("account_age_days", "default") in flags_by_problem(result)
    flag = next(f for f in result["data_quality_flags"] if f["problem"] == "contradicts_history")
    assert flag["served_value"] == 0
    assert f"ordered here since {two_years_ago:%B %Y}" in flag["detail"]


def test_account_age_contradicted_by_an_earlier_served_age(store):
    # The buyer's earlier checkout (an hour ago) was served 900 days: today's 0 is impossible.
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    before = decision_event(buyer_id="b-linked", occurred_at=iso(hour_ago), features={"account_age_days": 900})
    after = decision_event(buyer_id="b-linked", features={"account_age_days": 0, "signup_method": "social_google"})
    store(before, after)
    flag = next(f for f in explained(after["order_id"])["data_quality_flags"] if f["problem"] == "contradicts_history")
    assert flag["feature"] == "account_age_days"
    assert "served an account age of 900 days" in flag["detail"]


def test_consistent_history_raises_no_history_flag(store):
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    old = decision_event(buyer_id="b-honest", occurred_at=iso(ten_days_ago), features={"account_age_days": 30})
    new = decision_event(buyer_id="b-honest", features={"account_age_days": 40, "is_repeat_buyer": True,
                                                        "prior_good_orders": 0})
    store(old, new)
    problems = flags_by_problem(explained(new["order_id"]))
    assert not any(problem == "contradicts_history" for _, problem in problems)


def test_repeat_buyer_and_prior_good_orders_contradicted(store):
    earlier = [decision_event(buyer_id="b-rep", occurred_at=iso(datetime.now(UTC) - timedelta(days=d)),
                              features={"account_age_days": 400}) for d in (5, 6, 7)]
    completions = [outcome_event(e["order_id"], occurred_at=iso(datetime.now(UTC) - timedelta(days=4))) for e in earlier]
    chargeback = outcome_event(earlier[0]["order_id"], kind="chargeback", amount_minor=4599, currency="EUR")
    now = decision_event(buyer_id="b-rep", features={"account_age_days": 410, "is_repeat_buyer": False,
                                                     "prior_good_orders": 0})
    store(*earlier, *completions, chargeback, now)
    result = explained(now["order_id"])
    assert ("is_repeat_buyer", "contradicts_history") in flags_by_problem(result)
    prior = next(f for f in result["data_quality_flags"]
                 if f["feature"] == "prior_good_orders" and f["problem"] == "contradicts_history")
    # Three completed earlier orders, one with a chargeback: two good ones.
    assert "holds 2 completed order(s)" in prior["detail"]


def test_reasons_in_plain_language_and_unknown_codes(store):
    event = decision_event(decision="decline", reason_codes=["HIGH_RISK_SCORE", "ZZ_UNKNOWN"])
    store(event)
    result = explained(event["order_id"])
    catalogue = ReasonCode.objects.get(code="HIGH_RISK_SCORE")
    assert result["reasons"][0] == {"code": "HIGH_RISK_SCORE", "text": catalogue.support_text}
    assert result["reasons"][1]["code"] == "ZZ_UNKNOWN" and "not in the reason-code catalogue" in result["reasons"][1]["text"]


@pytest.mark.parametrize("decided_by, fields, expected", [
    ("model", {"score": 0.934, "model_version": "fraud-gbm-v3"},
     ["The fraud model fraud-gbm-v3 declined", "score 0.934", "step-up at 0.6, decline at 0.9"]),
    ("fallback", {"score": None, "timed_out": True, "latency_ms": 131.0},
     ["The fallback rule (fallback 'step_up'), not the model", "timed out after 131 ms", "timeout 80 ms"]),
    ("rules", {"score": None, "model_version": None, "latency_ms": 0}, ["A legacy risk rule, not the model"]),
    ("manual", {"score": None, "model_version": None, "latency_ms": 0}, ["A risk analyst declined"]),
])
def test_summary_of_each_decider(store, decided_by, fields, expected):
    event = decision_event(decision="decline", decided_by=decided_by, policy_version=7, **fields)
    store(event)
    policy = {"version": 7, "thresholds": {"step_up": 0.6, "decline": 0.9}, "timeout_ms": 80, "fallback": "step_up"}
    summary = explained(event["order_id"], policy=policy)["summary"]
    for text in expected:
        assert text in summary
    assert "policy version 7" in summary


def test_summary_without_policy_says_unavailable(store):
    event = decision_event(decision="decline", score=0.95)
    store(event)
    assert "thresholds of that policy version unavailable" in explained(event["order_id"])["summary"]


def test_customer_message_is_specific_short_and_never_shows_the_score(store):
    codes = ["HIGH_RISK_SCORE", "NEW_ACCOUNT", "DEVICE_RISK", "BIN_COUNTRY_MISMATCH", "HIGH_VELOCITY", "HIGH_AMOUNT"]
    event = decision_event(decision="decline", score=0.9731, reason_codes=codes)
    store(event)
    message = explained(event["order_id"])["customer_message"]
    customer_texts = [ReasonCode.objects.get(code=c).customer_text for c in codes]
    assert sum(text in message for text in customer_texts) == 4
    assert "0.97" not in message and "score" not in message.lower()


def test_customer_message_owns_our_error_when_history_contradicts(store):
    old = decision_event(buyer_id="b-own", occurred_at=iso(datetime.now(UTC) - timedelta(days=500)))
    new = decision_event(buyer_id="b-own", decision="decline", reason_codes=["NEW_ACCOUNT"],
                         features={"account_age_days": 0, "signup_method": "social_google"})
    store(old, new)
    message = explained(new["order_id"])["customer_message"]
    assert "error on our side" in message
    # The earlier checkout (500 days ago) was served account_age_days 700: the account is 1200 days old.
    since = datetime.now(UTC) - timedelta(days=1200)
    assert f"wrongly treated your account as new, although your account has been with us since {since:%B %Y}" in message
    # The NEW_ACCOUNT wording would blame the buyer for our error: it is not repeated.
    assert ReasonCode.objects.get(code="NEW_ACCOUNT").customer_text not in message


def test_top_contributions_sorted_by_magnitude_with_served_values(store):
    event = decision_event(contributions={"device_risk": 0.3, "account_age_days": -1.2, "velocity_1h": 0.9},
                           features={"account_age_days": 700, "device_risk": 0.4, "velocity_1h": 5})
    store(event)
    top = explained(event["order_id"])["top_contributions"]
    assert [c["feature"] for c in top] == ["account_age_days", "velocity_1h", "device_risk"]
    assert top[0] == {"feature": "account_age_days", "contribution": -1.2, "served_value": 700}
