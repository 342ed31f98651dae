"""One simulated checkout at a time: assign, score, decide, and what the buyer does next.

`Simulation.checkout(...)` returns the order's events, each with its delay after the checkout in
*simulated* seconds; the callers (the generator, the live runner) turn delays into timestamps.
Nothing here touches the network or the database.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from rollout.assignment import assign_arm, is_shadow_scored
from rollout.simulator.model import amount_band, decide_by_score, legacy_rules, model_reasons, score
from rollout.simulator.population import Population
from rollout.simulator.scenario import INITIAL_POLICY, Scenario

HOUR = 3600.0
DAY = 86400.0
# The scoring service's queue follows the traffic it serves within seconds (~250 orders, 12 s at
# ShopSwift's rate): a ramp from 10% to 50% loads it at once, as in the seed incident, rather
# than over minutes.
MODEL_SHARE_SMOOTHING = 1 / 250


@dataclass(slots=True)
class Checkout:
    """An order's events, each as (delay in simulated seconds, event dict without occurred_at)."""
    events: list
    arm: str
    model_called: bool
    fraud: bool


class Simulation:
    def __init__(self, scenario: Scenario, *, seed: int, policy: dict | None = None, id_prefix: str | None = None):
        self.scenario = scenario
        self.world = scenario.world
        self.seed = seed
        self.rng = random.Random(f"orders:{seed}")
        self.population = Population(self.world, seed)
        self.policy = dict(policy or INITIAL_POLICY)
        self.policy_history = {self.policy["version"]: dict(self.policy)}
        self.load = 1.0
        self.failures: dict[str, dict] = {}
        self.failure_ends: dict[str, float] = {}
        self.next_step = 0
        self.model_share = 0.0
        self.counter = 0
        self.prefix = id_prefix or "sim" + hashlib.sha256(f"{scenario.name}:{seed}".encode()).hexdigest()[:6]

    # -- scenario clock -------------------------------------------------------------------------
    def due_steps(self, minute: float) -> list[dict]:
        """Steps whose time has come (each returned once), plus auto-clears of timed failures."""
        due = []
        for failure_id, end in list(self.failure_ends.items()):
            if minute >= end:
                del self.failure_ends[failure_id]
                due.append({"at_minute": end, "do": "clear", "failure_id": failure_id})
        steps = self.scenario.steps
        while self.next_step < len(steps) and steps[self.next_step]["at_minute"] <= minute:
            due.append(steps[self.next_step])
            self.next_step += 1
        return due

    def apply_world_step(self, step: dict) -> bool:
        """Apply a step that changes the simulated world; False for policy steps (ramp, action)."""
        kind = step["do"]
        if kind == "set_load":
            self.load = float(step["load"])
        elif kind == "inject":
            failure = step["failure"]
            self.failures[failure["id"]] = failure
            if "for_minutes" in failure:
                self.failure_ends[failure["id"]] = step["at_minute"] + failure["for_minutes"]
        elif kind == "clear":
            self.failures.pop(step["failure_id"], None)
            self.failure_ends.pop(step["failure_id"], None)
        elif kind == "note":
            pass
        else:
            return False
        return True

    def outage_active(self) -> bool:
        return any(f["kind"] == "product_outage" for f in self.failures.values())

    # -- policy changes when no product is attached (the generator, the backfill) ---------------
    def apply_policy_step_locally(self, step: dict) -> None:
        policy = dict(self.policy)
        if step["do"] == "ramp":
            policy.update(mode=step.get("mode", "active"), traffic_pct=float(step["traffic_pct"]),
                          model_version=step.get("model_version") or policy.get("model_version")
                          or self.world["model_version"])
        else:
            policy = apply_action(policy, step["action"], step.get("params", {}), self.policy_history)
        policy["version"] = max(self.policy_history) + 1
        policy["reason"] = step.get("reason", "")
        self.policy = policy
        self.policy_history[policy["version"]] = dict(policy)

    # -- one checkout ---------------------------------------------------------------------------
    def fraud_rate(self) -> float:
        waves = [f["fraud_rate"] for f in self.failures.values() if f["kind"] == "fraud_wave"]
        return max(waves) if waves else self.world["fraud_rate"]

    def checkout(self) -> Checkout:
        rng, world, policy = self.rng, self.world, self.policy
        self.counter += 1
        order_id = f"o-{self.prefix}-{self.counter}"
        fraud = rng.random() < self.fraud_rate()
        if fraud and rng.random() >= world["account_takeover_share"]:
            buyer = self.population.pick_fraudster(rng)
        else:
            buyer = self.population.pick_buyer(rng)
        seller = self.population.pick_seller(rng)
        amount = max(100, int(rng.lognormvariate(math.log(seller.amount_median_minor), 0.8)))
        if fraud:
            amount = int(amount * 2.5)
            device = min(1.0, max(buyer.device_risk, rng.betavariate(4, 2)))
            bin_match = rng.random() < 0.5
            velocity = rng.choice((1, 1, 2, 2, 3, 4, 5, 7))
        else:
            device = buyer.device_risk if rng.random() < 0.9 else round(rng.betavariate(1.2, 4), 3)
            bin_match = rng.random() < buyer.home_country_match
            roll = rng.random()
            velocity = 1 if roll < 0.9 else rng.randint(2, 3) if roll < 0.993 else rng.randint(4, 6)
        band = amount_band(amount)
        true_features = {
            "account_age_days": buyer.account_age_days, "signup_method": buyer.signup_method,
            "is_repeat_buyer": buyer.prior_good_orders > 0, "prior_good_orders": buyer.prior_good_orders,
            "amount_band": band, "device_risk": round(device, 3), "bin_country_match": bin_match,
            "velocity_1h": velocity,
        }
        served = self._served(true_features)
        arm = assign_arm(policy, buyer.buyer_id, served)
        shadow_scored = is_shadow_scored(policy, buyer.buyer_id)
        model_called = arm == "treatment" or shadow_scored
        self.model_share += ((1.0 if model_called else 0.0) - self.model_share) * MODEL_SHARE_SMOOTHING
        decision_event = {
            "event_id": f"{order_id}-d", "type": "decision", "order_id": order_id,
            "buyer_id": buyer.buyer_id, "seller_id": seller.seller_id, "amount_minor": amount,
            "currency": world["currency"], "arm": arm, "policy_version": policy["version"],
            "model_version": None, "score": None, "decision": "approve", "decided_by": "rules",
            "reason_codes": [], "latency_ms": 0.0, "timed_out": False, "features": served,
        }
        if buyer.email:
            decision_event["buyer_email"] = buyer.email
        model_score = contributions = model_decision = None
        latency = 0.0
        if model_called:
            latency = self._latency(velocity)
            if latency <= policy["timeout_ms"]:
                model_score, contributions = score(served, world["model"])
                model_decision = decide_by_score(model_score, self._thresholds(served))
        rules_decision, rules_reasons = legacy_rules(served, buyer.prior_good_orders)
        if arm == "treatment":
            decision_event.update(model_version=policy.get("model_version") or world["model_version"],
                                  latency_ms=round(latency, 2))
            if model_score is None:
                fallback = policy.get("fallback", "step_up")
                decision = rules_decision if fallback == "rules" else fallback
                reasons = ["SCORING_TIMEOUT"] + (rules_reasons if fallback == "rules" else [])
                decision_event.update(decision=decision, decided_by="fallback", timed_out=True, reason_codes=reasons)
            else:
                decision = model_decision
                decision_event.update(decision=decision, decided_by="model", score=round(model_score, 4),
                                      reason_codes=model_reasons(decision, contributions),
                                      contributions=contributions)
        else:
            decision = rules_decision
            decision_event.update(decision=decision, reason_codes=rules_reasons)
            if shadow_scored and model_score is not None:
                decision_event["shadow"] = {"score": round(model_score, 4), "decision": model_decision}
        events = [(0.0, decision_event)]
        self._behave(events, order_id, decision, fraud, amount, band)
        return Checkout(events, arm, model_called, fraud)

    def _served(self, features: dict) -> dict:
        served = dict(features)
        for failure in self.failures.values():
            if failure["kind"] == "feature_default" and _in_segment(failure.get("segment"), features):
                served[failure["feature"]] = failure["value"]
        return served

    def _thresholds(self, served: dict) -> dict:
        thresholds = dict(self.policy["thresholds"])
        for failure in self.failures.values():
            if failure["kind"] == "threshold_shift" and _in_segment(failure.get("segment"), served):
                thresholds = {k: min(1.0, max(0.0, v + failure["delta"])) for k, v in thresholds.items()}
        return thresholds

    def _latency(self, velocity: int) -> float:
        """Scoring latency in ms: service time, plus a queueing wait under load (capacity curve).

        Bursty clients (many attempts in the last hour: card-testing bots) arrive in bursts that
        find the queue long, so their chance of waiting grows with `velocity_1h`.
        """
        params, rng = self.world["latency"], self.rng
        service = params["service_median_ms"] * math.exp(params["service_sigma"] * rng.gauss(0.0, 1.0))
        utilisation = min(0.97, self.model_share * self.load / params["capacity_share"])
        wait = 0.0
        if rng.random() < params["queue_probability"] * utilisation ** 2 * min(velocity, 6) ** params["burst_exponent"]:
            wait = rng.expovariate(1.0) * params["queue_wait_ms"] * utilisation / (1.0 - utilisation)
        latency = service + wait
        for failure in self.failures.values():
            if failure["kind"] == "latency_shift":
                latency = latency * failure.get("multiplier", 1.0) + failure.get("add_ms", 0.0)
        return latency

    def _behave(self, events: list, order_id: str, decision: str, fraud: bool, amount: int, band: str) -> None:
        rng, world = self.rng, self.world
        n = [0]

        def emit(delay: float, kind: str, **extra) -> None:
            n[0] += 1
            events.append((delay, {"event_id": f"{order_id}-{n[0]}", "type": "outcome", "order_id": order_id,
                                   "kind": kind, **extra}))

        money = {"amount_minor": amount, "currency": world["currency"]}
        completed_at = None
        if decision == "approve":
            if rng.random() < (world["complete_fraud"] if fraud else world["complete_after_approve"]):
                completed_at = rng.uniform(20, 180)
            else:  # the issuer declined, or the buyer left before confirming
                emit(rng.uniform(300, 900), "checkout_abandoned")
                if not fraud and rng.random() < world["ticket_after_issuer_decline"]:
                    emit(rng.uniform(900, DAY), "support_ticket", detail="payment_failed")
        elif decision == "step_up":
            challenge = rng.uniform(30, 120)
            roll = rng.random()
            if fraud:
                passed, abandoned = roll < world["step_up_pass_fraud"], False
            else:
                passed = roll < world["step_up_pass_legit"]
                abandoned = not passed and roll < world["step_up_pass_legit"] + world["step_up_abandon_legit"]
            if passed:
                emit(challenge, "step_up_passed")
                if rng.random() < (world["complete_fraud"] if fraud else world["complete_after_approve"]):
                    completed_at = challenge + rng.uniform(20, 90)
                else:
                    emit(challenge + rng.uniform(300, 900), "checkout_abandoned")
            elif abandoned:
                emit(challenge + rng.uniform(60, 300), "step_up_abandoned")
            else:
                emit(challenge, "step_up_failed")
                if not fraud and rng.random() < world["ticket_after_step_up_fail"]:
                    emit(challenge + rng.uniform(600, DAY), "support_ticket", detail="payment_failed")
        else:  # decline
            reviewed = band in ("b3", "b4", "b5") and rng.random() < world["manual_review_share"]
            if reviewed:
                review_at = rng.uniform(HOUR, 8 * HOUR)
                if fraud:
                    emit(review_at, "review_fraud")
                else:
                    emit(review_at, "review_legit")
                    events.append((review_at + 1, self._manual_approval(events[0][1])))
                    if rng.random() < world["complete_after_review"]:
                        completed_at = review_at + rng.uniform(600, 6 * HOUR)
            if not fraud and not (reviewed and completed_at) and rng.random() < world["ticket_after_decline"]:
                emit(rng.uniform(600, DAY), "support_ticket", detail="payment_failed")
        if completed_at is None:
            return
        emit(completed_at, "checkout_completed")
        if fraud:
            if rng.random() < world["high_risk_signal"]:
                emit(completed_at + rng.uniform(HOUR, 24 * HOUR), "high_risk_signal")
            if rng.random() < world["fraud_confirmed"]:
                emit(completed_at + rng.uniform(DAY, 10 * DAY), "fraud_confirmed", **money)
            if rng.random() < world["chargeback_fraud"]:
                emit(completed_at + rng.uniform(7 * DAY, 45 * DAY), "chargeback", detail="10.4", **money)
        elif rng.random() < world["friendly_chargeback"]:
            emit(completed_at + rng.uniform(10 * DAY, 60 * DAY), "chargeback", detail="13.1", **money)

    @staticmethod
    def _manual_approval(first: dict) -> dict:
        """After a `review_legit`, the analyst approves: the order's final decision is manual."""
        approval = {k: v for k, v in first.items() if k not in ("contributions", "shadow")}
        approval.update(event_id=f"{first['event_id']}m", decision="approve", decided_by="manual",
                        reason_codes=["MANUAL_REVIEW"], score=None, latency_ms=0.0, timed_out=False)
        return approval


def _in_segment(segment: dict | None, features: dict) -> bool:
    return segment is None or features.get(segment["feature"]) in segment["in"]


def apply_action(policy: dict, action: str, params: dict, history: dict) -> dict:
    """What an action does to a policy (CONTRACT section 6), for runs with no product attached.
    The product's own rollout.services is the authority whenever a product is there."""
    policy = dict(policy)
    if action == "kill":
        policy.update(mode="off", traffic_pct=0.0)
    elif action == "rollback":
        if "to_version" in params and params["to_version"] in history:
            keep = {k: policy[k] for k in ("version", "updated_at", "reason") if k in policy}
            policy = dict(history[params["to_version"]], **keep)
        else:
            policy.update(mode="off", traffic_pct=0.0)
    elif action == "set_traffic":
        policy["traffic_pct"] = float(params["traffic_pct"])
    elif action == "exclude_segment":
        overrides = [o for o in policy.get("segment_overrides", []) if o["feature"] != params["feature"]]
        policy["segment_overrides"] = overrides + [{"feature": params["feature"], "in": list(params["in"]), "arm": "control"}]
    elif action == "include_segment":
        overrides = []
        for override in policy.get("segment_overrides", []):
            if override["feature"] == params["feature"]:
                left = [v for v in override["in"] if v not in params["in"]]
                if left:
                    overrides.append(dict(override, **{"in": left}))
            else:
                overrides.append(override)
        policy["segment_overrides"] = overrides
    elif action == "set_mode":
        policy["mode"] = params["mode"]
    elif action == "set_thresholds":
        policy["thresholds"] = {"step_up": float(params["step_up"]), "decline": float(params["decline"])}
    elif action == "set_fallback":
        policy["fallback"] = params.get("fallback", policy.get("fallback"))
        if "timeout_ms" in params:
            policy["timeout_ms"] = params["timeout_ms"]
    return policy
