# The Celery app must be imported here, or `.delay()` from Django code falls back to the
# default AMQP broker (see STACK-NOTES).
from shopswift_ops.celery import app as celery_app

__all__ = ["celery_app"]
