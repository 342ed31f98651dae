"""Which orders a treatment-vs-control comparison may use, and what each policy version expected.

Orders whose buyer matched a segment override went to control for a reason other than the
random bucket; keeping them would compare different mixes of buyers (Simpson's paradox). The
KPIs therefore cover "orders eligible for treatment in both arms": orders whose features match
no override active in the policy version that decided them.

metrics sits below rollout and must not import it, so the rollout app hands its policy versions
over through a provider registered from its AppConfig.ready:

    from metrics.population import set_policy_provider
    set_policy_provider(lambda version: <CONTRACT section 3 document of that version, or None>)

(`set_override_provider(fn)`, fn(version) -> list of overrides, is the narrower alternative.)
Without a provider no order is excluded and the expected treatment share is unknown.
"""
from __future__ import annotations

import logging
from typing import Callable

logger = logging.getLogger(__name__)

POPULATION_ELIGIBLE = "orders eligible for treatment in both arms (no segment override of their policy version matched)"

_policy_provider: Callable[[int], dict | None] | None = None
_override_provider: Callable[[int], list | None] | None = None
_documents: dict[int, dict] = {}


def set_policy_provider(fn: Callable[[int], dict | None] | None) -> None:
    """fn(policy_version) -> the CONTRACT section 3 document of that version, or None if unknown."""
    global _policy_provider
    _policy_provider = fn
    _documents.clear()


def set_override_provider(fn: Callable[[int], list | None] | None) -> None:
    """fn(policy_version) -> that version's `segment_overrides` list, or None if unknown."""
    global _override_provider
    _override_provider = fn
    _documents.clear()


def policy_document(version: int) -> dict | None:
    """The policy document of a version (cached: versions are immutable), or None."""
    if version in _documents:
        return _documents[version]
    document = None
    try:
        if _policy_provider is not None:
            document = _policy_provider(version)
        elif _override_provider is not None:
            overrides = _override_provider(version)
            document = None if overrides is None else {"version": version, "segment_overrides": list(overrides)}
    except Exception:  # noqa: BLE001 - a provider failure means "unknown", never a crash of the refresh
        logger.warning("policy provider failed for version %s", version, exc_info=True)
        return None
    if document is not None:
        _documents[version] = document
    return document


def overrides_for(version: int) -> list[dict]:
    document = policy_document(version)
    overrides = (document or {}).get("segment_overrides") or []
    return [o for o in overrides if isinstance(o, dict) and "feature" in o and isinstance(o.get("in"), list)]


def expected_treatment_share(version: int) -> float | None:
    """Share of eligible orders the version sends to treatment, or None when unknown."""
    document = policy_document(version)
    if not document or "traffic_pct" not in document:
        return None
    if document.get("mode", "active") != "active":
        return 0.0
    return round(float(document["traffic_pct"]) * 100) / 10000
