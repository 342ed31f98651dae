"""Buyer e-mails are never stored in the clear: a keyed hash for exact search, a masked form to show."""
import hashlib
import hmac

from django.conf import settings


def email_hash(email: str) -> str:
    normalised = email.strip().lower()
    return hmac.new(settings.EMAIL_HASH_KEY.encode(), normalised.encode(), hashlib.sha256).hexdigest()


def mask_email(email: str) -> str:
    local, at, domain = email.strip().partition("@")
    if not at:
        return "***"
    shown = local[:1] if len(local) > 1 else ""
    return f"{shown}***@{domain.lower()}"
