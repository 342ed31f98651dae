"""warroom_push: event ingested -> chart updated in Chromium (p95, target < 2 s), with the simulator
posting at 10x ShopSwift's rate (210 orders/s) through the real stack: Daphne, the events API,
a Celery worker folding rollups, the Redis channel layer, the war room consumer, Plotly.

A probe is one treatment order posted by this benchmark. "Ingested" is the moment its POST
answered 200; "chart updated" is the browser's first chart update after the refresh that folded
the probe committed (its order left metrics_pending_order; the push follows that commit).

Then `warroom_fanout`: 50 concurrent websocket clients, 20 KPI announcements: every client must
receive each update exactly once (dropped and duplicated counted).
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from shopswift_ops.embedded import free_port
from shopswift_ops.launcher import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PROBES = int(os.environ.get("WARROOM_PUSH_PROBES", "20"))
SIM_RATE = 210.0  # 10x ShopSwift's 21 orders/s
CLIENTS = 50
FANOUT_UPDATES = 20




class Stack:
    """Daphne (+ optionally a Celery worker and the simulator) as subprocesses on this database."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shopswift_ops.settings", "SECURE_COOKIES": "false"}
        self.processes: list[subprocess.Popen] = []
        self.logs = ROOT / ".data" / "bench-logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = (self.logs / f"{name}-{self.port}.log").open("ab")
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def start_web(self):
        bin_dir = Path(sys.executable).parent
        web = self.spawn("daphne", [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(self.port),
                                    "shopswift_ops.asgi:application"])
        wait_until_serving(f"{self.url}/healthz", process=web)

    def start_worker(self):
        bin_dir = Path(sys.executable).parent
        self.spawn("worker", [str(bin_dir / "celery"), "-A", "shopswift_ops", "worker", "-l", "WARNING",
                              "--concurrency", "1", "-n", f"bench-{self.port}@%h"])

    def stop(self, process=None):
        for proc in ([process] if process else list(reversed(self.processes))):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


def session_cookie(role: str) -> str:
    from django.test import Client

    from tests.factories import UserFactory

    user = UserFactory(role=role)
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def active_policy() -> dict:
    from rollout.services import bootstrap_policy

    return bootstrap_policy(model_version="fraud-gbm-v3", traffic_pct=50.0, reason="warroom bench", actor="bench",
                            force=True)


def open_war_room(playwright, stack: Stack, cookie: str, query: str):
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": cookie, "url": stack.url}])
    page = context.new_page()
    return browser, page


def _pending(order_id: str) -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM metrics_pending_order WHERE order_id = %s", [order_id])
        return cursor.fetchone() is not None


def _p95(values):
    # inclusive: interpolated between observed values, never beyond the largest
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) >= 2 else values[0]


def measure_push(stack: Stack, policy: dict) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.factories import decision_event, iso, outcome_event, token_for

    token = token_for("events:write", "policy:read")
    token_file = stack.logs / f"token-{stack.port}"
    token_file.write_text(token)
    cookie = session_cookie("risk_ops")
    simulator = stack.spawn("simulator", [sys.executable, "manage.py", "simulate", "--scenario", "baseline",
                                          "--rate", str(SIM_RATE), "--url", stack.url, "--token-file", str(token_file),
                                          "--quiet"])
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    latencies, folds, timeouts, gaps = [], [], 0, []
    try:
        time.sleep(5)  # let the simulator reach its rate
        with sync_playwright() as p:
            browser, page = open_war_room(p, stack, cookie, "range=15m")
            page.goto(f"{stack.url}/war-room/?range=15m")
            page.wait_for_selector("#wr-connection[data-state=live]", timeout=90000)
            page.evaluate("""() => { window.__updates = [];
                document.addEventListener('warroom:chart-updated', () => window.__updates.push(Date.now())); }""")
            http = httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"})
            for n in range(PROBES):
                order = f"o-probe-{time.time_ns()}"
                now = datetime.now(UTC)
                decision = decision_event(order_id=order, event_id=f"probe-d-{order}", arm="treatment",
                                          policy_version=policy["version"], occurred_at=iso(now - timedelta(seconds=1)))
                outcome = outcome_event(order, event_id=f"probe-x-{order}", occurred_at=iso(now))
                response = http.post(f"{stack.url}/api/v1/events", json={"events": [decision, outcome]})
                ingested = time.time()
                assert response.status_code == 200 and response.json()["accepted"] == 2, response.text
                deadline = time.monotonic() + 30
                while _pending(order) and time.monotonic() < deadline:
                    time.sleep(0.02)
                folded = time.time()
                try:
                    updated = page.wait_for_function("(after) => window.__updates.find(t => t >= after)",
                                                     arg=folded * 1000, timeout=30000).json_value()
                except PlaywrightTimeout:
                    timeouts += 1  # counted as 30 s: slow is a result here, not a crash
                    updated = (folded + 30) * 1000
                latencies.append(updated / 1000 - ingested)
                folds.append(folded - ingested)
                time.sleep(0.5)
            updates = page.evaluate("window.__updates")
            gaps = [(b - a) / 1000 for a, b in zip(updates, updates[1:])]
            browser.close()
    finally:
        stack.stop(simulator)
    return {"name": "warroom_push", "value": round(_p95(latencies), 3), "unit": "s", "target": "< 2",
            "p50": round(statistics.median(latencies), 3), "max": round(max(latencies), 3), "probes": len(latencies),
            "ingest_to_folded_p50": round(statistics.median(folds), 3),
            "folded_to_chart_p50": round(statistics.median([a - b for a, b in zip(latencies, folds)]), 3),
            "probes_over_30s": timeouts, "chart_updates": len(gaps) + 1,
            "max_gap_between_chart_updates_s": round(max(gaps), 1) if gaps else None,
            "simulator_orders_per_s": SIM_RATE}


async def _fanout(stack: Stack, cookies: list[str]) -> dict:
    import websockets
    from asgiref.sync import sync_to_async

    from shopswift_ops import live

    ws_url = stack.url.replace("http://", "ws://") + "/ws/war-room/?range=15m"
    clients = [await websockets.connect(ws_url, additional_headers={"Cookie": f"sessionid={c}", "Origin": stack.url},
                                        max_size=None) for c in cookies]
    counts = [0] * len(clients)

    async def listen(i, ws):
        try:
            async for message in ws:
                if isinstance(message, str) and message.startswith("{") and json.loads(message).get("kind") == "points":
                    counts[i] += 1
        except websockets.ConnectionClosed:
            pass

    tasks = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(clients)]
    await asyncio.sleep(2)
    for n in range(FANOUT_UPDATES):
        await sync_to_async(live.push)("kpis", {"bench": n})
        await asyncio.sleep(0.2)
    # Wait until nothing has arrived for 3 s (at most 60 s): slow is measured above, here only loss.
    last, quiet_since, deadline = sum(counts), time.monotonic(), time.monotonic() + 60
    while time.monotonic() - quiet_since < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        if sum(counts) != last:
            last, quiet_since = sum(counts), time.monotonic()
    for ws in clients:
        await ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    dropped = sum(max(0, FANOUT_UPDATES - c) for c in counts)
    duplicated = sum(max(0, c - FANOUT_UPDATES) for c in counts)
    return {"name": "warroom_fanout", "value": dropped + duplicated, "unit": "messages wrong", "target": "0",
            "clients": len(clients), "updates": FANOUT_UPDATES, "dropped": dropped, "duplicated": duplicated,
            "per_client_min": min(counts), "per_client_max": max(counts)}


def run():
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop shares this thread
    policy = active_policy()
    stack = Stack()
    stack.start_web()
    stack.start_worker()
    try:
        yield measure_push(stack, policy)
        people = [session_cookie("risk_ops"), session_cookie("support")]
        time.sleep(3)  # the simulator is stopped: only this benchmark's announcements from here
        yield asyncio.run(_fanout(stack, [people[i % 2] for i in range(CLIENTS)]))
    finally:
        stack.stop()
