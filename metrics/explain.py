"""Why a decision came out as it did (CONTRACT section 7), from the event store alone.

`explain_decision` turns one stored decision into: who decided (model, fallback, rules, manual),
the reasons in plain language (reason-code catalogue), the data-quality flags of its served
features (feature registry + the buyer's own history in the event store) and the answer Support
may give the customer. The metrics layer knows nothing of rollout or incidents, so the policy
thresholds in force and the incident covering the order are passed in as plain data by callers
that may know them (incidents.support).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from metrics.models import Decision, FeatureDefinition, ReasonCode

MAX_CUSTOMER_REASONS = 4
# A served account age may lag the store by a day (feature-store refresh, time zones).
ACCOUNT_AGE_TOLERANCE_DAYS = 1
# Order-history features are refreshed in batches: only completions older than this count as
# history the served value must already know about.
HISTORY_FEATURE_LAG = timedelta(days=1)
# Features whose served value is checked against the buyer's own history in the event store.
HISTORY_FEATURES = ("account_age_days", "is_repeat_buyer", "prior_good_orders")

DECISION_WORDS = {"approve": "approved", "step_up": "challenged (step-up)", "decline": "declined"}


@dataclass(frozen=True)
class BuyerHistory:
    """What the event store knows of a buyer before one decision. Completed orders count only when
    completed more than HISTORY_FEATURE_LAG before it (the features may lag that much)."""

    first_decision_at: datetime | None
    completed_orders_before: int
    bad_orders_before: int  # completed orders that later had a chargeback / fraud signal
    # The oldest account creation implied by an earlier decision's served account age
    # (occurred_at - account_age_days), with that decision's time and served value.
    implied_created_at: datetime | None = None
    implied_from_at: datetime | None = None
    implied_from_age: float | None = None

    @property
    def good_orders_before(self) -> int:
        return max(self.completed_orders_before - self.bad_orders_before, 0)


def buyer_history(*, buyer_id: str, before: datetime, exclude_order_id: str) -> BuyerHistory:
    """The buyer's first decision and completed earlier orders, by index look-ups on buyer_id."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH mine AS (
              SELECT order_id, occurred_at, features FROM metrics_decision
              WHERE buyer_id = %(buyer)s AND occurred_at < %(before)s
            ), per_order AS (
              SELECT order_id,
                     bool_or(kind = 'checkout_completed' AND occurred_at < %(settled)s) AS completed,
                     bool_or(kind IN ('chargeback', 'fraud_confirmed', 'review_fraud')) AS bad
              FROM metrics_outcome
              WHERE order_id = ANY(ARRAY(SELECT DISTINCT order_id FROM mine WHERE order_id <> %(order)s))
              GROUP BY order_id
            )
            SELECT (SELECT min(occurred_at) FROM mine),
                   (SELECT count(*) FROM per_order WHERE completed),
                   (SELECT count(*) FROM per_order WHERE completed AND bad),
                   implied.created_at, implied.occurred_at, implied.age
            FROM (SELECT 1) one LEFT JOIN LATERAL (
              SELECT occurred_at - (features->>'account_age_days')::float * interval '1 day' AS created_at,
                     occurred_at, (features->>'account_age_days')::float AS age
              FROM mine WHERE jsonb_typeof(features->'account_age_days') = 'number'
              ORDER BY 1 LIMIT 1
            ) implied ON true
            """,
            {"buyer": buyer_id, "before": before, "order": exclude_order_id, "settled": before - HISTORY_FEATURE_LAG},
        )
        row = cursor.fetchone()
    first, completed, bad, implied_created, implied_at, implied_age = row
    return BuyerHistory(first_decision_at=first, completed_orders_before=completed or 0, bad_orders_before=bad or 0,
                        implied_created_at=implied_created, implied_from_at=implied_at, implied_from_age=implied_age)


def _days_between(earlier: datetime, later: datetime) -> int:
    return (later - earlier).days


def history_flags(decision: Decision, history: BuyerHistory) -> list[dict]:
    """Served features that the buyer's own events contradict."""
    flags = []
    features = decision.features or {}
    served_age = features.get("account_age_days")
    if isinstance(served_age, (int, float)) and not isinstance(served_age, bool):
        # Two witnesses in the store: the buyer's first decision here, and the account creation
        # implied by an earlier decision's own served age. The older one proves more.
        detail = None
        first = history.first_decision_at
        implied = history.implied_created_at
        if implied is not None and (first is None or implied < first):
            known_days = _days_between(implied, decision.occurred_at)
            if known_days - served_age > ACCOUNT_AGE_TOLERANCE_DAYS:
                detail = (f"account age was read as {served_age:g} days, but this buyer's checkout of "
                          f"{history.implied_from_at:%d %B %Y} was served an account age of "
                          f"{history.implied_from_age:g} days: the account exists since {implied:%B %Y} "
                          f"({known_days} days before this order)")
        if detail is None and first is not None:
            known_days = _days_between(first, decision.occurred_at)
            if known_days - served_age > ACCOUNT_AGE_TOLERANCE_DAYS:
                detail = (f"account age was read as {served_age:g} days, but this buyer has ordered here since "
                          f"{first:%B %Y} ({known_days} days before this order)")
        if detail:
            flags.append({"feature": "account_age_days", "served_value": served_age,
                          "problem": "contradicts_history", "detail": detail})
    repeat = features.get("is_repeat_buyer")
    if repeat is False and history.completed_orders_before > 0:
        flags.append({
            "feature": "is_repeat_buyer", "served_value": repeat, "problem": "contradicts_history",
            "detail": (f"served as not a repeat buyer, but this buyer completed {history.completed_orders_before} "
                       f"earlier order(s) here"),
        })
    prior_good = features.get("prior_good_orders")
    if (isinstance(prior_good, (int, float)) and not isinstance(prior_good, bool)
            and prior_good < history.good_orders_before):
        flags.append({
            "feature": "prior_good_orders", "served_value": prior_good, "problem": "contradicts_history",
            "detail": (f"served as {prior_good:g} good earlier orders, but the event store holds "
                       f"{history.good_orders_before} completed order(s) without chargeback or fraud"),
        })
    return flags


def _registry_detail(definition: FeatureDefinition, value, problem: str) -> str:
    if problem == "default":
        return f"served value {value!r} equals the registry default: the serving path probably had no value"
    if definition.allowed_values:
        return f"served value {value!r} is not one of {', '.join(map(str, definition.allowed_values))}"
    low = "-inf" if definition.min_value is None else f"{definition.min_value:g}"
    high = "+inf" if definition.max_value is None else f"{definition.max_value:g}"
    return f"served value {value!r} is outside the declared range [{low}, {high}]"


def data_quality_flags(decision: Decision, *, registry: dict[str, FeatureDefinition],
                       history: BuyerHistory | None) -> list[dict]:
    """Every served feature equal to its declared default, out of range, or contradicted by history.

    A feature may carry two flags (e.g. account_age_days 0 is the default *and* contradicts a
    two-year history); the history flag is the one that proves the value wrong."""
    flags = []
    for name, value in sorted((decision.features or {}).items()):
        definition = registry.get(name)
        problem = definition.problem_with(value) if definition else None
        if problem:
            flags.append({"feature": name, "served_value": value, "problem": problem,
                          "detail": _registry_detail(definition, value, problem)})
    if history is not None:
        flags.extend(history_flags(decision, history))
    return flags


def _reasons(codes: list[str], catalogue: dict[str, ReasonCode]) -> list[dict]:
    reasons, seen = [], set()
    for code in codes:
        if code in seen:
            continue
        seen.add(code)
        entry = catalogue.get(code)
        reasons.append({
            "code": code,
            "text": entry.support_text if entry else f"{code} (not in the reason-code catalogue: ask Compliance)",
            "customer_text": entry.customer_text if entry else None,
            "adverse_action_text": entry.adverse_action_text if entry else None,
            "in_catalogue": entry is not None,
        })
    return reasons


def decided_by_summary(decision: Decision, policy: dict | None) -> str:
    verb = DECISION_WORDS.get(decision.decision, decision.decision)
    version = f"policy version {decision.policy_version}, {decision.arm} arm"
    if decision.decided_by == "model":
        score = "no score" if decision.score is None else f"score {decision.score:.3f}"
        thresholds = (policy or {}).get("thresholds")
        if thresholds:
            limits = (f"step-up at {thresholds.get('step_up')}, decline at {thresholds.get('decline')}")
        else:
            limits = "thresholds of that policy version unavailable"
        return (f"The fraud model {decision.model_version or '(unknown version)'} {verb} this attempt: {score} "
                f"({limits}; {version}).")
    if decision.decided_by == "fallback":
        timeout = (policy or {}).get("timeout_ms")
        fallback = (policy or {}).get("fallback")
        limit = f"timeout {timeout} ms" if timeout is not None else "timeout of that policy version unavailable"
        what = "timed out" if decision.timed_out else "failed"
        rule = f" (fallback '{fallback}')" if fallback else ""
        return (f"The fallback rule{rule}, not the model, {verb} this attempt: the model {what} after "
                f"{decision.latency_ms:g} ms ({limit}; {version}).")
    if decision.decided_by == "rules":
        return f"A legacy risk rule, not the model, {verb} this attempt ({version})."
    return f"A risk analyst {verb} this attempt in manual review ({version})."


# Which served features a reason code rests on: a reason whose feature is proven wrong by the
# buyer's history is not repeated to the customer (it would blame them for our error).
REASON_FEATURES = {
    "NEW_ACCOUNT": ("account_age_days", "is_repeat_buyer", "prior_good_orders"),
    "DEVICE_RISK": ("device_risk",),
    "BIN_COUNTRY_MISMATCH": ("bin_country_match",),
    "HIGH_VELOCITY": ("velocity_1h",),
    "HIGH_AMOUNT": ("amount_band",),
}


def _our_error_sentence(contradicted: set[str], history: BuyerHistory | None) -> str:
    if "account_age_days" in contradicted and history is not None:
        first, implied = history.first_decision_at, history.implied_created_at
        if implied is not None and (first is None or implied < first):
            fact = f"although your account has been with us since {implied:%B %Y}"
        elif first is not None:
            fact = f"although you have shopped with us since {first:%B %Y}"
        else:
            fact = "although it is not"
        return f"Our checks wrongly treated your account as new, {fact}."
    if contradicted & {"is_repeat_buyer", "prior_good_orders"}:
        return "Our checks wrongly missed your earlier orders with us."
    return "A known issue on our side affected this check."


def customer_message(decision: Decision, reasons: list[dict], flags: list[dict], incident: dict | None,
                     history: BuyerHistory | None = None) -> str:
    """What Support may say: specific, at most four reasons, never the score, never card data."""
    contradicted = {flag["feature"] for flag in flags if flag["problem"] == "contradicts_history"}
    texts = []
    for reason in reasons:
        if contradicted & set(REASON_FEATURES.get(reason["code"], ())):
            continue
        text = reason["customer_text"]
        if text and text not in texts:
            texts.append(text)
    if decision.decided_by == "fallback" and not texts:
        texts.append("A temporary issue on our side meant we asked for an extra check.")
    texts = texts[:MAX_CUSTOMER_REASONS]
    if decision.decision == "approve":
        sentences = ["Your payment was approved by our checks."]
    elif decision.decision == "step_up":
        sentences = ["We asked you to confirm this payment with an extra verification step."] + texts
    else:
        sentences = texts or ["We could not approve this payment."]
    if incident is not None or contradicted:
        sentences.append(_our_error_sentence(contradicted, history))
        sentences.append("This was an error on our side, not anything you did; we are fixing it and you are "
                         "welcome to try again.")
    elif decision.decision != "approve":
        sentences.append("You are welcome to try again or use another payment method.")
    return " ".join(sentences)


def explain_decision(decision: Decision, *, registry: dict[str, FeatureDefinition] | None = None,
                     catalogue: dict[str, ReasonCode] | None = None, history: BuyerHistory | None = None,
                     policy: dict | None = None, incident: dict | None = None) -> dict:
    """The explanation of CONTRACT section 6 (`explanation`) for one decision.

    `policy` is that decision's policy-version document (for thresholds / timeout), `incident`
    `{"id", "title", ...}` when the order is in an incident's affected population."""
    if registry is None:
        registry = {f.name: f for f in FeatureDefinition.objects.all()}
    if catalogue is None:
        catalogue = {r.code: r for r in ReasonCode.objects.filter(code__in=decision.reason_codes or [])}
    if history is None:
        history = buyer_history(buyer_id=decision.buyer_id, before=decision.occurred_at,
                                exclude_order_id=decision.order_id)
    reasons = _reasons(list(decision.reason_codes or []), catalogue)
    flags = data_quality_flags(decision, registry=registry, history=history)
    return {
        "decided_by": decision.decided_by,
        "summary": decided_by_summary(decision, policy),
        "reasons": [{"code": r["code"], "text": r["text"]} for r in reasons],
        "data_quality_flags": flags,
        "incident": None if incident is None else {"id": incident["id"], "title": incident["title"]},
        "customer_message": customer_message(decision, reasons, flags, incident, history),
        # Not in CONTRACT's minimum; callers that render pages use them.
        "reason_details": reasons,
        "top_contributions": top_contributions(decision),
    }


def top_contributions(decision: Decision, limit: int = 5) -> list[dict]:
    """The features that pushed the score most (by absolute signed contribution), with served values."""
    contributions = decision.contributions or {}
    ranked = sorted(contributions.items(), key=lambda item: (-abs(item[1]), item[0]))[:limit]
    features = decision.features or {}
    return [{"feature": name, "contribution": value, "served_value": features.get(name)} for name, value in ranked]
