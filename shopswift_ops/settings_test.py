"""Test settings: the real settings with a fast password hasher and eager Celery for unit tests
(tests that need a real worker start one; see tests/metrics/test_worker.py)."""
import hashlib

from shopswift_ops.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
LOGGING["root"]["level"] = "WARNING"  # noqa: F405

# Two checkouts (git worktrees) testing against one shared PostgreSQL must not drop each other's
# test database: name it after the checkout.
DATABASES["default"].setdefault("TEST", {})["NAME"] = (  # noqa: F405
    "test_shopswift_" + hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:8])  # noqa: F405
