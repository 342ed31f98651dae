"""Data retention: drop whole daily partitions of the raw event tables past a configurable age.

Only `metrics_decision_pYYYYMMDD` / `metrics_outcome_pYYYYMMDD` go; rollups (what the KPI pages
and the executive summary read), the default partitions and `metrics_event_key` (which keeps a
very old resend a duplicate, as the contract promises) stay. The default age,
EVENT_RETENTION_DAYS (120), outlives the chargeback window (weeks) and a calendar month for the
monthly chargeback rate. A daily beat task runs it; `manage.py drop_old_partitions` runs it now.
"""
from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from celery import shared_task
from django.conf import settings

from metrics.partitions import drop_partitions_older_than
from shopswift_ops.celery import register_beat

logger = logging.getLogger(__name__)
MINIMUM_DAYS = 35  # never below a month and a few days: the monthly chargeback rate needs them


class RetentionError(ValueError):
    pass


def retention_days() -> int:
    return int(getattr(settings, "EVENT_RETENTION_DAYS", 120))


def cutoff_for(*, days: int, today: date | None = None) -> date:
    if days < MINIMUM_DAYS:
        raise RetentionError(f"days: at least {MINIMUM_DAYS} (the monthly chargeback rate needs a month of events), got {days}")
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=days)


def apply_retention(*, days: int | None = None, today: date | None = None) -> list[str]:
    """Drop the partitions of days before today - `days`; returns the dropped table names."""
    cutoff = cutoff_for(days=retention_days() if days is None else days, today=today)
    dropped = drop_partitions_older_than(cutoff)
    if dropped:
        logger.info("retention dropped partitions", extra={"cutoff": cutoff.isoformat(), "count": len(dropped)})
    return dropped


@shared_task(name="metrics.retention.drop_old_partitions", ignore_result=True)
def drop_old_partitions() -> None:
    apply_retention()


register_beat("metrics-retention", "metrics.retention.drop_old_partitions", 6 * 3600)
