"""The production profile refuses to start half-configured, and the Procfile runs web, worker
and beat as separate processes."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {"SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "ops.example.com", "DJANGO_SETTINGS_MODULE": "shopswift_ops.settings_production"}


def _load(env: dict) -> subprocess.CompletedProcess:
    code = ("import json, django; from django.conf import settings as s; django.setup(); print(json.dumps({k: getattr(s, k) "
            "for k in ['DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_SSL_REDIRECT', "
            "'SECURE_PROXY_SSL_HEADER', 'ALLOWED_HOSTS']}))")
    environment = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS")}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environment, capture_output=True, text=True)


def test_production_profile_is_secure():
    result = _load(PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False and values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] >= 31536000 and values["SECURE_SSL_REDIRECT"]
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["ALLOWED_HOSTS"] == ["ops.example.com"]


def test_production_profile_refuses_a_missing_secret_or_debug():
    missing = _load({k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"})
    assert missing.returncode != 0 and "SECRET_KEY: must be set" in missing.stderr
    debug = _load({**PRODUCTION_ENV, "DEBUG": "true"})
    assert debug.returncode != 0 and "DEBUG: must be false" in debug.stderr


def test_procfile_runs_web_worker_and_beat_as_separate_processes():
    entries = dict(line.split(":", 1) for line in (REPO / "Procfile").read_text().splitlines() if line.strip())
    assert {"web", "worker", "beat"} <= set(entries)
    assert "daphne" in entries["web"] and "shopswift_ops.asgi:application" in entries["web"]
    assert " worker " in entries["worker"] and " beat " in entries["beat"] + " "
    assert "beat" not in entries["worker"] and "-B" not in entries["worker"].split()  # beat never embedded in a worker
