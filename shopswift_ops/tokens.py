"""API tokens (CONTRACT section 1): create, authenticate, revoke."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from shopswift_ops.access import SCOPES
from shopswift_ops.models import ApiToken

TOKEN_PREFIX = "ssk_"
# last_used_at is written at most once per interval per token, so polling clients cost no writes.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# PostgreSQL NOTIFY channel: processes that cache token answers (the policy fast path) LISTEN on
# it and forget them, so a revocation takes effect at once everywhere.
REVOCATION_CHANNEL = "shopswift_token_revoked"


class TokenError(ValueError):
    pass


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def parse_scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes:
        raise TokenError("scopes: give at least one of " + ", ".join(SCOPES))
    if unknown:
        raise TokenError(f"scopes: unknown {', '.join(unknown)}; valid: {', '.join(SCOPES)}")
    return sorted(set(scopes))


def create_token(*, name: str, scopes: list[str]) -> tuple[ApiToken, str]:
    if not name or len(name) > 100:
        raise TokenError("name: 1-100 characters")
    if ApiToken.objects.filter(name=name).exists():
        raise TokenError(f"name: a token named {name!r} exists; revoke it or pick another name")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(name=name, prefix=raw[:10], key_hash=_hash(raw), scopes=scopes)
    return token, raw


def revoke_token(*, name: str) -> ApiToken:
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().filter(name=name).first()
        if token is None:
            raise TokenError(f"name: no token named {name!r}")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
        with connection.cursor() as cursor:  # delivered on commit
            cursor.execute("SELECT pg_notify(%s, %s)", [REVOCATION_CHANNEL, str(token.pk)])
    return token


def authenticate_bearer(header: str) -> ApiToken | None:
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    token = ApiToken.objects.filter(key_hash=_hash(raw.strip()), revoked_at__isnull=True).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
