import random
from datetime import UTC, datetime, timedelta

import pytest

from metrics import population
from metrics.ingest import ingest_body
from metrics.rollups import refresh
from tests.factories import decision_event, iso, outcome_event


@pytest.fixture(autouse=True)
def _no_policy_provider():
    # Tests that need policy documents install a provider; none leaks between tests.
    population.set_policy_provider(None)
    population.set_override_provider(None)
    yield
    population.set_policy_provider(None)
    population.set_override_provider(None)


def store(events: list[dict]) -> dict:
    import json

    accepted = 0
    for i in range(0, len(events), 4000):
        result = ingest_body(json.dumps({"events": events[i:i + 4000]}).encode())
        assert not result.rejected, result.rejected
        accepted += result.accepted
    return {"accepted": accepted}


@pytest.fixture
def fold():
    def run():
        return refresh()
    return run


SIGNUPS = ["email", "phone", "social_google", "social_apple", "guest"]
BANDS = ["b1", "b2", "b3", "b4", "b5"]
OUTCOME_KINDS = ["checkout_completed", "checkout_abandoned", "step_up_passed", "step_up_failed", "chargeback",
                 "fraud_confirmed", "high_risk_signal", "review_legit", "review_fraud"]


def random_traffic(rng: random.Random, *, orders: int, start: datetime, minutes: int = 10, policy_version: int = 2) -> list[dict]:
    """Mixed decisions and outcomes with every edge the KPIs care about: several decisions per
    order, fallbacks, timeouts, step-ups, late outcomes, support tickets, null and default features."""
    events = []
    for i in range(orders):
        at = start + timedelta(seconds=rng.uniform(0, minutes * 60 - 1))
        order_id = f"r-{rng.random():.12f}"
        features = {
            "account_age_days": rng.choice([0, 5, 300, 2000, 30000]),
            "signup_method": rng.choice(SIGNUPS + [None]),
            "is_repeat_buyer": rng.random() < 0.7,
            "prior_good_orders": rng.choice([0, 1, 3, 10]),
            "amount_band": rng.choice(BANDS),
            "device_risk": rng.choice([0.1, 0.5, None, 1.5]),
        }
        n_decisions = 1 if rng.random() < 0.85 else 2
        for k in range(n_decisions):
            decided_by = rng.choice(["model", "model", "model", "fallback", "rules"])
            events.append(decision_event(
                order_id=order_id, occurred_at=iso(at + timedelta(seconds=k)), buyer_id=f"buyer-{rng.randrange(300)}",
                amount_minor=rng.randrange(100, 50000), arm=rng.choice(["control", "treatment"]),
                policy_version=policy_version, decision=rng.choice(["approve", "approve", "step_up", "decline"]),
                decided_by=decided_by, timed_out=decided_by == "fallback",
                latency_ms=0 if decided_by == "rules" else rng.lognormvariate(3.7, 0.5), features=features))
        for kind in rng.sample(OUTCOME_KINDS, rng.randrange(0, 3)):
            events.append(outcome_event(order_id, kind, occurred_at=iso(at + timedelta(seconds=5))))
        if rng.random() < 0.05:
            events.append(outcome_event(order_id, "support_ticket", detail=rng.choice(["payment_failed", "other"]),
                                        occurred_at=iso(at + timedelta(seconds=9))))
    return events


@pytest.fixture
def now():
    return datetime.now(UTC).replace(second=0, microsecond=0)


def cohort_events(rng: random.Random, *, n: int, arm: str, start: datetime, minutes: float, conversion: float,
                  policy_version: int = 2, features: dict | None = None, latency_ms: float = 40.0,
                  decided_by: str = "model", buyer_prefix: str | None = None) -> list[dict]:
    """n orders of one arm spread over `minutes` from `start`, converting at `conversion`."""
    events = []
    for i in range(n):
        at = start + timedelta(seconds=rng.uniform(0, minutes * 60 - 1))
        order_id = f"{arm}-{rng.random():.14f}"
        feats = {"account_age_days": 700, "signup_method": "email", "is_repeat_buyer": True, "prior_good_orders": 5,
                 "amount_band": rng.choice(BANDS), "device_risk": 0.1}
        feats.update(features or {})
        completed = rng.random() < conversion
        events.append(decision_event(
            order_id=order_id, occurred_at=iso(at), arm=arm, policy_version=policy_version,
            buyer_id=f"{buyer_prefix or arm}-{rng.randrange(10**9)}", decision="approve" if completed else "decline",
            decided_by=decided_by, timed_out=decided_by == "fallback", latency_ms=latency_ms * rng.uniform(0.8, 1.2),
            features=feats))
        if completed:
            events.append(outcome_event(order_id, "checkout_completed", occurred_at=iso(at + timedelta(seconds=2))))
    return events


def occurred(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


@pytest.fixture
def seed_incident(fold, now) -> list[dict]:
    """Twelve minutes of the seed incident around its 50% ramp, as the product has received them
    by `now` (stored and folded)."""
    from rollout.simulator import generate

    events = [e for e in generate("seed-incident", seed=3, start=now - timedelta(minutes=12), duration_minutes=12,
                                  from_minute=36, include_late_outcomes=False, id_prefix="si") if occurred(e) <= now]
    store(events)
    fold()
    return events


def order_reference(events: list[dict]) -> tuple[dict, dict, dict]:
    """From raw events, per order: its first decision event, its final decision, and the time of
    its first completion (orders that completed only): the KPI definitions' reading."""
    first, final, completed_at = {}, {}, {}
    for event in sorted((e for e in events if e["type"] == "decision"), key=lambda e: (occurred(e), e["event_id"])):
        first.setdefault(event["order_id"], event)
        final[event["order_id"]] = event["decision"]
    for event in events:
        if event["type"] == "outcome" and event["kind"] == "checkout_completed":
            at = occurred(event)
            completed_at[event["order_id"]] = min(at, completed_at.get(event["order_id"], at))
    return first, final, completed_at
