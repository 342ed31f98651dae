"""Immutability of the timeline and of published updates, TTD/TTM/TTR, and the record services."""
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction

from incidents import services
from incidents.models import ActionItem, Incident, StatusUpdate, TimelineEntry
from incidents.selectors import open_incident, update_due
from tests.factories import UserFactory
from tests.incidents.conftest import breach_alert

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def test_the_database_refuses_to_edit_or_delete_a_timeline_entry(incident):
    entry = TimelineEntry.objects.filter(incident=incident).first()
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        TimelineEntry.objects.filter(pk=entry.pk).update(text="rewritten")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM incidents_timelineentry WHERE id = %s", [entry.pk])
    entry.refresh_from_db()
    assert entry.text != "rewritten"


def test_a_correction_is_a_new_entry_pointing_at_the_old_one(incident):
    note = services.add_note(incident_id=incident.pk, actor="alice", text="conversion -4 pp")
    fix = services.add_note(incident_id=incident.pk, actor="alice", text="conversion -1.4 pp", corrects_id=note.pk)
    assert fix.kind == "correction" and fix.corrects_id == note.pk
    note.refresh_from_db()
    assert note.text == "conversion -4 pp"


def test_published_updates_are_immutable_drafts_are_not(incident):
    draft = services.create_draft(incident_id=incident.pk, actor="alice", audience="tactical")
    services.edit_draft(update_id=draft.pk, actor="alice", sections={"conditions": "c", "actions": "a", "needs": "n"})
    services.publish_update(update_id=draft.pk, actor="alice")
    with pytest.raises(services.Conflict):
        services.edit_draft(update_id=draft.pk, actor="alice", sections={"conditions": "changed"})
    with pytest.raises(services.Conflict):
        services.publish_update(update_id=draft.pk, actor="bob")
    with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
        StatusUpdate.objects.filter(pk=draft.pk).update(sections={"conditions": "sneaky"})
    with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
        StatusUpdate.objects.filter(pk=draft.pk).delete()
    draft.refresh_from_db()
    assert draft.sections["conditions"] == "c" and draft.published_by == "alice"
    assert TimelineEntry.objects.filter(incident=incident, kind="status_update").count() == 1


def test_time_to_detect_mitigate_and_resolve():
    with time_machine.travel(T0 + timedelta(minutes=3), tick=False):
        services.on_alert(breach_alert(at=T0 + timedelta(minutes=3)))
    incident = open_incident()
    with time_machine.travel(T0 + timedelta(minutes=4), tick=False):
        incident = services.set_times(incident_id=incident.pk, version=incident.version, actor="alice",
                                      started_at=T0)
    assert incident.time_to_detect == timedelta(minutes=3)
    assert incident.time_to_mitigate is None and incident.time_to_resolve is None
    with time_machine.travel(T0 + timedelta(minutes=25), tick=False):
        incident = services.change_status(incident_id=incident.pk, version=incident.version, status="monitoring",
                                          actor="alice")
    assert incident.time_to_mitigate == timedelta(minutes=25)
    assert incident.affected_population["to"] == "2026-11-28T08:25:00Z"
    with time_machine.travel(T0 + timedelta(hours=5), tick=False):
        incident = services.change_status(incident_id=incident.pk, version=incident.version, status="resolved",
                                          actor="alice")
    assert incident.time_to_resolve == timedelta(hours=5)
    assert incident.time_to_mitigate == timedelta(minutes=25)  # resolution keeps the earlier mitigation


def test_stale_versions_conflict_instead_of_overwriting(incident):
    services.change_severity(incident_id=incident.pk, version=incident.version, severity="SEV1", actor="alice")
    with pytest.raises(services.Conflict):
        services.change_status(incident_id=incident.pk, version=incident.version, status="identified", actor="bob")
    assert Incident.objects.get(pk=incident.pk).status == "investigating"


def test_bad_input_names_the_field(incident):
    with pytest.raises(services.IncidentError) as err:
        services.change_status(incident_id=incident.pk, version=incident.version, status="done", actor="a")
    assert err.value.field == "status"
    with pytest.raises(services.IncidentError) as err:
        services.add_action_item(incident_id=incident.pk, actor="a", kind="corrective", title="fix", owner=None,
                                 due_on=date.today())
    assert err.value.field == "owner"
    with pytest.raises(services.IncidentError) as err:
        services.add_hypothesis(incident_id=incident.pk, actor="a", kind="astrology", statement="x")
    assert err.value.field == "kind"


def test_overdue_action_items_stand_out(incident):
    owner = UserFactory(role="engineering")
    with time_machine.travel(T0, tick=False):
        item = services.add_action_item(incident_id=incident.pk, actor="a", kind="corrective", title="backfill",
                                        owner=owner, due_on=date(2026, 11, 29))
        assert not item.is_overdue
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        assert ActionItem.objects.get(pk=item.pk).is_overdue
        services.set_action_item_status(item_id=item.pk, version=item.version, actor="a", status="done")
        assert not ActionItem.objects.get(pk=item.pk).is_overdue


def test_update_due_follows_the_severity_cadence(incident):
    services.change_severity(incident_id=incident.pk, version=incident.version, severity="SEV1", actor="a")
    incident.refresh_from_db()
    due = update_due(incident, now=incident.opened_at + timedelta(minutes=31))
    assert due["cadence_minutes"] == 30 and due["overdue"]
    update = services.create_draft(incident_id=incident.pk, actor="a", audience="executive")
    published = services.publish_update(update_id=update.pk, actor="a")
    due = update_due(incident, now=published.published_at + timedelta(minutes=10))
    assert not due["overdue"] and due["due_at"] == published.published_at + timedelta(minutes=30)


def test_hypothesis_assessment_keeps_status_and_evidence(incident):
    hypothesis = services.add_hypothesis(incident_id=incident.pk, actor="a", kind="feature_drift",
                                         statement="account_age_days defaults for social login")
    assert hypothesis.evidence["from"]  # the window the KPI engine was asked about
    assessed = services.assess_hypothesis(hypothesis_id=hypothesis.pk, version=hypothesis.version, actor="a",
                                          status="confirmed", note="default share 62% vs 3%")
    assert assessed.status == "confirmed" and assessed.version == 2
    with pytest.raises(services.Conflict):
        services.assess_hypothesis(hypothesis_id=hypothesis.pk, version=1, actor="b", status="refuted")


def test_exit_criteria_and_postmortem_sections(incident):
    criterion = services.add_exit_criterion(incident_id=incident.pk, actor="a", text="backfill validated")
    services.mark_exit_criterion_met(criterion_id=criterion.pk, actor="b")
    with pytest.raises(services.Conflict):
        services.mark_exit_criterion_met(criterion_id=criterion.pk, actor="b")
    services.save_postmortem_section(incident_id=incident.pk, actor="a", key="root_cause", body="schema change")
    section = services.save_postmortem_section(incident_id=incident.pk, actor="b", key="root_cause", body="v2")
    assert section.body == "v2" and incident.postmortem_sections.count() == 1
