"""Past one machine: two Daphne processes and two Celery workers (plus one beat) against the same
PostgreSQL and Redis. No event or rollup counted twice, each beat-driven task runs once, and a
war-room websocket on either web process receives the live updates."""
import asyncio
import re
import subprocess
import sys
import threading
import uuid
from collections import Counter

import httpx
import pytest

from tests.bench.bench_ingest import realistic_events
from tests.faults.conftest import own_stack
from tests.faults.processes import REPO, start_beat, start_daphne, start_worker, wait_for

pytestmark = pytest.mark.slow

SESSION_SCRIPT = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group, User
from django.contrib.sessions.backends.db import SessionStore
user, _ = User.objects.get_or_create(username="multi-ws")
user.groups.add(Group.objects.get_or_create(name="risk_ops")[0])
s = SessionStore()
s[SESSION_KEY] = str(user.pk); s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
s[HASH_SESSION_KEY] = user.get_session_auth_hash(); s.create(); print(s.session_key)
"""


@pytest.fixture(scope="module")
def two_of_each(tmp_path_factory):
    with own_stack("shopswift-multi-") as stack:
        logs = stack.folder / "logs"
        for name in ("web-a", "web-b"):
            web, url = start_daphne(stack.env, logs, name=name)
            stack.procs.append(web)
            stack.urls.append(url)
        stack.workers = [start_worker(stack.env, logs, name=name) for name in ("worker-a", "worker-b")]
        stack.procs.extend(stack.workers)
        stack.procs.append(start_beat(stack.env, logs))
        yield stack


async def _listen(url: str, session_key: str, ready: threading.Event, stop: threading.Event, received: list):
    import websockets

    async with websockets.connect(url.replace("http://", "ws://") + "/ws/war-room/", max_size=None,
                                  additional_headers={"Cookie": f"sessionid={session_key}", "Origin": url}) as socket:
        ready.set()
        while not stop.is_set():
            try:
                received.append(await asyncio.wait_for(socket.recv(), timeout=0.3))
            except asyncio.TimeoutError:
                continue


def test_two_web_processes_and_two_workers_count_everything_once(two_of_each):
    stack = two_of_each
    token = stack.token("multi", "events:write")
    session_key = subprocess.run([sys.executable, "manage.py", "shell", "-c", SESSION_SCRIPT], cwd=REPO, env=stack.env,
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    listeners = []
    for url in stack.urls:
        ready, stop, received = threading.Event(), threading.Event(), []
        thread = threading.Thread(target=lambda u=url, r=ready, s=stop, m=received: asyncio.run(_listen(u, session_key, r, s, m)))
        thread.start()
        listeners.append((thread, ready, stop, received))
    for _, ready, _, _ in listeners:
        assert ready.wait(30), "websocket did not connect"

    prefix = f"mp-{uuid.uuid4().hex[:6]}"
    events = realistic_events(8000, prefix=prefix, seed=11)
    batches = [events[i:i + 1000] for i in range(0, len(events), 1000)]
    headers = {"Authorization": f"Bearer {token}"}
    answers = []

    def post(url, batch):
        answers.append(httpx.post(url + "/api/v1/events", json={"events": batch}, headers=headers, timeout=60).json())

    # Every batch goes to both web processes at the same time: one stores it, the other counts duplicates.
    for batch in batches:
        threads = [threading.Thread(target=post, args=(url, batch)) for url in stack.urls]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert sum(a["accepted"] for a in answers) == len(events)
    assert sum(a["duplicates"] for a in answers) == len(events)
    [(stored, distinct)] = stack.sql("SELECT count(*), count(DISTINCT event_id) FROM metrics_decision WHERE event_id LIKE %s",
                                     [prefix + "%"])
    assert stored == distinct == len(events)

    wait_for(lambda: stack.sql("SELECT count(*) FROM metrics_pending_order")[0][0] == 0, timeout=120,
             what="the workers to fold every queued order")
    [(raw_decisions, raw_orders)] = stack.sql("SELECT count(*), count(DISTINCT order_id) FROM metrics_decision")
    [(rolled_decisions, rolled_orders)] = stack.sql(
        "SELECT sum(decisions), sum(orders) FROM metrics_rollup_minute WHERE seg_feature = ''")
    assert (rolled_decisions, rolled_orders) == (raw_decisions, raw_orders)  # each rollup counted once

    # Beat-driven work: every task beat (or a nudge) queued ran on exactly one of the two workers.
    wait_for(lambda: all("refresh_and_evaluate" in w.log_tail(200_000) for w in stack.workers) or
             sum("refresh_and_evaluate" in w.log_tail(200_000) for w in stack.workers) >= 1, timeout=30,
             what="refresh tasks in the worker logs")
    runs = Counter()
    for worker in stack.workers:
        for task_id in re.findall(r"metrics\.refresh_and_evaluate\[([0-9a-f-]{36})\] received", worker.log_tail(2_000_000)):
            runs[task_id] += 1
    assert runs and max(runs.values()) == 1, runs.most_common(3)

    # Live updates reach a browser on either web process.
    wait_for(lambda: all(received for *_, received in listeners), timeout=30, what="live updates on both websockets")
    for thread, _, stop, _ in listeners:
        stop.set()
        thread.join(10)
