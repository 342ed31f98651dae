"""Conversion with young orders counted by their outcomes so far (metrics/outcomes_so_far.py): the
counts it reads equal a direct count over the raw events, the estimate is calibrated against the
truth of simulated orders, and the conversion guardrail uses it."""
import math
import random
import statistics
from datetime import timedelta

import pytest

from metrics.guardrails import compute
from metrics.kpis import ceil_minute
from metrics.outcomes_so_far import AGE_BIN_SECONDS, ArmOutcomes, arm_outcomes, estimate
from tests.metrics.conftest import occurred, order_reference


@pytest.mark.django_db
def test_the_counts_read_equal_a_direct_count_over_the_raw_events(seed_incident, now):
    first, final, completed_at = order_reference(seed_incident)
    version = max(e["policy_version"] for e in first.values())
    settled_end = ceil_minute(now - timedelta(minutes=4))
    model_start = settled_end - timedelta(minutes=6)

    expected: dict = {}
    for order_id, event in first.items():
        at = occurred(event)
        if event["policy_version"] != version or not model_start <= at < now:
            continue
        populations = [("", "")] + [(dim, str(event["features"].get(dim))) for dim in ("signup_method",)]
        for dimension, value in populations:
            arm = expected.setdefault((event["arm"], dimension, value), ArmOutcomes())
            if at >= settled_end:
                key = (final[order_id], order_id in completed_at, math.floor((now - at).total_seconds() / AGE_BIN_SECONDS))
                arm.young[key] = arm.young.get(key, 0) + 1
            else:
                entry = arm.classes.setdefault(final[order_id], [0, 0, {}])
                entry[0] += 1
                if order_id in completed_at:
                    entry[1] += 1
                    delay_bin = max(0, math.floor((completed_at[order_id] - at).total_seconds() / AGE_BIN_SECONDS))
                    entry[2][delay_bin] = entry[2].get(delay_bin, 0) + 1

    read = arm_outcomes(settled_end=settled_end, now=now, policy_version=version, model_start=model_start)
    for key, reference in expected.items():
        assert read[key].young == reference.young, key
        assert read[key].classes == reference.classes, key
    assert sum(read[("treatment", "", "")].young.values()) > 500  # the young minutes are really there
    assert {d for d in read[("treatment", "", "")].classes} == {"approve", "step_up", "decline"}


def test_with_no_young_orders_it_is_the_settled_ratio_and_its_binomial_variance():
    result = estimate(settled_orders=800, settled_completed=560, outcomes=ArmOutcomes())
    assert result.value == pytest.approx(0.7)
    assert result.variance == pytest.approx(0.7 * 0.3 / 800)
    assert estimate(settled_orders=0, settled_completed=0, outcomes=None) is None


def test_a_young_decision_never_seen_settled_gives_no_estimate():
    outcomes = ArmOutcomes(classes={"approve": [100, 80, {5: 80}]}, young={("step_up", False, 3): 4})
    assert estimate(settled_orders=100, settled_completed=80, outcomes=outcomes) is None


def _synthetic_arm(rng, *, settled: int, young: int, maturity_seconds: int = 240):
    """Orders with final decisions, eventual completion and completion delays as in the seed
    (approve: 20-180 s, step-up: 50-210 s): returns (ArmOutcomes, settled orders, their
    completions, the eventual completions of every order)."""
    rates = {"approve": (0.8, lambda: rng.uniform(20, 180)), "step_up": (0.5, lambda: rng.uniform(30, 120) + rng.uniform(20, 90)),
             "decline": (0.0, None)}
    mix = [("approve", 0.6), ("step_up", 0.3), ("decline", 0.1)]
    outcomes = ArmOutcomes()
    settled_completed = truth = 0
    for i in range(settled + young):
        roll, decision = rng.random(), "decline"
        for name, share in mix:
            if roll < share:
                decision = name
                break
            roll -= share
        c, delay = rates[decision]
        completes = rng.random() < c
        seconds = delay() if completes else None
        truth += completes
        if i < settled:
            entry = outcomes.classes.setdefault(decision, [0, 0, {}])
            entry[0] += 1
            settled_completed += completes
            if completes:
                entry[1] += 1
                delay_bin = math.floor(seconds / AGE_BIN_SECONDS)
                entry[2][delay_bin] = entry[2].get(delay_bin, 0) + 1
        else:
            age = rng.uniform(0, maturity_seconds)
            key = (decision, completes and seconds <= age, math.floor(age / AGE_BIN_SECONDS))
            outcomes.young[key] = outcomes.young.get(key, 0) + 1
    return outcomes, settled, settled_completed, truth


def test_the_estimate_is_calibrated_against_the_true_rate_of_simulated_orders():
    # The guardrail compares the arms' conversion rates: the error of the estimate against the
    # rate the orders were drawn from, over its stated standard deviation, must be centred and as
    # wide as a standard normal (the influence of the learned rates and delays is counted).
    rng = random.Random(5)
    true_rate = 0.6 * 0.8 + 0.3 * 0.5
    z_scores, settled_only, naive_errors = [], [], []
    for _ in range(600):
        outcomes, settled, settled_completed, _ = _synthetic_arm(rng, settled=600, young=400)
        result = estimate(settled_orders=settled, settled_completed=settled_completed, outcomes=outcomes)
        z_scores.append((result.value - true_rate) / math.sqrt(result.variance))
        p = settled_completed / settled
        settled_only.append((p - true_rate) / math.sqrt(p * (1 - p) / settled))
        naive_errors.append((settled_completed + result.young_completed) / result.orders - true_rate)
    assert abs(statistics.mean(z_scores)) < 0.12
    assert 0.9 < statistics.stdev(z_scores) < 1.1
    assert 0.9 < statistics.stdev(settled_only) < 1.1  # the reference itself behaves
    assert statistics.mean(naive_errors) < -0.05  # counting young orders as they stand is biased low


def test_young_orders_add_information_but_less_than_settled_ones():
    rng = random.Random(6)
    outcomes, settled, settled_completed, _ = _synthetic_arm(rng, settled=600, young=400)
    result = estimate(settled_orders=settled, settled_completed=settled_completed, outcomes=outcomes)
    assert result.young_orders == 400
    p = result.value
    assert p * (1 - p) / result.orders < result.variance < p * (1 - p) / settled


@pytest.mark.django_db
def test_the_conversion_guardrail_counts_young_orders_and_says_so(seed_incident, now):
    conversion = [r for r in compute(now=now) if r.guardrail.name == "conversion" and r.segment is None][0]
    assert conversion.min_sample_met
    so_far = conversion.details["outcomes_so_far"]
    young_decisions = [e for e in seed_incident if e["type"] == "decision" and occurred(e) >= ceil_minute(now - timedelta(minutes=4))
                       and not e["event_id"].endswith("m")]
    assert so_far["treatment"]["young_orders"] + so_far["control"]["young_orders"] == len(
        {e["order_id"] for e in young_decisions if e["policy_version"] == max(d["policy_version"] for d in young_decisions)})
    assert so_far["treatment"]["orders"] == conversion.details["treatment"]["denominator"] + so_far["treatment"]["young_orders"]
    assert "younger than 4 min count with their outcomes so far" in conversion.evidence
    assert "completed so far" in conversion.evidence
    # the guardrails whose outcomes take hours or days stay on settled orders
    false_decline = [r for r in compute(now=now) if r.guardrail.name == "false-decline-proxy" and r.segment is None][0]
    assert false_decline.details.get("outcomes_so_far") is None
    assert "older than 4 min (outcomes settled)" in false_decline.evidence
