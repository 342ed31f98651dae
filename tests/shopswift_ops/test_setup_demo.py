import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from shopswift_ops.access import ROLES, SCOPES
from shopswift_ops.models import ApiToken
from shopswift_ops.tokens import authenticate_bearer

pytestmark = pytest.mark.django_db


def test_setup_demo_is_idempotent(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command("setup_demo")
    token = (tmp_path / "demo-token").read_text()
    passwords = (tmp_path / "demo-passwords.json").read_text()
    call_command("setup_demo")
    call_command("migrate", verbosity=0)
    assert (tmp_path / "demo-token").read_text() == token
    assert (tmp_path / "demo-passwords.json").read_text() == passwords
    assert User.objects.count() == len(ROLES) + 1
    assert ApiToken.objects.count() == 1
    demo = authenticate_bearer(f"Bearer {token}")
    assert demo is not None and set(demo.scopes) == set(SCOPES)
    for role in ROLES:
        user = User.objects.get(username=role)
        assert user.groups.filter(name=role).exists()
    assert User.objects.get(username="admin").is_superuser
    lines = (tmp_path / "demo-logins.txt").read_text()
    assert all(role in lines for role in ROLES)


def test_a_revoked_demo_token_is_replaced(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command("setup_demo")
    first = (tmp_path / "demo-token").read_text()
    call_command("revoke_api_token", "demo (make run)")
    call_command("setup_demo")
    second = (tmp_path / "demo-token").read_text()
    assert first != second and authenticate_bearer(f"Bearer {second}") is not None
