import io

import pytest
from django.core.management import CommandError, call_command

from shopswift_ops.models import ApiToken
from tests.factories import decision_event

pytestmark = pytest.mark.django_db


def test_create_api_token_prints_once_and_stores_only_a_hash():
    out = io.StringIO()
    call_command("create_api_token", "payments", "--scopes", "events:write,policy:read", stdout=out, stderr=io.StringIO())
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(name="payments")
    assert raw.startswith("ssk_") and raw not in (token.key_hash, token.prefix)
    assert token.scopes == ["events:write", "policy:read"]


@pytest.mark.parametrize("scopes", ["", "events:write,admin:everything"])
def test_bad_scopes_are_refused(scopes):
    with pytest.raises(CommandError, match="scopes"):
        call_command("create_api_token", "x", "--scopes", scopes, stdout=io.StringIO(), stderr=io.StringIO())


def test_revocation_has_immediate_effect(client):
    out = io.StringIO()
    call_command("create_api_token", "sim", "--scopes", "events:write", stdout=out, stderr=io.StringIO())
    raw = out.getvalue().strip()
    post = lambda: client.post("/api/v1/events", {"events": [decision_event()]}, content_type="application/json",  # noqa: E731
                               HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert post().status_code == 200
    assert ApiToken.objects.get(name="sim").last_used_at is not None
    call_command("revoke_api_token", "sim", stdout=io.StringIO())
    assert post().status_code == 401
