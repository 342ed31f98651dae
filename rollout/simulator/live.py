"""The live simulator: ShopSwift Pay's checkouts in real time, against a running product.

Timestamps are real (wall clock). `speed` compresses the *story*: scenario minutes pass `speed`
times faster than wall minutes, and an outcome that follows its checkout after a simulated delay
d happens d / speed later (a chargeback 30 days on arrives 30 / speed days later, with that
timestamp). Orders arrive at `rate` x the scenario's load per wall second.
"""
from __future__ import annotations

import hashlib
import heapq
import logging
import sys
import threading
import time
from datetime import UTC, datetime

from rollout.simulator.client import EventSender, Http, PolicyPoller, ProductUnreachable, post_action
from rollout.simulator.engine import Simulation
from rollout.simulator.generator import iso
from rollout.simulator.scenario import INITIAL_POLICY, Scenario

logger = logging.getLogger(__name__)


class LiveRunner:
    def __init__(self, scenario: Scenario, *, url: str, token: str, seed: int = 0, speed: float = 1.0,
                 rate: float | None = None, poll_interval: float = 2.0, duration: float | None = None,
                 from_minute: float = 0.0, quiet: bool = False, out=None, progress_every: float | None = None,
                 tick: float = 0.2):
        self.scenario = scenario
        self.speed = speed
        self.rate = rate or scenario.rate
        self.duration = duration
        self.from_minute = from_minute
        self.quiet = quiet
        self.out = out or sys.stdout
        self.progress_every = progress_every or (5.0 if quiet else 2.0)
        self.tick = tick
        started = time.time()
        prefix = "L" + hashlib.sha256(f"{scenario.name}:{seed}:{started}".encode()).hexdigest()[:8]
        self.simulation = Simulation(scenario, seed=seed, policy=INITIAL_POLICY, id_prefix=prefix)
        self.http = Http(url, token)
        self.poller = PolicyPoller(self.http, dict(INITIAL_POLICY), interval=poll_interval)
        self.sender = EventSender(self.http)
        self.stop_event = threading.Event()
        self.pending: list = []  # (wall time due, sequence, event)
        self.sequence = 0
        self.orders = 0
        self.approved = 0
        self.treated = 0
        self.messages: list[str] = []
        self._last = (0, 0, 0)

    def stop(self) -> None:
        self.stop_event.set()

    def say(self, text: str) -> None:
        self.messages.append(text)
        self._write(f"[simulate] {text}")

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")  # one newline, whether `out` is a file or Django's OutputWrapper
        self.out.flush()

    def run(self) -> dict:
        self.poller.start()
        self.sender.start()
        start = last = time.time()
        last_progress = 0.0
        owed = 0.0
        try:
            while not self.stop_event.is_set():
                now = time.time()
                if self.duration is not None and now - start >= self.duration:
                    break
                minute = self.from_minute + (now - start) * self.speed / 60
                self._run_steps(minute)
                self.simulation.policy = self.poller.policy
                owed += (now - last) * self.rate * self.simulation.load
                count = int(owed)
                owed -= count
                decisions = []
                for index in range(count):
                    when = last + (now - last) * (index + 1) / count
                    decisions.extend(self._checkout(when))
                self.sender.put(decisions)
                self._release_due(now)
                last = now
                if now - last_progress >= self.progress_every:
                    self._progress(now - start, minute)
                    last_progress = now
                self.stop_event.wait(self.tick)
        finally:
            self.poller.stop()
            self._release_due(time.time())
            self.http.blocked.clear()
            delivered = self.sender.flush_and_stop(timeout=60)
            not_due = len(self.pending)
            self.say(f"stopped: {self.orders} orders, {self.sender.sent} events delivered"
                     f"{'' if delivered else f', {self.sender.pending()} NOT delivered (product unreachable)'}"
                     f"; {not_due} later outcomes were not yet due and are not sent")
            self.http.close()
        return {"orders": self.orders, "sent": self.sender.sent, "accepted": self.sender.accepted,
                "duplicates": self.sender.duplicates, "rejected": self.sender.rejected,
                "undelivered": self.sender.pending(), "not_due": len(self.pending)}

    def _checkout(self, when: float) -> list[dict]:
        checkout = self.simulation.checkout()
        self.orders += 1
        self.treated += checkout.arm == "treatment"
        now_events = []
        for delay, event in checkout.events:
            if delay == 0.0:
                self.approved += event["decision"] == "approve"
                now_events.append(dict(event, occurred_at=_iso_at(when)))
            else:
                due = when + delay / self.speed
                self.sequence += 1
                heapq.heappush(self.pending, (due, self.sequence, event))
        return now_events

    def _release_due(self, now: float) -> None:
        due = []
        while self.pending and self.pending[0][0] <= now:
            moment, _, event = heapq.heappop(self.pending)
            due.append(dict(event, occurred_at=_iso_at(moment)))
        self.sender.put(due)

    def _run_steps(self, minute: float) -> None:
        simulation = self.simulation
        for step in simulation.due_steps(minute):
            if simulation.apply_world_step(step):
                text = step["text"] if step["do"] == "note" else _describe(step)
                self.say(f"scenario minute {step['at_minute']:g}: {text}")
            elif step["do"] == "ramp":
                self._ramp(step)
            else:
                self._action(step)
        outage = simulation.outage_active()
        if outage != self.http.blocked.is_set():
            (self.http.blocked.set if outage else self.http.blocked.clear)()

    def _ramp(self, step: dict) -> None:
        reason = step.get("reason") or f"scenario {self.scenario.name}: ramp to {step['traffic_pct']}%"
        try:
            from rollout.services import bootstrap_policy
        except ImportError as exc:
            self.say(f"cannot ramp to {step['traffic_pct']}%: rollout.services.bootstrap_policy is missing ({exc})")
            return
        try:
            policy = bootstrap_policy(model_version=step.get("model_version") or self.simulation.world["model_version"],
                             traffic_pct=float(step["traffic_pct"]), mode=step.get("mode", "active"),
                             reason=reason, actor="simulator", force=True)
        except Exception as exc:  # noqa: BLE001 - the product refused or is down: the story goes on
            self.say(f"ramp to {step['traffic_pct']}% failed: {exc}")
            return
        self.poller.poll_once()
        version = policy.get("version") if isinstance(policy, dict) else getattr(policy, "version", "?")
        self.say(f"ramped to {step['traffic_pct']:g}% ({reason}); policy v{version}")

    def _action(self, step: dict) -> None:
        try:
            policy = post_action(self.http, step)
        except ProductUnreachable as exc:
            self.say(f"action {step['action']} failed: {exc}")
            return
        self.poller.poll_once()
        self.say(f"action {step['action']} done; policy v{policy.get('version')}")

    def _progress(self, elapsed: float, minute: float) -> None:
        policy = self.poller.policy
        sender = self.sender
        product = "product ok" if self.poller.last_error is None and sender.last_error is None else \
            f"product: {sender.last_error or self.poller.last_error}"
        # Shares since the previous line, so a policy change shows at once.
        orders = max(1, self.orders - self._last[0])
        approve = 100 * (self.approved - self._last[1]) / orders
        treated = 100 * (self.treated - self._last[2]) / orders
        self._last = (self.orders, self.approved, self.treated)
        self._write(f"[simulate] {elapsed / 60:5.1f} min (scenario {int(minute // 60)}h{int(minute % 60):02d}) "
                    f"orders {self.orders:,} events sent {sender.sent:,} (dup {sender.duplicates}, rejected "
                    f"{sender.rejected}) queued {sender.pending():,} | approve {approve:.1f}% treated {treated:.1f}% "
                    f"| policy v{policy['version']} {policy['mode']} {float(policy['traffic_pct']):g}% | {product}")


def _iso_at(wall: float) -> str:
    return iso(datetime.fromtimestamp(wall, UTC))


def _describe(step: dict) -> str:
    if step["do"] == "inject":
        failure = step["failure"]
        return f"inject {failure['kind']} {failure['id']!r}"
    if step["do"] == "clear":
        return f"clear failure {step['failure_id']!r}"
    if step["do"] == "set_load":
        return f"load x{step['load']:g}"
    return step["do"]


__all__ = ["LiveRunner"]
