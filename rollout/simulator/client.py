"""The simulator's only way into the product: HTTP, as the real payments service would use it.

- `PolicyPoller` reads GET /api/v1/rollout/policy with If-None-Match and keeps the last good
  policy whenever the product is unreachable, slow, or answers anything but 200/304.
- `EventSender` posts batches to /api/v1/events from a background thread. A batch leaves the
  queue only once the product answered 200 (every event then counted as accepted, duplicate or
  rejected); on 503/429/connection errors it is resent, same event ids, after a backoff, so
  nothing is lost and nothing is stored twice.
"""
from __future__ import annotations

import collections
import logging
import threading
import time

import httpx
import msgspec

logger = logging.getLogger(__name__)
_json = msgspec.json.Encoder()


class ProductUnreachable(Exception):
    pass


class Http:
    """Shared transport; `blocked` simulates a network partition (the product_outage failure)."""

    def __init__(self, base_url: str, token: str, timeout: float = 5.0):
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                   headers={"Authorization": f"Bearer {token}"})
        self.blocked = threading.Event()

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        if self.blocked.is_set():
            raise ProductUnreachable("product unreachable (simulated outage)")
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ProductUnreachable(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.client.close()


class PolicyPoller:
    def __init__(self, http: Http, initial: dict, interval: float = 2.0):
        self.http = http
        self.policy = initial
        self.interval = interval
        self.etag: str | None = None
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy-poller", daemon=True)

    def start(self) -> None:
        self.poll_once()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()

    def poll_once(self) -> dict:
        headers = {"If-None-Match": self.etag} if self.etag else {}
        try:
            response = self.http.request("GET", "/api/v1/rollout/policy", headers=headers)
        except ProductUnreachable as exc:
            self.last_error = str(exc)
            return self.policy
        if response.status_code == 304:
            self.last_ok, self.last_error = time.monotonic(), None
        elif response.status_code == 200:
            try:
                policy = response.json()
                _check_policy(policy)
            except (ValueError, KeyError, TypeError) as exc:
                self.last_error = f"bad policy document: {exc}"
                return self.policy
            self.policy = policy
            self.etag = response.headers.get("ETag")
            self.last_ok, self.last_error = time.monotonic(), None
        else:
            self.last_error = f"GET /api/v1/rollout/policy answered {response.status_code}"
        return self.policy


def _check_policy(policy: dict) -> None:
    for key in ("version", "mode", "traffic_pct", "salt", "thresholds", "timeout_ms", "fallback"):
        if key not in policy:
            raise KeyError(key)
    if policy["mode"] not in ("off", "shadow", "active"):
        raise ValueError(f"mode {policy['mode']!r}")
    float(policy["traffic_pct"]), float(policy["thresholds"]["step_up"]), float(policy["thresholds"]["decline"])


class EventSender:
    def __init__(self, http: Http, batch_size: int = 2000, max_backoff: float = 10.0):
        self.http = http
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.queue: collections.deque = collections.deque()
        self.lock = threading.Condition()
        self.sent = self.accepted = self.duplicates = self.rejected = self.retries = 0
        self.last_error: str | None = None
        self.first_rejection: dict | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, events: list[dict]) -> None:
        if events:
            with self.lock:
                self.queue.extend(events)
                self.lock.notify()

    def pending(self) -> int:
        return len(self.queue)

    def flush_and_stop(self, timeout: float | None = None) -> bool:
        """Stop taking new work once the queue is empty; True when everything was delivered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.queue and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
        self._stop.set()
        with self.lock:
            self.lock.notify()
        self._thread.join(timeout=max(0.1, (deadline - time.monotonic()) if deadline else 30))
        return not self.queue

    def _run(self) -> None:
        backoff = 0.25
        while True:
            with self.lock:
                while not self.queue and not self._stop.is_set():
                    self.lock.wait(0.5)
                if not self.queue and self._stop.is_set():
                    return
                batch = [self.queue[i] for i in range(min(self.batch_size, len(self.queue)))]
            wait = self._post(batch)
            if wait is None:
                with self.lock:
                    for _ in batch:
                        self.queue.popleft()
                backoff = 0.25
            else:
                self.retries += 1
                time.sleep(min(self.max_backoff, max(wait, backoff)))
                backoff = min(self.max_backoff, backoff * 2)
                if self._stop.is_set() and not self.queue:
                    return

    def _post(self, batch: list[dict]) -> float | None:
        """None when the product took the batch; else seconds to wait before resending it."""
        try:
            response = self.http.request("POST", "/api/v1/events", content=_json.encode({"events": batch}),
                                         headers={"Content-Type": "application/json"})
        except ProductUnreachable as exc:
            self.last_error = str(exc)
            return 0.0
        if response.status_code == 200:
            body = response.json()
            self.sent += len(batch)
            self.accepted += body.get("accepted", 0)
            self.duplicates += body.get("duplicates", 0)
            rejected = body.get("rejected", [])
            self.rejected += len(rejected)
            if rejected and self.first_rejection is None:
                self.first_rejection = rejected[0]
                logger.warning("events rejected by the product: %s", rejected[0])
            self.last_error = None
            return None
        if response.status_code in (429, 503) or response.status_code >= 500:
            self.last_error = f"POST /api/v1/events answered {response.status_code}"
            try:
                return float(response.headers.get("Retry-After", "0"))
            except ValueError:
                return 0.0
        # 400/401/403/413: resending the same batch cannot help; keep it and say so loudly.
        self.last_error = f"POST /api/v1/events answered {response.status_code}: {response.text[:300]}"
        logger.error(self.last_error)
        return 5.0


def post_action(http: Http, step: dict) -> dict:
    """POST /api/v1/rollout/actions for a scenario step; returns the new policy document."""
    response = http.request("POST", "/api/v1/rollout/actions", json={
        "action": step["action"], "params": step.get("params", {}), "reason": step["reason"]})
    if response.status_code != 200:
        raise ProductUnreachable(f"POST /api/v1/rollout/actions answered {response.status_code}: {response.text[:300]}")
    return response.json()
