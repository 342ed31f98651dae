from celery import shared_task

from metrics import pipeline
from shopswift_ops.celery import register_beat

REFRESH_EVERY_S = 2.0


@shared_task(name="metrics.refresh_and_evaluate", ignore_result=True)
def refresh_and_evaluate():
    return pipeline.refresh_and_evaluate()


register_beat("metrics-refresh-and-evaluate", "metrics.refresh_and_evaluate", REFRESH_EVERY_S,
              options={"expires": 30})
