"""Per-order facts and the per-minute / per-hour rollups the KPI refresh folds them into.

The refresh (metrics/rollups.py) recomputes the facts of the orders it takes from
metrics_pending_order and adds (new fact - old fact) to the rollups, so any time range is
answered from rollups and a late outcome moves the order's original window.
"""
from django.db import migrations

KEY = "policy_version integer NOT NULL, arm text NOT NULL, eligible boolean NOT NULL, seg_feature text NOT NULL, seg_value text NOT NULL"
KEY_COLS = "policy_version, arm, eligible, seg_feature, seg_value"
COUNTERS = """
    orders bigint NOT NULL DEFAULT 0,
    decisions bigint NOT NULL DEFAULT 0,
    fallback_decisions bigint NOT NULL DEFAULT 0,
    timeout_decisions bigint NOT NULL DEFAULT 0,
    called_decisions bigint NOT NULL DEFAULT 0,
    completed bigint NOT NULL DEFAULT 0,
    approve_final bigint NOT NULL DEFAULT 0,
    step_up_final bigint NOT NULL DEFAULT 0,
    decline_final bigint NOT NULL DEFAULT 0,
    step_up_orders bigint NOT NULL DEFAULT 0,
    step_up_passed bigint NOT NULL DEFAULT 0,
    false_declines bigint NOT NULL DEFAULT 0,
    support_tickets bigint NOT NULL DEFAULT 0,
    chargebacks bigint NOT NULL DEFAULT 0,
    fraud_confirmed bigint NOT NULL DEFAULT 0,
    amount_sum bigint NOT NULL DEFAULT 0,
    completed_amount bigint NOT NULL DEFAULT 0,
    fraud_loss_amount bigint NOT NULL DEFAULT 0,
    completed_amount_sq double precision NOT NULL DEFAULT 0,
    fraud_loss_amount_sq double precision NOT NULL DEFAULT 0
"""


def grain_tables(grain: str) -> str:
    return f"""
CREATE TABLE metrics_rollup_{grain} (
    bucket timestamptz NOT NULL, {KEY}, {COUNTERS},
    PRIMARY KEY (bucket, {KEY_COLS})
);
CREATE TABLE metrics_rollup_latency_{grain} (
    bucket timestamptz NOT NULL, {KEY}, bin smallint NOT NULL, count bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, {KEY_COLS}, bin)
);
CREATE TABLE metrics_rollup_feature_{grain} (
    bucket timestamptz NOT NULL, feature text NOT NULL, seg_feature text NOT NULL, seg_value text NOT NULL,
    bin text NOT NULL, n bigint NOT NULL DEFAULT 0, defaults bigint NOT NULL DEFAULT 0,
    nulls bigint NOT NULL DEFAULT 0, out_of_range bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, seg_feature, seg_value, feature, bin)
);
"""


CREATE = f"""
CREATE TABLE metrics_order_fact (
    order_id text PRIMARY KEY,
    first_at timestamptz NOT NULL,
    policy_version integer NOT NULL,
    arm text NOT NULL,
    eligible boolean NOT NULL,
    buyer_id text NOT NULL,
    amount_minor bigint NOT NULL,
    segments jsonb NOT NULL,
    health jsonb NOT NULL,
    decisions integer NOT NULL,
    fallback_decisions integer NOT NULL,
    timeout_decisions integer NOT NULL,
    called_decisions integer NOT NULL,
    latency_bins smallint[] NOT NULL,
    final_decision text NOT NULL,
    had_step_up boolean NOT NULL,
    completed boolean NOT NULL,
    step_up_passed boolean NOT NULL,
    false_decline boolean NOT NULL,
    support_ticket boolean NOT NULL,
    fraud_loss boolean NOT NULL,
    chargeback boolean NOT NULL,
    fraud_confirmed boolean NOT NULL
);
{grain_tables("minute")}
{grain_tables("hour")}
CREATE TABLE metrics_buyer_arm (
    policy_version integer NOT NULL, buyer_id text NOT NULL,
    control_orders integer NOT NULL DEFAULT 0, treatment_orders integer NOT NULL DEFAULT 0,
    PRIMARY KEY (policy_version, buyer_id)
);
CREATE INDEX metrics_buyer_arm_both_idx ON metrics_buyer_arm (policy_version)
    WHERE control_orders > 0 AND treatment_orders > 0;
CREATE TABLE metrics_refresh_state (
    id smallint PRIMARY KEY CHECK (id = 1),
    refreshed_at timestamptz,
    orders_folded bigint NOT NULL DEFAULT 0
);
INSERT INTO metrics_refresh_state (id, refreshed_at, orders_folded) VALUES (1, NULL, 0);
"""

DROP = """
DROP TABLE metrics_order_fact, metrics_rollup_minute, metrics_rollup_latency_minute, metrics_rollup_feature_minute,
    metrics_rollup_hour, metrics_rollup_latency_hour, metrics_rollup_feature_hour, metrics_buyer_arm,
    metrics_refresh_state;
"""


class Migration(migrations.Migration):
    dependencies = [("metrics", "0003_seed_registry")]
    operations = [migrations.RunSQL(CREATE, DROP)]
