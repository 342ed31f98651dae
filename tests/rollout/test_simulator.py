"""The simulator without a product attached: determinism, scenario files, arms, the seed figures."""
import hashlib
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest
from statsmodels.stats.proportion import proportions_ztest

from rollout.simulator import ScenarioError, generate, load_scenario, parse_scenario, scenario_names
from rollout.simulator.engine import Simulation
from rollout.simulator.scenario import INITIAL_POLICY

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def test_same_seed_same_events_other_seed_other_events():
    first = list(generate("seed-incident", seed=7, orders=400, start=START, from_minute=40))
    again = list(generate("seed-incident", seed=7, orders=400, start=START, from_minute=40))
    other = list(generate("seed-incident", seed=8, orders=400, start=START, from_minute=40))
    assert first == again
    assert [e["buyer_id"] for e in first if e["type"] == "decision"] != \
        [e["buyer_id"] for e in other if e["type"] == "decision"]
    times = [e["occurred_at"] for e in first]
    assert times == sorted(times)
    assert len({e["event_id"] for e in first}) == len(first)


def test_every_shipped_scenario_loads():
    names = scenario_names()
    assert {"baseline", "seed-incident"} <= set(names)
    for name in names:
        assert load_scenario(name).name == name


@pytest.mark.parametrize("step, message", [
    ({"at_minute": 5, "do": "inject", "failure": {"id": "x", "kind": "meteor"}},
     "steps[1] (at minute 5, do 'inject'): failure.kind: must be one of"),
    ({"at_minute": 5, "do": "ramp"}, "steps[1] (at minute 5, do 'ramp'): traffic_pct: required"),
    ({"at_minute": 99, "do": "set_load", "load": 1.2}, "steps[1] (at minute 99, do 'set_load'): at_minute: 99 is after the end"),
    ({"at_minute": 5, "do": "clear", "failure_id": "nope"}, "failure_id: 'nope' was not injected by an earlier step"),
    ({"at_minute": 5, "do": "action", "action": "kill", "reason": ""}, "reason: required, a non-empty string"),
    ({"at_minute": 5, "do": "teleport"}, "steps[1] (at minute 5, do 'teleport'): do: must be one of"),
])
def test_a_bad_step_is_named_in_the_error(step, message):
    data = {"name": "bad", "duration_minutes": 60,
            "steps": [{"at_minute": 0, "do": "note", "text": "fine"}, step]}
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data, source="bad.json")
    assert str(caught.value).startswith("bad.json: ")
    assert message in str(caught.value)


def test_file_level_errors_name_the_field(tmp_path):
    with pytest.raises(ScenarioError, match="world.fraud_ratio: unknown parameter"):
        parse_scenario({"name": "x", "duration_minutes": 5, "world": {"fraud_ratio": 0.1}})
    with pytest.raises(ScenarioError, match="duration_minutes: required"):
        parse_scenario({"name": "x"})
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ScenarioError, match="broken.json: cannot read"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'; known: .*seed-incident"):
        load_scenario("nope")


def contract_arm(policy, buyer_id, features):
    """CONTRACT section 4, written out independently of rollout.assignment."""
    bucket = int(hashlib.sha256(f"{policy['salt']}:{buyer_id}".encode()).hexdigest()[:8], 16) % 10000
    in_bucket = bucket < round(policy["traffic_pct"] * 100)
    excluded = any(features.get(o["feature"]) in o["in"] for o in policy["segment_overrides"])
    return "treatment" if policy["mode"] == "active" and in_bucket and not excluded else "control"


@pytest.mark.django_db
def test_simulator_and_product_agree_on_every_buyers_arm(events_client):
    policy = dict(INITIAL_POLICY, version=4, mode="active", traffic_pct=37.5, model_version="fraud-gbm-v3",
                  segment_overrides=[{"feature": "signup_method", "in": ["social_apple"], "arm": "control"}])
    events = [e for e in generate("baseline", seed=3, orders=1500, policy=policy,
                                  start=datetime.now(UTC).replace(microsecond=0) - __import__("datetime").timedelta(hours=1),
                                  include_late_outcomes=False) if e["type"] == "decision"]
    response = events_client.post_json("/api/v1/events", {"events": events})
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == len(events)
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT buyer_id, arm, features FROM metrics_decision")
        rows = cursor.fetchall()
    assert len(rows) == len(events)
    arms = Counter()
    for buyer_id, arm, features in rows:
        features = json.loads(features) if isinstance(features, str) else features
        assert arm == contract_arm(policy, buyer_id, features), buyer_id
        arms[arm, features["signup_method"] == "social_apple"] += 1
    assert arms["treatment", True] == 0 and arms["control", True] > 0
    assert 0.25 < arms["treatment", False] / len(rows) < 0.45


def cohort_figures(simulation, orders):
    """Per arm, counted straight from the events (CONTRACT section 5 definitions)."""
    stats = defaultdict(Counter)
    latencies = defaultdict(list)
    for _ in range(orders):
        checkout = simulation.checkout()
        first = checkout.events[0][1]
        kinds = {(e["kind"], e.get("detail")) for _, e in checkout.events if e["type"] == "outcome"}
        row = stats[checkout.arm]
        row["orders"] += 1
        completed = ("checkout_completed", None) in kinds
        row["completed"] += completed
        row["tickets"] += ("support_ticket", "payment_failed") in kinds
        if completed:
            row["gmv"] += first["amount_minor"]
            if {k for k, _ in kinds} & {"fraud_confirmed", "chargeback", "high_risk_signal"}:
                row["fraud_gmv"] += first["amount_minor"]
        for _, event in checkout.events:
            if event["type"] == "decision" and event["decided_by"] in ("model", "fallback"):
                latencies[checkout.arm].append(event["latency_ms"])
                row["timed_out"] += event["timed_out"]
    return stats, latencies


def p95(values):
    values = sorted(values)
    return values[int(0.95 * (len(values) - 1))]


def test_seed_incident_reproduces_the_incident_figures():
    """Seed-incident at ShopSwift's rate: the 10% stage healthy, the 50% stage with the social-login
    default and the latency climb; figures within tolerance of the seed team's numbers."""
    simulation = Simulation(load_scenario("seed-incident"), seed=11)
    for step in simulation.due_steps(15):
        simulation.apply_world_step(step) or simulation.apply_policy_step_locally(step)
    assert simulation.policy["traffic_pct"] == 10
    healthy, healthy_latency = cohort_figures(simulation, 30_000)
    for step in simulation.due_steps(41):
        simulation.apply_world_step(step) or simulation.apply_policy_step_locally(step)
    assert simulation.policy["traffic_pct"] == 50
    cohort_figures(simulation, 4_000)  # the capacity curve catches up with the new load
    stats, latency = cohort_figures(simulation, 140_000)  # about 1.9 simulated hours at 21 orders/s
    control, treatment = stats["control"], stats["treatment"]
    conversion = {arm: stats[arm]["completed"] / stats[arm]["orders"] for arm in stats}
    assert conversion["control"] == pytest.approx(0.710, abs=0.005)
    delta = conversion["treatment"] - conversion["control"]
    assert delta == pytest.approx(-0.014, abs=0.005)
    _, p_value = proportions_ztest([treatment["completed"], control["completed"]],
                                   [treatment["orders"], control["orders"]])
    assert p_value < 0.001
    ticket_rate = {arm: stats[arm]["tickets"] / stats[arm]["orders"] for arm in stats}
    assert ticket_rate["treatment"] / ticket_rate["control"] == pytest.approx(1.35, abs=0.2)
    fraud_loss = {arm: stats[arm]["fraud_gmv"] / stats[arm]["gmv"] for arm in stats}
    assert fraud_loss["treatment"] - fraud_loss["control"] == pytest.approx(0.0008, abs=0.005)
    assert fraud_loss["treatment"] > fraud_loss["control"]  # worse instead of better
    assert p95(healthy_latency["treatment"]) == pytest.approx(45, abs=6)
    assert p95(latency["treatment"]) == pytest.approx(120, abs=15)
    assert treatment["timed_out"] / treatment["orders"] > 0.03
    healthy_conversion = {arm: healthy[arm]["completed"] / healthy[arm]["orders"] for arm in healthy}
    assert healthy_conversion["treatment"] > healthy_conversion["control"] - 0.01  # the 10% stage is healthy


def test_a_kill_in_the_scenario_sends_every_later_buyer_to_control():
    scenario = parse_scenario({"name": "drill", "duration_minutes": 30, "steps": [
        {"at_minute": 0, "do": "ramp", "traffic_pct": 50},
        {"at_minute": 10, "do": "action", "action": "kill", "params": {}, "reason": "drill"}]})
    events = [e for e in generate(scenario, seed=1, start=START, rate=5)
              if e["type"] == "decision" and e["decided_by"] != "manual"]  # manual: later approvals of older orders
    kill_at = "2026-11-02T08:10:00"
    before = Counter(e["arm"] for e in events if e["occurred_at"] < kill_at)
    after = Counter(e["arm"] for e in events if e["occurred_at"] >= kill_at)
    assert before["treatment"] > 0.3 * sum(before.values())
    assert after["treatment"] == 0 and after["control"] > 0
