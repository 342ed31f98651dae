"""Fixtures for the incidents tests (incident records, alerts and policy news as published)."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from metrics.models import segment_dict

_alert_ids = itertools.count(9000)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def breach_alert(*, segment_value: str | None = "social_google", feature: str = "signup_method", at=None,
                 guardrail: str = "feature_health_account_age_days", metric: str = "default_share",
                 action: str = "exclude_segment", alert_id: int | None = None, status: str = "breach") -> dict:
    """An "alerts" payload as metrics publishes it."""
    return {
        "alert_id": alert_id if alert_id is not None else next(_alert_ids),
        "guardrail": guardrail, "metric": metric,
        "segment": segment_dict(feature, segment_value) if segment_value else None,
        "status": status, "action": action,
        "evidence": "default share 0.62 vs reference 0.03 (n=1200 vs 5400)",
        "at": iso(at or timezone.now()),
    }


def policy_news(*, version: int, action: str = "set_traffic", at=None, traffic: float = 50.0,
                actor: str = "alice", reason: str = "ramp to 50%") -> dict:
    """A "policy" payload as rollout publishes it."""
    return {"version": version, "action": action, "actor": actor, "reason": reason, "at": iso(at or timezone.now()),
            "policy": {"version": version, "mode": "active", "traffic_pct": traffic, "segment_overrides": [],
                       "thresholds": {"step_up": 0.6, "decline": 0.9}, "fallback": "step_up", "timeout_ms": 80}}


@pytest.fixture
def incident(db):
    """An open incident opened by a social-login breach an hour ago."""
    from incidents import services

    at = timezone.now() - timedelta(hours=1)
    services.on_alert(breach_alert(at=at))
    from incidents.selectors import open_incident

    return open_incident()


@pytest.fixture
def responder(user_client):
    return user_client("risk_ops")
