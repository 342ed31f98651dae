from django.db import migrations, models

CREATE = """
CREATE TABLE metrics_decision (
    event_id text NOT NULL,
    order_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    buyer_id text NOT NULL,
    seller_id text NOT NULL,
    buyer_email_hash text,
    buyer_email_masked text,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency char(3) NOT NULL,
    arm text NOT NULL CHECK (arm IN ('control', 'treatment')),
    policy_version integer NOT NULL,
    model_version text,
    score double precision CHECK (score BETWEEN 0 AND 1),
    decision text NOT NULL CHECK (decision IN ('approve', 'step_up', 'decline')),
    decided_by text NOT NULL CHECK (decided_by IN ('model', 'fallback', 'rules', 'manual')),
    reason_codes text[] NOT NULL,
    latency_ms double precision NOT NULL,
    timed_out boolean NOT NULL,
    features jsonb NOT NULL,
    shadow jsonb,
    contributions jsonb
) PARTITION BY RANGE (occurred_at);
CREATE INDEX metrics_decision_order_idx ON metrics_decision (order_id);
CREATE INDEX metrics_decision_buyer_idx ON metrics_decision (buyer_id, occurred_at);
CREATE INDEX metrics_decision_seller_idx ON metrics_decision (seller_id, occurred_at);
CREATE INDEX metrics_decision_email_idx ON metrics_decision (buyer_email_hash) WHERE buyer_email_hash IS NOT NULL;
CREATE TABLE metrics_decision_default PARTITION OF metrics_decision DEFAULT;

CREATE TABLE metrics_outcome (
    event_id text NOT NULL,
    order_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL,
    amount_minor bigint,
    currency char(3),
    detail text
) PARTITION BY RANGE (occurred_at);
CREATE INDEX metrics_outcome_order_idx ON metrics_outcome (order_id);
CREATE TABLE metrics_outcome_default PARTITION OF metrics_outcome DEFAULT;
"""

DROP = """
DROP TABLE metrics_decision;
DROP TABLE metrics_outcome;
"""


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.RunSQL(CREATE, DROP),
        migrations.CreateModel(
            name="EventKey",
            fields=[
                ("event_id", models.TextField(primary_key=True, serialize=False)),
                ("occurred_at", models.DateTimeField()),
            ],
            options={"db_table": "metrics_event_key"},
        ),
        migrations.CreateModel(
            name="PendingOrder",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("order_id", models.TextField()),
                ("queued_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"db_table": "metrics_pending_order"},
        ),
        migrations.CreateModel(
            name="Decision",
            fields=[("event_id", models.TextField(primary_key=True, serialize=False))],
            options={"db_table": "metrics_decision", "managed": False},
        ),
        migrations.CreateModel(
            name="Outcome",
            fields=[("event_id", models.TextField(primary_key=True, serialize=False))],
            options={"db_table": "metrics_outcome", "managed": False},
        ),
    ]
