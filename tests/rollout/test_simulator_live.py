"""The live simulator against a real product server (Daphne in a subprocess, on the test database)."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.db import connection
from django.urls import Resolver404, resolve

from rollout.simulator import load_scenario, parse_scenario
from rollout.simulator.live import LiveRunner
from tests.factories import token_for
from shopswift_ops.embedded import free_port as _free_port
from shopswift_ops.launcher import wait_until_serving

BASE_DIR = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]




class Product:
    """Daphne serving the product on the test database; stop() and start() simulate an outage."""

    def __init__(self):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        db = connection.settings_dict
        host = quote(db["HOST"] or "", safe="")
        self.env = dict(os.environ, DJANGO_SETTINGS_MODULE="shopswift_ops.settings_test", DB_POOL="false",
                        DATABASE_URL=f"postgres://{db['USER']}@{host}{':' + str(db['PORT']) if db['PORT'] else ''}/{db['NAME']}")
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(self.port),
             "shopswift_ops.asgi:application"], cwd=BASE_DIR, env=self.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_serving(f"{self.url}/healthz", process=self.process)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)


@pytest.fixture
def product():
    server = Product()
    server.start()
    yield server
    server.stop()


def stored_counts():
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM metrics_decision), (SELECT count(*) FROM metrics_outcome),"
                       " (SELECT count(DISTINCT event_id) FROM metrics_decision)")
        return cursor.fetchone()


def test_an_outage_of_the_product_loses_no_event(product):
    token = token_for("events:write", "policy:read")
    scenario = parse_scenario({"name": "steady", "duration_minutes": 600, "rate": 40, "steps": []})
    runner = LiveRunner(scenario, url=product.url, token=token, seed=5, speed=60, poll_interval=0.5,
                        duration=14, quiet=True, out=open(os.devnull, "w"))
    thread = threading.Thread(target=runner.run)
    thread.start()
    time.sleep(3)
    product.stop()  # the product goes down for a few seconds; checkouts go on
    time.sleep(4)
    queued_during_outage = runner.sender.pending()
    product.start()
    thread.join(60)
    assert not thread.is_alive()
    assert queued_during_outage > 0
    assert runner.sender.pending() == 0
    assert runner.sender.rejected == 0
    decisions, outcomes, distinct = stored_counts()
    assert decisions == distinct  # nothing stored twice
    # A batch stored just before the product went down may lose its answer: its resend then
    # counts as duplicates. Either way every event sent is stored exactly once.
    assert decisions + outcomes == runner.sender.sent
    assert runner.sender.accepted == runner.sender.sent - runner.sender.duplicates
    assert decisions >= runner.orders  # every checkout's decision is there (plus manual approvals)


def test_a_kill_switch_through_the_api_reaches_new_traffic_within_one_poll(product):
    try:
        resolve("/api/v1/rollout/actions")
        from rollout.services import bootstrap_policy
    except (Resolver404, ImportError) as exc:
        pytest.skip(f"the rollout control plane (POST /api/v1/rollout/actions, rollout.services) is not built yet: {exc}")
    bootstrap_policy(model_version="fraud-gbm-v3", traffic_pct=50, mode="active", reason="test: start at 50%",
                     actor="test", force=True)
    token = token_for("events:write", "policy:read", "rollout:write")
    poll = 1.0
    runner = LiveRunner(load_scenario("baseline"), url=product.url, token=token, seed=2, speed=1, rate=40,
                        poll_interval=poll, duration=9, quiet=True, out=open(os.devnull, "w"))
    thread = threading.Thread(target=runner.run)
    thread.start()
    time.sleep(4)
    killed_at = time.time()
    response = httpx.post(f"{product.url}/api/v1/rollout/actions", headers={"Authorization": f"Bearer {token}"},
                          json={"action": "kill", "params": {}, "reason": "test: kill switch"}, timeout=10)
    assert response.status_code == 200, response.text
    thread.join(60)
    with connection.cursor() as cursor:
        cursor.execute("""SELECT arm, count(*) FROM metrics_decision WHERE decided_by <> 'manual'
                          AND occurred_at > to_timestamp(%s) GROUP BY arm""", [killed_at + poll + 0.5])
        after = dict(cursor.fetchall())
        cursor.execute("""SELECT count(*) FROM metrics_decision WHERE arm = 'treatment'
                          AND occurred_at < to_timestamp(%s)""", [killed_at])
        before_treated = cursor.fetchone()[0]
    assert before_treated > 0
    assert after.get("control", 0) > 0 and after.get("treatment", 0) == 0
