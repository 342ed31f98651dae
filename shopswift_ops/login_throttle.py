"""Login throttling, per user name and per client IP, in Redis.

After LOGIN_FAILURES_PER_USER failed attempts on one user name (or LOGIN_FAILURES_PER_IP from one
address) within LOGIN_THROTTLE_WINDOW seconds, further attempts are refused without checking
the password until the window passes; a successful login clears the user name's count.

When Redis is down we neither fail open (an attacker who can take the cache down would get
unlimited guesses) nor closed (Risk Ops must be able to log in to contain an incident while the
cache is out): the counts fall back to this process's memory, so the same limits hold per
process. With N web processes that is at most N times the limit during the outage.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time

import redis
from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm

from shopswift_ops import ratelimit

logger = logging.getLogger(__name__)


def _limits() -> tuple[int, int, int]:
    return (
        getattr(settings, "LOGIN_FAILURES_PER_USER", 5),
        getattr(settings, "LOGIN_FAILURES_PER_IP", 30),
        getattr(settings, "LOGIN_THROTTLE_WINDOW", 900),
    )


def _keys(username: str, ip: str) -> list[str]:
    # Hash the name: user input must not shape Redis keys, and names stay out of the cache in clear.
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login:fail:user:{name}", f"login:fail:ip:{ip}"]


class _LocalCounts:
    """The in-process fallback: {key: (count, expires_at)}."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}

    def get(self, key: str) -> int:
        with self._lock:
            count, expires = self._counts.get(key, (0, 0.0))
            return count if expires > time.monotonic() else 0

    def incr(self, key: str, window: int) -> None:
        with self._lock:
            now = time.monotonic()
            count, expires = self._counts.get(key, (0, 0.0))
            if expires <= now:
                count, expires = 0, now + window
            self._counts[key] = (count + 1, expires)

    def delete(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)


_local = _LocalCounts()


def client_ip(request) -> str:
    # Behind a TLS proxy (BEHIND_TLS_PROXY) the proxy's address is every client's: trust the
    # right-most X-Forwarded-For entry, the one our own proxy appended.
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()[:64]
    return request.META.get("REMOTE_ADDR", "unknown")[:64]


def locked_for(username: str, ip: str) -> int:
    """Seconds until another attempt is allowed (0: allowed now)."""
    per_user, per_ip, window = _limits()
    user_key, ip_key = _keys(username, ip)
    try:
        pipe = ratelimit.client().pipeline(transaction=False)
        pipe.get(user_key)
        pipe.ttl(user_key)
        pipe.get(ip_key)
        pipe.ttl(ip_key)
        user_count, user_ttl, ip_count, ip_ttl = pipe.execute()
    except redis.RedisError:
        logger.warning("login throttle: Redis unavailable; counting in this process")
        over = _local.get(user_key) >= per_user or _local.get(ip_key) >= per_ip
        return window if over else 0
    waits = []
    if int(user_count or 0) >= per_user:
        waits.append(max(int(user_ttl), 1))
    if int(ip_count or 0) >= per_ip:
        waits.append(max(int(ip_ttl), 1))
    return max(waits, default=0)


def record_failure(username: str, ip: str) -> None:
    _, _, window = _limits()
    keys = _keys(username, ip)
    try:
        pipe = ratelimit.client().pipeline(transaction=False)
        for key in keys:
            pipe.set(key, 0, ex=window, nx=True)  # the window starts at the first failure
            pipe.incr(key)
        pipe.execute()
    except redis.RedisError:
        for key in keys:
            _local.incr(key, window)


def record_success(username: str, ip: str) -> None:
    user_key, _ = _keys(username, ip)
    _local.delete(user_key)
    try:
        ratelimit.client().delete(user_key)
    except redis.RedisError:
        pass


class ThrottledAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": "Too many failed log-in attempts. Try again in %(minutes)s minute(s).",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        ip = client_ip(self.request) if self.request is not None else "unknown"
        wait = locked_for(username, ip)
        if wait:
            logger.warning("login throttled", extra={"client_ip": ip})
            raise forms.ValidationError(self.error_messages["throttled"], code="throttled",
                                        params={"minutes": max(1, -(-wait // 60))})
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            record_failure(username, ip)
            raise
        record_success(username, ip)
        return cleaned
