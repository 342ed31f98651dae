import pytest

from rollout import services, tasks
from tests.rollout.conftest import sign

pytestmark = pytest.mark.django_db


def test_the_beat_task_runs_the_ramp_engine(simple_plan, people):
    from shopswift_ops.celery import app

    assert app.conf.beat_schedule["rollout-auto-advance"]["task"] == "rollout.auto_advance"
    simple_plan()
    services.bootstrap_policy(model_version="m", traffic_pct=1, reason="start", actor="t", force=True)
    sign({"risk_ops": "risk_ops-person", "engineering": "engineering-person"})
    # apply(): executed here through Celery's task machinery, as a worker would run the beat entry.
    assert tasks.auto_advance.apply().result == "advanced to 5%"
    assert services.current_policy()["traffic_pct"] == 5.0


def test_admin_pages_open_and_policies_are_read_only(rollout_ready, user_client):
    admin = user_client("admin")
    for url in ("/admin/rollout/policyversion/", "/admin/rollout/auditentry/", "/admin/rollout/rampplan/1/change/",
                "/admin/rollout/signoff/", "/admin/rollout/policyversion/1/change/"):
        assert admin.get(url).status_code == 200, url
    assert admin.get("/admin/rollout/policyversion/add/").status_code == 403


def test_nav_items_are_registered():
    from shopswift_ops.access import NAV_ITEMS

    assert ("Ramp plan", "/rollout/ramp/", "policy:read") in NAV_ITEMS
    assert ("Audit log", "/rollout/audit/", "audit:read") in NAV_ITEMS
