"""The simulator: how fast it generates, and how fast the backfill fast path writes history.

`make bench ARGS="simulator"`; SIM_BENCH_HOURS (default 2) sets the backfill span (24 = one day
of ShopSwift traffic, ~1.8M orders).
"""
import os
import time
from datetime import UTC, datetime, timedelta

from rollout.simulator import Simulation, load_scenario
from rollout.simulator.backfill import backfill


def run():
    simulation = Simulation(load_scenario("seed-incident"), seed=1)
    for step in simulation.due_steps(41):
        simulation.apply_world_step(step) or simulation.apply_policy_step_locally(step)
    orders = 50_000
    started = time.perf_counter()
    for _ in range(orders):
        simulation.checkout()
    seconds = time.perf_counter() - started
    yield {"name": "simulator_checkouts_per_s", "value": round(orders / seconds), "unit": "orders/s",
           "orders": orders, "note": "in-process, no database (the 50% ramp of seed-incident)"}

    hours = float(os.environ.get("SIM_BENCH_HOURS", "2"))
    end = datetime(2026, 10, 1, tzinfo=UTC)
    for jobs in (1, os.cpu_count() or 1):
        totals = backfill("baseline", start=end - timedelta(hours=hours), end=end, seed=jobs, jobs=jobs)
        yield {"name": f"backfill_orders_per_s_jobs{jobs}", "value": round(totals["orders"] / totals["seconds"]),
               "unit": "orders/s", "orders": totals["orders"], "events": totals["stored"],
               "seconds": totals["seconds"],
               "day_estimate_minutes": round(1_800_000 / (totals["orders"] / totals["seconds"]) / 60, 1)}
        end -= timedelta(days=1)
