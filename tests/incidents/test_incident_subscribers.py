"""A breach opens an incident (or attaches to the open one); every upstream fact lands on the
timeline exactly once."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from incidents import services
from incidents.models import Incident, TimelineEntry
from incidents.selectors import open_incident, timeline
from shopswift_ops import live
from tests.incidents.conftest import breach_alert, policy_news

pytestmark = pytest.mark.django_db


def test_a_breach_opens_an_incident_with_its_population_and_times():
    at = timezone.now() - timedelta(minutes=5)
    services.on_alert(breach_alert(at=at, segment_value="social_google"))
    incident = open_incident()
    assert incident is not None and incident.status == "investigating"
    assert incident.severity == "SEV2"  # the guardrail's action excludes a segment
    assert incident.detected_at == at and incident.started_at == at
    assert incident.affected_population == {
        "arm": "treatment", "segment": {"feature": "signup_method", "in": ["social_google"]},
        "from": incident.affected_population["from"], "to": None}
    kinds = [e.kind for e in timeline(incident)]
    assert kinds.count("incident_opened") == 1 and kinds.count("alert") == 1


def test_a_second_breach_attaches_and_widens_the_population():
    services.on_alert(breach_alert(segment_value="social_google"))
    services.on_alert(breach_alert(segment_value="social_apple"))
    assert Incident.objects.count() == 1
    incident = open_incident()
    assert incident.affected_population["segment"] == {"feature": "signup_method",
                                                       "in": ["social_google", "social_apple"]}
    assert [e.kind for e in timeline(incident)].count("alert") >= 2


def test_a_breach_on_a_pooled_population_covers_all_its_values():
    services.on_alert(breach_alert(segment_value="social_google"))
    services.on_alert(breach_alert(segment_value="social_apple|social_google", guardrail="conversion",
                                   metric="conversion", action="halt_ramp"))
    assert open_incident().affected_population["segment"] == {"feature": "signup_method",
                                                              "in": ["social_google", "social_apple"]}


def test_a_breach_on_all_traffic_widens_to_no_segment():
    services.on_alert(breach_alert(segment_value="social_google"))
    services.on_alert(breach_alert(segment_value=None, guardrail="scoring_latency_p95", action="rollback_stage"))
    assert open_incident().affected_population["segment"] is None


def test_the_same_alert_delivered_twice_lands_once():
    alert = breach_alert()
    services.on_alert(alert)
    services.on_alert(alert)
    incident = open_incident()
    assert TimelineEntry.objects.filter(incident=incident, source_key=f"alert:{alert['alert_id']}").count() == 1


def test_a_non_breach_alert_opens_nothing():
    services.on_alert(breach_alert(status="ok"))
    assert Incident.objects.count() == 0


def test_a_breach_after_resolution_opens_a_new_incident(user_client):
    services.on_alert(breach_alert())
    first = open_incident()
    services.change_status(incident_id=first.pk, version=first.version, status="resolved", actor="alice")
    services.on_alert(breach_alert())
    assert Incident.objects.count() == 2 and open_incident().pk != first.pk


def test_policy_changes_before_the_incident_are_backfilled_once_and_containment_marks_mitigation():
    ramp_at = timezone.now() - timedelta(minutes=30)
    services.on_policy(policy_news(version=5, at=ramp_at))
    breach_at = timezone.now() - timedelta(minutes=2)
    # The rollout subscriber acts on the alert first, so its containment is news before the incident exists.
    services.on_policy(policy_news(version=6, action="exclude_segment", actor="guardrail", at=breach_at))
    services.on_alert(breach_alert(at=breach_at))
    incident = open_incident()
    keys = [e.source_key for e in timeline(incident)]
    assert keys.count("policy:5") == 1 and keys.count("policy:6") == 1
    assert incident.mitigated_at == TimelineEntry.objects.get(incident=incident, source_key="policy:6").at
    services.on_policy(policy_news(version=6, action="exclude_segment", actor="guardrail", at=breach_at))
    assert [e.source_key for e in timeline(incident)].count("policy:6") == 1


def test_policy_signoff_and_guardrail_news_reach_the_open_incident_once(incident):
    news = policy_news(version=9, action="set_traffic")
    signoff = {"event": "signed_off", "actor": "carol", "role": "compliance", "stage": 3,
               "at": news["at"]}
    guardrail = {"guardrails": [{"name": "conversion", "status": "breach", "segment": None, "since": news["at"],
                                 "evidence": "-1.4 pp"}, {"name": "latency", "status": "ok"}]}
    for _ in range(2):
        services.on_policy(news)
        services.on_signoff(signoff)
        services.on_guardrails(guardrail)
    kinds = [e.kind for e in timeline(incident)]
    assert [e.source_key for e in timeline(incident)].count("policy:9") == 1
    assert kinds.count("signoff") == 1
    assert kinds.count("guardrail") == 1


def test_timeline_is_in_time_order_and_can_hide_system_entries(incident):
    services.add_note(incident_id=incident.pk, actor="alice", text="looking at feature health")
    earlier = timezone.now() - timedelta(hours=3)
    services.on_policy(policy_news(version=3, at=earlier))  # arrives late, happened earlier
    entries = timeline(incident)
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    people = timeline(incident, include_system=False)
    assert [e.source for e in people] == ["alice"]


def test_announced_news_flows_through_live_subscriptions(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        live.announce("alerts", breach_alert())
    assert open_incident() is not None


@pytest.mark.django_db(transaction=True)
def test_concurrent_breaches_open_one_incident():
    alerts = [breach_alert(segment_value=v) for v in ("social_google", "social_apple", "email", "phone")]
    barrier = threading.Barrier(len(alerts))
    errors = []

    def deliver(alert):
        try:
            barrier.wait()
            services.on_alert(alert)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(a,)) for a in alerts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Incident.objects.count() == 1
    incident = Incident.objects.get()
    assert TimelineEntry.objects.filter(incident=incident, kind="alert", source_key__startswith="alert:").count() == 4


def incident_with_an_unheard_kill():
    """An open incident, then a kill switch whose delivery never reached it (no on_commit
    delivery in these tests): returns the incident and the new policy version."""
    from rollout import services as rollout_services

    rollout_services.bootstrap_policy(model_version="fraud-gbm-v3", traffic_pct=50, reason="ramp", actor="alice")
    services.on_alert(breach_alert(at=timezone.now()))
    incident = open_incident()
    rollout_services.apply_action(action="kill", params={}, reason="stop everything", actor="bob")
    version = rollout_services.current_policy()["version"]
    assert not TimelineEntry.objects.filter(incident=incident, source_key=f"policy:{version}").exists()
    return incident, version


def test_catch_up_restores_what_a_lost_delivery_never_brought(responder, django_capture_on_commit_callbacks):
    incident, version = incident_with_an_unheard_kill()
    response = responder.post(f"/incidents/{incident.pk}/do/catch-up/")
    assert response.status_code == 302
    assert TimelineEntry.objects.filter(incident=incident, source_key=f"policy:{version}").count() == 1
    incident.refresh_from_db()
    assert incident.mitigated_at is not None
    assert incident.decisions.count() == 0  # a person's kill is recorded by that person, not automatically
    assert services.catch_up(incident_id=incident.pk) == 0  # a second run adds nothing


def test_beat_catches_up_every_unresolved_incident_without_a_click(responder):
    from incidents.tasks import catch_up_unresolved
    from shopswift_ops.celery import app

    assert app.conf.beat_schedule["incidents-catch-up"]["task"] == "incidents.catch_up_unresolved"
    incident, version = incident_with_an_unheard_kill()
    catch_up_unresolved.delay()  # eager in unit tests: the task body, as the worker runs it
    assert TimelineEntry.objects.filter(incident=incident, source_key=f"policy:{version}").count() == 1
    assert services.catch_up_unresolved_incidents() == 0
