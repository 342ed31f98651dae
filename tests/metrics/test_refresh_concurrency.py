"""The refresh is safe to run twice, concurrently, or killed half-way; and a real Celery worker
folds what the API ingests."""
import os
import random
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction

from metrics.kpis import cohort_kpis
from metrics.rollups import pending_count, refresh, refresh_batch
from tests.factories import decision_event, iso
from tests.faults.processes import start_worker
from tests.metrics.conftest import random_traffic, store
from tests.metrics.reference import raw_counts

def _orders(document, arm):
    return next(c for c in document["cohorts"] if c["arm"] == arm and c["segment"] is None)["metrics"]["orders"]["value"]


@pytest.mark.django_db
def test_a_killed_refresh_loses_nothing(now):
    store(random_traffic(random.Random(31), orders=50, start=now - timedelta(minutes=10), minutes=5))
    queued = pending_count()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            refresh_batch()
            raise RuntimeError("the worker died here")
    assert pending_count() == queued
    refresh()
    assert pending_count() == 0
    expected = raw_counts(start=now - timedelta(minutes=10), end=now)
    document = cohort_kpis(start=now - timedelta(minutes=10), end=now)
    for arm in ("control", "treatment"):
        assert _orders(document, arm) == expected[(arm, "")]["orders"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_never_double_count(now, clean_event_tables):
    start = now - timedelta(minutes=12)
    events = random_traffic(random.Random(32), orders=600, start=start, minutes=10)
    store(events)
    with connection.cursor() as cursor:  # a second queue entry per order, as overlapping ingests produce
        cursor.execute("INSERT INTO metrics_pending_order (order_id, queued_at) SELECT order_id, now() FROM metrics_pending_order")
    errors = []

    def worker():
        try:
            refresh(batch_size=97)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert pending_count() == 0
    expected = raw_counts(start=start, end=now)
    document = cohort_kpis(start=start, end=now)
    for arm in ("control", "treatment"):
        assert _orders(document, arm) == expected[(arm, "")]["orders"]


def _worker_env() -> dict:
    env = dict(os.environ)
    url = env["DATABASE_URL"]
    env["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]
    env["DJANGO_SETTINGS_MODULE"] = "shopswift_ops.settings"
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_folds_what_the_api_ingests(events_client, now, clean_event_tables, tmp_path):
    from shopswift_ops.celery import app

    worker = start_worker(_worker_env(), tmp_path, name=f"metrics-test-{os.getpid()}", pool="solo")
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        events = [decision_event(arm="treatment", occurred_at=iso(now - timedelta(minutes=2))) for _ in range(25)]
        response = events_client.post_json("/api/v1/events", {"events": events})
        assert response.status_code == 200 and response.json()["accepted"] == 25
        deadline = time.monotonic() + 60
        folded = 0
        while time.monotonic() < deadline:
            folded = _orders(cohort_kpis(start=now - timedelta(minutes=5), end=now), "treatment")
            if folded == 25:
                break
            assert worker.popen.poll() is None, worker.log_tail()
            time.sleep(0.3)
        assert folded == 25
        assert pending_count() == 0
        from metrics.models import GuardrailStatus
        while time.monotonic() < deadline and not GuardrailStatus.objects.exists():
            time.sleep(0.2)  # the same task evaluates the guardrails right after folding
        assert GuardrailStatus.objects.exists()
    finally:
        app.conf.task_always_eager = eager
        worker.stop(timeout=20)
