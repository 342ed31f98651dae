"""Conversion counted on every order of the window, the young ones with their outcomes so far.

A delta guardrail leaves out orders younger than its maturity, because their completions are still
arriving (up to 3.5 minutes after the checkout in the seed) and an arm with more step-ups completes
later: a plain ratio over young orders would blame it. But those minutes are most of what the
guardrail waits for. A young order already says a lot: its final decision is known at once, and
whether it has completed so far. From the settled orders of the same arm and population we learn,
per final decision, the eventual completion rate c and the distribution F of completion delays;
an order of age a not completed yet then completes with probability

    h = c (1 - F(a)) / (1 - c F(a))

(Bayes: it is one of the c that complete, not yet, or one of the 1 - c that never do). The
estimate of eventual conversion is (settled completions + young completions so far + the sum of h
over young orders not completed yet) / all orders, so the young orders' decision mix and early
completions count at once, and nothing is assumed about the arms being alike: c and F are
learned per arm. Its variance (see `estimate`) counts that c and F are learned from the same
settled orders the estimate counts. Reads come from the order facts: young orders and the
last MODEL_MINUTES of settled ones, about 20,000 orders at ShopSwift's rate, two queries per look.

It applies to conversion only: its outcome arrives within minutes with a delay the settled orders
show. The false-decline proxy hangs on reviews hours later, the support-ticket rate on days.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

from shopswift_ops.read_scope import reads_once

METRICS = ("conversion",)
AGE_BIN_SECONDS = 10
# How far back settled orders teach the completion rates and delays: recent enough to follow the
# current traffic, long enough (~19,000 orders at 21 orders/s) for tight rates per segment.
MODEL_MINUTES = 15


@dataclass
class ArmOutcomes:
    """One arm of one population: the settled orders' rates and delays per final decision
    (`classes`: decision -> [orders, completed, {delay bin: completions}]) and the young orders
    (`young`: (decision, completed so far, age bin) -> orders)."""
    classes: dict = field(default_factory=dict)
    young: dict = field(default_factory=dict)

    def add(self, other: ArmOutcomes) -> ArmOutcomes:
        merged = ArmOutcomes({d: [c[0], c[1], dict(c[2])] for d, c in self.classes.items()}, dict(self.young))
        for decision, (orders, completed, delays) in other.classes.items():
            target = merged.classes.setdefault(decision, [0, 0, {}])
            target[0] += orders
            target[1] += completed
            for delay_bin, n in delays.items():
                target[2][delay_bin] = target[2].get(delay_bin, 0) + n
        for key, n in other.young.items():
            merged.young[key] = merged.young.get(key, 0) + n
        return merged

    @property
    def young_orders(self) -> int:
        return sum(self.young.values())


@dataclass
class Estimate:
    value: float
    variance: float  # of the rate
    orders: int  # settled + young
    young_orders: int
    young_completed: int  # completed so far
    expected_completions: float  # of the young orders not completed yet


def _explode(rows, into: dict, add) -> None:
    """Rows of (arm, segments json, ...) to every population an order is in: all traffic ('', '')
    and (dimension, value) for each segment dimension."""
    for arm, segments, *rest in rows:
        add(into.setdefault((arm, "", ""), ArmOutcomes()), *rest)
        if isinstance(segments, str):  # Django's cursor leaves jsonb as text
            segments = json.loads(segments)
        for dimension, value in (segments or {}).items():
            add(into.setdefault((arm, dimension, str(value)), ArmOutcomes()), *rest)


def _add_young(outcomes: ArmOutcomes, decision, completed, age_bin, n) -> None:
    key = (decision, bool(completed), int(age_bin))
    outcomes.young[key] = outcomes.young.get(key, 0) + n


def _add_settled(outcomes: ArmOutcomes, decision, delay_bin, n) -> None:
    entry = outcomes.classes.setdefault(decision, [0, 0, {}])
    entry[0] += n
    if delay_bin is not None:
        entry[1] += n
        entry[2][delay_bin] = entry[2].get(delay_bin, 0) + n


@reads_once
def arm_outcomes(*, settled_end: datetime, now: datetime, policy_version: int,
                 model_start: datetime) -> dict[tuple[str, str, str], ArmOutcomes]:
    """{(arm, dimension or '', value or ''): ArmOutcomes} of the eligible orders of one policy
    version: young ones first decided in [settled_end, now), settled ones in [model_start,
    settled_end)."""
    outcomes: dict = {}
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT arm, segments, final_decision, completed,
                      greatest(0, floor(extract(epoch FROM %(now)s - first_at) / %(bin)s))::int, count(*)
               FROM metrics_order_fact
               WHERE first_at >= %(settled_end)s AND first_at < %(now)s AND eligible AND policy_version = %(v)s
               GROUP BY 1, 2, 3, 4, 5""",
            {"now": now, "settled_end": settled_end, "v": policy_version, "bin": AGE_BIN_SECONDS})
        _explode(cursor.fetchall(), outcomes, _add_young)
        cursor.execute(
            """SELECT arm, segments, final_decision,
                      CASE WHEN completed AND completed_at IS NOT NULL
                           THEN greatest(0, floor(extract(epoch FROM completed_at - first_at) / %(bin)s))::int END,
                      count(*)
               FROM metrics_order_fact
               WHERE first_at >= %(model_start)s AND first_at < %(settled_end)s AND eligible AND policy_version = %(v)s
               GROUP BY 1, 2, 3, 4""",
            {"model_start": model_start, "settled_end": settled_end, "v": policy_version, "bin": AGE_BIN_SECONDS})
        _explode(cursor.fetchall(), outcomes, _add_settled)
    return outcomes


def estimate(*, settled_orders: int, settled_completed: int, outcomes: ArmOutcomes | None) -> Estimate | None:
    """Eventual conversion of all orders (module docstring). None when there are no orders, or a
    young order's final decision has no settled order to learn from (the caller then judges the
    settled orders alone).

    The variance is the sample variance of each order's influence on the estimate, over N (the
    sandwich estimator): a settled order counts its outcome, plus, if it taught the completion
    rate and delays, its pull on them times how much the young orders' expected completions
    depend on them; a young order counts its expected outcome. With no young orders it is the
    binomial variance of the settled ratio."""
    young = outcomes.young if outcomes else {}
    orders = settled_orders + sum(young.values())
    if orders == 0:
        return None
    groups: list[tuple[float, float]] = []  # (orders, influence)
    expected = 0.0
    young_completed = 0
    rate_gradient: dict[str, float] = {}  # d(expected completions)/dc, per decision
    delay_gradient: dict[str, dict[int, float]] = {}  # d(expected completions)/dF(age bin), per decision
    learned: dict[str, tuple[float, dict[int, float]]] = {}  # decision -> (c, {age bin: F})
    for (decision, completed, age_bin), n in young.items():
        if completed:
            young_completed += n
            groups.append((n, 1.0))
            continue
        if decision not in learned:
            entry = outcomes.classes.get(decision)
            if not entry or entry[0] == 0:
                return None
            learned[decision] = (entry[1] / entry[0], {})
        c, cdf = learned[decision]
        F = cdf.get(age_bin)
        if F is None:
            delays = outcomes.classes[decision][2]
            completions = sum(delays.values())
            F = cdf[age_bin] = ((sum(v for b, v in delays.items() if b < age_bin) + 0.5 * delays.get(age_bin, 0))
                                / completions if completions else 1.0)
        denominator = 1 - c * F
        if denominator <= 0:  # every order of this decision completes by this age: it will not
            groups.append((n, 0.0))
            continue
        h = c * (1 - F) / denominator
        expected += n * h
        groups.append((n, h))
        rate_gradient[decision] = rate_gradient.get(decision, 0.0) + n * (1 - F) / denominator ** 2
        by_age = delay_gradient.setdefault(decision, {})
        by_age[age_bin] = by_age.get(age_bin, 0.0) - n * c * (1 - c) / denominator ** 2
    model_orders = model_completed = 0
    for decision, (m, k, delays) in (outcomes.classes.items() if outcomes else ()):
        model_orders += m
        model_completed += k
        if not m:
            continue
        c = k / m
        pull = rate_gradient.get(decision, 0.0) / m
        groups.append((m - k, -pull * c))
        by_age = delay_gradient.get(decision, {})
        cdf = learned.get(decision, (c, {}))[1]
        for delay_bin, n in delays.items():
            # a completion with this delay moves F(a) by (1[delay < a] - F(a)) / completions
            shift = sum(g * ((1.0 if delay_bin < a else 0.5 if delay_bin == a else 0.0) - cdf[a])
                        for a, g in by_age.items()) / k
            groups.append((n, 1.0 + pull * (1 - c) + shift))
    # settled orders that taught nothing count their outcome alone (the rollups and the facts are
    # read a moment apart: never below zero)
    others = max(0, settled_orders - model_orders)
    others_completed = min(others, max(0, settled_completed - model_completed))
    groups += [(others_completed, 1.0), (others - others_completed, 0.0)]
    value = (settled_completed + young_completed + expected) / orders
    variance = sum(n * (psi - value) ** 2 for n, psi in groups) / orders ** 2
    if variance <= 0 or not young:
        clipped = min(max(value, 0.5 / orders), 1 - 0.5 / orders)
        variance = max(variance, clipped * (1 - clipped) / orders) if young else clipped * (1 - clipped) / orders
    return Estimate(value=value, variance=variance, orders=orders, young_orders=sum(young.values()),
                    young_completed=young_completed, expected_completions=expected)
