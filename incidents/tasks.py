from celery import shared_task

from incidents import services
from shopswift_ops.celery import register_beat

CATCH_UP_EVERY_S = 60.0


@shared_task(name="incidents.catch_up_unresolved", ignore_result=True)
def catch_up_unresolved():
    return services.catch_up_unresolved_incidents()


register_beat("incidents-catch-up", "incidents.catch_up_unresolved", CATCH_UP_EVERY_S, options={"expires": 120})
