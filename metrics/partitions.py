"""Daily partitions of the event tables: created ahead of time (beat) and on demand (ingest),
dropped past the retention age (see `drop_partitions_older_than`)."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from django.db import connection, transaction

PARTITIONED_TABLES = ("metrics_decision", "metrics_outcome")
_NAME = re.compile(r"^(metrics_decision|metrics_outcome)_p(\d{8})$")
_known: set[tuple[str, date]] = set()


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def existing_partitions() -> set[tuple[str, date]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(%s)""",
            [list(PARTITIONED_TABLES)],
        )
        found = set()
        for (name,) in cursor.fetchall():
            match = _NAME.match(name)
            if match:
                found.add((match.group(1), datetime.strptime(match.group(2), "%Y%m%d").date()))
        return found


def ensure_partitions(days: set[date], tables=PARTITIONED_TABLES) -> None:
    """Create the daily partitions that do not exist yet, each in its own short transaction
    (creating a partition locks the parent briefly; it must not sit inside an ingest batch)."""
    wanted = {(table, day) for table in tables for day in days}
    missing = wanted - _known
    if not missing:
        return
    _known.update(existing_partitions())
    for table, day in sorted(wanted - _known):
        name = partition_name(table, day)
        start = datetime(day.year, day.month, day.day).isoformat() + "+00:00"
        end = (datetime(day.year, day.month, day.day) + timedelta(days=1)).isoformat() + "+00:00"
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                # Concurrent creators would race on the catalog ("already exists"); take turns.
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('metrics_partitions'))")
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                    f"FOR VALUES FROM ('{start}') TO ('{end}')"
                )
        except Exception as exc:  # noqa: BLE001 - rows of that day already sit in the default partition
            if "default partition" not in str(exc):
                raise
        _known.add((table, day))


def forget_known_partitions() -> None:
    _known.clear()


def drop_partitions_older_than(cutoff: date) -> list[str]:
    """Drop whole days before `cutoff`; returns the dropped partition names."""
    dropped = []
    for table, day in sorted(existing_partitions()):
        if day < cutoff:
            name = partition_name(table, day)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {name}")
            _known.discard((table, day))
            dropped.append(name)
    return dropped
