import json

import pytest
from django.db import connection
from django.test import Client

from metrics.partitions import forget_known_partitions
from tests.factories import UserFactory, token_for


@pytest.fixture(autouse=True)
def _fresh_partition_cache():
    # Partitions created inside a rolled-back test transaction vanish; so must our memory of them.
    forget_known_partitions()
    yield
    forget_known_partitions()


class ApiClient(Client):
    def __init__(self, token: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.token = token

    def _auth(self, extra):
        if self.token:
            extra.setdefault("HTTP_AUTHORIZATION", f"Bearer {self.token}")
        return extra

    def get(self, path, data=None, **extra):
        return super().get(path, data, **self._auth(extra))

    def post_json(self, path, payload, **extra):
        body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        return super().post(path, body, content_type="application/json", **self._auth(extra))


@pytest.fixture
def api_client_for(db):
    def make(*scopes):
        return ApiClient(token_for(*scopes))
    return make


@pytest.fixture
def events_client(api_client_for):
    return api_client_for("events:write")


@pytest.fixture
def user_client(db):
    def make(role: str):
        user = UserFactory(role=role)
        client = ApiClient()
        client.force_login(user)
        client.user = user
        return client
    return make


EVENT_STORE_TABLES = ("metrics_decision", "metrics_outcome", "metrics_event_key", "metrics_pending_order", "metrics_order_fact",
                "metrics_rollup_minute", "metrics_rollup_hour", "metrics_rollup_latency_minute",
                "metrics_rollup_latency_hour", "metrics_rollup_feature_minute", "metrics_rollup_feature_hour",
                "metrics_buyer_arm", "metrics_outcome_day")


def truncate_event_store() -> None:
    """Empty the raw events, the queue, the facts and the rollups (Django's flush does not know
    these raw-SQL tables)."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(EVENT_STORE_TABLES)}")


@pytest.fixture
def clean_event_tables():
    # Transactional tests commit, and Django's flush after another transactional test may have
    # emptied the seeded registry and guardrails: seed again (idempotent), and empty the raw-SQL
    # tables afterwards (Django's flush does not know them).
    import importlib

    from django.apps import apps

    importlib.import_module("metrics.migrations.0003_seed_registry").seed(apps, None)
    importlib.import_module("metrics.migrations.0006_default_guardrails").seed(apps, None)
    importlib.import_module("metrics.migrations.0007_guardrail_maturity").tune_defaults(apps, None)
    truncate_event_store()  # other transactional tests leave raw events behind
    yield
    truncate_event_store()
