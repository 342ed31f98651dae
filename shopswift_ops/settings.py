"""Settings, read from the environment (see shopswift_ops.env for the strict parsers).

`make run` and `make test` start embedded PostgreSQL/Redis when DATABASE_URL/REDIS_URL are unset
and export the URLs to every process they start, so these defaults only matter for a bare
`manage.py` against a running `make run`.
"""
import secrets
from pathlib import Path

import dj_database_url

from shopswift_ops.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("SHOPSWIFT_DATA_DIR", str(BASE_DIR / ".data")))

DEBUG = env_bool("DEBUG", False)


def _local_secret_key() -> str:
    """A per-checkout secret, generated once into .data/ so no secret lives in the repo."""
    path = DATA_DIR / "secret-key"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


SECRET_KEY = env_str("SECRET_KEY") or _local_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "channels",
    "shopswift_ops",
    "metrics",
    "rollout",
    "incidents",
    "incidents.support",
]

MIDDLEWARE = [
    "shopswift_ops.middleware.RequestIdMiddleware",
    "shopswift_ops.middleware.OpsMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "shopswift_ops.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "shopswift_ops.access.AccessMiddleware",
]

ROOT_URLCONF = "shopswift_ops.urls"
ASGI_APPLICATION = "shopswift_ops.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shopswift_ops.access.roles_context",
            ],
        },
    },
]

_DEFAULT_DATABASE_URL = "postgres://postgres@" + str(DATA_DIR / "pg").replace("/", "%2F") + "/shopswift"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", _DEFAULT_DATABASE_URL))}
# Under ASGI every request runs its sync code in a thread of its own, so persistent per-thread
# connections do not work; psycopg's pool (Django >= 5.1) hands out warm connections instead.
DB_POOL = env_bool("DB_POOL", True)
DATABASES["default"].setdefault("OPTIONS", {})
if DB_POOL:
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env_int("DB_POOL_MIN", 2, minimum=0),
        "max_size": env_int("DB_POOL_MAX", 20, minimum=1),
        "timeout": 5,
    }
DATABASES["default"]["OPTIONS"]["connect_timeout"] = 5

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6390/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s channels_redis blocks
        # in BRPOP: an idle websocket's receive then times out and the consumer dies. Read longer.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}], "capacity": 1500, "expiry": 30},
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 300}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"
# Task modules outside <app>/tasks.py (loaded by workers and beat): heartbeats, retention.
CELERY_IMPORTS = ["shopswift_ops.heartbeat", "metrics.retention"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise serves from finders; it only needs the folder
STATICFILES_DIRS = [BASE_DIR / "static"]
# Plotly is served from static/vendor/plotly-basic/, never a CDN: plotly.js's own "basic" minified
# bundle (npm plotly.js-basic-dist-min, MIT), which holds the scatter and bar traces the war room
# draws. The full bundle the plotly Python package ships is 4.8 MB; Chromium spent about 1.2 s of
# a 2.3 s war room load compiling it, the basic one is 1.2 MB.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# Sessions: a war room stays open for hours, but an abandoned laptop must not stay logged in.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
SESSION_SAVE_EVERY_REQUEST = False
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not DEBUG and env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = 0 if DEBUG else env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
X_FRAME_OPTIONS = "DENY"

# The events endpoint accepts up to 8 MiB; Django's own guard sits just above it so that our
# view, not Django, answers 413 with the contract's JSON body.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024 + 1024
EVENTS_MAX_BYTES = 8 * 1024 * 1024
# An event batch (up to EVENTS_MAX_BYTES) is read into memory, not rolled over to a temporary
# file half-way (Django's ASGI handler spools bodies past this size to disk).
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
EVENTS_MAX_COUNT = 5000

# Per-token rate limits (requests per second, burst); Redis-backed, fail open when Redis is down
# so that a cache outage never costs an event.
RATE_LIMIT_EVENTS_PER_S = env_float("RATE_LIMIT_EVENTS_PER_S", 200.0, minimum=0.1)
RATE_LIMIT_ACTIONS_PER_S = env_float("RATE_LIMIT_ACTIONS_PER_S", 2.0, minimum=0.1)
# The payments service polls the rollout policy: answer token-authenticated polls in the event
# loop from a short-lived cache (rollout/fastpath.py); off = every poll goes through Django.
ROLLOUT_POLICY_FASTPATH = env_bool("ROLLOUT_POLICY_FASTPATH", True)

# Keyed hash for buyer e-mails (support search); derived from SECRET_KEY unless set.
EMAIL_HASH_KEY = env_str("EMAIL_HASH_KEY", SECRET_KEY)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "shopswift_ops.logging.JsonFormatter"}},
    "filters": {"request_id": {"()": "shopswift_ops.logging.RequestIdFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}
