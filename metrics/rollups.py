"""The KPI refresh: fold newly ingested events into per-minute and per-hour rollups.

Ingest queues the order ids it touched in `metrics_pending_order` (same transaction as the
events). A refresh takes a chunk of that queue, recomputes those orders' facts from the raw
events in one set-based query, and adds (new fact - old fact) to the rollups, all in one
transaction:
- work per refresh is proportional to the new events, not to what is stored;
- a late outcome (a chargeback weeks later) re-queues its order, whose fact changes, so the
  difference lands in the window of the order's first decision;
- a killed refresh rolls back: the queue (the durable watermark) still holds its orders;
- refreshers are serialised by a transaction-level advisory lock, so concurrent or repeated
  runs never count an order twice.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from metrics.models import FeatureDefinition
from metrics.population import overrides_for

REFRESH_LOCK_KEY = 0x5D0A11F0  # pg advisory lock id of the refresh
BATCH_SIZE = 5000

# Latency histogram: bin 0 holds < 0.1 ms; bin i >= 1 holds [0.1 * 1.04^(i-1), 0.1 * 1.04^i) ms,
# up to 60 s in the last bin. Log-spaced bins merge across minutes by addition and keep any
# percentile within 4 % of the exact order statistic.
LATENCY_MIN_MS = 0.1
LATENCY_RATIO = 1.04
LATENCY_BINS = 2 + math.ceil(math.log(60000 / LATENCY_MIN_MS) / math.log(LATENCY_RATIO))
LATENCY_BIN_SQL = (
    f"CASE WHEN latency_ms < {LATENCY_MIN_MS} THEN 0 ELSE LEAST({LATENCY_BINS - 1}, "
    f"1 + floor(ln(latency_ms / {LATENCY_MIN_MS}) / ln({LATENCY_RATIO})))::smallint END"
)


def latency_bin(latency_ms: float) -> int:
    if latency_ms < LATENCY_MIN_MS:
        return 0
    return min(LATENCY_BINS - 1, 1 + math.floor(math.log(latency_ms / LATENCY_MIN_MS) / math.log(LATENCY_RATIO)))


def latency_bin_value(index: int) -> float:
    """The value a bin stands for: its geometric midpoint (0 for bin 0)."""
    if index <= 0:
        return 0.0
    return LATENCY_MIN_MS * LATENCY_RATIO ** (index - 0.5)


# (rollup column, aggregate over the signed fact rows). Each KPI of CONTRACT section 5 is a
# ratio of these (see metrics/kpis.py); the fact columns say what an order contributes.
COUNTERS = (
    ("orders", "sum(sign)"),
    ("decisions", "sum(sign * decisions)"),
    ("fallback_decisions", "sum(sign * fallback_decisions)"),
    ("timeout_decisions", "sum(sign * timeout_decisions)"),
    ("called_decisions", "sum(sign * called_decisions)"),
    ("completed", "sum(sign * completed::int)"),
    ("approve_final", "sum(sign * (final_decision = 'approve')::int)"),
    ("step_up_final", "sum(sign * (final_decision = 'step_up')::int)"),
    ("decline_final", "sum(sign * (final_decision = 'decline')::int)"),
    ("step_up_orders", "sum(sign * had_step_up::int)"),
    ("step_up_passed", "sum(sign * step_up_passed::int)"),
    ("false_declines", "sum(sign * false_decline::int)"),
    ("support_tickets", "sum(sign * support_ticket::int)"),
    # completed orders with a chargeback: a chargeback needs a captured payment, and the rate's
    # denominator is completed orders
    ("chargebacks", "sum(sign * (chargeback AND completed)::int)"),
    ("fraud_confirmed", "sum(sign * (fraud_confirmed AND completed)::int)"),
    ("amount_sum", "sum(sign * amount_minor)"),
    ("completed_amount", "sum(sign * amount_minor * completed::int)"),
    ("fraud_loss_amount", "sum(sign * amount_minor * fraud_loss::int)"),
    ("completed_amount_sq", "sum(sign * completed::int * amount_minor::float8 * amount_minor::float8)"),
    ("fraud_loss_amount_sq", "sum(sign * fraud_loss::int * amount_minor::float8 * amount_minor::float8)"),
)
COUNTER_NAMES = tuple(name for name, _ in COUNTERS)

FACT_COLUMNS = (
    "order_id", "first_at", "policy_version", "arm", "eligible", "buyer_id", "amount_minor", "segments", "health",
    "decisions", "fallback_decisions", "timeout_decisions", "called_decisions", "latency_bins", "final_decision",
    "had_step_up", "completed", "step_up_passed", "false_decline", "support_ticket", "fraud_loss", "chargeback",
    "fraud_confirmed", "chargeback_at", "fraud_confirmed_at", "completed_at", "first_model_score",
)

# The facts of a set of orders, from raw events. An order's cohort (arm, policy version,
# segment values, features) is its first decision's; its final decision is its last one.
FACTS_SQL = f"""
INSERT INTO _fact_new ({', '.join(FACT_COLUMNS)})
WITH d AS (
    SELECT order_id, occurred_at, event_id, buyer_id, amount_minor, arm, policy_version, decision,
           decided_by, latency_ms, timed_out, features, score
    FROM metrics_decision WHERE order_id = ANY(%(orders)s)
), firsts AS (
    SELECT DISTINCT ON (order_id) order_id, occurred_at, arm, policy_version, buyer_id, amount_minor, features,
           CASE WHEN decided_by = 'model' THEN score END AS model_score
    FROM d ORDER BY order_id, occurred_at, event_id
), lasts AS (
    SELECT DISTINCT ON (order_id) order_id, decision AS final_decision
    FROM d ORDER BY order_id, occurred_at DESC, event_id DESC
), dagg AS (
    SELECT order_id, count(*) AS decisions,
           count(*) FILTER (WHERE decided_by = 'fallback') AS fallback_decisions,
           count(*) FILTER (WHERE timed_out) AS timeout_decisions,
           count(*) FILTER (WHERE decided_by IN ('model', 'fallback')) AS called_decisions,
           bool_or(decision = 'step_up') AS had_step_up,
           coalesce(array_agg({LATENCY_BIN_SQL}) FILTER (WHERE decided_by IN ('model', 'fallback')), '{{}}') AS latency_bins
    FROM d GROUP BY order_id
), o AS (
    SELECT order_id,
           bool_or(kind = 'checkout_completed') AS completed,
           bool_or(kind = 'step_up_passed') AS passed,
           bool_or(kind IN ('chargeback', 'fraud_confirmed', 'review_fraud')) AS fraud_marked,
           bool_or(kind = 'review_legit') AS review_legit,
           bool_or(kind = 'support_ticket' AND detail = 'payment_failed') AS ticket,
           bool_or(kind IN ('fraud_confirmed', 'chargeback', 'high_risk_signal')) AS loss_marked,
           bool_or(kind = 'chargeback') AS chargeback,
           bool_or(kind = 'fraud_confirmed') AS fraud_confirmed,
           min(occurred_at) FILTER (WHERE kind = 'chargeback') AS chargeback_at,
           min(occurred_at) FILTER (WHERE kind = 'fraud_confirmed') AS fraud_confirmed_at,
           min(occurred_at) FILTER (WHERE kind = 'checkout_completed') AS completed_at
    FROM metrics_outcome WHERE order_id = ANY(%(orders)s) GROUP BY order_id
)
SELECT f.order_id, f.occurred_at, f.policy_version, f.arm,
    NOT EXISTS (
        SELECT 1 FROM jsonb_array_elements(coalesce(%(overrides)s::jsonb -> f.policy_version::text, '[]'::jsonb)) ov
        WHERE ov -> 'in' @> jsonb_build_array(coalesce(f.features -> (ov ->> 'feature'), 'null'::jsonb))
    ),
    f.buyer_id, f.amount_minor,
    (SELECT coalesce(jsonb_object_agg(sf, coalesce(f.features ->> sf, 'null')), '{{}}'::jsonb)
     FROM unnest(%(segment_features)s::text[]) sf),
    (SELECT coalesce(jsonb_object_agg(r.name, jsonb_build_array(
        CASE WHEN v.v IS NULL OR jsonb_typeof(v.v) = 'null' THEN 'null'
             WHEN r.kind = 'number' AND jsonb_typeof(v.v) = 'number' THEN
                CASE WHEN (r.lo IS NOT NULL AND v.x < r.lo) OR (r.hi IS NOT NULL AND v.x > r.hi) THEN 'oor'
                     WHEN r.lo IS NOT NULL AND r.hi IS NOT NULL AND r.hi > r.lo THEN 'n' || (
                        CASE WHEN r.scale = 'log' THEN least(9, greatest(0, floor(ln(1 + v.x - r.lo) / ln(1 + r.hi - r.lo) * 10)))
                             ELSE least(9, greatest(0, floor((v.x - r.lo) / (r.hi - r.lo) * 10))) END)::int
                     ELSE 'n' || (sign(v.x) * floor(ln(1 + abs(v.x)) / ln(2)))::int END
             ELSE 'v:' || (v.v #>> '{{}}') END,
        CASE WHEN v.v IS NULL OR jsonb_typeof(v.v) = 'null' THEN 'null'
             WHEN r.dflt IS NOT NULL AND jsonb_typeof(r.dflt) <> 'null' AND v.v = r.dflt THEN 'default'
             WHEN (r.kind = 'number' AND jsonb_typeof(v.v) = 'number'
                   AND ((r.lo IS NOT NULL AND v.x < r.lo) OR (r.hi IS NOT NULL AND v.x > r.hi)))
                  OR (jsonb_typeof(r.allowed) = 'array' AND jsonb_array_length(r.allowed) > 0
                      AND NOT r.allowed @> jsonb_build_array(v.v)) THEN 'out_of_range'
             ELSE '' END)), '{{}}'::jsonb)
     FROM jsonb_to_recordset(%(registry)s::jsonb) AS r(name text, kind text, dflt jsonb, lo float8, hi float8, allowed jsonb, scale text)
     CROSS JOIN LATERAL (SELECT f.features -> r.name AS v,
                                CASE WHEN jsonb_typeof(f.features -> r.name) = 'number' THEN (f.features ->> r.name)::float8 END AS x) v),
    a.decisions, a.fallback_decisions, a.timeout_decisions, a.called_decisions, a.latency_bins, l.final_decision,
    a.had_step_up,
    coalesce(o.completed, false),
    a.had_step_up AND coalesce(o.passed, false),
    (l.final_decision = 'decline' OR (l.final_decision = 'step_up' AND NOT coalesce(o.passed, false)))
      AND (coalesce(o.review_legit, false)
           OR (f.features -> 'is_repeat_buyer' = 'true'::jsonb
               AND CASE WHEN jsonb_typeof(f.features -> 'prior_good_orders') = 'number'
                        THEN (f.features ->> 'prior_good_orders')::float8 >= 3 ELSE false END
               AND NOT coalesce(o.fraud_marked, false))),
    coalesce(o.ticket, false),
    coalesce(o.completed AND o.loss_marked, false),
    coalesce(o.chargeback, false),
    coalesce(o.fraud_confirmed, false),
    o.chargeback_at,
    o.fraud_confirmed_at,
    o.completed_at,
    f.model_score
FROM firsts f JOIN lasts l USING (order_id) JOIN dagg a USING (order_id) LEFT JOIN o USING (order_id)
"""

_SEGMENTS_LATERAL = (
    "CROSS JOIN LATERAL (SELECT '' AS seg_feature, '' AS seg_value "
    "UNION ALL SELECT key, value FROM jsonb_each_text(dl.segments)) s"
)
_KEY = "policy_version, arm, eligible, seg_feature, seg_value"


def _apply_sql(grain: str) -> list[str]:
    bucket = f"date_trunc('{grain}', dl.first_at)"
    counters = ", ".join(f"{expression} AS {name}" for name, expression in COUNTERS)
    updates = ", ".join(f"{name} = r.{name} + excluded.{name}" for name in COUNTER_NAMES)
    return [
        f"""INSERT INTO metrics_rollup_{grain} AS r (bucket, {_KEY}, {', '.join(COUNTER_NAMES)})
            SELECT {bucket}, dl.policy_version, dl.arm, dl.eligible, s.seg_feature, s.seg_value, {counters}
            FROM _delta dl {_SEGMENTS_LATERAL}
            GROUP BY 1, 2, 3, 4, 5, 6
            ON CONFLICT (bucket, {_KEY}) DO UPDATE SET {updates}""",
        f"""INSERT INTO metrics_rollup_latency_{grain} AS r (bucket, {_KEY}, bin, count)
            SELECT {bucket}, dl.policy_version, dl.arm, dl.eligible, s.seg_feature, s.seg_value, b.bin, sum(dl.sign)
            FROM _delta dl {_SEGMENTS_LATERAL} CROSS JOIN LATERAL unnest(dl.latency_bins) AS b(bin)
            GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(dl.sign) <> 0
            ON CONFLICT (bucket, {_KEY}, bin) DO UPDATE SET count = r.count + excluded.count""",
        f"""INSERT INTO metrics_rollup_feature_{grain} AS r (bucket, seg_feature, seg_value, feature, bin, n, defaults, nulls, out_of_range)
            SELECT {bucket}, s.seg_feature, s.seg_value, h.key, h.value ->> 0, sum(dl.sign),
                   sum(dl.sign * (h.value ->> 1 = 'default')::int), sum(dl.sign * (h.value ->> 1 = 'null')::int),
                   sum(dl.sign * (h.value ->> 1 = 'out_of_range')::int)
            FROM _delta dl {_SEGMENTS_LATERAL} CROSS JOIN LATERAL jsonb_each(dl.health) h
            GROUP BY 1, 2, 3, 4, 5 HAVING sum(dl.sign) <> 0
            ON CONFLICT (bucket, seg_feature, seg_value, feature, bin) DO UPDATE SET
                n = r.n + excluded.n, defaults = r.defaults + excluded.defaults,
                nulls = r.nulls + excluded.nulls, out_of_range = r.out_of_range + excluded.out_of_range""",
    ]


# Card-network programmes count a chargeback in the month it happened, not in its order's month
# (Mastercard ECM: chargebacks of the month / sales of the previous month). Folding the same
# signed facts by the UTC day of the order's first chargeback / fraud_confirmed outcome keeps
# that count exact, idempotent and proportional to new events, and a month is ~31 rows to read;
# scanning metrics_outcome for a month's chargebacks would read every outcome of the month (no
# index on kind). An order counts once, on its first such outcome, and only when completed (as
# the `chargebacks` rollup counter).
OUTCOME_DAY_SQL = """
INSERT INTO metrics_outcome_day AS r (day, kind, orders)
SELECT (k.at AT TIME ZONE 'UTC')::date, k.kind, sum(dl.sign)
FROM _delta dl CROSS JOIN LATERAL (VALUES ('chargeback', dl.chargeback_at), ('fraud_confirmed', dl.fraud_confirmed_at)) AS k(kind, at)
WHERE dl.completed AND k.at IS NOT NULL
GROUP BY 1, 2 HAVING sum(dl.sign) <> 0
ON CONFLICT (day, kind) DO UPDATE SET orders = r.orders + excluded.orders"""

APPLY_SQL = _apply_sql("minute") + _apply_sql("hour") + [OUTCOME_DAY_SQL] + [
    """INSERT INTO metrics_buyer_arm AS r (policy_version, buyer_id, control_orders, treatment_orders)
       SELECT policy_version, buyer_id, sum(sign * (arm = 'control')::int), sum(sign * (arm = 'treatment')::int)
       FROM _delta WHERE eligible GROUP BY 1, 2
       ON CONFLICT (policy_version, buyer_id) DO UPDATE SET
           control_orders = r.control_orders + excluded.control_orders,
           treatment_orders = r.treatment_orders + excluded.treatment_orders""",
]


@dataclass
class RefreshResult:
    orders_folded: int = 0
    batches: int = 0


def registry_snapshot() -> tuple[list[str], list[dict]]:
    """Segment dimensions and monitored features, as the facts query wants them."""
    segment_features, monitored = [], []
    for feature in FeatureDefinition.objects.all():
        if feature.segment_dimension:
            segment_features.append(feature.name)
        if feature.monitored:
            lo, hi = feature.min_value, feature.max_value
            scale = "log" if lo is not None and hi is not None and lo >= 0 and hi - lo > 100 else "linear"
            monitored.append({"name": feature.name, "kind": feature.kind, "dflt": feature.default_value,
                              "lo": lo, "hi": hi, "allowed": feature.allowed_values, "scale": scale})
    return segment_features, monitored


def refresh_batch(*, batch_size: int = BATCH_SIZE, registry=None) -> int:
    """Fold one chunk of the queue; returns the number of orders taken from it (0: queue empty)."""
    segment_features, monitored = registry or registry_snapshot()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REFRESH_LOCK_KEY])
        cursor.execute(
            """DELETE FROM metrics_pending_order WHERE id IN (
                   SELECT id FROM metrics_pending_order ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
               RETURNING order_id""",
            [batch_size],
        )
        orders = sorted({row[0] for row in cursor.fetchall()})
        if not orders:
            return 0
        cursor.execute(
            "SELECT DISTINCT policy_version FROM metrics_decision WHERE order_id = ANY(%s)", [orders]
        )
        overrides = {str(version): overrides_for(version) for (version,) in cursor.fetchall()}
        # dropped explicitly too: inside an enclosing transaction (tests) ON COMMIT never comes
        cursor.execute("DROP TABLE IF EXISTS _fact_new, _delta")
        cursor.execute("CREATE TEMP TABLE _fact_new (LIKE metrics_order_fact) ON COMMIT DROP")
        cursor.execute(FACTS_SQL, {"orders": orders, "overrides": json.dumps(overrides),
                                   "segment_features": segment_features, "registry": json.dumps(monitored)})
        cursor.execute(
            """CREATE TEMP TABLE _delta ON COMMIT DROP AS
               SELECT 1 AS sign, * FROM _fact_new
               UNION ALL SELECT -1 AS sign, * FROM metrics_order_fact WHERE order_id = ANY(%s)""",
            [orders],
        )
        for statement in APPLY_SQL:
            cursor.execute(statement)
        cursor.execute("DELETE FROM metrics_order_fact WHERE order_id = ANY(%s)", [orders])
        cursor.execute(f"INSERT INTO metrics_order_fact ({', '.join(FACT_COLUMNS)}) SELECT {', '.join(FACT_COLUMNS)} FROM _fact_new")
        cursor.execute(
            "UPDATE metrics_refresh_state SET refreshed_at = %s, orders_folded = orders_folded + %s WHERE id = 1",
            [timezone.now(), len(orders)],
        )
        cursor.execute("DROP TABLE _fact_new, _delta")
        return len(orders)


ANNOUNCE_EVERY_S = 1.0


def refresh(*, batch_size: int = BATCH_SIZE, max_batches: int | None = None) -> RefreshResult:
    """Fold the queue until it is empty (or max_batches chunks were folded)."""
    from shopswift_ops.live import announce

    result = RefreshResult()
    registry = registry_snapshot()
    unannounced, last_announced = 0, time.monotonic()
    while max_batches is None or result.batches < max_batches:
        folded = refresh_batch(batch_size=batch_size, registry=registry)
        if not folded:
            break
        result.orders_folded += folded
        result.batches += 1
        unannounced += folded
        # Under sustained load the queue rarely drains; open pages must still hear of each
        # second's progress rather than wait for the end of the backlog.
        if time.monotonic() - last_announced >= ANNOUNCE_EVERY_S:
            announce("kpis", {"refreshed_at": timezone.now().isoformat(), "orders_folded": unannounced})
            unannounced, last_announced = 0, time.monotonic()
    if unannounced:
        announce("kpis", {"refreshed_at": timezone.now().isoformat(), "orders_folded": unannounced})
    return result


def pending_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_pending_order")
        return cursor.fetchone()[0]


def refresh_state() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT refreshed_at, orders_folded FROM metrics_refresh_state WHERE id = 1")
        row = cursor.fetchone()
    return {"refreshed_at": row[0], "orders_folded": row[1]} if row else {"refreshed_at": None, "orders_folded": 0}
