"""Set-up of the local demo (`make run`): role groups, one user per role, an all-scope token.
Idempotent: running it again changes nothing that exists (tests/shopswift_ops/test_setup_demo.py)."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.db import transaction

from shopswift_ops.access import ROLE_LABELS, ROLES, SCOPES
from shopswift_ops.models import ApiToken
from shopswift_ops.tokens import authenticate_bearer, create_token

DEMO_TOKEN_NAME = "demo (make run)"


def ensure_role_groups() -> None:
    for role in ROLES:
        Group.objects.get_or_create(name=role)


def _passwords(data_dir: Path) -> dict[str, str]:
    path = data_dir / "demo-passwords.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for name in (*ROLES, "admin"):
        if name not in stored:
            stored[name] = secrets.token_urlsafe(12)
            changed = True
    if changed:
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
    return stored


@transaction.atomic
def setup_demo(*, data_dir: Path) -> list[str]:
    """Create what is missing; return the login lines to print."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_role_groups()
    passwords = _passwords(data_dir)
    lines = ["Logins (user / password):"]
    for name in (*ROLES, "admin"):
        user, created = User.objects.get_or_create(username=name, defaults={"first_name": ROLE_LABELS[name]})
        if created:
            user.set_password(passwords[name])
            if name == "admin":
                user.is_staff = user.is_superuser = True
            user.save()
            if name != "admin":
                user.groups.add(Group.objects.get(name=name))
        lines.append(f"  {name:<12} {passwords[name]:<20} {ROLE_LABELS[name]}")
    token_path = data_dir / "demo-token"
    existing = token_path.read_text().strip() if token_path.exists() else ""
    if not existing or authenticate_bearer(f"Bearer {existing}") is None:
        ApiToken.objects.filter(name=DEMO_TOKEN_NAME).delete()
        _, raw = create_token(name=DEMO_TOKEN_NAME, scopes=list(SCOPES))
        token_path.write_text(raw)
        token_path.chmod(0o600)
    lines.append(f"API token with every scope: {token_path}")
    (data_dir / "demo-logins.txt").write_text("\n".join(lines) + "\n")
    return lines
