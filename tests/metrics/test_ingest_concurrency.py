"""Concurrent resends of the same batch store every event exactly once (real threads, real DB)."""
import threading

import pytest
from django.db import connection, connections

from metrics.ingest import ingest_body
from tests.factories import decision_event, outcome_event

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_resends_store_each_event_once():
    events = []
    for _ in range(300):
        decision = decision_event()
        events += [decision, outcome_event(decision["order_id"])]
    import json

    body = json.dumps({"events": events}).encode()
    results, errors = [], []
    start = threading.Barrier(4)

    def send():
        try:
            start.wait()
            results.append(ingest_body(body))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(r.accepted for r in results) == 600
    assert sum(r.duplicates for r in results) == 3 * 600
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT event_id) FROM metrics_decision")
        assert cursor.fetchone() == (300, 300)
        cursor.execute("SELECT count(*), count(DISTINCT event_id) FROM metrics_outcome")
        assert cursor.fetchone() == (300, 300)
        cursor.execute("SELECT count(*) FROM metrics_event_key")
        assert cursor.fetchone() == (600,)
