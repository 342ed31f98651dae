"""Scenario files: `rollout/scenarios/NAME.json`, one per scenario; adding one needs no code.

    {"name": "seed-incident", "description": "...", "duration_minutes": 420, "rate": 21.0,
     "world": {"fraud_rate": 0.02, ...},          # optional overrides of DEFAULT_WORLD
     "steps": [{"at_minute": 0, "do": "ramp", "traffic_pct": 10, "reason": "..."}, ...]}

Step kinds (`do`), applied in file order once the scenario clock reaches `at_minute`:
- `ramp`: `traffic_pct`, optional `mode` (active|shadow), `model_version`, `reason`: a ramp-up, done
  like the seed team did it, through `rollout.services.bootstrap_policy` (audited break-glass).
- `action`: `action`, `params`, `reason`: POST /api/v1/rollout/actions (kill, rollback, set_traffic,
  exclude_segment, include_segment, set_mode, set_thresholds, set_fallback).
- `set_load`: `load` (1.0 = ShopSwift's average; 1.2 = the +20% campaign).
- `inject`: `failure` = {"id", "kind", ..., optional "for_minutes"}; kinds and their fields in
  FAILURE_FIELDS. `clear`: `failure_id`.
- `note`: `text` (printed in the progress output; changes nothing).

Failure kinds (`inject`):
- `feature_default`: `feature`, `value`, optional `segment` {"feature", "in"}: the feature store
  serves `value` for that feature to matching buyers (both arms log what was served; only the
  model reads it, the legacy rules read the orders database).
- `latency_shift`: `add_ms`, `multiplier`: every scoring call is slower (treatment and shadow).
- `threshold_shift`: `delta`, optional `segment`: serving applies thresholds shifted by `delta`
  from the policy's (stale calibration).
- `fraud_wave`: `fraud_rate`: the share of fraudulent attempts while it lasts.
- `product_outage`: the product is unreachable from the simulator (live mode: no HTTP at all;
  decisions go on with the last good policy, events queue and are delivered afterwards).
A traffic surge (the +20% campaign) is `set_load` 1.2.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"

DEFAULT_WORLD = {
    "buyers": 200_000, "fraudsters": 4_000, "sellers": 5_000, "top_sellers": 20, "top_seller_weight": 25.0,
    "social_share": 0.15, "new_account_share": 0.08, "guest_share": 0.06,
    "fraud_rate": 0.02, "account_takeover_share": 0.2,
    "currency": "EUR",
    # behaviour of legitimate buyers
    "complete_after_approve": 0.741, "step_up_pass_legit": 0.78, "step_up_abandon_legit": 0.15,
    "ticket_after_decline": 0.22, "ticket_after_step_up_fail": 0.06, "ticket_after_issuer_decline": 0.006,
    "manual_review_share": 0.3,
    "complete_after_review": 0.6, "friendly_chargeback": 0.0006,
    # behaviour of fraudsters
    "step_up_pass_fraud": 0.45, "complete_fraud": 0.95, "high_risk_signal": 0.55, "fraud_confirmed": 0.7,
    "chargeback_fraud": 0.85,
    # the synthetic model (logit weights)
    "model": {"intercept": -2.0, "new_account": 3.9, "not_repeat": 0.5, "device_risk": 2.6,
              "bin_mismatch": 0.9, "velocity": 0.45},
    "model_version": "fraud-gbm-v3",
    # scoring latency: a lognormal service time plus a queueing wait that grows with the share of
    # ShopSwift's traffic the model serves (utilisation = served share x load / capacity)
    "latency": {"service_median_ms": 30.0, "service_sigma": 0.246, "capacity_share": 0.667,
                "queue_probability": 0.14, "queue_wait_ms": 35.0, "burst_exponent": 1.5},
}

INITIAL_POLICY = {  # CONTRACT section 3: a new environment starts with version 1, mode off.
    "version": 1, "model_version": None, "mode": "off", "traffic_pct": 0.0, "salt": "launch-2026-11",
    "thresholds": {"step_up": 0.60, "decline": 0.90}, "timeout_ms": 80, "fallback": "step_up",
    "segment_overrides": [], "updated_at": None, "reason": "initial policy",
}

ACTIONS = ("kill", "rollback", "set_traffic", "exclude_segment", "include_segment", "set_mode",
           "set_thresholds", "set_fallback")
FAILURE_FIELDS = {
    # kind: (required fields, optional fields)
    "feature_default": ({"feature", "value"}, {"segment"}),
    "latency_shift": (set(), {"add_ms", "multiplier"}),
    "threshold_shift": ({"delta"}, {"segment"}),
    "fraud_wave": ({"fraud_rate"}, set()),
    "product_outage": (set(), set()),
}
STEP_FIELDS = {
    "ramp": ({"traffic_pct"}, {"mode", "model_version", "reason"}),
    "action": ({"action", "reason"}, {"params"}),
    "set_load": ({"load"}, set()),
    "inject": ({"failure"}, set()),
    "clear": ({"failure_id"}, set()),
    "note": ({"text"}, set()),
}


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file, the step and the field."""


@dataclass
class Scenario:
    name: str
    description: str
    duration_minutes: float
    rate: float
    world: dict
    steps: list[dict] = field(default_factory=list)
    source: str = ""


def scenario_names() -> list[str]:
    return sorted(path.stem for path in SCENARIO_DIR.glob("*.json"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = SCENARIO_DIR / f"{name_or_path}.json"
        if not path.exists():
            raise ScenarioError(f"unknown scenario {str(name_or_path)!r}; known: {', '.join(scenario_names())}")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{path.name}: cannot read: {exc}") from None
    return parse_scenario(data, source=path.name)


def parse_scenario(data, *, source: str = "scenario") -> Scenario:
    def fail(message: str):
        raise ScenarioError(f"{source}: {message}")

    if not isinstance(data, dict):
        fail("must be a JSON object")
    unknown = set(data) - {"name", "description", "duration_minutes", "rate", "world", "steps"}
    if unknown:
        fail(f"unknown field(s) {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        fail("name: required, a non-empty string")
    duration = data.get("duration_minutes")
    if not _number(duration) or duration <= 0:
        fail("duration_minutes: required, a number > 0")
    rate = data.get("rate", 21.0)
    if not _number(rate) or rate <= 0:
        fail("rate: a number of orders per second > 0")
    world = _merge_world(data.get("world", {}), fail)
    steps = data.get("steps", [])
    if not isinstance(steps, list):
        fail("steps: must be a list")
    checked, failure_ids = [], set()
    for index, step in enumerate(steps):
        checked.append(_check_step(step, index, duration, failure_ids, source))
    return Scenario(name, str(data.get("description", "")), float(duration), float(rate), world, checked, source)


def _merge_world(overrides, fail) -> dict:
    if not isinstance(overrides, dict):
        fail("world: must be an object")
    world = json.loads(json.dumps(DEFAULT_WORLD))
    for key, value in overrides.items():
        if key not in world:
            fail(f"world.{key}: unknown parameter; known: {', '.join(sorted(DEFAULT_WORLD))}")
        if isinstance(world[key], dict):
            if not isinstance(value, dict):
                fail(f"world.{key}: must be an object")
            for sub, sub_value in value.items():
                if sub not in world[key]:
                    fail(f"world.{key}.{sub}: unknown parameter; known: {', '.join(sorted(world[key]))}")
                if not _number(sub_value):
                    fail(f"world.{key}.{sub}: must be a number")
                world[key][sub] = sub_value
        elif type(world[key]) is str:
            if not isinstance(value, str):
                fail(f"world.{key}: must be a string")
            world[key] = value
        else:
            if not _number(value) or value < 0:
                fail(f"world.{key}: must be a number >= 0")
            world[key] = type(world[key])(value)
    return world


def _check_step(step, index: int, duration: float, failure_ids: set, source: str) -> dict:
    label = f"steps[{index}]"
    if isinstance(step, dict):
        label += f" (at minute {step.get('at_minute')}, do {step.get('do')!r})"

    def fail(message: str):
        raise ScenarioError(f"{source}: {label}: {message}")

    if not isinstance(step, dict):
        fail("must be an object")
    at = step.get("at_minute")
    if not _number(at) or at < 0:
        fail("at_minute: required, a number >= 0")
    if at > duration:
        fail(f"at_minute: {at} is after the end of the scenario (duration_minutes {duration})")
    kind = step.get("do")
    if kind not in STEP_FIELDS:
        fail(f"do: must be one of {', '.join(STEP_FIELDS)}")
    required, optional = STEP_FIELDS[kind]
    missing = required - set(step)
    if missing:
        fail(f"{sorted(missing)[0]}: required for do={kind!r}")
    unknown = set(step) - required - optional - {"at_minute", "do"}
    if unknown:
        fail(f"{sorted(unknown)[0]}: unknown field for do={kind!r}")
    if kind == "ramp":
        pct = step["traffic_pct"]
        if not _number(pct) or not 0 <= pct <= 100:
            fail("traffic_pct: a number from 0 to 100")
        if step.get("mode", "active") not in ("active", "shadow"):
            fail("mode: 'active' or 'shadow'")
    elif kind == "action":
        if step["action"] not in ACTIONS:
            fail(f"action: must be one of {', '.join(ACTIONS)}")
        if not isinstance(step.get("params", {}), dict):
            fail("params: must be an object")
        if not isinstance(step["reason"], str) or not step["reason"].strip():
            fail("reason: required, a non-empty string")
    elif kind == "set_load":
        if not _number(step["load"]) or not 0 < step["load"] <= 20:
            fail("load: a number > 0 and <= 20 (1.0 = ShopSwift's average traffic)")
    elif kind == "inject":
        _check_failure(step["failure"], failure_ids, fail)
    elif kind == "clear":
        if step["failure_id"] not in failure_ids:
            fail(f"failure_id: {step['failure_id']!r} was not injected by an earlier step")
    return dict(step, at_minute=float(at))


def _check_failure(failure, failure_ids: set, fail) -> None:
    if not isinstance(failure, dict):
        fail("failure: must be an object")
    if not isinstance(failure.get("id"), str) or not failure["id"]:
        fail("failure.id: required, a non-empty string")
    kind = failure.get("kind")
    if kind not in FAILURE_FIELDS:
        fail(f"failure.kind: must be one of {', '.join(FAILURE_FIELDS)}")
    required, optional = FAILURE_FIELDS[kind]
    missing = required - set(failure)
    if missing:
        fail(f"failure.{sorted(missing)[0]}: required for kind {kind!r}")
    unknown = set(failure) - required - optional - {"id", "kind", "for_minutes"}
    if unknown:
        fail(f"failure.{sorted(unknown)[0]}: unknown field for kind {kind!r}")
    if "for_minutes" in failure and (not _number(failure["for_minutes"]) or failure["for_minutes"] <= 0):
        fail("failure.for_minutes: a number > 0")
    segment = failure.get("segment")
    if segment is not None and not (isinstance(segment, dict) and isinstance(segment.get("feature"), str)
                                    and isinstance(segment.get("in"), list) and segment["in"]):
        fail('failure.segment: {"feature": NAME, "in": [VALUE, ...]} or null')
    for name in ("delta", "fraud_rate", "add_ms", "multiplier"):
        if name in failure and not _number(failure[name]):
            fail(f"failure.{name}: must be a number")
    if kind == "fraud_wave" and not 0 <= failure["fraud_rate"] <= 1:
        fail("failure.fraud_rate: a share from 0 to 1")
    failure_ids.add(failure["id"])


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
