"""The synthetic fraud model (`fraud-gbm-v3` in the demo) and the legacy rules of the control arm.

The model is a logistic score over the served features. Each feature's contribution is its logit
term minus that term for a typical good buyer, so contributions are signed, sum (with the base
value) to the logit, and name the features that pushed a checkout towards risk, like SHAP values.
"""
from __future__ import annotations

import math

AMOUNT_BANDS = ((2_000, "b1"), (5_000, "b2"), (15_000, "b3"), (50_000, "b4"))
AMOUNT_TERM = {"b1": -0.3, "b2": 0.0, "b3": 0.3, "b4": 0.8, "b5": 1.4}
SIGNUP_TERM = {"email": 0.0, "phone": 0.1, "social_google": 0.15, "social_apple": 0.15, "guest": 0.6}
# What the same term is for a typical long-standing good buyer: contributions are relative to it.
REFERENCE = {"account_age_days": 0.0, "signup_method": 0.0, "is_repeat_buyer": 0.0, "prior_good_orders": -1.9,
             "amount_band": 0.0, "device_risk": 0.16, "bin_country_match": 0.0, "velocity_1h": 0.0}
REASON_OF_FEATURE = {
    "account_age_days": "NEW_ACCOUNT", "signup_method": "NEW_ACCOUNT", "is_repeat_buyer": "NEW_ACCOUNT",
    "prior_good_orders": "NEW_ACCOUNT", "amount_band": "HIGH_AMOUNT", "device_risk": "DEVICE_RISK",
    "bin_country_match": "BIN_COUNTRY_MISMATCH", "velocity_1h": "HIGH_VELOCITY",
}


def amount_band(amount_minor: int) -> str:
    for limit, band in AMOUNT_BANDS:
        if amount_minor < limit:
            return band
    return "b5"


def score(features: dict, weights: dict) -> tuple[float, dict[str, float]]:
    """Return (score in [0, 1], contributions by feature)."""
    age = features.get("account_age_days") or 0
    # A guest checkout has no account, so its age says nothing (the sign-up method carries it).
    is_guest = features.get("signup_method") == "guest"
    terms = {
        "account_age_days": 0.0 if is_guest else weights["new_account"] * math.exp(-age / 45.0),
        "signup_method": SIGNUP_TERM.get(features.get("signup_method"), 0.3),
        "is_repeat_buyer": 0.0 if features.get("is_repeat_buyer") else weights["not_repeat"],
        "prior_good_orders": -0.7 * math.log1p(min(features.get("prior_good_orders") or 0, 200)),
        "amount_band": AMOUNT_TERM.get(features.get("amount_band"), 0.0),
        "device_risk": weights["device_risk"] * (features.get("device_risk") or 0.0),
        "bin_country_match": 0.0 if features.get("bin_country_match") else weights["bin_mismatch"],
        "velocity_1h": weights["velocity"] * max(0, (features.get("velocity_1h") or 1) - 1),
    }
    contributions = {name: round(value - REFERENCE[name], 4) for name, value in terms.items()}
    base = weights["intercept"] + sum(REFERENCE.values())
    logit = base + sum(contributions.values())
    return 1.0 / (1.0 + math.exp(-logit)), contributions


def decide_by_score(value: float, thresholds: dict) -> str:
    if value >= thresholds["decline"]:
        return "decline"
    if value >= thresholds["step_up"]:
        return "step_up"
    return "approve"


def model_reasons(decision: str, contributions: dict[str, float]) -> list[str]:
    if decision == "approve":
        return []
    codes = ["HIGH_RISK_SCORE"] if decision == "decline" else []
    for name, value in sorted(contributions.items(), key=lambda item: -item[1])[:3]:
        code = REASON_OF_FEATURE[name]
        if value > 0.25 and code not in codes:
            codes.append(code)
    return codes or ["HIGH_RISK_SCORE"]


def legacy_rules(features: dict, history_good_orders: int) -> tuple[str, list[str]]:
    """The rules that decided every checkout before the model (the control arm).

    They read the buyer's order history from the orders database, not from the feature store,
    so a broken feature-store value does not reach them.
    """
    device = features.get("device_risk") or 0.0
    mismatch = not features.get("bin_country_match")
    velocity = features.get("velocity_1h") or 1
    band = features.get("amount_band")
    if device > 0.85 and (mismatch or velocity >= 4):
        return "decline", ["RULES_DECLINE", "DEVICE_RISK"] + (["BIN_COUNTRY_MISMATCH"] if mismatch else ["HIGH_VELOCITY"])
    if velocity >= 4:
        return "decline", ["RULES_DECLINE", "HIGH_VELOCITY"]
    if mismatch and band == "b5":
        return "decline", ["RULES_DECLINE", "BIN_COUNTRY_MISMATCH", "HIGH_AMOUNT"]
    reasons = []
    if device > 0.6:
        reasons.append("DEVICE_RISK")
    if mismatch and band in ("b3", "b4", "b5"):
        reasons.append("BIN_COUNTRY_MISMATCH")
    if velocity >= 3:
        reasons.append("HIGH_VELOCITY")
    if history_good_orders == 0 and band in ("b4", "b5"):
        reasons.append("HIGH_AMOUNT")
    return ("step_up", reasons) if reasons else ("approve", [])
