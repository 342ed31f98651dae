"""Two writers at once, with real threads on real PostgreSQL connections."""
import threading

import pytest
from django.db import connection

from rollout import services
from rollout.models import AuditEntry, PolicyVersion

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(*calls):
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def worker(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_actions_give_versions_in_order_without_losing_an_update():
    services.ensure_initialized()
    for round_number in range(5):
        results = run_together(
            lambda: services.apply_action(action="set_thresholds", params={"step_up": 0.5, "decline": 0.8},
                                          reason="alice", actor="alice"),
            lambda: services.apply_action(action="set_fallback", params={"fallback": "rules", "timeout_ms": 120},
                                          reason="bob", actor="bob"),
        )
        assert all(isinstance(r, dict) for r in results), results
        services.apply_action(action="rollback", params={"to_version": 1}, reason="reset", actor="t")
    versions = list(PolicyVersion.objects.order_by("version").values_list("version", flat=True))
    assert versions == list(range(1, len(versions) + 1))
    # Each version was built on the one before it: no change overwrote another.
    for entry in AuditEntry.objects.filter(kind="policy").exclude(action="initial"):
        assert entry.detail["previous_version"] == entry.policy_version - 1
    # In every round the second writer saw the first one's change.
    for version in PolicyVersion.objects.filter(action__in=["set_thresholds", "set_fallback"]):
        before = PolicyVersion.objects.get(version=version.version - 1)
        if before.action in ("set_thresholds", "set_fallback"):
            assert version.thresholds == {"step_up": 0.5, "decline": 0.8} and version.fallback == "rules"


def test_concurrent_actions_on_the_same_seen_version_get_one_success_and_one_conflict():
    services.ensure_initialized()
    seen = services.current_policy()["version"]
    results = run_together(
        lambda: services.apply_action(action="set_mode", params={"mode": "shadow"}, reason="a", actor="alice",
                                      expected_version=seen),
        lambda: services.apply_action(action="set_thresholds", params={"step_up": 0.4, "decline": 0.7}, reason="b",
                                      actor="bob", expected_version=seen),
    )
    successes = [r for r in results if isinstance(r, dict)]
    conflicts = [r for r in results if isinstance(r, services.ActionError)]
    assert len(successes) == 1 and len(conflicts) == 1, results
    assert conflicts[0].status == 409 and "stale version" in conflicts[0].detail
    assert services.current_policy()["version"] == seen + 1


def test_a_repeated_alert_delivered_twice_at_once_acts_once():
    from rollout import guardrail_actions

    services.ensure_initialized()
    services.bootstrap_policy(model_version="m", traffic_pct=25, reason="start", actor="t", force=True)
    payload = {"alert_id": 7, "guardrail": "fallback-rate", "metric": "fallback_rate", "segment": None,
               "status": "breach", "action": "kill", "evidence": "fallback 3% > 1%"}
    results = run_together(lambda: guardrail_actions.handle_alert(payload), lambda: guardrail_actions.handle_alert(payload))
    assert sorted(results) == ["duplicate: already handled", "killed: everyone to control"]
    assert PolicyVersion.objects.filter(action="kill").count() == 1
