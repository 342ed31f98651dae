"""The simulated payments service (ShopSwift Pay), the demo's engine and the tests' data source.

It plays the payments service against the product: it reads the rollout policy, assigns buyers
with `rollout.assignment.assign_arm` (the product's own function), scores them with a synthetic
model, decides, and produces decision and outcome events in the CONTRACT wire format.

Public API
----------
`generate(scenario="baseline", *, seed=0, orders=None, start=None, duration_minutes=None,
          from_minute=0.0, rate=None, policy=None, until=None, include_late_outcomes=True,
          id_prefix=None) -> Iterator[dict]`
    Event dicts (CONTRACT section 2 wire format, `occurred_at` as RFC 3339 "...Z") in time
    order, with no product attached: ramps and actions of the scenario change a local copy of
    the policy (starting from CONTRACT's version 1, mode off, or `policy`). Same arguments and
    seed -> the same events. `from_minute` starts the scenario at that minute with all earlier
    steps applied (e.g. `from_minute=40` on seed-incident = straight into the 50% ramp). Late
    outcomes (chargebacks weeks on) follow the last checkout unless `include_late_outcomes` is
    false; nothing after `until` is yielded.

`backfill(scenario="baseline", *, start, end, seed=0, rate=None, policy=None, from_minute=0.0)
          -> dict`
    Writes that history between `start` and `end` straight into the event store (COPY; the same
    tables and bookkeeping as `metrics.ingest.store_events`). Needs Django set up.

`load_scenario(name_or_path) -> Scenario`, `parse_scenario(dict) -> Scenario`,
`ScenarioError`, `scenario_names()`: scenario files (format in `rollout.simulator.scenario`).

`Simulation(scenario, seed=, policy=)`: the engine; `.checkout()` returns one order's events
with their delays (simulated seconds) and the truth (`arm`, `fraud`).

`LiveRunner(scenario, url=, token=, speed=, rate=, poll_interval=, duration=)`: the live
service behind `manage.py simulate` (HTTP only, apart from ramp-ups through
`rollout.services.bootstrap_policy`, the audited break-glass path).
"""
from rollout.simulator.engine import Simulation
from rollout.simulator.generator import generate
from rollout.simulator.scenario import Scenario, ScenarioError, load_scenario, parse_scenario, scenario_names


def backfill(*args, **kwargs):
    from rollout.simulator.backfill import backfill as run_backfill  # needs Django; imported on use

    return run_backfill(*args, **kwargs)


__all__ = ["Scenario", "ScenarioError", "Simulation", "backfill", "generate", "load_scenario", "parse_scenario",
           "scenario_names"]
