"""Production profile: `DJANGO_SETTINGS_MODULE=shopswift_ops.settings_production`.

The base settings already read everything from the environment; this profile refuses to start
without what production must set explicitly (no generated secret, no debug, real hosts) and
turns on what a deployment behind a TLS-terminating load balancer needs. See the Procfile for
the process types (web, worker, beat) and docs/hardening.md for running several of each.
"""
import os

from django.core.exceptions import ImproperlyConfigured

for _required in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"):
    if not os.environ.get(_required):
        raise ImproperlyConfigured(f"{_required}: must be set in the environment for the production profile")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("BEHIND_TLS_PROXY", "true")

from shopswift_ops.settings import *  # noqa: E402,F403

if DEBUG:  # noqa: F405
    raise ImproperlyConfigured("DEBUG: must be false in the production profile")

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_SSL_REDIRECT = os.environ.get("SECURE_SSL_REDIRECT", "true").lower() in ("1", "true", "yes")
# The load balancer checks /healthz and /readyz over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = max(SECURE_HSTS_SECONDS, 31536000)  # noqa: F405
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
WHITENOISE_USE_FINDERS = False  # serve collected, hashed files (run `manage.py collectstatic` at build)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Beat's schedule file must not sit in a shared folder that two beats could both write.
CELERY_BEAT_SCHEDULE_FILENAME = os.environ.get("CELERY_BEAT_SCHEDULE_FILENAME", "/tmp/shopswift-celerybeat-schedule")
