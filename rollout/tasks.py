"""The ramp engine's beat: advance a stage when everything it needs is present (thin; the rules
live in rollout.services.auto_advance)."""
import logging

from celery import shared_task

from shopswift_ops.celery import register_beat

logger = logging.getLogger(__name__)
AUTO_ADVANCE_EVERY_S = 60.0


@shared_task(name="rollout.auto_advance")
def auto_advance():
    from rollout import services

    outcome = services.auto_advance()
    logger.info("ramp engine", extra={"outcome": outcome})
    return outcome


register_beat("rollout-auto-advance", "rollout.auto_advance", AUTO_ADVANCE_EVERY_S)
