"""warroom_load: first load of /war-room/?range=24h with a backfilled day of simulator traffic.

- server time: the view rendered in this process by Django's test client (no network), prepared
  as asgi.py prepares a Daphne process at start; p95 of 40 loads (target < 300 ms);
- interactive: Chromium against Daphne, navigation start -> every chart drawn (war_room.js sets
  `warRoom.readyAt` when its init has built the charts), p95 of 12 loads (target < 2 s).

The day is written by the simulator's backfill (baseline scenario, ShopSwift's 21 orders/s unless
WARROOM_LOAD_RATE says otherwise) and folded into the rollups before measuring.
"""
from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from tests.bench.bench_warroom_push import CHROMIUM_ARGS, Stack, _p95, active_policy, session_cookie

RATE = float(os.environ.get("WARROOM_LOAD_RATE", "21"))
SERVER_LOADS = 40
BROWSER_LOADS = 12


def _backfill() -> dict:
    from metrics.rollups import refresh
    from rollout.services import current_policy
    from rollout.simulator import backfill

    from django.db import connection

    from tests.conftest import truncate_event_store

    # One backfilled day and nothing else: `make bench` shares its database, and other benchmarks'
    # seeds (10M decisions scattered over 30 days) would be a different measurement.
    truncate_event_store()
    end = datetime.now(UTC).replace(microsecond=0)
    began = time.monotonic()
    totals = backfill("baseline", start=end - timedelta(hours=24), end=end, rate=RATE, policy=current_policy(), jobs=2)
    folded = refresh()
    with connection.cursor() as cursor:
        # A day that arrived over a day has been vacuumed and analysed by autovacuum; a bulk load
        # has not yet, and autovacuum would do it while the loads are timed.
        cursor.execute("VACUUM ANALYZE")
    return {"orders": totals.get("orders"), "decisions": totals.get("decisions"),
            "orders_folded": folded.orders_folded, "seconds": round(time.monotonic() - began, 1)}


def _server_times(cookie_user) -> list[float]:
    from django.test import Client

    from shopswift_ops.warm import prepare_process

    # This process as Daphne's is when a person opens the page: prepared once at start (asgi.py)
    prepare_process()
    client = Client()
    client.force_login(cookie_user)
    times = []
    for _ in range(SERVER_LOADS):
        started = time.perf_counter()
        response = client.get("/war-room/?range=24h")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
    return times


def _browser_times(stack: Stack, cookie: str) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        for _ in range(BROWSER_LOADS):
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            context.add_cookies([{"name": "sessionid", "value": cookie, "url": stack.url}])
            page = context.new_page()
            page.goto(f"{stack.url}/war-room/?range=24h")
            ready = page.wait_for_function("() => window.warRoom && window.warRoom.readyAt", timeout=30000).json_value()
            times.append(ready / 1000)  # performance.now() counts from navigation start
            context.close()
        browser.close()
    return times


def run():
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop shares this thread
    from tests.factories import UserFactory

    active_policy()
    data = _backfill()
    user = UserFactory(role="risk_ops")
    server = _server_times(user)
    stack = Stack()
    stack.start_web()
    try:
        browser = _browser_times(stack, session_cookie("risk_ops"))
    finally:
        stack.stop()
    yield {"name": "warroom_load_server", "value": round(_p95(server) * 1000, 1), "unit": "ms", "target": "< 300",
           "p50": round(statistics.median(server) * 1000, 1), "loads": len(server), "range": "24h", **data,
           "orders_per_s": RATE}
    yield {"name": "warroom_load_interactive", "value": round(_p95(browser), 3), "unit": "s", "target": "< 2",
           "p50": round(statistics.median(browser), 3), "loads": len(browser)}
