import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopswift_ops.settings")

app = Celery("shopswift_ops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Beat entries are registered by each app (metrics/tasks.py, ...) through `register_beat`, so the
# composition root stays free of app imports.
app.conf.beat_schedule = {}


def register_beat(name: str, task: str, seconds: float, **options) -> None:
    app.conf.beat_schedule[name] = {"task": task, "schedule": seconds, **options}
