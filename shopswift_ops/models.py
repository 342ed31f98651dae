from django.contrib.postgres.fields import ArrayField
from django.db import models


class ApiToken(models.Model):
    """A machine client's credential. Only the SHA-256 of the token is stored; tokens are 256-bit
    random strings, so a fast hash is enough (no offline guessing is feasible)."""

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, help_text="first characters of the token, to recognise it")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = ArrayField(models.CharField(max_length=32))
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
