"""Cohort assignment (CONTRACT section 4). The payments service and the simulator both use it."""
from __future__ import annotations

import hashlib


def bucket_of(salt: str, buyer_id: str) -> int:
    return int(hashlib.sha256(f"{salt}:{buyer_id}".encode()).hexdigest()[:8], 16) % 10000


def is_excluded(policy: dict, features: dict) -> bool:
    return any(features.get(override["feature"]) in override["in"] for override in policy.get("segment_overrides", ()))


def assign_arm(policy: dict, buyer_id: str, features: dict) -> str:
    in_bucket = bucket_of(policy["salt"], buyer_id) < round(policy["traffic_pct"] * 100)
    if policy["mode"] == "active" and in_bucket and not is_excluded(policy, features):
        return "treatment"
    return "control"


def is_shadow_scored(policy: dict, buyer_id: str) -> bool:
    """In shadow mode the treatment bucket is also scored (and reported in `shadow`)."""
    return policy["mode"] == "shadow" and bucket_of(policy["salt"], buyer_id) < round(policy["traffic_pct"] * 100)


def buckets(salt: str, buyer_ids) -> list[int]:
    """`bucket_of` for many buyers at once (one pass, no per-call overhead)."""
    sha = hashlib.sha256
    return [int(sha(f"{salt}:{buyer_id}".encode()).hexdigest()[:8], 16) % 10000 for buyer_id in buyer_ids]
