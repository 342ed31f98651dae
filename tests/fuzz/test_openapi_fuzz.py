"""Schemathesis against /api/v1/openapi.json, in process (Django's WSGI handler on the test
database), every operation with a token holding every scope: no 5xx, and every answer matches
the documented status codes, content types, headers and schemas. Bounded and derandomized so
it runs in seconds and fails the same way twice."""
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shopswift_ops.access import SCOPES
from tests.factories import token_for

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture
def api_schema(db):
    # Like Django's test Client: keep the test transaction's connection open across requests.
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def all_scope_token(db):
    return token_for(*SCOPES)


# (schemathesis' pytest integration trips over pytest 9 internals, so each operation gets its
# own Hypothesis run inside one test.)
def test_every_operation_answers_within_its_contract(api_schema, all_scope_token):
    headers = {"Authorization": f"Bearer {all_scope_token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 1
    tested, failures = [], []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def fuzz(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every operation's failure, then fail once
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
        tested.append(operation.label)
    assert "POST /api/v1/events" in tested
    assert not failures, "\n\n".join(failures)
