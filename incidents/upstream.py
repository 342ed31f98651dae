"""The functions incidents reads from the layers below (metrics, rollout), looked up lazily.

Those apps may be deployed without a given piece (or be mid-development); a page then says
"not available yet" instead of failing. Every number shown by incidents comes through here.
"""
from __future__ import annotations

import importlib
import logging

logger = logging.getLogger(__name__)

SOURCES = {
    "cohort_kpis": ("metrics.kpis", "cohort_kpis"),
    "chargebacks": ("metrics.chargebacks", "chargeback_document"),
    "latest_statuses": ("metrics.guardrails", "latest_statuses"),
    "feature_health": ("metrics.feature_health", "feature_health"),
    "diagnosis": ("metrics.diagnosis", "diagnosis"),
    "ramp_status": ("rollout.services", "ramp_status"),
    "current_policy": ("rollout.services", "current_policy"),
    "apply_action": ("rollout.services", "apply_action"),
}


class Unavailable(Exception):
    """The upstream function is not installed (yet) or failed; the message says which."""


def function(name: str):
    module_name, attribute = SOURCES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Unavailable(f"{module_name}.{attribute} is not available yet") from exc
    fn = getattr(module, attribute, None)
    if fn is None:
        raise Unavailable(f"{module_name}.{attribute} is not available yet")
    return fn


def call(name: str, **kwargs):
    """Call an upstream read function; Unavailable when it is missing or fails."""
    fn = function(name)
    try:
        return fn(**kwargs)
    except Unavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - a read for display must not take the page down
        logger.exception("upstream read failed", extra={"source": name})
        raise Unavailable(f"{SOURCES[name][0]}.{SOURCES[name][1]} failed: {exc}") from exc


def try_call(name: str, **kwargs):
    """(result, None) or (None, "why not")."""
    try:
        return call(name, **kwargs), None
    except Unavailable as exc:
        return None, str(exc)
