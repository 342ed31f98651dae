"""Events in simulated time, with no product attached: for backfills, tests and benchmarks."""
from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from rollout.simulator.engine import Simulation
from rollout.simulator.scenario import Scenario, load_scenario


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timeline(simulation: Simulation, *, start: datetime, orders: int | None = None,
             duration_minutes: float | None = None, from_minute: float = 0.0, rate: float | None = None,
             until: datetime | None = None, include_late_outcomes: bool = True) -> Iterator[tuple[datetime, dict]]:
    """(occurred_at, event) in time order. Scenario steps happen at their minute (counted from
    `start - from_minute`); ramps and actions change the simulation's own policy. Stops after
    `orders` checkouts or `duration_minutes`; outcomes after the last checkout follow unless
    `include_late_outcomes` is false; nothing after `until` is yielded."""
    scenario = simulation.scenario
    if duration_minutes is None:
        duration_minutes = scenario.duration_minutes - from_minute if orders is None else float("inf")
    base_rate = rate or scenario.rate
    rng = simulation.rng
    pending: list = []
    sequence = 0
    elapsed = 0.0  # simulated seconds since start
    done = 0
    _apply_due(simulation, from_minute)
    while (orders is None or done < orders) and elapsed < duration_minutes * 60:
        elapsed += rng.expovariate(base_rate * simulation.load)
        minute = from_minute + elapsed / 60
        _apply_due(simulation, minute)
        when = start + timedelta(seconds=elapsed)
        if until is not None and when > until:
            break
        while pending and pending[0][0] <= when:
            yield _pop(pending)
        for delay, event in simulation.checkout().events:
            moment = when + timedelta(seconds=delay)
            if delay == 0.0:
                yield moment, event
            else:
                sequence += 1
                heapq.heappush(pending, (moment, sequence, event))
        done += 1
    while pending and include_late_outcomes:
        moment = pending[0][0]
        if until is not None and moment > until:
            break
        yield _pop(pending)


def _pop(pending: list) -> tuple[datetime, dict]:
    moment, _, event = heapq.heappop(pending)
    return moment, event


def _apply_due(simulation: Simulation, minute: float) -> None:
    for step in simulation.due_steps(minute):
        if not simulation.apply_world_step(step):
            simulation.apply_policy_step_locally(step)


def generate(scenario: str | Scenario = "baseline", *, seed: int = 0, orders: int | None = None,
             start: datetime | None = None, duration_minutes: float | None = None, from_minute: float = 0.0,
             rate: float | None = None, policy: dict | None = None, until: datetime | None = None,
             include_late_outcomes: bool = True, id_prefix: str | None = None) -> Iterator[dict]:
    """Event dicts in the CONTRACT wire format (section 2), in `occurred_at` order."""
    simulation = Simulation(scenario if isinstance(scenario, Scenario) else load_scenario(scenario), seed=seed,
                            policy=policy, id_prefix=id_prefix)
    start = start or datetime.now(UTC).replace(microsecond=0)
    for moment, event in timeline(simulation, start=start, orders=orders, duration_minutes=duration_minutes,
                                  from_minute=from_minute, rate=rate, until=until,
                                  include_late_outcomes=include_late_outcomes):
        yield dict(event, occurred_at=iso(moment))
