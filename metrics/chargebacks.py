"""The monthly chargeback rate and the card-network programme ratios (CONTRACT section 5).

- Chargeback rate: completed orders with a chargeback / completed orders, of the orders whose
  first decision lies in the UTC calendar month. The counters are the KPI `chargeback_rate`'s
  (metrics/kpis.py), read from the hourly rollups, which are keyed by the order's decision time
  and re-folded when a late chargeback arrives: a chargeback weeks later counts for its order's
  month. Status against the monitoring threshold (settings.CHARGEBACK_MONITORING_THRESHOLD, the
  seed's 0.9%).
- Programme ratios (metrics.models.CardNetworkProgramme, admin-editable): `vamp` reads the same
  month's rollups; `ecm` counts chargebacks by the chargeback's own month from the per-day
  outcome table (metrics_outcome_day, folded by the same refresh, see metrics/rollups.py) over
  completed orders of the previous month.

Population: every order of the month in both arms, segment-excluded ones too: a card network
sees all of the merchant's card traffic, not the experiment's eligible population. The events
carry no card network, so every programme is computed over all card traffic.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from metrics.kpis import ARMS, RATE_BY_KEY, cohort_counts
from metrics.models import CardNetworkProgramme

CHARGEBACK_RATE = RATE_BY_KEY["chargeback_rate"]
WARN_SHARE = 0.8  # "at risk" from 80% of the monitoring threshold: room to act before the month ends
POPULATION = "all orders of the month, both arms (segment-excluded orders included): what a card network sees"
NETWORK_SCOPE = "all networks: events carry no card network"
MONTH_PATTERN = re.compile(r"(\d{4})-(\d{2})")

METHOD = {
    "month": "UTC calendar month; an order belongs to the month of its first decision",
    "chargeback_rate": "completed orders with a chargeback / completed orders of the month (a late chargeback "
                       "counts for its order's month)",
    "maturity": "chargebacks arrive weeks after the order: a month's rate keeps rising after month_ended",
    "status": f"breach at or above the threshold; warn from {WARN_SHARE:.0%} of it; insufficient_data without "
              "completed orders",
    "vamp": "(completed orders with fraud_confirmed + completed orders with a chargeback) / completed orders, all "
            "of orders decided in the month; an order with both counts twice",
    "ecm": "completed orders whose first chargeback occurred in the month (UTC, by the chargeback's own time) / "
           "completed orders decided in the previous month",
    "programme_status": "breach at or above the threshold; insufficient_data while the numerator is below the "
                        "programme's minimum count (or nothing to divide by); else ok",
    "scope": NETWORK_SCOPE,
}


class BadMonth(ValueError):
    """A `month` that is not YYYY-MM of a month that has begun; the message names the field."""


def monitoring_threshold() -> float:
    return float(getattr(settings, "CHARGEBACK_MONITORING_THRESHOLD", 0.009))


# -- months ------------------------------------------------------------------------------------

def month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def previous_month(start: datetime) -> datetime:
    return start.replace(year=start.year - 1, month=12) if start.month == 1 else start.replace(month=start.month - 1)


def month_label(start: datetime) -> str:
    return f"{start:%Y-%m}"


def parse_month(raw: str | None, *, now: datetime, field: str = "month") -> datetime:
    """The first instant (UTC) of a `YYYY-MM` month; the current month when empty."""
    current = month_start(now)
    if raw is None or raw == "":
        return current
    match = MONTH_PATTERN.fullmatch(raw)
    if not match:
        raise BadMonth(f"{field}: expected YYYY-MM (e.g. 2026-11), got {raw!r}")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        raise BadMonth(f"{field}: month {month:02d} does not exist")
    if not 2000 <= year <= 2999:
        raise BadMonth(f"{field}: out of range (years 2000-2999)")
    start = datetime(year, month, 1, tzinfo=UTC)
    if start > current:
        raise BadMonth(f"{field}: {raw} has not begun (current month {month_label(current)})")
    return start


# -- counts --------------------------------------------------------------------------------------

def month_counts_by_arm(*, start: datetime) -> dict[str, dict]:
    """{arm: rollup counters} of the orders decided in the month beginning at `start`."""
    counts = cohort_counts(start=start, end=next_month(start), eligible_only=False)
    return {arm: counts.get((arm, ""), {}) for arm in ARMS}


def outcome_orders(*, kind: str, start: datetime, end: datetime) -> int:
    """Completed orders whose first `kind` outcome occurred in [start, end) (whole UTC days)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(sum(orders), 0) FROM metrics_outcome_day WHERE kind = %s AND day >= %s AND day < %s",
                       [kind, start.date(), end.date()])
        return int(cursor.fetchone()[0])


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def threshold_status(value: float | None, threshold: float) -> str:
    if value is None:
        return "insufficient_data"
    if value >= threshold:
        return "breach"
    return "warn" if value >= threshold * WARN_SHARE else "ok"


def _rate(counts: dict) -> dict:
    numerator, denominator = counts.get(CHARGEBACK_RATE.numerator, 0), counts.get(CHARGEBACK_RATE.denominator, 0)
    return {"numerator": numerator, "denominator": denominator, "value": _ratio(numerator, denominator)}


def _month_rate(*, start: datetime, now: datetime) -> tuple[dict, dict]:
    """(the month's chargeback rate document, its counters by arm)."""
    by_arm = month_counts_by_arm(start=start)
    total = {name: sum(counts.get(name, 0) for counts in by_arm.values())
             for name in (CHARGEBACK_RATE.numerator, CHARGEBACK_RATE.denominator)}
    rate = _rate(total)
    threshold = monitoring_threshold()
    end = next_month(start)
    return {"month": month_label(start), "from": start.isoformat(), "to": end.isoformat(), "month_ended": now >= end,
            **rate, "threshold": threshold, "status": threshold_status(rate["value"], threshold),
            "by_arm": {arm: _rate(counts) for arm, counts in by_arm.items()}}, by_arm


# -- programme ratios ----------------------------------------------------------------------------

def programme_ratio(programme: CardNetworkProgramme, *, start: datetime, month_by_arm: dict,
                    previous_by_arm: dict) -> dict:
    def total(by_arm: dict, name: str) -> int:
        return sum(counts.get(name, 0) for counts in by_arm.values())

    if programme.formula == CardNetworkProgramme.Formula.VAMP:
        fraud, chargebacks = total(month_by_arm, "fraud_confirmed"), total(month_by_arm, "chargebacks")
        numerator, denominator = fraud + chargebacks, total(month_by_arm, "completed")
        parts = {"fraud_confirmed": fraud, "chargebacks": chargebacks}
        numerator_month = denominator_month = month_label(start)
        basis = (f"({fraud:,} fraud_confirmed + {chargebacks:,} chargebacks) / {denominator:,} completed orders, "
                 f"orders decided in {month_label(start)}")
    else:
        numerator = outcome_orders(kind="chargeback", start=start, end=next_month(start))
        denominator = total(previous_by_arm, "completed")
        parts = {"chargebacks": numerator}
        numerator_month, denominator_month = month_label(start), month_label(previous_month(start))
        basis = (f"{numerator:,} chargebacks that occurred in {numerator_month} / {denominator:,} completed orders "
                 f"decided in {denominator_month}")
    value = _ratio(numerator, denominator)
    if value is None or numerator < programme.min_count:
        status = "insufficient_data"
    else:
        status = "breach" if value >= programme.threshold else "ok"
    if programme.min_count and numerator < programme.min_count:
        basis += f"; below the minimum count of {programme.min_count:,}"
    return {"name": programme.name, "network": programme.network, "formula": programme.formula,
            "numerator": numerator, "denominator": denominator, "value": value, "numerator_parts": parts,
            "numerator_month": numerator_month, "denominator_month": denominator_month,
            "threshold": programme.threshold, "min_count": programme.min_count, "status": status,
            "basis": basis, "scope": NETWORK_SCOPE}


# -- the document --------------------------------------------------------------------------------

def chargeback_document(*, month: datetime | None = None, now: datetime | None = None) -> dict:
    """The /api/v1/chargebacks document: the month's chargeback rate (overall and by arm) with the
    previous month's beside it, and every enabled programme ratio for the month."""
    now = now or timezone.now()
    start = month_start(month or now)
    current, month_by_arm = _month_rate(start=start, now=now)
    previous, previous_by_arm = _month_rate(start=previous_month(start), now=now)
    programmes = [programme_ratio(p, start=start, month_by_arm=month_by_arm, previous_by_arm=previous_by_arm)
                  for p in CardNetworkProgramme.objects.filter(enabled=True)]
    return {"month": month_label(start), "as_of": now.isoformat(), "population": POPULATION, "scope": NETWORK_SCOPE,
            "chargeback_rate": current, "previous_month": previous, "programmes": programmes, "method": METHOD}
